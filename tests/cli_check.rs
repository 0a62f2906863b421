//! `focus-export check` end to end: exported model vs the torch reference on golden inputs and on
//! the COCO-format subset of real photos (tests/data/coco_subset), with its JSON report; and a
//! model that really differs (other weights) fails with a non-zero exit code.
#![cfg(all(feature = "torch", feature = "ort"))]

mod common;

use std::path::{Path, PathBuf};

use common::golden::{self, forced_model};

fn tmp(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `check` on the COCO-format subset of the scikit-image photos, reporting to `json`.
fn coco_check_cmd(runtime: &str, model: &Path, json: &Path) -> std::process::Command {
    let photos = Path::new(env!("CARGO_MANIFEST_DIR")).join(".runtimes/photos");
    assert!(
        photos.join("astronaut.png").exists(),
        "{} missing: run scripts/setup-env.sh",
        photos.display()
    );
    let mut cmd = check_cmd(runtime, model);
    cmd.arg("--coco-ann")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/coco_subset/annotations.json"))
        .arg("--coco-images")
        .arg(&photos)
        .arg("--report")
        .arg(json);
    cmd
}

fn check_cmd(runtime: &str, model: &Path) -> std::process::Command {
    let mut cmd = common::cli();
    cmd.args(["check", "--runtime", runtime, "--threads", "2", "--weights"])
        .arg(golden::weights_file())
        .arg("--model")
        .arg(model);
    cmd
}

#[test]
fn check_passes_on_the_golden_inputs_with_ort() {
    let json = tmp("check_golden.json");
    let mut cmd = check_cmd("ort", forced_model());
    for case in golden::CASES {
        cmd.arg("--input")
            .arg(common::golden(&format!("{case}.safetensors")));
    }
    cmd.arg("--report").arg(&json);
    let (ok, stdout, stderr) = common::output(cmd);
    eprintln!("{stdout}");
    assert!(ok, "check failed:\n{stdout}\n{stderr}");
    let r = report(&json);
    assert_eq!(r["passed"], true);
    assert_eq!(r["images"], 4);
    assert_eq!(r["forced_ok"], 4);
    let cases = r["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for c in cases {
        assert_ne!(c["status"], "fail", "{c}");
        // Forced to the reference's selections, every tensor is within its budget.
        assert_eq!(c["forced_within_budget"], true, "{}", c["name"]);
        assert_eq!(c["forced_detections"]["status"], "pass", "{}", c["name"]);
        assert_eq!(c["forced_selections"].as_array().unwrap().len(), 13);
        assert!(c["selections"].as_array().unwrap().len() >= 13);
    }
}

#[test]
fn check_passes_on_the_coco_subset_of_real_photos() {
    let json = tmp("check_coco.json");
    let cmd = coco_check_cmd("ort", forced_model(), &json);
    let (ok, stdout, stderr) = common::output(cmd);
    eprintln!("{stdout}");
    assert!(ok, "check failed:\n{stdout}\n{stderr}");
    let r = report(&json);
    assert_eq!(r["passed"], true);
    let names: Vec<&str> = r["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(
        names[0].starts_with("astronaut.png (1 annotation"),
        "{names:?}"
    );
    // Every photo forced to the reference's selections is within budget, whatever its free run.
    assert_eq!(r["images"], 4);
    assert_eq!(r["forced_ok"], 4, "{stdout}");
}

#[test]
fn forcing_reproduces_the_reference_on_every_photo_with_tract() {
    // tract with our custom ops (its GridSample would take minutes per photo at 800 px).
    let model = golden::export_model(
        &["--target", "tract", "--debug", "--selection-inputs"],
        "tract_forced.onnx",
    );
    let json = tmp("check_coco_tract.json");
    let cmd = coco_check_cmd("tract", &model, &json);
    let (ok, stdout, stderr) = common::output(cmd);
    eprintln!("{stdout}");
    assert!(ok, "check failed:\n{stdout}\n{stderr}");
    let r = report(&json);
    assert_eq!(r["forced_ok"], 4, "{stdout}");
    for c in r["cases"].as_array().unwrap() {
        assert_eq!(c["forced_within_budget"], true, "{}", c["name"]);
        assert!(c["matched_top100"].as_u64().is_some(), "{c}");
    }
}

#[test]
fn check_runs_tract_too() {
    let mut cmd = check_cmd("tract", forced_model());
    cmd.arg("--input")
        .arg(common::golden("astronaut_384x384.safetensors"));
    let (ok, stdout, stderr) = common::output(cmd);
    assert!(ok, "check failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("tract vs torch-cpu"), "{stdout}");
}

#[test]
fn a_model_from_other_weights_fails_the_check() {
    let other = tmp("seed1.safetensors");
    let mut cmd = common::cli();
    cmd.args(["init-weights", "--seed", "1", "-o"]).arg(&other);
    assert!(common::output(cmd).0);
    let model = tmp("seed1.onnx");
    let mut cmd = common::cli();
    cmd.arg("--weights")
        .arg(&other)
        .args(["--debug", "-o"])
        .arg(&model);
    assert!(common::output(cmd).0);
    let json = tmp("check_fail.json");
    let mut cmd = check_cmd("ort", &model);
    cmd.arg("--input")
        .arg(common::golden("astronaut_384x384.safetensors"))
        .arg("--report")
        .arg(&json);
    let (ok, stdout, _) = common::output(cmd);
    assert!(!ok, "a model from other weights passed:\n{stdout}");
    assert!(
        stdout.contains("FAIL") && stdout.contains("1 failed"),
        "{stdout}"
    );
    assert_eq!(report(&json)["passed"], false);
}

#[test]
fn check_names_missing_arguments() {
    let mut cmd = common::cli();
    cmd.args(["check", "--weights"])
        .arg(golden::weights_file())
        .arg("--input")
        .arg(common::golden("astronaut_384x384.safetensors"));
    let (ok, _, stderr) = common::output(cmd);
    assert!(!ok && stderr.contains("--model is required"), "{stderr}");
}
