//! Whole-model parity with the custom-op forms: `--msda custom --topk custom` on ONNX Runtime CPU
//! and tract, `--topk threshold` on ONNX Runtime CPU, each within the model issue's budgets
//! against the goldens (tests/common/golden.rs); the `--target tensorrt` export (plugin node,
//! threshold selection) passes the ONNX checker and the TensorRT lint, declares the plugin's
//! output, is refused by the CPU runtimes with a message that names the export options to use
//! instead, and meets the golden budgets on ONNX Runtime CPU with the plugin emulated
//! (`--emulate-trt-plugins`); the default export is reported by the lint for its TopK only.
#![cfg(all(feature = "ort", feature = "tract"))]

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::golden;
use focus_export::runtimes::ort::{OrtOptions, OrtRuntime, Provider};
use focus_export::runtimes::tract::{TractOptions, TractRuntime};
use focus_export::runtimes::Runtime;

const CUSTOM: [&str; 4] = ["--msda", "custom", "--topk", "custom"];
const THRESHOLD: [&str; 2] = ["--topk", "threshold"];

/// (plain debug model, model with the proposal-order input) for `flags`, exported once.
fn models(
    flags: &'static [&'static str],
    tag: &str,
    cell: &'static OnceLock<(PathBuf, PathBuf)>,
) -> &'static (PathBuf, PathBuf) {
    cell.get_or_init(|| {
        let f: Vec<&str> = flags.iter().copied().chain(["--debug"]).collect();
        let a = golden::export_model(&f, &format!("{tag}.onnx")).keep();
        let f2: Vec<&str> = f.iter().copied().chain(["--selection-inputs"]).collect();
        let b = golden::export_model(&f2, &format!("{tag}_inj.onnx")).keep();
        (a, b)
    })
}

fn custom() -> &'static (PathBuf, PathBuf) {
    static M: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    models(&CUSTOM, "custom", &M)
}

fn threshold() -> &'static (PathBuf, PathBuf) {
    static M: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    models(&THRESHOLD, "threshold", &M)
}

fn tensorrt() -> &'static (PathBuf, PathBuf) {
    static M: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    models(&["--target", "tensorrt"], "tensorrt_emulated", &M)
}

fn ort_session(model: &Path, emulate_trt_plugins: bool) -> Box<dyn Runtime> {
    Box::new(
        OrtRuntime::new(
            model,
            &OrtOptions {
                provider: Provider::Cpu,
                threads: Some(2),
                emulate_trt_plugins,
                profile: false,
            },
        )
        .unwrap(),
    )
}

fn ort(model: &Path) -> Box<dyn Runtime> {
    ort_session(model, false)
}

fn ort_emulating_trt_plugins(model: &Path) -> Box<dyn Runtime> {
    ort_session(model, true)
}

fn tract(model: &Path) -> Box<dyn Runtime> {
    Box::new(TractRuntime::new(model, &TractOptions::default()).unwrap())
}

fn check(what: &str, models: &(PathBuf, PathBuf), rt: fn(&Path) -> Box<dyn Runtime>) {
    for name in golden::CASES {
        golden::check_runtimes(what, name, rt(&models.0).as_mut(), rt(&models.1).as_mut());
    }
}

#[test]
fn custom_ops_on_ort_meet_the_golden_budgets() {
    check("custom ops on ONNX Runtime CPU", custom(), ort);
}

#[test]
fn custom_ops_on_tract_meet_the_golden_budgets() {
    check("custom ops on tract", custom(), tract);
}

#[test]
fn threshold_selection_on_ort_meets_the_golden_budgets() {
    check("threshold top-k on ONNX Runtime CPU", threshold(), ort);
}

#[test]
fn the_tensorrt_form_with_the_plugin_emulated_on_ort_meets_the_golden_budgets() {
    check(
        "TensorRT form (plugin emulated) on ONNX Runtime CPU",
        tensorrt(),
        ort_emulating_trt_plugins,
    );
}

