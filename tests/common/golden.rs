//! Comparing a runtime's outputs with a golden case, with the budgets of the model issue.
//! Selections are compared as sets, with exceptions only at near-ties (golden README §6).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::OnceLock;

use focus_export::runtimes::Runtime;
use focus_export::tensors::{read_tensors, HostTensor, TensorMap};
use focus_models::postprocess::clip_and_drop;
use focus_models::{synth, weights, FocusDetrConfig, WeightSchema};

/// The budgets shared with `focus-export check` (named and explained in `focus_export::check`).
pub use focus_export::check::{f64s, MIN_MATCHED, NEAR_TIE, TOL_BOXES, TOL_FEATURES};
/// Relative budget of the per-layer / per-level statistics.
pub const TOL_STATS_REL: f64 = 1e-4;

/// The golden cases.
pub const CASES: [&str; 4] = [
    "astronaut_384x384",
    "chelsea_448x640",
    "coffee_480x640",
    "rocket_800x1184",
];

/// The seed-0 R50 weights, written once per test target directory.
pub fn weights_file() -> &'static PathBuf {
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

/// The seed-0 R50 model exported with `--debug` (once per test binary).
pub fn debug_model() -> &'static PathBuf {
    static M: OnceLock<PathBuf> = OnceLock::new();
    M.get_or_init(|| export_model(&["--debug"], "debug.onnx"))
}

/// The same with the proposal-order input `topk_proposals_in`.
pub fn injected_model() -> &'static PathBuf {
    static M: OnceLock<PathBuf> = OnceLock::new();
    M.get_or_init(|| export_model(&["--debug", "--proposals-input"], "debug_injected.onnx"))
}

/// Exports the seed-0 R50 model with extra `flags` to `file` in the test target folder.
pub fn export_model(flags: &[&str], file: &str) -> PathBuf {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(file);
    let mut cmd = super::cli();
    cmd.arg("--weights")
        .arg(weights_file())
        .arg("-o")
        .arg(&out)
        .args(flags);
    let (ok, stdout, stderr) = super::output(cmd);
    assert!(ok, "export failed: {stderr}");
    assert!(stdout.contains("opset 17"), "{stdout}");
    out
}

/// A golden case file.
pub fn load_case(name: &str) -> TensorMap {
    read_tensors(&super::golden(&format!("{name}.safetensors"))).unwrap()
}

/// The integer values.
pub fn i64s(t: &HostTensor) -> Vec<i64> {
    t.as_i64().expect("an int64 tensor").to_vec()
}

/// max |a − b| over two tensors of the same shape (leading size-1 axes ignored).
pub fn max_abs(a: &HostTensor, b: &HostTensor) -> f64 {
    let strip = |s: &[usize]| {
        s.iter()
            .copied()
            .skip_while(|&d| d == 1)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        strip(&a.shape),
        strip(&b.shape),
        "shapes {:?} vs {:?}",
        a.shape,
        b.shape
    );
    f64s(a)
        .iter()
        .zip(f64s(b))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn boxes(t: &HostTensor) -> Vec<[f32; 4]> {
    t.as_f32()
        .unwrap()
        .chunks(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect()
}

/// How many of the golden's first `n` detections have a counterpart among ours (the rule of
/// `focus_export::check::matched_detections`).
pub fn matched_detections(out: &TensorMap, g: &TensorMap, n: usize) -> usize {
    focus_export::check::matched_detections(out, g, n)
        .expect("scores, labels and boxes_xyxy in both")
        .1
}

/// Compares two selections as sets. Tokens in only one of them must have a score within
/// `NEAR_TIE` of the cut-off; returns those explained exceptions.
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
            "{stage}: token {t} (score {s}) differs from the golden selection and is {} from the cut-off {cutoff}",
            (s - cutoff).abs()
        );
        exceptions.push(format!(
            "{stage}: token {t} score {s:.7} vs cut-off {cutoff:.7} (near-tie exception)"
        ));
    }
    exceptions
}

