"""Write <model>_keys.txt, <model>_aliases.txt, <model>_synth_seed0_checks.txt; optionally the weights.

    python make_keys.py OUTDIR swin_t swin_b          # key files
    python make_keys.py --r50-check                   # validate canonical/alias logic on R50
    python make_keys.py --save-weights PATH swin_t    # complete state_dict (aliases included)
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np

import official_model as om
from synth import check_line


def key_lines(model, seed=0):
    import torch

    sd, canon, aliases, kinds = om.load_synth(model, seed)
    # after loading: the model's own state_dict must hold exactly what was generated
    msd = model.state_dict()
    for k in canon:
        assert torch.equal(msd[k], sd[k]), k
    keys, checks = [], []
    n_par = n_buf = 0
    for k in canon:
        a = sd[k].numpy()
        shape = ",".join(str(s) for s in a.shape)
        keys.append(f"{k}\t{shape}\t{kinds[k]}")
        checks.append(check_line(k, a))
        if kinds[k] == "f32":
            n_par += a.size
        else:
            n_buf += a.size
    al = [f"{a}\t{c}" for a, c in aliases]
    return keys, al, checks, sd, canon, (n_par, n_buf)


def main():
    import torch

    torch.set_num_threads(2)
    args = sys.argv[1:]
    if args and args[0] == "--r50-check":
        model, _ = om.build_model("r50")
        keys, al, checks, *_ = key_lines(model)
        gold = "/work/shared/golden/"
        want_k = [l.rstrip("\n") for l in open(gold + "r50_keys.txt") if l.strip()]
        want_a = [l.rstrip("\n") for l in open(gold + "r50_aliases.txt") if l.strip()]
        want_c = [l.rstrip("\n") for l in open(gold + "r50_synth_seed0_checks.txt") if l.strip()]
        got_k = ["\t".join(l.split("\t")[:2]) for l in keys]
        print("r50 keys", got_k == want_k, len(got_k), "aliases", al == want_a, len(al),
              "checks", checks == want_c)
        return
    if args and args[0] == "--save-weights":
        from safetensors.torch import save_file

        path, preset = args[1], args[2]
        model, _ = om.build_model(preset)
        sd, canon, aliases, kinds = om.load_synth(model)
        # safetensors refuses shared storage: store every key (alias keys as copies)
        save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}, path,
                  metadata={"weights": "focus-synth-v1 seed 0 (relative_position_index: official buffer)",
                            "preset": om.PRESETS[preset]["config"],
                            "note": "complete state_dict incl. alias keys (copies of canonical)"})
        print("saved", path, len(model.state_dict()), "keys")
        return
    outdir = args[0]
    for preset in args[1:]:
        model, _ = om.build_model(preset)
        keys, al, checks, sd, canon, (n_par, n_buf) = key_lines(model)
        with open(os.path.join(outdir, f"{preset}_keys.txt"), "w") as f:
            f.write("\n".join(keys) + "\n")
        with open(os.path.join(outdir, f"{preset}_aliases.txt"), "w") as f:
            f.write("\n".join(al) + "\n")
        with open(os.path.join(outdir, f"{preset}_synth_seed0_checks.txt"), "w") as f:
            f.write("\n".join(checks) + "\n")
        nk = len(model.state_dict())
        n_params = sum(p.numel() for p in model.parameters())
        n_idx = sum(1 for l in keys if l.endswith("i64"))
        print(f"{preset}: state_dict {nk} keys, canonical {len(canon)} ({len(canon)-n_idx} f32 + "
              f"{n_idx} int64 index buffers), aliases {len(al)}; f32 elements {n_par}, "
              f"int64 elements {n_buf}; model.parameters() numel {n_params}")


if __name__ == "__main__":
    main()
