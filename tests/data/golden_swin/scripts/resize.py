"""The golden resize rule (shared/golden/README.md section 3), in numpy float64.

Bilinear, half-pixel centres, no antialiasing, clamp, round half up, uint8.
Run as a script to check it against the R50 golden cases' image_rgb_u8.
"""
import hashlib
import os
import sys

import numpy as np


def _axis(n_in, n_out):
    scale = n_in / n_out
    d = np.arange(n_out, dtype=np.float64)
    src = (d + 0.5) * scale - 0.5
    src = np.clip(src, 0.0, n_in - 1)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w = src - i0
    return i0, i1, w


def resize_u8(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    assert img.dtype == np.uint8 and img.ndim == 3
    p = img.astype(np.float64)
    y0, y1, wy = _axis(img.shape[0], out_h)
    x0, x1, wx = _axis(img.shape[1], out_w)
    wx = wx[None, :, None]
    wy = wy[:, None, None]
    top = p[y0][:, x0] * (1 - wx) + p[y0][:, x1] * wx
    bot = p[y1][:, x0] * (1 - wx) + p[y1][:, x1] * wx
    v = top * (1 - wy) + bot * wy
    return np.clip(np.floor(v + 0.5), 0, 255).astype(np.uint8)


def load_source(name: str):
    """(rgb uint8 HWC, path relative to site-packages, sha256 of the file)."""
    import skimage
    import skimage.io

    path = os.path.join(os.path.dirname(skimage.__file__), "data", name)
    img = skimage.io.imread(path)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3, img.shape
    with open(path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    return img, "skimage/data/" + name, sha


if __name__ == "__main__":
    from safetensors.numpy import load_file

    gold = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/golden"
    cases = {
        "astronaut_384x384": "astronaut.png",
        "chelsea_448x640": "chelsea.png",
        "coffee_480x640": "coffee.png",
        "rocket_800x1184": "rocket.jpg",
    }
    bad = 0
    for case, src in cases.items():
        ref = load_file(os.path.join(gold, case + ".safetensors"))["image_rgb_u8"]
        img, _, sha = load_source(src)
        out = resize_u8(img, ref.shape[0], ref.shape[1])
        same = np.array_equal(out, ref)
        bad += not same
        print(case, src, sha[:12], "bit-exact" if same else "DIFFERS (%d px)" % (out != ref).sum())
    sys.exit(1 if bad else 0)
