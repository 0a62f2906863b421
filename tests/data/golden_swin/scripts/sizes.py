"""Input-size arithmetic of the Swin Focus-DETR presets, and the checks used to choose the golden sizes.

    python sizes.py            # table for the chosen cases
"""
import math

WINDOW = {"swin_t": 7, "swin_b": 12}
CASES = [
    ("swin_t", "astronaut", 393, 395), ("swin_t", "chelsea", 401, 458), ("swin_t", "coffee+rocket", 403, 409),
    ("swin_b", "coffee", 386, 389), ("swin_b", "chelsea", 419, 447), ("swin_b", "astronaut+chelsea", 401, 414),
]


def stages(x):
    """Swin stage resolutions along one side: ceil(x/4) (patch embed pads to a multiple of 4), then
    (h+1)//2 three times (patch merging pads odd sizes by one)."""
    s = [-(-x // 4)]
    for _ in range(3):
        s.append((s[-1] + 1) // 2)
    return s


def levels(x):
    """Token-map sizes P3..P6 along one side: stages 2..4 and the stride-2 3x3 (pad 1) extra conv."""
    s = stages(x)
    return [s[1], s[2], s[3], (s[3] + 1) // 2]


def tokens(h, w):
    return sum(a * b for a, b in zip(levels(h), levels(w)))


def k_per_layer(n):
    import numpy as np

    K = int(n * 0.5) + 1
    return K, [int(np.float32(c) * np.float32(K)) for c in (1.0, 0.8, 0.6, 0.6, 0.4, 0.2)]


def check(preset, h, w):
    win = WINDOW[preset]
    sh, sw = stages(h), stages(w)
    no_mult = all(v % win for v in sh + sw)
    odd = any(v % 2 for v in sh[:3] + sw[:3])
    n = tokens(h, w)
    return {"stages_h": sh, "stages_w": sw, "padded_h": [math.ceil(v / win) * win for v in sh],
            "padded_w": [math.ceil(v / win) * win for v in sw], "no_stage_multiple_of_window": no_mult,
            "side_not_multiple_of_4": (h % 4 != 0) or (w % 4 != 0), "odd_stage_before_merge": odd,
            "N": n, "N_ok": n >= 3100, "K_k": k_per_layer(n)}


if __name__ == "__main__":
    for preset, photo, h, w in CASES:
        print(preset, photo, f"{h}x{w}", check(preset, h, w))
