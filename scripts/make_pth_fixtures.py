"""Writes the PyTorch checkpoint fixtures of tests/data/pth/ with real `torch.save`, and the values
each must read back to (tests/data/pth/expected/*.safetensors).

The tests only read these files; this script is how they were made and how to make them again.
It needs full PyTorch, which CI does not have (PyPI's torch needs its CUDA libraries, ~4.7 GB,
before `import torch` works). Install it once, anywhere:

    python3 -m venv /tmp/torchfull
    /tmp/torchfull/bin/pip install torch==2.13.0 safetensors==0.8.0 numpy==2.4.6
    /tmp/torchfull/bin/python scripts/make_pth_fixtures.py

The output is deterministic for one torch release (seeded values, fixed names).
"""
import collections
import os
import shutil
import sys
import zipfile

import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "pth")


def state_dict(seed):
    """A small state dict with detrex's key names and shapes of the same kinds."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)
    return collections.OrderedDict([
        ("backbone.res2.0.conv1.weight", r(8, 4, 1, 1)),
        ("backbone.res2.0.conv1.norm.weight", r(8)),
        ("backbone.res2.0.conv1.norm.bias", r(8)),
        ("transformer.encoder.layers.0.attentions.0.sampling_offsets.weight", r(16, 8)),
        ("transformer.encoder.layers.0.attentions.0.sampling_offsets.bias", r(16)),
        ("transformer.level_embeds", r(4, 8)),
        ("class_embed.0.weight", r(5, 8)),
        ("class_embed.0.bias", r(5)),
    ])


def save(obj, name, **kw):
    torch.save(obj, os.path.join(OUT, name), **kw)


def expect(sd, name):
    """The values a fixture must read back to: contiguous copies in their own dtypes."""
    save_file({k: v.contiguous().clone() for k, v in sd.items()},
              os.path.join(OUT, "expected", name + ".safetensors"))


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(os.path.join(OUT, "expected"))
    sd = state_dict(0)
    expect(sd, "model")

    # detectron2's checkpointer: {"model": ..., "trainer": ..., "iteration": ...} (zip, protocol 2).
    trainer = {
        "iteration": 89999,
        "optimizer": {
            "state": {0: {"step": torch.tensor(90000.0), "exp_avg": torch.ones(8, 4, 1, 1),
                          "exp_avg_sq": torch.full((8, 4, 1, 1), 0.5)}},
            "param_groups": [{"lr": 1e-5, "betas": (0.9, 0.999), "weight_decay": 1e-4,
                              "params": [0]}],
        },
        "scheduler": {"base_lrs": [1e-4], "last_epoch": 89999, "milestones": {75000: 1}},
        "hooks": {"LRScheduler": {"_last_lr": [1e-5]}},
    }
    save({"model": sd, "trainer": trainer, "iteration": 89999}, "detectron2.pth")
    # The legacy (pre-1.6) container, a bare state dict.
    save(sd, "legacy.pth", _use_new_zipfile_serialization=False)
    # {"state_dict": ...} with pickle protocol 4.
    save({"state_dict": sd}, "protocol4.pth", pickle_protocol=4)
    # DataParallel / DDP names: every key under "module.".
    save({"model": collections.OrderedDict(("module." + k, v) for k, v in sd.items())},
         "module_prefix.pth")
    # An EMA checkpoint: the EMA weights beside the trained ones (detrex's EMA hook).
    ema = state_dict(1)
    expect(ema, "ema_state")
    save({"model": sd, "ema_state": ema, "iteration": 89999}, "ema.pth")

    # Half, bfloat16 and double tensors.
    g = torch.Generator().manual_seed(2)
    mixed = collections.OrderedDict([
        ("backbone.res2.0.conv1.weight", torch.randn(8, 4, 1, 1, generator=g).half()),
        ("backbone.res2.0.conv1.norm.weight", torch.randn(8, generator=g).bfloat16()),
        ("transformer.level_embeds", torch.randn(4, 8, generator=g).double()),
    ])
    expect(mixed, "dtypes")
    save({"model": mixed}, "dtypes.pth")

    # Views of one storage: a transpose, an offset slice and a strided slice, saved as views.
    base = torch.arange(96, dtype=torch.float32).reshape(8, 12) / 7.0
    views = collections.OrderedDict([
        ("transformer.encoder.layers.0.attentions.0.sampling_offsets.weight", base.t()),
        ("class_embed.0.weight", base[3:8, 4:12]),
        ("backbone.res2.0.conv1.norm.weight", base[1, ::3]),
        ("transformer.level_embeds", base),
    ])
    expect(views, "views")
    save({"model": views}, "views.pth")

    # The shared heads: one tensor under two names (a single storage in the file).
    head = torch.randn(5, 8, generator=g)
    aliases = collections.OrderedDict([
        ("class_embed.0.weight", head),
        ("transformer.decoder.class_embed.0.weight", head),
    ])
    expect(aliases, "aliases")
    save({"model": aliases}, "aliases.pth")

    # A release archive: a .zip holding one checkpoint in a folder.
    with zipfile.ZipFile(os.path.join(OUT, "release.zip"), "w", zipfile.ZIP_DEFLATED) as z:
        z.write(os.path.join(OUT, "detectron2.pth"), "focus_detr_r50_4scale_36ep/model_final.pth")
    print("wrote", sorted(os.listdir(OUT)), "with torch", torch.__version__)


if __name__ == "__main__":
    sys.exit(main())
