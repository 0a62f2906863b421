//! `focus-export check` end to end: exported model vs the torch reference on golden inputs and on
//! the COCO-format subset of real photos (tests/data/coco_subset), with its JSON report; and a
//! model that really differs (other weights) fails with a non-zero exit code.
#![cfg(all(feature = "torch", feature = "ort"))]

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

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

/// The check of the forced-selection export on the whole COCO subset, with both sides'
/// detections written as results files: (success, stdout, stderr, JSON report, results folder).
/// Shared by the tests that read it (one run per test binary).
fn coco_run() -> &'static (bool, String, String, serde_json::Value, PathBuf) {
    static RUN: OnceLock<(bool, String, String, serde_json::Value, PathBuf)> = OnceLock::new();
    RUN.get_or_init(|| {
        let json = tmp("check_coco.json");
        let results = tmp("coco_results");
        let mut cmd = coco_check_cmd("ort", forced_model(), &json);
        // Free-running detections on synthetic weights are chaotic after a near-tie (see the
        // README's "Selections"); the forced pass is what must equal the reference here.
        cmd.arg("--results-dir")
            .arg(&results)
            .args(["--accuracy-pass", "forced"])
            .arg("--html")
            .arg(tmp("check_coco.html"));
        let (ok, stdout, stderr) = common::output(cmd);
        eprintln!("{stdout}");
        let r = if ok {
            report(&json)
        } else {
            serde_json::Value::Null
        };
        (ok, stdout, stderr, r, results)
    })
}

fn stats_of(v: &serde_json::Value) -> Vec<f64> {
    focus_cocoeval::STAT_NAMES
        .iter()
        .map(|n| v[n].as_f64().unwrap_or_else(|| panic!("{n} in {v}")))
        .collect()
}

#[test]
fn check_passes_on_the_coco_subset_of_real_photos() {
    let (ok, stdout, stderr, r, results) = coco_run();
    assert!(ok, "check failed:\n{stdout}\n{stderr}");
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
    // COCO accuracy: the table, both results files, and numbers that are pycocotools' own.
    assert!(
        stdout.contains("COCO accuracy on 4 image(s), 7 ground-truth box(es)"),
        "{stdout}"
    );
    let a = &r["accuracy"];
    assert_eq!(a["gated"], "forced");
    assert_eq!(a["passed"], true);
    let ann = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/coco_subset/annotations.json");
    for (file, stats) in [
        ("reference.json", &a["reference"]),
        ("ort.json", &a["free"]["exported"]),
        ("ort_forced.json", &a["forced"]["exported"]),
    ] {
        let path = results.join(file);
        let dets: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        // 300 detections per photo, less any box clipped to nothing.
        let n = dets.as_array().unwrap().len();
        assert!((1100..=1200).contains(&n), "{file}: {n} detections");
        let (want, _) = common::pycocotools(&ann, &path);
        assert_eq!(
            stats_of(stats),
            want,
            "{file}: AP numbers against pycocotools"
        );
    }
    assert_eq!(
        r["results_files"]["reference"],
        results.join("reference.json").display().to_string()
    );
}

#[test]
fn the_html_report_of_the_coco_subset_is_self_contained_and_complete() {
    let (ok, stdout, stderr, r, _) = coco_run();
    assert!(ok, "check failed:\n{stdout}\n{stderr}");
    let text = std::fs::read_to_string(tmp("check_coco.html")).unwrap();
    common::assert_self_contained_html(&text);
    let doc = scraper::Html::parse_document(&text);
    let sel = |s: &str| scraper::Selector::parse(s).unwrap();
    let texts =
        |s: &str| -> Vec<String> { doc.select(&sel(s)).map(|e| e.text().collect()).collect() };
    // One section per photo, each with both sides' detections.
    let sections = doc.select(&sel("section")).count();
    assert_eq!(sections, 4);
    let figures = texts("figure figcaption");
    let side = |who: &str| figures.iter().filter(|c| c.starts_with(who)).count();
    assert_eq!(
        (side("reference:"), side("exported model:")),
        (4, 4),
        "{figures:?}"
    );
    // The AP table, with the reference's AP as the JSON report has it.
    let caps = texts("caption");
    assert!(
        caps.iter()
            .any(|c| c.starts_with("COCO accuracy on 4 image(s)")),
        "{caps:?}"
    );
    let ap = format!("{:.4}", r["accuracy"]["reference"]["AP"].as_f64().unwrap());
    assert!(
        texts("td").contains(&ap),
        "reference AP {ap} not in the table"
    );
    // Every free-running divergence is shown on the token map.
    let diverged = r["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| !c["first_divergence"].is_null())
        .count();
    let token_maps = doc.select(&sel("figure.tokens")).count();
    assert!(
        token_maps >= diverged,
        "{token_maps} token maps for {diverged} divergences"
    );
}

/// The reference's five best detections per photo as ground truth (clipped inside the photo,
/// as the subset's validation asks): a truth the reference scores AP ≈ 1 on.
fn reference_truth() -> PathBuf {
    let (ok, stdout, stderr, _, results) = coco_run();
    assert!(ok, "check failed:\n{stdout}\n{stderr}");
    let ann = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/coco_subset/annotations.json");
    let mut subset: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ann).unwrap()).unwrap();
    let dets: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(results.join("reference.json")).unwrap())
            .unwrap();
    let mut anns = Vec::new();
    for img in subset["images"].as_array().unwrap() {
        let (w, h) = (
            img["width"].as_f64().unwrap(),
            img["height"].as_f64().unwrap(),
        );
        let mut own: Vec<&serde_json::Value> =
            dets.iter().filter(|d| d["image_id"] == img["id"]).collect();
        own.sort_by(|a, b| {
            b["score"]
                .as_f64()
                .unwrap()
                .total_cmp(&a["score"].as_f64().unwrap())
        });
        for d in own.into_iter().take(5) {
            let b: Vec<f64> = d["bbox"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let (bw, bh) = ((b[2]).min(w - b[0]), (b[3]).min(h - b[1]));
            anns.push(
                serde_json::json!({"id": anns.len() + 1, "image_id": img["id"],
                "category_id": d["category_id"], "bbox": [b[0], b[1], bw, bh],
                "area": bw * bh, "iscrowd": 0}),
            );
        }
    }
    subset["annotations"] = serde_json::Value::Array(anns);
    subset["categories"] = serde_json::Value::Array(
        (1..=90)
            .map(|id| serde_json::json!({"id": id, "name": format!("c{id}")}))
            .collect(),
    );
    let path = tmp("reference_truth.json");
    std::fs::write(&path, subset.to_string()).unwrap();
    path
}

