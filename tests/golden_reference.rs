//! The torch reference against the official implementation's outputs (shared/golden), for the
//! four golden cases and focus-synth-v1 seed-0 weights. Budgets are those of the model issue;
//! selections are compared as sets (golden README §6).
#![cfg(feature = "torch")]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::OnceLock;

use focus_models::model::{FocusDetr, ForwardOptions, Outputs};
use focus_models::postprocess::clip_and_drop;
use focus_models::torch_backend::{TorchBackend, TT};
use focus_models::{synth, weights, FocusDetrConfig, WeightSchema, Weights};
use tch::{Device, Kind, Tensor};

/// fg_logits, neck, query_pos, memory, pred_logits: absolute budget (float32 noise through
/// ~60 layers; the acceptance budget).
const TOL_FEATURES: f64 = 1e-4;
/// Boxes and references with the golden proposal order injected.
const TOL_BOXES: f64 = 1e-5;
/// Relative budget of the per-layer / per-level statistics.
const TOL_STATS_REL: f64 = 1e-4;
/// A selection may differ from the golden's only for tokens this close to the cut-off score.
const NEAR_TIE: f64 = 1e-5;
/// Detection matching: same label, IoU at least this, score within `TOL_FEATURES`.
const MIN_IOU: f64 = 0.99;
/// Fraction of the golden's top-100 detections that must be matched.
const MIN_MATCHED: f64 = 0.99;

const CASES: [&str; 4] = [
    "astronaut_384x384",
    "chelsea_448x640",
    "coffee_480x640",
    "rocket_800x1184",
];

/// The seed-0 R50 weights, written once per test process.
fn weights_file() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("r50_synth_seed0.safetensors");
        if !path.exists() {
            let schema = WeightSchema::new(&FocusDetrConfig::default());
            let t = synth::synthesize(&schema, 0).unwrap();
            weights::write_f32_safetensors(
                &path,
                t.iter()
                    .map(|t| (t.key.as_str(), t.shape.as_slice(), t.data.as_slice())),
                None,
            )
            .unwrap();
        }
        path
    })
}

struct Reference {
    model: FocusDetr,
    backend: TorchBackend,
}

fn reference() -> Reference {
    tch::set_num_threads(2);
    let cfg = FocusDetrConfig::default();
    let schema = WeightSchema::new(&cfg);
    let w = Weights::load(weights_file(), &schema, &cfg.name).unwrap();
    let backend = TorchBackend::new(&w, &schema, Device::Cpu).unwrap();
    Reference {
        model: FocusDetr::new(cfg),
        backend,
    }
}

fn golden_case(name: &str) -> BTreeMap<String, Tensor> {
    Tensor::read_safetensors(common::golden(&format!("{name}.safetensors")))
        .unwrap()
        .into_iter()
        .collect()
}

fn run(
    r: &Reference,
    images: &Tensor,
    override_topk: Option<Tensor>,
) -> (Outputs<TorchBackend>, BTreeMap<String, Tensor>) {
    let _guard = tch::no_grad_guard();
    let opts = ForwardOptions {
        debug: true,
        topk_proposals: override_topk.map(TT),
        clamp_object_tokens: false,
    };
    let mut out = r
        .model
        .forward(&r.backend, &TT(images.shallow_clone()), &opts)
        .unwrap();
    let debug = std::mem::take(&mut out.debug)
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    (out, debug)
}

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}

fn i64s(t: &Tensor) -> Vec<i64> {
    Vec::<i64>::try_from(t.flatten(0, -1).to_kind(Kind::Int64)).unwrap()
}

fn f64s(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.flatten(0, -1).to_kind(Kind::Double)).unwrap()
}

