//! Comparing a runtime's outputs with a golden case, with the budgets of the model issue.
//! Selections are compared as sets, with exceptions only at near-ties (golden README §6).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
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

/// Row `i` of a batch-first float or int64 tensor, as a batch of one (None for other dtypes).
pub fn batch_row(t: &HostTensor, i: usize) -> Option<HostTensor> {
    let per: usize = t.shape[1..].iter().product();
    let mut shape = t.shape.clone();
    shape[0] = 1;
    let rows = i * per..(i + 1) * per;
    match (t.as_f32(), t.as_i64()) {
        (Some(v), _) => Some(HostTensor::f32(shape, v[rows].to_vec())),
        (_, Some(v)) => Some(HostTensor::i64(shape, v[rows].to_vec())),
        _ => None,
    }
}

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
    M.get_or_init(|| export_model(&["--debug"], "debug.onnx").keep())
}

/// The same with an override input for every selection (`--selection-inputs`).
pub fn forced_model() -> &'static PathBuf {
    static M: OnceLock<PathBuf> = OnceLock::new();
    M.get_or_init(|| export_model(&["--debug", "--selection-inputs"], "debug_forced.onnx").keep())
}

/// An exported model in the test target folder, deleted when dropped: each is about 200 MB, and
/// the suite's thirty-odd exports left behind filled CI's disk. Shared exports call [`Self::keep`].
pub struct ExportedModel(PathBuf);

impl ExportedModel {
    /// Takes charge of an exported file at `path` (deleted when dropped).
    pub fn new(path: PathBuf) -> Self {
        ExportedModel(path)
    }

    /// Keeps the file past this value's life (for exports shared through a `static`).
    pub fn keep(mut self) -> PathBuf {
        // Drop then sees an empty path and removes nothing.
        std::mem::take(&mut self.0)
    }
}

impl std::ops::Deref for ExportedModel {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for ExportedModel {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for ExportedModel {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl Drop for ExportedModel {
    fn drop(&mut self) {
        // Best effort: a file left behind only costs disk.
        if !self.0.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// Exports the seed-0 R50 model with extra `flags` to `file` in the test target folder.
pub fn export_model(flags: &[&str], file: &str) -> ExportedModel {
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
    ExportedModel(out)
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
    focus_export::check::matched_detections(out, g, n, &focus_export::check::FP32)
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

/// Encoder tensors of a run whose encoder selections equal the golden's (as sets): memory
/// (where stored) within [`TOL_FEATURES`], per-layer and per-level statistics within
/// [`TOL_STATS_REL`].
fn check_encoder(what: &str, out: &TensorMap, g: &TensorMap, report: &mut Vec<String>) {
    if let Some(want) = g.get("memory") {
        let d = max_abs(&out["memory"], want);
        assert!(d <= TOL_FEATURES, "{what}: memory max|Δ| {d}");
        report.push(format!("memory max|Δ| {d:.2e}"));
    }
    for l in 0..6 {
        assert_stats(
            &format!("{what}: encoder layer {l}"),
            stats(&f64s(&out[&format!("enc_layer_out_{l}")])),
            &f64s(&g[&format!("enc_layer_out_stats_{l}")]),
        );
    }
    let memory = f64s(&out["memory"]);
    let starts = i64s(&g["level_start_index"]);
    let n = memory.len() / 256;
    let want = f64s(&g["memory_level_stats"]);
    for (lvl, s) in starts.iter().enumerate() {
        let e = starts.get(lvl + 1).map_or(n, |&e| e as usize);
        assert_stats(
            &format!("{what}: memory level {lvl}"),
            stats(&memory[*s as usize * 256..e * 256]),
            &want[lvl * 3..lvl * 3 + 3],
        );
    }
}

/// Checks golden case `g` under the goldens' criterion (parity issue, item 4), given `out`, a
/// free-running run with --debug outputs, and `forced`, a run with every golden selection
/// forced. Panics on a failed budget; returns the report lines, the first naming the branch:
/// (a) the free-running selections and proposal order equal the golden's: ≥ 99 % of the
///     golden's top-100 matched end to end;
/// (b) they differ: every set difference and reordering is a near-tie of the reference's own
///     scores (downstream stages of the first divergence not judged), and the free-running
///     detections are reported, not judged.
///
/// In both, the forced run meets the full budget: every tensor within its tolerance and
/// 100/100 of the golden's top-100 matched.
pub fn check_case(name: &str, out: &TensorMap, forced: &TensorMap, g: &TensorMap) -> Vec<String> {
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
    ] {
        if let Some(want) = g.get(key) {
            let d = max_abs(&out[key], want);
            assert!(d <= TOL_FEATURES, "{name}: {key} max|Δ| {d}");
            report.push(format!("{key} max|Δ| {d:.2e}"));
        }
    }

    // Free running, stage by stage up to the first divergence.
    let gfg = f64s(&g["fg_logits"]);
    let mut exceptions = Vec::new();
    let mut first_divergence: Option<String> = None;
    for l in 0..6 {
        let key = format!("enc_topk_idx_{l}");
        let gi = i64s(&g[&key]);
        let cutoff = gfg[*gi.last().unwrap() as usize];
        let ex = compare_selection(&key, &i64s(&out[&key]), &gi, &|t| gfg[t as usize], cutoff);
        if !ex.is_empty() {
            first_divergence.get_or_insert(key);
            exceptions.extend(ex);
            break; // later stages see other tokens: downstream, not judged
        }
        // OESM: the goldens do not store the multi-category scores; ours judge the near-ties.
        let key = format!("enc_oesm_token_idx_{l}");
        let ours = i64s(&out[&key]);
        let sel = i64s(&out[&format!("enc_topk_idx_{l}")]);
        let mc = f64s(&out[&format!("enc_oesm_score_{l}")]);
        let score: BTreeMap<i64, f64> = sel.iter().copied().zip(mc.iter().copied()).collect();
        let cutoff = score[ours.last().unwrap()];
        let ex = compare_selection(
            &key,
            &ours,
            &i64s(&g[&key]),
            &|t| *score.get(&t).unwrap_or(&f64::NAN),
            cutoff,
        );
        if !ex.is_empty() {
            first_divergence.get_or_insert(key);
            exceptions.extend(ex);
            break;
        }
    }
    if first_divergence.is_none() {
        check_encoder(name, out, g, &mut report);
        // Two-stage proposals: same set; same order except near-tie clusters.
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
                // A reordering within a cluster of ranks whose golden scores all lie within
                // NEAR_TIE (adjacent swaps; a rotation of three seen on tract).
                let j = gold
                    .iter()
                    .position(|&t| t == ours[i])
                    .unwrap_or(usize::MAX);
                let near =
                    j < gold.len() && (gscores[i.min(j)] - gscores[i.max(j)]).abs() < NEAR_TIE;
                assert!(
                    near,
                    "{name}: proposal {i} is {} instead of {} and not within a near-tie",
                    ours[i], gold[i]
                );
                swaps += 1;
            }
        }
        if swaps > 0 {
            first_divergence = Some("topk_proposals".into());
            exceptions.push(format!(
                "topk_proposals: {swaps} position(s) reordered within near-ties (score gaps < {NEAR_TIE:e})"
            ));
        }
        let ds = max_abs(&out["topk_proposal_scores"], &g["topk_proposal_scores"]);
        report.push(format!("topk_proposal_scores by rank max|Δ| {ds:.2e}"));
    }
    let matched_free = matched_detections(out, g, 100);
    match &first_divergence {
        None => {
            assert!(
                matched_free as f64 >= MIN_MATCHED * 100.0,
                "{name}: (a) selections equal the golden's, but only {matched_free}/100 golden detections matched"
            );
            report.insert(
                0,
                format!("criterion (a): free-running selections and proposal order equal the golden's; {matched_free}/100 of the golden top-100 matched end to end"),
            );
        }
        Some(stage) => {
            report.insert(
                0,
                format!("criterion (b): free running diverges at {stage} by near-ties only; end to end {matched_free}/100 matched (chaotic after a near-tie: reported, not judged)"),
            );
        }
    }
    report.extend(exceptions);

