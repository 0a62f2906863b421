"""Build the official detrex Focus-DETR model (pure-Python parts, CPU) and fill it with focus-synth-v1.

Environment (see README.md section 1):
  * detectron2 source tree at commit 70f45430 and detrex source tree at commit e244e6c3, both put on
    sys.path (DETECTRON2_SRC, DETREX_SRC; default /tmp/src/detectron2, /tmp/src/detrex). Neither is
    built. detrex/config/configs must be the symlink to detrex/configs that detrex's setup.py makes.
  * import stubs, each for a module that this model never uses (registered in sys.modules below).
"""
import os
import re
import sys
import types
import warnings

import numpy as np

DETECTRON2_SRC = os.environ.get("DETECTRON2_SRC", "/tmp/src/detectron2")
DETREX_SRC = os.environ.get("DETREX_SRC", "/tmp/src/detrex")

DETREX_COMMIT = "e244e6c3da3e84566728c52c21fb061d23ce0e2f"
DETECTRON2_COMMIT = "70f454304e1a38378200459dd2dbca0f0f4a5ab4"

PRESETS = {
    "swin_t": {
        "config": "projects/focus_detr/configs/focus_detr_swin/focus_detr_swin_tiny_224_4scale_36ep.py",
        "backbone": "swin_tiny_224",
    },
    "swin_b": {
        "config": "projects/focus_detr/configs/focus_detr_swin/focus_detr_swin_base_384_4scale_36ep.py",
        "backbone": "swin_base_384",
    },
    # only used to validate the canonical-key logic against shared/golden/r50_keys.txt
    "r50": {
        "config": "projects/focus_detr/configs/focus_detr_resnet/focus_detr_r50_4scale_12ep.py",
        "backbone": "resnet50",
    },
}

_ENV_DONE = False


def _stub(name, **attrs):
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    m.__file__ = "<focus-golden stub>"
    sys.modules[name] = m
    return m


def setup_env():
    """Put the official sources on sys.path and register the import stubs (documented in README)."""
    global _ENV_DONE
    if _ENV_DONE:
        return
    for p in (DETREX_SRC, DETECTRON2_SRC):  # detectron2 ends up first
        if p not in sys.path:
            sys.path.insert(0, p)
    # 1. detrex's compiled extension is not built: an empty stand-in makes `from detrex import _C`
    #    succeed, so the real MultiScaleDeformableAttention class is defined (instead of detrex's
    #    dummy). On CPU tensors its forward uses multi_scale_deformable_attn_pytorch; _C is never called.
    _stub("detrex._C")
    # 2. wandb: imported by detrex/utils/events.py (WandbWriter, a training logger).
    _stub("wandb")
    # 3. fairscale: detrex/modeling/backbone/eva.py imports checkpoint_wrapper (EVA backbone only).
    _stub("fairscale")
    _stub("fairscale.nn")
    _stub("fairscale.nn.checkpoint", checkpoint_wrapper=None)
    # 4. einops: detrex/modeling/backbone/eva_02_utils.py (EVA-02 backbone only).
    _stub("einops", rearrange=None, repeat=None)
    # 5. cv2 (OpenCV): detectron2/utils/env.py probes cv2.__version__ at import; detectron2 data
    #    transforms / PointRend colour augmentation / visualizer import it. None runs here.
    _stub("cv2", __version__="0")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    _ENV_DONE = True


def load_cfg(preset):
    setup_env()
    from detectron2.config import LazyConfig

    cfg_path = os.path.join(DETREX_SRC, PRESETS[preset]["config"])
    cwd = os.getcwd()
    os.chdir(DETREX_SRC)  # configs import `projects.focus_detr...` relative to the repo root
    try:
        cfg = LazyConfig.load(cfg_path)
    finally:
        os.chdir(cwd)
    if preset == "r50":
        # what focus_detr_r50_4scale_36ep.py changes on top of the 12ep file (see shared/golden/README.md)
        cfg.model.position_embedding.temperature = 20
        cfg.model.position_embedding.offset = 0.0
    cfg.model.device = "cpu"
    return cfg


def build_model(preset):
    """instantiate(cfg.model) on CPU, eval mode, float32 (weights are still the official init)."""
    setup_env()
    import torch
    from detectron2.config import instantiate

    cfg = load_cfg(preset)
    if DETREX_SRC not in sys.path:
        sys.path.insert(0, DETREX_SRC)
    model = instantiate(cfg.model)
    model = model.to("cpu").float().eval()
    return model, cfg


# ---------------------------------------------------------------------------------------------
# canonical vs alias keys
_CANON_HEAD = re.compile(r"^(class_embed|bbox_embed)\.\d+\.")


def canonical_groups(model):
    """[(canonical_key, [alias keys])] in state_dict order of the canonical key; and a list of
    (alias, canonical) in state_dict order of the alias."""
    sd = model.state_dict(keep_vars=True)
    by_obj = {}
    for k, v in sd.items():
        by_obj.setdefault(id(v), []).append(k)
    canon_of = {}
    for names in by_obj.values():
        if len(names) == 1:
            canon_of[names[0]] = names[0]
            continue
        heads = [n for n in names if _CANON_HEAD.match(n)]
        assert len(heads) == 1, names
        for n in names:
            canon_of[n] = heads[0]
    canon = [k for k in sd if canon_of[k] == k]
    aliases = [(k, canon_of[k]) for k in sd if canon_of[k] != k]
    return canon, aliases


def synth_state_dict(model, seed=0):
    """{key: torch tensor} for every state_dict key (aliases share the canonical tensor).
    Float keys: focus-synth-v1. Integer buffers (Swin relative_position_index): the module's own."""
    import torch
    from synth import synth_tensor

    sd = model.state_dict()
    canon, aliases = canonical_groups(model)
    out = {}
    kinds = {}
    for k in canon:
        t = sd[k]
        if t.dtype.is_floating_point:
            assert t.dtype == torch.float32, (k, t.dtype)
            out[k] = torch.from_numpy(synth_tensor(k, tuple(t.shape), seed))
            kinds[k] = "f32"
        else:
            assert k.endswith(".relative_position_index") and t.dtype == torch.int64, (k, t.dtype)
            out[k] = t.detach().clone()
            kinds[k] = "i64"
    for a, c in aliases:
        out[a] = out[c]
    return out, canon, aliases, kinds


def load_synth(model, seed=0):
    sd, canon, aliases, kinds = synth_state_dict(model, seed)
    res = model.load_state_dict(sd, strict=True)
    assert not res.missing_keys and not res.unexpected_keys
    return sd, canon, aliases, kinds