/// `check` of `model` on the first two photos, with `truth` as their ground truth.
fn truth_check_cmd(model: &Path, truth: &Path, json: &Path) -> std::process::Command {
    let mut cmd = check_cmd("ort", model);
    cmd.arg("--coco-ann")
        .arg(truth)
        .arg("--coco-images")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(".runtimes/photos"))
        .args(["--limit", "2", "--report"])
        .arg(json);
    cmd
}

#[test]
fn forced_accuracy_equals_the_reference_on_its_own_confident_boxes() {
    let truth = reference_truth();
    let json = tmp("check_truth_forced.json");
    let mut cmd = truth_check_cmd(forced_model(), &truth, &json);
    // The synthetic model's scores stay below 0.25: its confident boxes are those ≥ 0.15.
    cmd.args(["--accuracy-pass", "forced", "--agreement-min-score", "0.15"]);
    let (ok, stdout, stderr) = common::output(cmd);
    eprintln!("{stdout}");
    assert!(ok, "check failed:\n{stdout}\n{stderr}");
    let a = &report(&json)["accuracy"];
    assert!(stats_of(&a["reference"])[0] > 0.9, "{a}");
    let forced = &a["forced"];
    assert!(
        forced["worst_delta"][1].as_f64().unwrap() <= focus_export::accuracy::DEFAULT_MAX_DELTA_AP,
        "{forced}"
    );
    assert!(
        forced["agreement_ap"].as_f64().unwrap()
            >= focus_export::accuracy::DEFAULT_MIN_AGREEMENT_AP,
        "{forced}"
    );
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
fn the_tensorrt_form_with_the_plugin_emulated_passes_check_on_every_photo() {
    let model = golden::export_model(
        &["--target", "tensorrt", "--debug", "--selection-inputs"],
        "tensorrt_forced.onnx",
    );
    let json = tmp("check_coco_tensorrt_emulated.json");
    let mut cmd = coco_check_cmd("ort", &model, &json);
    cmd.arg("--emulate-trt-plugins");
    let (ok, stdout, stderr) = common::output(cmd);
    eprintln!("{stdout}");
    assert!(ok, "check failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("ort-cpu+trt-plugin-emulation vs torch"),
        "{stdout}"
    );
    let r = report(&json);
    assert_eq!(r["forced_ok"], 4, "{stdout}");
    for c in r["cases"].as_array().unwrap() {
        assert_eq!(c["forced_within_budget"], true, "{}", c["name"]);
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

/// An export of other weights (seed 1), with the debug outputs but no selection inputs.
fn other_model() -> &'static Path {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL.get_or_init(|| {
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
        model
    })
}

#[test]
fn a_model_from_other_weights_fails_the_check() {
    let json = tmp("check_fail.json");
    let mut cmd = check_cmd("ort", other_model());
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
fn a_model_from_other_weights_fails_the_delta_ap_budget() {
    let truth = reference_truth();
    let json = tmp("check_truth_other.json");
    let cmd = truth_check_cmd(other_model(), &truth, &json);
    let (ok, stdout, _) = common::output(cmd);
    eprintln!("{stdout}");
    assert!(!ok, "a model from other weights passed:\n{stdout}");
    assert!(
        stdout.contains("accuracy FAIL (free pass)") && stdout.contains("--max-delta-ap"),
        "{stdout}"
    );
    let r = report(&json);
    let a = &r["accuracy"];
    assert_eq!(a["passed"], false);
    assert!(
        a["forced"].is_null(),
        "this export takes no selections: {a}"
    );
    let worst = a["free"]["worst_delta"][1].as_f64().unwrap();
    assert!(worst > focus_export::accuracy::DEFAULT_MAX_DELTA_AP, "{a}");
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