    // Forced: the golden's selections at every stage; everything at full budget.
    for sel in focus_models::model::selections::names(&FocusDetrConfig::default()) {
        assert_eq!(
            i64s(&forced[&sel]),
            i64s(&g[&sel]),
            "{name}: forced run did not use the golden's {sel}"
        );
    }
    check_encoder(&format!("{name} (forced)"), forced, g, &mut Vec::new());
    for (key, tol) in [
        ("init_reference", TOL_BOXES),
        ("dec_references", TOL_BOXES),
        ("pred_boxes", TOL_BOXES),
        ("pred_logits", TOL_FEATURES),
    ] {
        let d = max_abs(&forced[key], &g[key]);
        assert!(d <= tol, "{name}: {key} (forced) max|Δ| {d} over {tol:e}");
        report.push(format!("{key} (forced) max|Δ| {d:.2e}"));
    }
    let matched = matched_detections(forced, g, 100);
    assert_eq!(
        matched, 100,
        "{name}: forced: only {matched}/100 golden detections matched"
    );
    report.push(format!(
        "detections (forced): {matched}/100 of the golden top-100 matched"
    ));

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

/// Runs `rt` on a golden case's inputs: `images`, plus with `force` every golden selection as
/// its override input (`<name>_in`).
pub fn run_case(rt: &mut dyn Runtime, g: &TensorMap, force: bool) -> TensorMap {
    let mut inputs = TensorMap::new();
    inputs.insert("images".into(), g["images"].clone());
    if force {
        let added =
            focus_export::runtimes::add_forced_selections(&mut inputs, g, &|_| true).unwrap();
        assert_eq!(added.len(), 13, "a golden case holds all 13 selections");
    }
    rt.run(&inputs).unwrap()
}

/// Runs golden case `name` on two runtimes, `plain` (the model's own selections) and `forced`
/// (takes every selection as an input), checks the goldens' criterion and prints the report
/// under `what`.
pub fn check_runtimes(what: &str, name: &str, plain: &mut dyn Runtime, forced: &mut dyn Runtime) {
    let g = load_case(name);
    let out = run_case(plain, &g, false);
    let inj = run_case(forced, &g, true);
    let report = check_case(name, &out, &inj, &g);
    eprintln!("{what}, {name}:\n  {}", report.join("\n  "));
}
