//! `--precision int8`: the export calibrates on photos, writes QuantizeLinear/DequantizeLinear
//! around int8 weights (the file at most 0.3× the float32 weights), is deterministic, runs on
//! ONNX Runtime CPU as an int8 model, and with the goldens' selections forced `check` judges
//! it within the int8 budgets (`focus_export::check::INT8`) on every golden case. Options
//! that do not fit are refused with exit code 2 before anything is written.
#![cfg(all(feature = "torch", feature = "ort"))]

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::golden;
use focus_export::runtimes::ort::{OrtOptions, OrtRuntime, Provider};
use focus_export::runtimes::Runtime;

/// Largest int8 file as a fraction of the float32 weights (the issue asks ≤ 0.3× the float32
/// file, which is the weights' size within 0.1 %): int8 weights are a quarter, and the layers
/// kept in float32 (KEEP_FP32) add the rest.
const MAX_SIZE_RATIO: f64 = 0.3;

/// Calibration photos used (the first ones by name): enough to exercise the statistics, few
/// enough for CI.
const CALIBRATION_IMAGES: &str = "4";

fn photos() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".runtimes/photos");
    assert!(
        p.join("astronaut.png").exists(),
        "{} missing: run scripts/setup-env.sh",
        p.display()
    );
    p
}

fn int8_flags(photos: &Path) -> Vec<String> {
    [
        "--target",
        "ort-cpu",
        "--debug",
        "--selection-inputs",
        "--precision",
        "int8",
        "--calibrate-limit",
        CALIBRATION_IMAGES,
        "--calibrate-threads",
        "2",
        "--calibrate",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([photos.display().to_string()])
    .collect()
}

/// The int8 `--debug --selection-inputs` export, once.
fn model() -> &'static PathBuf {
    static M: OnceLock<PathBuf> = OnceLock::new();
    M.get_or_init(|| {
        let flags = int8_flags(&photos());
        let f: Vec<&str> = flags.iter().map(String::as_str).collect();
        golden::export_model(&f, "int8_test.onnx").keep()
    })
}

#[test]
fn the_int8_export_is_small_deterministic_and_an_int8_model() {
    let m = model();
    let ratio = std::fs::metadata(m).unwrap().len() as f64
        / std::fs::metadata(golden::weights_file()).unwrap().len() as f64;
    eprintln!("int8 file / float32 weights: {ratio:.3}");
    assert!(
        ratio <= MAX_SIZE_RATIO,
        "int8 file is {ratio:.3}× the weights"
    );
    let flags = int8_flags(&photos());
    let f: Vec<&str> = flags.iter().map(String::as_str).collect();
    let again = golden::export_model(&f, "int8_test_again.onnx");
    assert!(
        std::fs::read(m).unwrap() == std::fs::read(&again).unwrap(),
        "two int8 exports of the same weights, photos and flags differ"
    );
    let opts = OrtOptions {
        provider: Provider::Cpu,
        threads: Some(1),
        emulate_trt_plugins: false,
        profile: false,
    };
    let rt = OrtRuntime::new(m, &opts).unwrap();
    assert_eq!(rt.precision(), focus_exporters::precision::Precision::Int8);
    // The graph, read by the onnx package (its full checker first): int8 weights behind
    // DequantizeLinear, batch norms folded, the calibration recorded, and the layers of
    // KEEP_FP32 still float32.
    let script = r#"
import json, onnx, sys
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m, full_check=True)
g = m.graph
count = lambda op: sum(1 for n in g.node if n.op_type == op)
assert count('Conv') == 57, count('Conv')
assert count('BatchNormalization') == 0
assert count('QuantizeLinear') > 100 and count('DequantizeLinear') > 300
q = [t for t in g.initializer if t.name.endswith('.quantized') and t.data_type == onnx.TensorProto.INT8]
assert len(q) >= 150, len(q)
for kept in ['sampling_offsets', 'attention_weights', 'class_embed', 'bbox_embed']:
    assert any(kept in t.name and t.data_type == onnx.TensorProto.FLOAT for t in g.initializer), kept
    assert not any(kept in t.name and t.name.endswith('.quantized') for t in g.initializer), kept
meta = {p.key: p.value for p in m.metadata_props}
assert meta['focus_export.precision'] == 'int8', meta
rec = json.loads(meta['focus_export.int8'])
assert rec['images'] == 4 and rec['method'] == 'percentile:99.99', rec
# float32 at the edges: the image input and every output.
for v in list(g.input[:1]) + list(g.output):
    assert v.type.tensor_type.elem_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.INT64), v.name
print('ok')
"#;
    common::run_python_on_model(script, m);
}

#[test]
fn forced_on_every_golden_the_int8_model_is_within_the_int8_budgets() {
    let json = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("int8_check.json");
    let mut cmd = common::cli();
    cmd.args(["check", "--runtime", "ort", "--threads", "2", "--weights"])
        .arg(golden::weights_file())
        .arg("--model")
        .arg(model())
        .arg("--report")
        .arg(&json);
    for case in golden::CASES {
        cmd.arg("--input")
            .arg(common::golden(&format!("{case}.safetensors")));
    }
    let (ok, stdout, stderr) = common::output(cmd);
    eprintln!("{stdout}");
    assert!(ok, "check failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("judged by the int8 budgets"), "{stdout}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["tolerances"]["budgets"], "int8");
    let cases = r["cases"].as_array().unwrap();
    assert_eq!(cases.len(), golden::CASES.len());
    for c in cases {
        assert_eq!(c["forced_within_budget"], true, "{}", c["name"]);
        let d = &c["forced_detections"];
        let matched = d["matched"].as_f64().unwrap() / d["compared"].as_f64().unwrap();
        assert!(
            matched >= focus_export::check::INT8.min_matched_forced,
            "{}: {matched}",
            c["name"]
        );
    }
}

#[test]
fn int8_options_that_do_not_fit_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.onnx");
    let photos = photos();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--precision".into(), "int8".into()], "--calibrate DIR"),
        (
            vec!["--calibrate".into(), photos.display().to_string()],
            "--precision int8 only",
        ),
        (
            vec![
                "--precision".into(),
                "int8".into(),
                "--target".into(),
                "tensorrt".into(),
                "--calibrate".into(),
                photos.display().to_string(),
            ],
            "CPU targets",
        ),
        (
            vec![
                "--precision".into(),
                "int8".into(),
                "--calibrate".into(),
                dir.path().join("missing").display().to_string(),
            ],
            "not a folder",
        ),
        (
            vec![
                "--precision".into(),
                "int8".into(),
                "--calibration".into(),
                "median".into(),
            ],
            "expected minmax",
        ),
        (
            vec![
                "--precision".into(),
                "int8".into(),
                "--calibrate".into(),
                photos.display().to_string(),
                "--int8-keep".into(),
                "backbone.res9".into(),
            ],
            "backbone.res9",
        ),
    ];
    for (args, expect) in cases {
        let mut cmd = common::cli();
        cmd.arg("--weights")
            .arg(golden::weights_file())
            .arg("-o")
            .arg(&out)
            .args(&args);
        let o = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
        assert!(!out.exists(), "{args:?} left {}", out.display());
    }
}