/// Compares two selections as sets. Tokens in only one of them must have a golden score within
/// `NEAR_TIE` of the cut-off (the k-th golden score); returns those explained exceptions.
fn compare_selection(
    stage: &str,
    ours: &[i64],
    golden: &[i64],
    score_of: &dyn Fn(i64) -> f64,
    cutoff: f64,
) -> Vec<String> {
    let a: HashSet<i64> = ours.iter().copied().collect();
    let g: HashSet<i64> = golden.iter().copied().collect();
    assert_eq!(a.len(), ours.len(), "{stage}: duplicate indices");
    let mut exceptions = Vec::new();
    for t in a.symmetric_difference(&g) {
        let s = score_of(*t);
        assert!(
            (s - cutoff).abs() <= NEAR_TIE,
            "{stage}: token {t} (score {s}) differs from the golden selection but is {} from the cut-off {cutoff}",
            (s - cutoff).abs()
        );
        exceptions.push(format!(
            "{stage}: token {t} score {s:.7} vs cut-off {cutoff:.7}"
        ));
    }
    exceptions
}

fn check_case(name: &str) {
    let r = reference();
    let g = golden_case(name);
    let (out, dbg) = run(&r, &g["images"], None);
    let mut report = Vec::new();

    // Token geometry and budgets are exact.
    for key in [
        "spatial_shapes",
        "level_start_index",
        "focus_token_num",
        "enc_k_per_layer",
    ] {
        assert_eq!(i64s(&dbg[key]), i64s(&g[key]), "{name}: {key}");
    }
    let fg = max_abs(&dbg["fg_logits"], &g["fg_logits"]);
    assert!(fg <= TOL_FEATURES, "{name}: fg_logits max|Δ| {fg}");
    report.push(format!("fg_logits max|Δ| {fg:.2e}"));
    for key in [
        "neck_0",
        "neck_1",
        "neck_2",
        "neck_3",
        "query_pos",
        "memory",
    ] {
        if let Some(want) = g.get(key) {
            let d = max_abs(&dbg[key], want);
            assert!(d <= TOL_FEATURES, "{name}: {key} max|Δ| {d}");
            report.push(format!("{key} max|Δ| {d:.2e}"));
        }
    }

    // Encoder selections, as sets.
    let gfg = f64s(&g["fg_logits"]);
    for l in 0..6 {
        let key = format!("enc_topk_idx_{l}");
        let gi = i64s(&g[&key]);
        let cutoff = gfg[*gi.last().unwrap() as usize];
        report.extend(compare_selection(
            &key,
            &i64s(&dbg[&key]),
            &gi,
            &|t| gfg[t as usize],
            cutoff,
        ));
        // OESM: scores from our own multi-category scores (the goldens do not store them).
        let key = format!("enc_oesm_token_idx_{l}");
        let ours = i64s(&dbg[&key]);
        let sel = i64s(&dbg[&format!("enc_topk_idx_{l}")]);
        let mc = f64s(&dbg[&format!("enc_oesm_score_{l}")]);
        let score: BTreeMap<i64, f64> = sel.iter().copied().zip(mc.iter().copied()).collect();
        let cutoff = score[ours.last().unwrap()];
        report.extend(compare_selection(
            &key,
            &ours,
            &i64s(&g[&key]),
            &|t| *score.get(&t).unwrap_or(&f64::NAN),
            cutoff,
        ));
    }

    // Per-layer output statistics and per-level memory statistics.
    for l in 0..6 {
        let x = dbg[&format!("enc_layer_out_{l}")].to_kind(Kind::Double);
        let stats = [
            x.mean(Kind::Double).double_value(&[]),
            x.std(false).double_value(&[]),
            x.abs().sum(Kind::Double).double_value(&[]),
        ];
        let want = f64s(&g[&format!("enc_layer_out_stats_{l}")]);
        for (s, w) in stats.iter().zip(&want) {
            let rel = (s - w).abs() / w.abs().max(1e-12);
            assert!(
                rel <= TOL_STATS_REL || (s - w).abs() <= 1e-7,
                "{name}: layer {l} stats {stats:?} vs {want:?}"
            );
        }
    }
    let memory = dbg["memory"].to_kind(Kind::Double);
    let starts = i64s(&g["level_start_index"]);
    let n = memory.size()[1];
    let want = f64s(&g["memory_level_stats"]);
    for (lvl, s) in starts.iter().enumerate() {
        let e = starts.get(lvl + 1).copied().unwrap_or(n);
        let m = memory.narrow(1, *s, e - s);
        let stats = [
            m.mean(Kind::Double).double_value(&[]),
            m.std(false).double_value(&[]),
            m.abs().sum(Kind::Double).double_value(&[]),
        ];
        for (i, v) in stats.iter().enumerate() {
            let w = want[lvl * 3 + i];
            let rel = (v - w).abs() / w.abs().max(1e-12);
            assert!(
                rel <= TOL_STATS_REL || (v - w).abs() <= 1e-7,
                "{name}: memory level {lvl} stat {i}: {v} vs {w}"
            );
        }
    }

    // Two-stage proposals: same set; same order except adjacent near-ties.
    let ours = i64s(&dbg["topk_proposals"]);
    let gold = i64s(&g["topk_proposals"]);
    let gscores = f64s(&g["topk_proposal_scores"]);
    assert_eq!(
        ours.iter().collect::<HashSet<_>>(),
        gold.iter().collect::<HashSet<_>>(),
        "{name}: proposal sets"
    );
    let mut swaps = 0;
    for i in 0..gold.len() {
        if ours[i] != gold[i] {
            let near =
                (i > 0 && ours[i] == gold[i - 1] && (gscores[i - 1] - gscores[i]).abs() < NEAR_TIE)
                    || (i + 1 < gold.len()
                        && ours[i] == gold[i + 1]
                        && (gscores[i] - gscores[i + 1]).abs() < NEAR_TIE);
            assert!(
                near,
                "{name}: proposal {i} is {} instead of {} and not an adjacent near-tie",
                ours[i], gold[i]
            );
            swaps += 1;
        }
    }
    let ds = max_abs(&dbg["topk_proposal_scores"], &g["topk_proposal_scores"]);
    report.push(format!("topk_proposals: {swaps} positions in adjacent near-tie swaps; scores by rank max|Δ| {ds:.2e}"));

    // Decoder with the golden proposal order injected.
    let (inj, idbg) = run(&r, &g["images"], Some(g["topk_proposals"].shallow_clone()));
    for (key, ours, tol) in [
        ("init_reference", &idbg["init_reference"], TOL_BOXES),
        ("dec_references", &idbg["dec_references"], TOL_BOXES),
        ("pred_boxes", &inj.pred_boxes, TOL_BOXES),
        ("pred_logits", &inj.pred_logits, TOL_FEATURES),
    ] {
        let d = max_abs(ours, &g[key]);
        assert!(d <= tol, "{name}: {key} (golden proposal order) max|Δ| {d}");
        report.push(format!("{key} (injected order) max|Δ| {d:.2e}"));
    }

    // Detections with the golden proposal order: the post-processing on parity.
    let matched = matched_detections(&inj, &g, 100);
    assert!(
        matched as f64 >= MIN_MATCHED * 100.0,
        "{name}: golden order: only {matched}/100 golden detections matched"
    );
    report.push(format!(
        "detections (injected order): {matched}/100 of the golden top-100 matched"
    ));

    // End to end, no override. Where our proposal order equals the golden's, the acceptance
    // budget applies. Where it differs by adjacent near-ties (asserted above), query i gets
    // another proposal and the decoder's self-attention spreads that to every query; this is an
    // explained divergence (float noise at 2-ulp gaps: the goldens come from an AVX-512 machine),
    // reported rather than judged against the golden detections.
    let matched = matched_detections(&out, &g, 100);
    if swaps == 0 {
        assert!(
            matched as f64 >= MIN_MATCHED * 100.0,
            "{name}: only {matched}/100 golden detections matched"
        );
        report.push(format!(
            "detections (end to end): {matched}/100 of the golden top-100 matched"
        ));
    } else {
        report.push(format!(
            "detections (end to end): {matched}/100 matched; NOT judged: the proposal order differs from the golden \
             by {} adjacent near-tie swap(s) (score gaps < {NEAR_TIE:e})",
            swaps / 2
        ));
    }

    // The official clip-and-drop applied to the golden boxes reproduces final_*.
    let (h, w) = (g["images"].size()[2] as f32, g["images"].size()[3] as f32);
    let kept = clip_and_drop(
        &f64s(&g["scores"])
            .iter()
            .map(|&v| v as f32)
            .collect::<Vec<_>>(),
        &i64s(&g["labels"]),
        &to_boxes(&g["boxes_xyxy"]),
        (h, w),
        (h, w),
    );
    assert_eq!(
        kept.scores,
        f64s(&g["final_scores"])
            .iter()
            .map(|&v| v as f32)
            .collect::<Vec<_>>(),
        "{name}: final_scores"
    );
    assert_eq!(
        kept.labels,
        i64s(&g["final_labels"]),
        "{name}: final_labels"
    );
    assert_eq!(
        kept.boxes,
        to_boxes(&g["final_boxes_xyxy"]),
        "{name}: final_boxes_xyxy"
    );

    eprintln!("{name}:\n  {}", report.join("\n  "));
}