#[test]
fn the_lint_reports_the_default_export_for_topk_only() {
    let m = golden::export_model(&[], "default.onnx");
    let r = focus_exporters::lint::lint_tensorrt_file(&m).unwrap();
    assert_eq!(r.rules_broken(), vec!["topk-k"], "{:#?}", r.violations);
    // The six cascade selections: k grows with the image (up to 11 112 at 1333×1333).
    assert_eq!(r.violations.len(), 6, "{:#?}", r.violations);
    assert!(r
        .violations
        .iter()
        .all(|v| v.op == "TopK" && v.fix.contains("--target tensorrt")));
    let mut cmd = common::cli();
    cmd.arg("lint").arg(&m);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("[topk-k]") && stdout.contains("6 violation(s)"),
        "{stdout}"
    );
    let mut cmd = common::cli();
    cmd.args(["lint", "--target", "tensorrt"])
        .arg(tensorrt().0.as_path());
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("no violation"), "{stdout}");
}

#[test]
fn the_tensorrt_export_is_valid_and_refused_by_cpu_runtimes_with_advice() {
    let m = golden::export_model(&["--target", "tensorrt"], "tensorrt.onnx");
    common::assert_tensorrt_clean(&m, "--target tensorrt");
    let script = r#"
import onnx, sys
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m, full_check=True)
plug = [n for n in m.graph.node if n.op_type == 'MultiscaleDeformableAttnPlugin_TRT']
assert len(plug) == 12 and all(n.domain == 'trt.plugins' for n in plug), len(plug)
# The six cascade selections are threshold selections (one NonZero each); TopK remains only
# where k is small and fixed: 6 × 300 object tokens, 900 proposals, 300 detections.
ops = [n.op_type for n in m.graph.node]
assert ops.count('NonZero') == 6 and ops.count('TopK') == 8, (ops.count('NonZero'), ops.count('TopK'))
vi = {v.name: v for v in m.graph.value_info}
for n in plug:
    t = vi[n.output[0]].type.tensor_type
    assert t.elem_type == onnx.TensorProto.FLOAT and len(t.shape.dim) == 4, t
    assert [d.dim_value for d in t.shape.dim][2:] == [8, 32], t
    for i in (1, 2):  # the level tables, int32 as TensorRT wants them
        assert vi[n.input[i]].type.tensor_type.elem_type == onnx.TensorProto.INT32
# CumSum and NonZero take float32 (TensorRT's parser has no integer or bool form of either).
casts = {n.output[0]: n.attribute[0].i for n in m.graph.node if n.op_type == 'Cast'}
for n in m.graph.node:
    if n.op_type in ('CumSum', 'NonZero'):
        assert casts.get(n.input[0]) == onnx.TensorProto.FLOAT, n
print('ok')
"#;
    common::run_python_on_model(script, &m);
    let e = OrtRuntime::new(
        &m,
        &OrtOptions {
            provider: Provider::Cpu,
            threads: Some(1),
            emulate_trt_plugins: false,
            profile: false,
        },
    )
    .err()
    .expect("ONNX Runtime CPU cannot run TensorRT plugin nodes")
    .to_string();
    assert!(
        e.contains("--target ort-cpu")
            && e.contains("--provider tensorrt")
            && e.contains("--emulate-trt-plugins"),
        "{e}"
    );
    let e = TractRuntime::new(&m, &TractOptions::default())
        .err()
        .expect("tract cannot run them")
        .to_string();
    assert!(e.contains("--target tract"), "{e}");
}

#[test]
fn tensorrt_engine_parity_when_a_gpu_is_present() {
    let m = golden::export_model(&["--target", "tensorrt", "--debug"], "tensorrt_debug.onnx");
    let opts = OrtOptions {
        provider: Provider::TensorRt {
            device_id: 0,
            fp16: false,
            engine_cache: None,
            profile: None,
        },
        threads: None,
        emulate_trt_plugins: false,
        profile: false,
    };
    let mut rt = match OrtRuntime::new(&m, &opts) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("SKIPPED: no TensorRT provider here ({e})");
            return;
        }
    };
    let g = golden::load_case(golden::CASES[0]);
    let out = golden::run_case(&mut rt, &g, false);
    let d = golden::max_abs(&out["fg_logits"], &g["fg_logits"]);
    assert!(d <= golden::TOL_FEATURES, "TensorRT fg_logits max|Δ| {d}");
}
