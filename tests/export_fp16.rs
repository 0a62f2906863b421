//! `--precision fp16`: the export is checker-valid, deterministic, at most 0.55× the float32
//! file (its TensorRT form lint-clean), runs on ONNX Runtime CPU, and with the goldens' selections forced meets the float16
//! budgets (`focus_export::check::FP16`) on every golden case; free-running agreement is
//! reported, not judged beyond the near-tie rule at float16's resolution.
#![cfg(all(feature = "torch", feature = "ort"))]

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use common::golden;
use focus_export::check::FP16;
use focus_export::runtimes::ort::{OrtOptions, OrtRuntime, Provider};
use focus_export::runtimes::Runtime;

/// Largest fp16 file size as a fraction of the fp32 one (the issue's acceptance).
const MAX_SIZE_RATIO: f64 = 0.55;

/// (fp32, fp16) `--debug --selection-inputs` exports, once.
fn models() -> &'static (PathBuf, PathBuf) {
    static M: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    M.get_or_init(|| {
        let flags = ["--debug", "--selection-inputs"];
        let fp32 = golden::export_model(&flags, "fp16_test_fp32.onnx").keep();
        let f16: Vec<&str> = flags
            .iter()
            .copied()
            .chain(["--precision", "fp16"])
            .collect();
        let fp16 = golden::export_model(&f16, "fp16_test_fp16.onnx").keep();
        (fp32, fp16)
    })
}

#[test]
fn the_fp16_export_is_valid_deterministic_and_about_half_the_size() {
    let (fp32, fp16) = models();
    let ratio = std::fs::metadata(fp16).unwrap().len() as f64
        / std::fs::metadata(fp32).unwrap().len() as f64;
    eprintln!("fp16/fp32 file size: {ratio:.3}");
    assert!(
        ratio <= MAX_SIZE_RATIO,
        "fp16 file is {ratio:.3}× the fp32 one"
    );
    let again = golden::export_model(
        &["--debug", "--selection-inputs", "--precision", "fp16"],
        "fp16_test_again.onnx",
    );
    assert!(
        std::fs::read(fp16).unwrap() == std::fs::read(&again).unwrap(),
        "two fp16 exports differ"
    );
    // The TensorRT form in fp16 passes the lint, every check decided.
    let trt = golden::export_model(
        &["--target", "tensorrt", "--precision", "fp16"],
        "fp16_trt.onnx",
    );
    common::assert_tensorrt_clean(&trt, "--target tensorrt --precision fp16");
    let opts = OrtOptions {
        provider: Provider::Cpu,
        threads: Some(1),
        emulate_trt_plugins: false,
        profile: false,
    };
    let rt = OrtRuntime::new(fp16, &opts).unwrap();
    assert_eq!(rt.precision(), focus_exporters::precision::Precision::Fp16);
    let script = r#"
import onnx, sys
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m, full_check=True)
meta = {p.key: p.value for p in m.metadata_props}
assert meta['focus_export.precision'] == 'fp16', meta
f16 = sum(1 for t in m.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16)
assert f16 > 100, f16
# float32 at the edges: the image input and every output.
for v in list(m.graph.input[:1]) + list(m.graph.output):
    assert v.type.tensor_type.elem_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.INT64), v.name
print('ok')
"#;
    common::run_python_on_model(script, fp16);
}

#[test]
fn check_judges_the_fp16_export_by_its_budgets_and_it_meets_them_forced_on_every_golden() {
    // `check` against the torch reference: free-running differences only at gaps float16
    // cannot resolve (near-ties at its resolution), and with the reference's selections forced
    // every tensor within the float16 budgets and ≥ 90 % of the top-100 matched.
    let json = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("check_fp16.json");
    let mut cmd = common::cli();
    cmd.args(["check", "--runtime", "ort", "--threads", "2", "--weights"])
        .arg(golden::weights_file())
        .arg("--model")
        .arg(&models().1)
        .arg("--report")
        .arg(&json);
    for name in golden::CASES {
        cmd.arg("--input")
            .arg(common::golden(&format!("{name}.safetensors")));
    }
    let (ok, stdout, stderr) = common::output(cmd);
    eprintln!("{stdout}");
    assert!(ok, "check failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("judged by the fp16 budgets"), "{stdout}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(r["images"], golden::CASES.len(), "{stdout}");
    assert_eq!(r["forced_ok"], golden::CASES.len(), "{stdout}");
    assert_eq!(r["tolerances"]["budgets"], "fp16");
    assert_eq!(r["tolerances"]["features_abs"], FP16.features);
    for c in r["cases"].as_array().unwrap() {
        assert_eq!(c["forced_within_budget"], true, "{}", c["name"]);
        let d = &c["forced_detections"];
        let (m, n) = (
            d["matched"].as_f64().unwrap(),
            d["compared"].as_f64().unwrap(),
        );
        assert!(m >= FP16.min_matched_forced * n, "{}: {d}", c["name"]);
    }
}
