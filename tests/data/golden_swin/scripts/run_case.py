"""Run the official Focus-DETR (Swin) model on golden inputs, capture stage tensors, check top-k gaps.

    python run_case.py probe PRESET PHOTO[+PHOTO2] H W ...        # gap summary only
    python run_case.py make OUTDIR PRESET [--big] PHOTO[+PHOTO2] H W  # write a case file
    python run_case.py time PRESET PHOTO[+PHOTO2] H W              # 1 warm-up + 3 timed plain runs

Capture mechanism (nothing in the official code is edited):
  * forward (pre-)hooks on backbone, backbone.patch_embed, neck, transformer.encoder (kwargs),
    transformer.encoder.layers[l], transformer.decoder (kwargs);
  * torch.topk is wrapped by a recorder that calls the original and keeps (input, k, values, indices);
    the official code calls torch.topk 14 times per forward: 6 FTS selections, 6 OESM top-300,
    the two-stage top-900, the post-processing top-300 (asserted below);
  * model.inference is wrapped (instance attribute) to keep its inputs (pred_logits, pred_boxes)
    and a clone of its outputs before detector_postprocess clips the boxes in place.
"""
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np

import official_model as om
from resize import load_source, resize_u8

PHOTOS = {
    "astronaut": "astronaut.png",
    "chelsea": "chelsea.png",
    "coffee": "coffee.png",
    "rocket": "rocket.jpg",
    "motorcycle": "motorcycle_left.png",
}

MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]

_MODELS = {}


def get_model(preset):
    if preset not in _MODELS:
        import torch

        torch.set_num_threads(2)
        model, cfg = om.build_model(preset)
        om.load_synth(model)
        model.eval()
        _MODELS[preset] = model
    return _MODELS[preset]


def prepare(photos, H, W):
    imgs, meta = [], []
    for p in photos:
        src, rel, sha = load_source(PHOTOS[p])
        imgs.append(resize_u8(src, H, W))
        meta.append((rel, sha, src.shape[:2]))
    return imgs, meta


def batched_inputs(imgs):
    import torch

    return [
        {"image": torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1))), "height": im.shape[0],
         "width": im.shape[1]}
        for im in imgs
    ]


class Capture:
    def __init__(self, model):
        self.model = model
        self.handles = []
        self.d = {}
        self.topk = []

    def __enter__(self):
        import torch

        m = self.model
        d = self.d
        tr = m.transformer

        def h(name, fn, kind="fwd"):
            mod = eval("m." + name) if name else m
            if kind == "fwd":
                self.handles.append(mod.register_forward_hook(fn))
            elif kind == "pre":
                self.handles.append(mod.register_forward_pre_hook(fn))
            else:
                self.handles.append(mod.register_forward_pre_hook(fn, with_kwargs=True))

        h("backbone", lambda mod, args: d.__setitem__("images", args[0].detach().clone()), "pre")
        if hasattr(m.backbone, "patch_embed"):
            h("backbone.patch_embed", lambda mod, a, out: d.__setitem__("patch_embed", out.detach().clone()))

        def bb_out(mod, a, out):
            # Swin: p1, p2, p3 (the R50 used by r50_repro.py: res3, res4, res5)
            assert len(out) == 3 and list(out.keys()) in (["p1", "p2", "p3"], ["res3", "res4", "res5"])
            for i, k in enumerate(out.keys()):
                d[f"backbone_{i}"] = out[k].detach().clone()

        h("backbone", bb_out)

        def neck_out(mod, a, out):
            assert len(out) == 4
            for i, t in enumerate(out):
                d[f"neck_{i}"] = t.detach().clone()

        h("neck", neck_out)

        def enc_pre(mod, args, kwargs):
            d["fg_logits"] = kwargs["backbone_mask_prediction"].detach().clone()
            d["focus_token_num"] = kwargs["focus_token_nums"].detach().clone().to(torch.int64)
            d["enc_topk_idx"] = [t.detach().clone() for t in kwargs["foreground_inds"]]
            d["query_pos"] = kwargs["query_pos"].detach().clone()
            d["spatial_shapes"] = kwargs["spatial_shapes"].detach().clone()
            d["level_start_index"] = kwargs["level_start_index"].detach().clone()
            d["valid_ratios"] = kwargs["valid_ratios"].detach().clone()
            d["key_padding_mask"] = kwargs["query_key_padding_mask"].detach().clone()

        h("transformer.encoder", enc_pre, "prekw")
        d["enc_layer_out"] = [None] * len(tr.encoder.layers)
        for l in range(len(tr.encoder.layers)):
            def lay(mod, a, out, l=l):
                d["enc_layer_out"][l] = out.detach().clone()

            h(f"transformer.encoder.layers[{l}]", lay)
        h("transformer.encoder", lambda mod, a, out: d.__setitem__("memory", out.detach().clone()))

        def dec_pre(mod, args, kwargs):
            d["init_reference"] = kwargs["reference_points"].detach().clone()

        h("transformer.decoder", dec_pre, "prekw")
        h("transformer.decoder", lambda mod, a, out: d.__setitem__("dec_references", out[1].detach().clone()))

        # torch.topk recorder
        self._orig_topk = torch.topk
        rec = self.topk

        def topk(input, k, dim=-1, largest=True, sorted=True):
            res = self._orig_topk(input, k, dim=dim, largest=largest, sorted=sorted)
            rec.append({"inp": input.detach().clone(), "k": int(k), "dim": dim,
                        "values": res[0].detach().clone(), "idx": res[1].detach().clone()})
            return res

        torch.topk = topk

        # model.inference wrapper
        orig_inf = m.inference

        def inference(box_cls, box_pred, image_sizes):
            d["pred_logits"] = box_cls.detach().clone()
            d["pred_boxes"] = box_pred.detach().clone()
            results = orig_inf(box_cls, box_pred, image_sizes)
            d["inf_scores"] = [r.scores.detach().clone() for r in results]
            d["inf_labels"] = [r.pred_classes.detach().clone() for r in results]
            d["inf_boxes"] = [r.pred_boxes.tensor.detach().clone() for r in results]
            return results

        m.inference = inference
        return self

    def __exit__(self, *exc):
        import torch

        for hd in self.handles:
            hd.remove()
        torch.topk = self._orig_topk
        del self.model.inference
        return False


