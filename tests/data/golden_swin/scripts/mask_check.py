"""Side experiment for README section 6: does the official -100 shifted-window mask behave exactly like
-inf? Runs the Swin backbone on a golden case's `images` twice: official, and with every -100 mask entry
replaced by -inf (WindowAttention.forward wrapped); prints whether the outputs are bit-identical.

    python mask_check.py PRESET CASEFILE
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch
from safetensors.torch import load_file

import run_case

preset, case = sys.argv[1], sys.argv[2]
torch.set_num_threads(2)
model = run_case.get_model(preset)
x = load_file(case)["images"]
from detectron2.modeling.backbone.swin import WindowAttention

with torch.no_grad():
    ref = model.backbone(x)
    pe = model.backbone.patch_embed(x)
    orig = WindowAttention.forward

    def fwd(self, x, mask=None):
        if mask is not None:
            mask = mask.masked_fill(mask == -100.0, float("-inf"))
        return orig(self, x, mask)

    WindowAttention.forward = fwd
    try:
        alt = model.backbone(x)
    finally:
        WindowAttention.forward = orig
for k in ref:
    same = torch.equal(ref[k].view(torch.int32), alt[k].view(torch.int32))
    print(preset, k, tuple(ref[k].shape), "bit-identical" if same else
          "differs: max abs %.3g, elements %d" % ((ref[k] - alt[k]).abs().max(), (ref[k] != alt[k]).sum()))
print("patch_embed", tuple(pe.shape))