fn to_boxes(t: &Tensor) -> Vec<[f32; 4]> {
    let v = Vec::<f32>::try_from(t.flatten(0, -1).to_kind(Kind::Float)).unwrap();
    v.chunks(4).map(|c| [c[0], c[1], c[2], c[3]]).collect()
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f64 {
    let (a, b) = (a.map(f64::from), b.map(f64::from));
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// How many of the golden's first `n` detections have a counterpart among ours.
fn matched_detections(
    out: &Outputs<TorchBackend>,
    g: &BTreeMap<String, Tensor>,
    n: usize,
) -> usize {
    let (os, ol, ob) = (
        f64s(&out.scores),
        i64s(&out.labels),
        to_boxes(&out.boxes_xyxy),
    );
    let (gs, gl, gb) = (
        f64s(&g["scores"]),
        i64s(&g["labels"]),
        to_boxes(&g["boxes_xyxy"]),
    );
    let mut used = vec![false; os.len()];
    let mut matched = 0;
    for i in 0..n {
        if let Some(j) = (0..os.len()).find(|&j| {
            !used[j]
                && ol[j] == gl[i]
                && (os[j] - gs[i]).abs() <= TOL_FEATURES
                && iou(&ob[j], &gb[i]) >= MIN_IOU
        }) {
            used[j] = true;
            matched += 1;
        }
    }
    matched
}

#[test]
fn astronaut_384x384() {
    check_case(CASES[0]);
}

#[test]
fn chelsea_448x640() {
    check_case(CASES[1]);
}

#[test]
fn coffee_480x640() {
    check_case(CASES[2]);
}

#[test]
fn rocket_800x1184() {
    check_case(CASES[3]);
}

#[test]
fn a_batch_of_two_gives_each_image_its_batch_one_result() {
    let r = reference();
    let g = golden_case("coffee_480x640");
    let a = g["images"].shallow_clone();
    let b = a.flip([3]); // a different image of the same size
    let (oa, _) = run(&r, &a, None);
    let (ob, _) = run(&r, &b, None);
    let (both, _) = run(&r, &Tensor::cat(&[&a, &b], 0), None);
    for (i, single) in [oa, ob].iter().enumerate() {
        let i = i as i64;
        for (key, batched, one, tol) in [
            (
                "pred_logits",
                &both.pred_logits,
                &single.pred_logits,
                TOL_FEATURES,
            ),
            (
                "pred_boxes",
                &both.pred_boxes,
                &single.pred_boxes,
                TOL_BOXES,
            ),
            ("scores", &both.scores, &single.scores, TOL_FEATURES),
        ] {
            let d = max_abs(&batched.narrow(0, i, 1), one);
            assert!(d <= tol, "image {i}: {key} batched vs alone max|Δ| {d}");
        }
        assert_eq!(
            i64s(&both.labels.narrow(0, i, 1)),
            i64s(&single.labels),
            "image {i}: labels"
        );
    }
}

#[test]
fn too_small_inputs_are_refused_unless_clamped() {
    let r = reference();
    let images = TT(Tensor::zeros([1, 3, 352, 352], (Kind::Float, Device::Cpu)));
    let _guard = tch::no_grad_guard();
    let e = r
        .model
        .forward(&r.backend, &images, &ForwardOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("too small") && e.contains("2998 tokens") && e.contains("--clamp-object-tokens"),
        "{e}"
    );
    let opts = ForwardOptions {
        clamp_object_tokens: true,
        ..Default::default()
    };
    let out = r.model.forward(&r.backend, &images, &opts).unwrap();
    assert_eq!(out.scores.size(), vec![1, 300]);
}