def forward_captured(model, imgs):
    import torch

    with torch.no_grad(), Capture(model) as cap:
        out = model(batched_inputs(imgs))
    d = cap.d
    d["final"] = [(o["instances"].scores.clone(), o["instances"].pred_classes.clone(),
                   o["instances"].pred_boxes.tensor.clone()) for o in out]
    d["topk_calls"] = cap.topk
    return d


def forward_plain(model, imgs):
    import torch

    with torch.no_grad():
        out = model(batched_inputs(imgs))
    return [(o["instances"].scores, o["instances"].pred_classes, o["instances"].pred_boxes.tensor) for o in out]


# ---------------------------------------------------------------------------------------------
def _stats(x):
    """mean, population std (ddof 0), abs sum of a tensor, in f64 (numpy's pairwise reductions, as the
    R50 goldens: r50_repro.py reproduces their stats bit for bit)."""
    a = x.detach().cpu().numpy().astype(np.float64)
    return [float(a.mean()), float(a.std()), float(np.abs(a).sum())]


def topk_analysis(d):
    """Per top-k call: smallest cut-off gap (k-th minus (k+1)-th value) over the batch, number of
    exact ties at the cut-off, equal adjacent values inside the selection, and for the order-sensitive
    selections the smallest adjacent gap inside."""
    import torch

    calls = d["topk_calls"]
    nl = len(d["enc_topk_idx"])
    assert len(calls) == 2 * nl + 2, len(calls)
    names = [f"fts_{l}" for l in range(nl)] + [f"oesm_{l}" for l in range(nl)] + ["two_stage_900", "post_300"]
    res = {}
    for name, c in zip(names, calls):
        inp = c["inp"]
        k = c["k"]
        assert c["dim"] == 1 and inp.dim() == 2, (name, c["dim"], inp.shape)
        srt = torch.sort(inp, dim=1, descending=True).values
        gaps, ties_cut, eq_inside, min_inside, n1e6, n1e5 = [], 0, 0, float("inf"), 0, 0
        for b in range(inp.shape[0]):
            s = srt[b].double()
            kth = s[k - 1]
            if k < s.numel():
                gaps.append((kth - s[k]).item())
            # values equal to the k-th value that were left out (non-zero only for a tie at the cut)
            ties_cut += int((srt[b][k:] == srt[b][k - 1]).sum().item())
            sel = c["values"][b].double()
            assert torch.equal(c["values"][b], srt[b][:k]), name
            dif = sel[:-1] - sel[1:]
            eq_inside += int((dif == 0).sum().item())
            min_inside = min(min_inside, dif.min().item())
            n1e6 += int((dif < 1e-6).sum().item())
            n1e5 += int((dif < 1e-5).sum().item())
        res[name] = {"k": k, "n": inp.shape[1], "cut_gap": min(gaps) if gaps else None,
                     "ties_at_cut": ties_cut, "equal_adjacent_inside": eq_inside,
                     "min_adjacent_inside": min_inside, "adj_lt_1e-6": n1e6, "adj_lt_1e-5": n1e5}
    return res


