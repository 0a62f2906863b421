//! `focus-export matrix` end to end on the test COCO subset (tests/data/coco_subset): the four
//! default combinations (ort-cpu in fp32, fp16 and int8, tract in fp32) beside the torch
//! reference, each exported, checked in both passes and timed; the JSON report holds what the
//! table prints, the files it names are the ones written, the Markdown has a row per
//! combination and the HTML page opens offline. Refusals come before any work.
#![cfg(all(feature = "torch", feature = "ort", feature = "tract"))]

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::golden;

/// The int8 file against the float32 one (the target, also held by export_int8).
const MAX_INT8_SIZE_RATIO: f64 = 0.3;
/// The float16 file against the float32 one: half, plus the float32 islands' weights.
const MAX_FP16_SIZE_RATIO: f64 = 0.55;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn out_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("matrix")
}

/// The matrix on the whole COCO subset (one run per test binary): (success, stdout, stderr).
fn matrix_run() -> &'static (bool, String, String) {
    static RUN: OnceLock<(bool, String, String)> = OnceLock::new();
    RUN.get_or_init(|| {
        let photos = root().join(".runtimes/photos");
        assert!(
            photos.join("astronaut.png").exists(),
            "{} missing: run scripts/setup-env.sh",
            photos.display()
        );
        let _ = std::fs::remove_dir_all(out_dir());
        let mut cmd = common::cli();
        cmd.arg("matrix")
            .arg("--weights")
            .arg(golden::weights_file())
            .arg("--coco-ann")
            .arg(root().join("tests/data/coco_subset/annotations.json"))
            .arg("--coco-images")
            .arg(&photos)
            // Few calibration photos and timed runs: CI time. The synthetic weights' scores are
            // low, so the agreement's ground truth takes their more confident boxes.
            .args(["--calibrate-limit", "2", "--runs", "2", "--threads", "2"])
            .args(["--agreement-min-score", "0.15", "-o"])
            .arg(out_dir());
        let r = common::output(cmd);
        eprintln!("{}\n{}", r.1, r.2);
        r
    })
}

fn report() -> serde_json::Value {
    let (ok, stdout, stderr) = matrix_run();
    assert!(ok, "matrix failed:\n{stdout}\n{stderr}");
    serde_json::from_str(&std::fs::read_to_string(out_dir().join("matrix.json")).unwrap()).unwrap()
}

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("a number, not {v}"))
}

#[test]
fn every_default_combination_is_measured_beside_the_reference() {
    let r = report();
    assert_eq!(r["complete"], true);
    assert_eq!(r["setup"]["images"], 4);
    let rows = r["rows"].as_array().unwrap();
    let labels: Vec<&str> = rows.iter().map(|x| x["label"].as_str().unwrap()).collect();
    assert_eq!(
        labels,
        [
            "torch fp32 (reference)",
            "ort-cpu fp32",
            "ort-cpu fp16",
            "ort-cpu int8",
            "tract fp32"
        ]
    );
    let reference_ap = f(&rows[0]["ap"]);
    for row in rows {
        let label = row["label"].as_str().unwrap();
        assert_eq!(row["status"], "measured", "{label}: {}", row["note"]);
        let lat = &row["latency"];
        assert!(
            f(&lat["p50_s"]) > 0.0 && f(&lat["p90_s"]) >= f(&lat["p50_s"]),
            "{label}"
        );
        assert_eq!(lat["runs"], 2, "{label}");
        assert!(f(&lat["peak_rss_mib"]) > 100.0, "{label}: {lat}");
        // The size is the named file's.
        let file = PathBuf::from(row["file"].as_str().unwrap());
        let bytes = std::fs::metadata(&file).unwrap().len() as f64;
        assert!((f(&row["file_mb"]) - bytes / 1e6).abs() < 1e-9, "{label}");
        if row["runtime"] == "torch" {
            continue;
        }
        assert!(file.starts_with(out_dir().join("models")), "{label}");
        // ΔAP is this row's AP against the reference's, from the full accuracy report.
        let acc = &row["accuracy"];
        assert!((f(&acc["reference"]["AP"]) - reference_ap).abs() < 1e-12);
        assert!((f(&row["ap"]) - f(&acc["free"]["exported"]["AP"])).abs() < 1e-12);
        assert!((f(&row["delta_ap"]) - (f(&row["ap"]) - reference_ap)).abs() < 1e-12);
        // The forced pass: every image within the precision's budgets, judged by them.
        let forced = &row["forced"];
        assert_eq!(forced["budgets"], row["precision"], "{label}");
        assert_eq!(forced["images"], 4);
        assert_eq!(forced["within_budget"], 4, "{label}: {forced}");
        let share = f(&forced["worst_share"]);
        assert!(share > 0.0 && share <= 1.0, "{label}: {forced}");
        assert!(f(&forced["min_matched"]) >= 0.9, "{label}: {forced}");
    }
    // What the debug twins and the reference's outputs needed is gone; the models stay.
    assert!(!out_dir().join("work").exists());
    let size = |i: usize| f(&rows[i]["file_mb"]);
    assert!(
        size(3) <= MAX_INT8_SIZE_RATIO * size(1),
        "int8 {} MB",
        size(3)
    );
    assert!(
        size(2) <= MAX_FP16_SIZE_RATIO * size(1),
        "fp16 {} MB",
        size(2)
    );
}

#[test]
fn the_table_markdown_and_page_show_every_row() {
    let r = report();
    let (_, stdout, _) = matrix_run();
    let md = std::fs::read_to_string(out_dir().join("matrix.md")).unwrap();
    for row in r["rows"].as_array().unwrap() {
        let label = row["label"].as_str().unwrap();
        let p50 = format!("{:.3}", f(&row["latency"]["p50_s"]));
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("{label} not in the table:\n{stdout}"));
        assert!(line.contains(&p50), "{line}");
        let md_line = md
            .lines()
            .find(|l| l.starts_with(&format!("| {label} |")))
            .unwrap_or_else(|| panic!("{label} not in the Markdown:\n{md}"));
        assert!(md_line.contains(&p50), "{md_line}");
    }
    let page = std::fs::read_to_string(out_dir().join("matrix.html")).unwrap();
    common::assert_self_contained_html(&page);
    // The AP plot (the subset has ground truth) holds a point per measured row.
    assert!(page.matches("<svg").count() >= 1);
    assert!(page.matches("class=\"point\"").count() >= 5, "{page}");
}

#[test]
fn refusals_come_before_any_work() {
    for (flags, wanted) in [
        (
            &["--runtimes", "torch"][..],
            "the torch reference is always measured",
        ),
        (&["--targets", "tensorrt"][..], "--targets tensorrt"),
        (&[][..], "nothing to measure on"),
        (
            &[
                "--coco-ann",
                "tests/data/coco_subset/annotations.json",
                "--coco-images",
                ".runtimes/photos",
                "--limit",
                "0",
            ][..],
            "lists no images",
        ),
    ] {
        let mut cmd = common::cli();
        cmd.arg("matrix")
            .arg("--weights")
            .arg(golden::weights_file())
            .args(flags)
            .arg("-o")
            .arg(Path::new(env!("CARGO_TARGET_TMPDIR")).join("matrix_refused"));
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(wanted), "{flags:?}: {stderr}");
        assert!(!Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("matrix_refused")
            .exists());
    }
}