fn stats(v: &[f64]) -> [f64; 3] {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    [mean, var.sqrt(), v.iter().map(|x| x.abs()).sum()]
}

fn assert_stats(what: &str, ours: [f64; 3], want: &[f64]) {
    for (s, w) in ours.iter().zip(want) {
        let rel = (s - w).abs() / w.abs().max(1e-12);
        // Means near zero: compare absolutely at float32 resolution of the sum.
        assert!(
            rel <= TOL_STATS_REL || (s - w).abs() <= 1e-7,
            "{what}: stats {ours:?} vs {want:?}"
        );
    }
}

/// Checks `out` (a run with --debug outputs) and `inj` (a run with the golden proposal order
/// injected) against golden case `g`; panics on a failed budget, returns the report lines.
pub fn check_case(name: &str, out: &TensorMap, inj: &TensorMap, g: &TensorMap) -> Vec<String> {
    let mut report = Vec::new();
    for key in [
        "spatial_shapes",
        "level_start_index",
        "focus_token_num",
        "enc_k_per_layer",
    ] {
        assert_eq!(i64s(&out[key]), i64s(&g[key]), "{name}: {key}");
    }
    for key in [
        "fg_logits",
        "neck_0",
        "neck_1",
        "neck_2",
        "neck_3",
        "query_pos",
        "memory",
    ] {
        if let Some(want) = g.get(key) {
            let d = max_abs(&out[key], want);
            assert!(d <= TOL_FEATURES, "{name}: {key} max|Δ| {d}");
            report.push(format!("{key} max|Δ| {d:.2e}"));
        }
    }

    let gfg = f64s(&g["fg_logits"]);
    let mut exceptions = Vec::new();
    for l in 0..6 {
        let key = format!("enc_topk_idx_{l}");
        let gi = i64s(&g[&key]);
        let cutoff = gfg[*gi.last().unwrap() as usize];
        exceptions.extend(compare_selection(
            &key,
            &i64s(&out[&key]),
            &gi,
            &|t| gfg[t as usize],
            cutoff,
        ));
        // OESM: the goldens do not store the multi-category scores; ours judge the near-ties.
        let key = format!("enc_oesm_token_idx_{l}");
        let ours = i64s(&out[&key]);
        let sel = i64s(&out[&format!("enc_topk_idx_{l}")]);
        let mc = f64s(&out[&format!("enc_oesm_score_{l}")]);
        let score: BTreeMap<i64, f64> = sel.iter().copied().zip(mc.iter().copied()).collect();
        let cutoff = score[ours.last().unwrap()];
        exceptions.extend(compare_selection(
            &key,
            &ours,
            &i64s(&g[&key]),
            &|t| *score.get(&t).unwrap_or(&f64::NAN),
            cutoff,
        ));
        assert_stats(
            &format!("{name}: encoder layer {l}"),
            stats(&f64s(&out[&format!("enc_layer_out_{l}")])),
            &f64s(&g[&format!("enc_layer_out_stats_{l}")]),
        );
    }
    report.push(format!(
        "selections: equal as sets, {} near-tie exception(s)",
        exceptions.len()
    ));
    report.extend(exceptions);

    let memory = f64s(&out["memory"]);
    let starts = i64s(&g["level_start_index"]);
    let n = memory.len() / 256;
    let want = f64s(&g["memory_level_stats"]);
    for (lvl, s) in starts.iter().enumerate() {
        let e = starts.get(lvl + 1).map_or(n, |&e| e as usize);
        assert_stats(
            &format!("{name}: memory level {lvl}"),
            stats(&memory[*s as usize * 256..e * 256]),
            &want[lvl * 3..lvl * 3 + 3],
        );
    }

    // Two-stage proposals: same set; same order except adjacent near-ties.
    let ours = i64s(&out["topk_proposals"]);
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
            // Adjacent near-tie swaps (README §6), or more generally a reordering within a
            // cluster of ranks whose golden scores all lie within NEAR_TIE (seen on tract: a
            // rotation of three scores).
            let j = gold
                .iter()
                .position(|&t| t == ours[i])
                .unwrap_or(usize::MAX);
            let near = j < gold.len() && (gscores[i.min(j)] - gscores[i.max(j)]).abs() < NEAR_TIE;
            assert!(
                near,
                "{name}: proposal {i} is {} instead of {} and not within a near-tie",
                ours[i], gold[i]
            );
            swaps += 1;
        }
    }
    let ds = max_abs(&out["topk_proposal_scores"], &g["topk_proposal_scores"]);
    report.push(format!("topk_proposals: {swaps} positions reordered within near-ties; scores by rank max|Δ| {ds:.2e}"));

    for (key, tol) in [
        ("init_reference", TOL_BOXES),
        ("dec_references", TOL_BOXES),
        ("pred_boxes", TOL_BOXES),
        ("pred_logits", TOL_FEATURES),
    ] {
        let d = max_abs(&inj[key], &g[key]);
        assert!(d <= tol, "{name}: {key} (golden proposal order) max|Δ| {d}");
        report.push(format!("{key} (golden proposal order) max|Δ| {d:.2e}"));
    }
    let matched = matched_detections(inj, g, 100);
    assert!(
        matched as f64 >= MIN_MATCHED * 100.0,
        "{name}: golden order: only {matched}/100 golden detections matched"
    );
    report.push(format!(
        "detections (golden proposal order): {matched}/100 of the golden top-100 matched"
    ));

    // End to end, no override. Where the proposal order equals the golden's, the acceptance
    // budget applies. Where it differs by adjacent near-ties (asserted above), query i gets
    // another proposal and the decoder's self-attention spreads that to every query: an
    // explained divergence (float noise at 2-ulp gaps; the goldens come from an AVX-512
    // machine), reported, not judged against the golden detections.
    let matched = matched_detections(out, g, 100);
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
             in {} position(s) reordered within near-ties (score gaps < {NEAR_TIE:e})",
            swaps
        ));
    }

    // The official clip-and-drop applied to the golden boxes reproduces final_*.
    let (h, w) = (g["images"].shape[2] as f32, g["images"].shape[3] as f32);
    let scores: Vec<f32> = g["scores"].as_f32().unwrap().to_vec();
    let kept = clip_and_drop(
        &scores,
        &i64s(&g["labels"]),
        &boxes(&g["boxes_xyxy"]),
        (h, w),
        (h, w),
    );
    assert_eq!(
        kept.scores,
        g["final_scores"].as_f32().unwrap(),
        "{name}: final_scores"
    );
    assert_eq!(
        kept.labels,
        i64s(&g["final_labels"]),
        "{name}: final_labels"
    );
    assert_eq!(
        kept.boxes,
        boxes(&g["final_boxes_xyxy"]),
        "{name}: final_boxes_xyxy"
    );
    report
}

/// Runs `rt` on a golden case's inputs (`images`, plus `topk_proposals` when the runtime takes it).
pub fn run_case(rt: &mut dyn Runtime, g: &TensorMap, with_proposals: bool) -> TensorMap {
    let mut inputs = TensorMap::new();
    inputs.insert("images".into(), g["images"].clone());
    if with_proposals {
        inputs.insert("topk_proposals".into(), g["topk_proposals"].clone());
    }
    rt.run(&inputs).unwrap()
}

/// Runs golden case `name` on two runtimes, `plain` (the model's own selection) and
/// `injected` (takes the golden proposal order), checks the budgets and prints the report
/// under `what`.
pub fn check_runtimes(what: &str, name: &str, plain: &mut dyn Runtime, injected: &mut dyn Runtime) {
    let g = load_case(name);
    let out = run_case(plain, &g, false);
    let inj = run_case(injected, &g, true);
    let report = check_case(name, &out, &inj, &g);
    eprintln!("{what}, {name}:\n  {}", report.join("\n  "));
}