def case_tensors(d, imgs, big):
    """The golden tensor set (shared/golden/README.md section 4, plus the Swin additions)."""
    import torch

    B = len(imgs)
    nl = len(d["enc_topk_idx"])
    calls = d["topk_calls"]
    fts, oesm, two, post = calls[:nl], calls[nl:2 * nl], calls[2 * nl], calls[2 * nl + 1]
    for l in range(nl):
        assert torch.equal(fts[l]["idx"], d["enc_topk_idx"][l])
        assert fts[l]["inp"].data_ptr() != 0 and torch.equal(fts[l]["inp"], d["fg_logits"])
        assert oesm[l]["k"] == 300
    assert two["k"] == 900 and post["k"] == 300
    assert not d["key_padding_mask"].any() and torch.all(d["valid_ratios"] == 1)

    t = {}
    t["image_rgb_u8"] = torch.from_numpy(np.stack(imgs) if B > 1 else imgs[0])
    t["images"] = d["images"]
    t["spatial_shapes"] = d["spatial_shapes"].to(torch.int64)
    t["level_start_index"] = d["level_start_index"].to(torch.int64)
    if big:
        if "patch_embed" in d:
            t["patch_embed"] = d["patch_embed"]
        for i in range(3):
            t[f"backbone_{i}"] = d[f"backbone_{i}"]
        for i in range(4):
            t[f"neck_{i}"] = d[f"neck_{i}"]
        t["query_pos"] = d["query_pos"]
    for i in range(3):
        st = [_stats(d[f"backbone_{i}"][b]) for b in range(B)]
        t[f"backbone_stats_{i}"] = torch.tensor(st[0] if B == 1 else st, dtype=torch.float64)
    t["fg_logits"] = d["fg_logits"]
    t["focus_token_num"] = d["focus_token_num"]
    t["enc_k_per_layer"] = torch.tensor([x.shape[1] for x in d["enc_topk_idx"]], dtype=torch.int64)
    for l in range(nl):
        t[f"enc_topk_idx_{l}"] = d["enc_topk_idx"][l]
        sub = oesm[l]["idx"]
        t[f"enc_oesm_subidx_{l}"] = sub
        t[f"enc_oesm_token_idx_{l}"] = torch.gather(d["enc_topk_idx"][l], 1, sub)
        out = d["enc_layer_out"][l]
        assert out.shape[1] == d["enc_topk_idx"][l].shape[1]
        st = [_stats(out[b]) for b in range(B)]
        t[f"enc_layer_out_stats_{l}"] = torch.tensor(st[0] if B == 1 else st, dtype=torch.float64)
    if big:
        t["enc_layer_out_0"] = d["enc_layer_out"][0]
        t["memory"] = d["memory"]
    mem = d["memory"]
    lsi = d["level_start_index"].tolist() + [mem.shape[1]]
    mls = [[_stats(mem[b, lsi[i]:lsi[i + 1]]) for i in range(4)] for b in range(B)]
    t["memory_level_stats"] = torch.tensor(mls[0] if B == 1 else mls, dtype=torch.float64)
    t["topk_proposals"] = two["idx"]
    t["topk_proposal_scores"] = two["values"]
    t["init_reference"] = d["init_reference"]
    t["dec_references"] = d["dec_references"]
    t["pred_logits"] = d["pred_logits"]
    t["pred_boxes"] = d["pred_boxes"]
    # post-processing: official inference() results (before detector_postprocess)
    assert all(torch.equal(post["values"][b], d["inf_scores"][b]) for b in range(B))
    sc = torch.stack(d["inf_scores"])
    lb = torch.stack(d["inf_labels"])
    bx = torch.stack(d["inf_boxes"])
    t["scores"] = sc[0] if B == 1 else sc
    t["labels"] = lb[0] if B == 1 else lb
    t["boxes_xyxy"] = bx[0] if B == 1 else bx
    for b, (s, l, bb) in enumerate(d["final"]):
        suf = "" if B == 1 else f"_{b}"
        t["final_scores" + suf] = s
        t["final_labels" + suf] = l
        t["final_boxes_xyxy" + suf] = bb
    return {k: v.contiguous() for k, v in t.items()}


