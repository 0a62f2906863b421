//! The exported ONNX model: valid for the pinned `onnx` checker, byte-identical across exports,
//! one file for every input size, and on ONNX Runtime (CPU) within the model issue's budgets
//! against the goldens (tests/common/golden.rs).
#![cfg(feature = "ort")]

mod common;

use std::path::Path;

use common::golden::{self, debug_model, forced_model};
use focus_export::runtimes::ort::{OrtOptions, OrtRuntime, Provider};
use focus_export::runtimes::Runtime as _;

fn ort(model: &Path) -> OrtRuntime {
    OrtRuntime::new(
        model,
        &OrtOptions {
            provider: Provider::Cpu,
            threads: Some(2),
            emulate_trt_plugins: false,
            profile: false,
        },
    )
    .unwrap()
}

fn check(name: &str) {
    let (mut a, mut b) = (ort(debug_model()), ort(forced_model()));
    golden::check_runtimes("ONNX Runtime CPU", name, &mut a, &mut b);
}

golden_case_tests!(check);

#[test]
fn the_pinned_onnx_checker_accepts_the_model() {
    let plain = golden::export_model(&[], "plain.onnx");
    for m in [&*plain, debug_model().as_path()] {
        common::run_python_on_model(
            "import onnx, sys; m = onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True); print('ok', m.opset_import[0].version)",
            m,
        );
    }
}

#[test]
fn exporting_twice_is_byte_identical_and_opsets_are_checked() {
    let a = golden::export_model(&[], "twice_a.onnx");
    let b = golden::export_model(&[], "twice_b.onnx");
    assert!(
        std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
        "two exports differ"
    );
    let mut cmd = common::cli();
    cmd.arg("--weights")
        .arg(golden::weights_file())
        .args(["--opset", "15", "-o"])
        .arg(Path::new(env!("CARGO_TARGET_TMPDIR")).join("o15.onnx"));
    let (ok, _, stderr) = common::output(cmd);
    assert!(
        !ok && stderr.contains("opset 15 is not supported") && stderr.contains("GridSample"),
        "{stderr}"
    );
}

#[test]
fn static_shape_and_orig_sizes() {
    let g = golden::load_case(golden::CASES[0]); // 384×384
    let dynamic = golden::run_case(&mut ort(debug_model()), &g, false);

    // A static 384×384 model meets the same budgets against the golden, and refuses other
    // sizes. (Its arithmetic is not bit-identical to the dynamic model's: ORT folds the constant
    // shapes differently, enough to swap near-tie proposals, hence the golden budgets.)
    let st = ["--debug", "--static-shape", "1x384x384"];
    let fixed = golden::export_model(&st, "static.onnx");
    let fixed_inj = golden::export_model(
        &[&st[..], &["--selection-inputs"]].concat(),
        "static_inj.onnx",
    );
    let out = golden::run_case(&mut ort(&fixed), &g, false);
    let inj = golden::run_case(&mut ort(&fixed_inj), &g, true);
    let report = golden::check_case(golden::CASES[0], &out, &inj, &g);
    eprintln!("static 1x384x384 model:\n  {}", report.join("\n  "));
    let other = golden::load_case(golden::CASES[2]); // 480×640
    let mut inputs = focus_export::tensors::TensorMap::new();
    inputs.insert("images".into(), other["images"].clone());
    let err = ort(&fixed).run(&inputs).unwrap_err().to_string();
    assert!(err.contains("images"), "{err}");

    // orig_sizes: boxes scaled to the given size (here twice the input size) instead.
    let scaled = golden::export_model(&["--orig-sizes"], "orig_sizes.onnx");
    let mut inputs = focus_export::tensors::TensorMap::new();
    inputs.insert("images".into(), g["images"].clone());
    inputs.insert(
        "orig_sizes".into(),
        focus_export::tensors::HostTensor::i64(vec![1, 2], vec![768, 768]),
    );
    let out = ort(&scaled).run(&inputs).unwrap();
    let want: Vec<f32> = dynamic["boxes_xyxy"]
        .as_f32()
        .unwrap()
        .iter()
        .map(|v| v * 2.0)
        .collect();
    let got = out["boxes_xyxy"].as_f32().unwrap();
    let d = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(d <= 1e-3, "orig_sizes scaling: max|Δ| {d}");
    // Without orig_sizes in the input file, the runtime feeds the input size.
    inputs.remove("orig_sizes");
    let out = ort(&scaled).run(&inputs).unwrap();
    assert!(golden::max_abs(&out["boxes_xyxy"], &dynamic["boxes_xyxy"]) <= 1e-3);

    // A static shape too small for the model fails at export, naming the minimum, and writes
    // no file.
    let small = Path::new(env!("CARGO_TARGET_TMPDIR")).join("small.onnx");
    let _ = std::fs::remove_file(&small);
    let mut cmd = common::cli();
    cmd.arg("--weights")
        .arg(golden::weights_file())
        .args(["--static-shape", "320x320", "-o"])
        .arg(Path::new(env!("CARGO_TARGET_TMPDIR")).join("small.onnx"));
    let (ok, _, stderr) = common::output(cmd);
    assert!(!ok && stderr.contains("377×377"), "{stderr}");
    assert!(!Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("small.onnx")
        .exists());
}

#[test]
fn inputs_below_the_minimum_get_a_clear_error_from_the_runtime() {
    let mut inputs = focus_export::tensors::TensorMap::new();
    inputs.insert(
        "images".into(),
        focus_export::tensors::HostTensor::f32(vec![1, 3, 320, 320], vec![0.0; 3 * 320 * 320]),
    );
    let err = ort(debug_model()).run(&inputs).unwrap_err().to_string();
    assert!(
        err.contains("too small") && err.contains("377×377"),
        "{err}"
    );
}

#[test]
fn run_forces_selections_on_a_diagnostic_export_and_a_plain_one_says_how() {
    let case = common::golden("chelsea_448x640.safetensors");
    let g = golden::load_case("chelsea_448x640");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let run = |model: &Path| {
        let mut cmd = common::cli();
        cmd.args(["run", "--runtime", "ort", "--threads", "2", "--model"])
            .arg(model)
            .arg("--input")
            .arg(&case)
            .arg("--output")
            .arg(&out)
            .arg("--force-selections")
            .arg(&case);
        common::output(cmd)
    };
    let (ok, stdout, stderr) = run(forced_model());
    assert!(ok, "{stderr}");
    assert!(stdout.contains("forcing 13 selection(s)"), "{stdout}");
    let o = focus_export::tensors::read_tensors(&out).unwrap();
    assert_eq!(o["topk_proposals"].as_i64(), g["topk_proposals"].as_i64());
    assert_eq!(
        o["enc_oesm_token_idx_3"].as_i64(),
        g["enc_oesm_token_idx_3"].as_i64()
    );
    let d = golden::max_abs(&o["pred_boxes"], &g["pred_boxes"]);
    assert!(d <= golden::TOL_BOXES, "pred_boxes max|Δ| {d}");
    std::fs::remove_file(&out).unwrap();
    let (ok, _, e) = run(debug_model());
    assert!(
        !ok && e.contains("--selection-inputs") && e.contains("enc_topk_idx_0"),
        "{e}"
    );
    assert!(!out.exists());
}
