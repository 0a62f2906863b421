"""Validation of this pipeline: regenerate the existing R50 golden case(s) with run_case's capture code
and compare every tensor with shared/golden bit for bit.

    python r50_repro.py /work/shared/golden astronaut 384 384 [chelsea 448 640 ...]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch
from safetensors.torch import load_file

import run_case

gold = sys.argv[1]
rest = sys.argv[2:]
model = run_case.get_model("r50")
for i in range(0, len(rest), 3):
    photo, H, W = rest[i], int(rest[i + 1]), int(rest[i + 2])
    ref = load_file(os.path.join(gold, f"{photo}_{H}x{W}.safetensors"))
    imgs, _ = run_case.prepare([photo], H, W)
    d = run_case.forward_captured(model, imgs)
    big = "memory" in ref
    t = run_case.case_tensors(d, imgs, big)
    t = {k: v for k, v in t.items() if not k.startswith(("backbone_", "patch_embed"))}
    missing = sorted(set(ref) - set(t))
    extra = sorted(set(t) - set(ref))
    diff = [k for k in ref if k in t and not run_case.bit_equal(ref[k], t[k])]
    print(f"{photo}_{H}x{W}: {len(ref)} reference tensors, missing {missing}, extra {extra}, "
          f"not bit-identical {diff}")