def bit_equal(a, b):
    import torch

    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.is_floating_point:
        ia = a.view(torch.int32 if a.dtype == torch.float32 else torch.int64)
        ib = b.view(torch.int32 if b.dtype == torch.float32 else torch.int64)
        return torch.equal(ia, ib)
    return torch.equal(a, b)


def check_images(t, imgs):
    x = np.stack(imgs).astype(np.float32).transpose(0, 3, 1, 2)
    m = np.array(MEAN, np.float32)[None, :, None, None]
    s = np.array(STD, np.float32)[None, :, None, None]
    ref = (x - m) / s
    return np.array_equal(ref.view(np.int32), t["images"].numpy().view(np.int32))


def parse_spec(args):
    photos = args[0].split("+")
    return photos, int(args[1]), int(args[2])


def case_name(preset, photos, H, W):
    if len(photos) == 1:
        return f"{preset}_{photos[0]}_{H}x{W}"
    return f"{preset}_batch{len(photos)}_{'+'.join(photos)}_{H}x{W}"


def summarize(res):
    parts = []
    for k, v in res.items():
        parts.append(f"{k}: k={v['k']}/{v['n']} gap={v['cut_gap']:.3g} tie@cut={v['ties_at_cut']} "
                     f"eqin={v['equal_adjacent_inside']} minin={v['min_adjacent_inside']:.3g}")
    return "\n  ".join(parts)


