//! The exported ONNX model: valid for the pinned `onnx` checker, byte-identical across exports,
//! one file for every input size, and on ONNX Runtime (CPU) within the model issue's budgets
//! against the goldens (tests/common/golden.rs).
#![cfg(feature = "ort")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::golden;
use focus_export::runtimes::ort::{OrtOptions, OrtRuntime, Provider};

fn debug_model() -> &'static PathBuf {
    static M: OnceLock<PathBuf> = OnceLock::new();
    M.get_or_init(|| golden::export_model(&["--debug"], "debug.onnx"))
}

fn injected_model() -> &'static PathBuf {
    static M: OnceLock<PathBuf> = OnceLock::new();
    M.get_or_init(|| golden::export_model(&["--debug", "--proposals-input"], "debug_injected.onnx"))
}

fn ort(model: &Path) -> OrtRuntime {
    OrtRuntime::new(
        model,
        &OrtOptions {
            provider: Provider::Cpu,
            threads: Some(2),
        },
    )
    .unwrap()
}

fn check(name: &str) {
    let g = golden::load_case(name);
    let out = golden::run_case(&mut ort(debug_model()), &g, false);
    let inj = golden::run_case(&mut ort(injected_model()), &g, true);
    let report = golden::check_case(name, &out, &inj, &g);
    eprintln!("ONNX Runtime CPU, {name}:\n  {}", report.join("\n  "));
}

#[test]
fn astronaut_384x384() {
    check(golden::CASES[0]);
}

#[test]
fn chelsea_448x640() {
    check(golden::CASES[1]);
}

#[test]
fn coffee_480x640() {
    check(golden::CASES[2]);
}

#[test]
fn rocket_800x1184() {
    check(golden::CASES[3]);
}

#[test]
fn the_pinned_onnx_checker_accepts_the_model() {
    let plain = golden::export_model(&[], "plain.onnx");
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} missing: run scripts/setup-env.sh",
        python.display()
    );
    for m in [&plain, debug_model()] {
        let out = Command::new(&python)
            .args(["-c", "import onnx, sys; m = onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True); print('ok', m.opset_import[0].version)"])
            .arg(m)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            m.display(),
            String::from_utf8_lossy(&out.stderr)
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
