"""focus-synth-v1: the bit-exact seeded synthetic-weight generator (shared/design/synthetic_weights.md).

Own implementation in numpy (uint64 wrapping arithmetic). Usage as a library:

    from synth import synth_tensor, key_range, check_line
    arr = synth_tensor(key, shape, seed=0)   # numpy float32, row-major

Run as a script to validate against shared/golden/r50_synth_seed0_checks.txt:

    python synth.py /work/shared/golden/r50_synth_seed0_checks.txt [max_keys]
"""
import math
import re
import sys

import numpy as np

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK64 = (1 << 64) - 1

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)


def fnv1a64(data: bytes) -> int:
    h = FNV_OFFSET
    for b in data:
        h ^= b
        h = (h * FNV_PRIME) & MASK64
    return h


def splitmix_uniform(s0: int, n: int) -> np.ndarray:
    """u_i = (z_i >> 11) * 2^-53 for i = 0..n-1, as float64."""
    with np.errstate(over="ignore"):
        i1 = np.arange(1, n + 1, dtype=np.uint64)
        z = np.uint64(s0) + i1 * GOLDEN
        z = (z ^ (z >> np.uint64(30))) * M1
        z = (z ^ (z >> np.uint64(27))) * M2
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (2.0 ** -53)


_CLASS_BIAS = re.compile(r"class_embed\.\d+\.bias")
_BBOX_L2W = re.compile(r"bbox_embed\.\d+\.layers\.2\.weight")


def key_range(key: str, shape):
    """(lo, hi, rule number) for a key, first matching rule wins."""
    rank = len(shape)
    fan_in = int(np.prod(shape[1:])) if rank >= 2 else None
    if key.endswith(".running_mean"):
        return -0.1, 0.1, 1
    if key.endswith(".running_var"):
        return 0.5, 1.5, 2
    if key.startswith("backbone.") and key.endswith("conv3.norm.weight"):
        return 0.1, 0.3, 3
    if key.startswith("backbone.") and key.endswith(".norm.weight"):
        return 0.5, 1.0, 4
    if key == "transformer.alpha":
        return 0.2, 0.8, 5
    if key in ("transformer.level_embeds", "transformer.tgt_embed.weight", "label_enc.weight"):
        return -1.0, 1.0, 6
    if key.endswith("sampling_offsets.bias"):
        return -2.0, 2.0, 7
    if key.endswith("sampling_offsets.weight"):
        b = 0.1 * math.sqrt(3.0 / fan_in)
        return -b, b, 8
    if _CLASS_BIAS.fullmatch(key):
        return -5.0, -4.0, 9
    if _BBOX_L2W.fullmatch(key):
        return -0.01, 0.01, 10
    if rank == 1 and key.endswith(".weight"):
        return 0.8, 1.2, 11
    if rank == 1:
        return -0.1, 0.1, 12
    if rank == 4:
        b = math.sqrt(6.0 / fan_in)
        return -b, b, 13
    if rank == 2:
        b = math.sqrt(3.0 / fan_in)
        return -b, b, 14
    raise ValueError(f"no focus-synth-v1 rule for {key} with shape {tuple(shape)}")


def synth_tensor(key: str, shape, seed: int = 0) -> np.ndarray:
    shape = tuple(int(s) for s in shape)
    lo, hi, _ = key_range(key, shape)
    n = int(np.prod(shape)) if shape else 1
    s0 = (seed ^ fnv1a64(key.encode("utf-8"))) & MASK64
    u = splitmix_uniform(s0, n)
    v = lo + (hi - lo) * u  # f64
    return v.astype(np.float32).reshape(shape)


def f32_short(x) -> str:
    """Shortest decimal string that round-trips to the same float32."""
    return str(np.float32(x))


def seq_sum_f64(a: np.ndarray) -> float:
    flat = np.ascontiguousarray(a).reshape(-1)
    if flat.size == 0:
        return 0.0
    if flat.dtype.kind in "iu":
        return int(flat.astype(np.int64).sum())
    return float(np.add.accumulate(flat.astype(np.float64))[-1])


def check_line(key: str, a: np.ndarray) -> str:
    shape = ",".join(str(s) for s in a.shape)
    flat = a.reshape(-1)
    if a.dtype.kind in "iu":
        s = str(int(flat.astype(np.int64).sum()))
        first3 = ",".join(str(int(v)) for v in flat[:3])
    else:
        s = "%.17g" % seq_sum_f64(a)
        first3 = ",".join(f32_short(v) for v in flat[:3])
    return f"{key}\t{shape}\t{s}\t{first3}"


def _validate(path, max_keys=None):
    n_ok = n_bad = 0
    with open(path) as f:
        lines = [l.rstrip("\n") for l in f if l.strip()]
    if max_keys:
        lines = lines[:max_keys]
    for line in lines:
        key, shape_s = line.split("\t")[:2]
        shape = tuple(int(s) for s in shape_s.split(","))
        got = check_line(key, synth_tensor(key, shape, 0))
        if got == line:
            n_ok += 1
        else:
            n_bad += 1
            print("MISMATCH\n  want", line, "\n  got ", got)
    print(f"{n_ok} keys match, {n_bad} mismatch")
    return n_bad == 0


if __name__ == "__main__":
    ok = _validate(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None)
    sys.exit(0 if ok else 1)