def main():
    import torch

    torch.set_num_threads(2)
    cmd = sys.argv[1]
    if cmd == "probe":
        preset = sys.argv[2]
        rest = sys.argv[3:]
        model = get_model(preset)
        for i in range(0, len(rest), 3):
            photos, H, W = parse_spec(rest[i:i + 3])
            imgs, _ = prepare(photos, H, W)
            t0 = time.time()
            try:
                d = forward_captured(model, imgs)
            except RuntimeError as e:
                print(case_name(preset, photos, H, W), "FAILED", e)
                continue
            res = topk_analysis(d)
            worst = min(v["cut_gap"] for v in res.values())
            ties = sum(v["ties_at_cut"] for v in res.values())
            tie_in = res["two_stage_900"]["equal_adjacent_inside"] + res["post_300"]["equal_adjacent_inside"]
            N = d["fg_logits"].shape[1]
            print(f"{case_name(preset, photos, H, W)} N={N} shapes={d['spatial_shapes'].tolist()} "
                  f"min_cut_gap={worst:.3g} ties_at_cut={ties} ordered_ties_inside={tie_in} "
                  f"({time.time()-t0:.1f}s)\n  {summarize(res)}", flush=True)
        return
    if cmd == "make":
        outdir, preset = sys.argv[2], sys.argv[3]
        rest = sys.argv[4:]
        big = False
        if rest[0] == "--big":
            big, rest = True, rest[1:]
        photos, H, W = parse_spec(rest)
        name = case_name(preset, photos, H, W)
        model = get_model(preset)
        imgs, meta = prepare(photos, H, W)
        d1 = forward_captured(model, imgs)
        t1 = case_tensors(d1, imgs, big)
        res = topk_analysis(d1)
        d2 = forward_captured(model, imgs)
        t2 = case_tensors(d2, imgs, big)
        det = all(bit_equal(t1[k], t2[k]) for k in t1) and t1.keys() == t2.keys()
        plain = forward_plain(model, imgs)
        plain_ok = all(bit_equal(a, b) for p, f in zip(plain, d1["final"]) for a, b in zip(p, f))
        img_ok = check_images(t1, imgs)
        assert det and plain_ok and img_ok, (det, plain_ok, img_ok)
        # the full backbone stage shapes (for the README)
        info = {
            "case": name, "N": int(d1["fg_logits"].shape[1]),
            "spatial_shapes": d1["spatial_shapes"].tolist(),
            "patch_embed_hw": list(d1["patch_embed"].shape[2:]),
            "K": d1["focus_token_num"].tolist(), "k": t1["enc_k_per_layer"].tolist(),
            "M": [len(f[0]) for f in d1["final"]],
            "deterministic": det, "plain_forward_identical": plain_ok, "images_formula_identical": img_ok,
            "topk": res,
        }
        # boxes changed by clipping (per image): compare official final boxes with unclipped ones
        clipped = []
        for b in range(len(imgs)):
            ub = d1["inf_boxes"][b]
            cb = ub.clone()
            cb[:, 0::2] = cb[:, 0::2].clamp(0, W)
            cb[:, 1::2] = cb[:, 1::2].clamp(0, H)
            clipped.append(int((cb != ub).any(1).sum()))
        info["clipped"] = clipped
        if len(imgs) == 2:
            # is the batch-2 result bit-identical to running each image alone?
            same = {}
            for b in range(2):
                ds = forward_captured(model, [imgs[b]])
                same[photos[b]] = {
                    "backbone_0": bit_equal(ds["backbone_0"][0], d1["backbone_0"][b]),
                    "fg_logits": bit_equal(ds["fg_logits"][0], d1["fg_logits"][b]),
                    "enc_topk_idx_sets": all(set(ds["enc_topk_idx"][l][0].tolist()) == set(d1["enc_topk_idx"][l][b].tolist()) for l in range(6)),
                    "memory": bit_equal(ds["memory"][0], d1["memory"][b]),
                    "topk_proposals": bit_equal(ds["topk_calls"][12]["idx"][0], d1["topk_calls"][12]["idx"][b]),
                    "pred_logits": bit_equal(ds["pred_logits"][0], d1["pred_logits"][b]),
                    "max_abs_diff_pred_logits": float((ds["pred_logits"][0] - d1["pred_logits"][b]).abs().max()),
                    "max_abs_diff_memory": float((ds["memory"][0] - d1["memory"][b]).abs().max()),
                }
            info["batch_vs_single"] = same
        from safetensors.torch import save_file

        cfgname = os.path.basename(om.PRESETS[preset]["config"])
        md = {
            "case": name,
            "source_image": ";".join(m[0] for m in meta),
            "source_sha256": ";".join(m[1] for m in meta),
            "source_hw": ";".join(f"{m[2][0]},{m[2][1]}" for m in meta),
            "input_hw": f"{H},{W}",
            "weights": "focus-synth-v1 seed 0 (relative_position_index: official buffer)",
            "torch": torch.__version__,
            "detrex_commit": om.DETREX_COMMIT,
            "detectron2_commit": om.DETECTRON2_COMMIT,
            "config": cfgname,
            "backbone": om.PRESETS[preset]["backbone"],
        }
        path = os.path.join(outdir, name + ".safetensors")
        save_file(t1, path, metadata=md)
        info["file_bytes"] = os.path.getsize(path)
        info["tensors"] = {k: [str(v.dtype).replace("torch.", ""), list(v.shape)] for k, v in t1.items()}
        with open(os.path.join(outdir, name + ".info.json"), "w") as f:
            json.dump(info, f, indent=1)
        print(name, "written", info["file_bytes"], "bytes; N", info["N"], "K", info["K"], "k", info["k"],
              "M", info["M"], "clipped", info["clipped"])
        print("  " + summarize(res))
        if "batch_vs_single" in info:
            print("  batch vs single:", json.dumps(info["batch_vs_single"]))
        return
    if cmd == "time":
        preset = sys.argv[2]
        photos, H, W = parse_spec(sys.argv[3:6])
        model = get_model(preset)
        imgs, _ = prepare(photos, H, W)
        forward_plain(model, imgs)
        ts = []
        for _ in range(3):
            t0 = time.perf_counter()
            forward_plain(model, imgs)
            ts.append(time.perf_counter() - t0)
        print(json.dumps({"case": case_name(preset, photos, H, W), "runs": ts, "median": statistics.median(ts),
                          "loadavg": os.getloadavg()}))
        return
    raise SystemExit("unknown command " + cmd)


if __name__ == "__main__":
    main()
