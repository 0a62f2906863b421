//! `focus-export eval` end to end: a results file on the test subset's annotations gives
//! pycocotools' printed lines and numbers exactly; bad results files are refused with the entry
//! named and no JSON written.

mod common;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

fn annotations() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/coco_subset/annotations.json")
}

/// Detections near each ground-truth box (shifted by a few pixels, some a different class),
/// plus boxes elsewhere, with tied and distinct scores: a deterministic, varied results file.
fn results() -> Value {
    let gt: Value = serde_json::from_str(&std::fs::read_to_string(annotations()).unwrap()).unwrap();
    let mut dets = Vec::new();
    for (n, a) in gt["annotations"].as_array().unwrap().iter().enumerate() {
        let b: Vec<f64> = a["bbox"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        for k in 0..6 {
            let shift = f64::from(k) * 0.07 * b[2];
            let score = [0.9, 0.5, 0.5, 0.31, 0.2, 0.05][k as usize] - 0.01 * n as f64;
            let category = if k == 4 {
                1
            } else {
                a["category_id"].as_i64().unwrap()
            };
            dets.push(json!({
                "image_id": a["image_id"],
                "category_id": category,
                "bbox": [b[0] + shift, b[1], b[2] * (1.0 - 0.03 * f64::from(k)), b[3]],
                "score": score,
            }));
        }
        dets.push(json!({"image_id": a["image_id"], "category_id": 17,
                         "bbox": [1.5, 2.5, 30.0, 20.0], "score": 0.5}));
    }
    Value::Array(dets)
}

/// `eval` of results file `dt` on the subset's annotations, writing JSON to `out`.
fn eval_cmd(dt: &Path, out: &Path) -> std::process::Command {
    let mut cmd = common::cli();
    cmd.arg("eval")
        .arg("--coco-ann")
        .arg(annotations())
        .arg("--results")
        .arg(dt)
        .arg("--json")
        .arg(out);
    cmd
}

#[test]
fn eval_prints_and_writes_pycocotools_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let dt = dir.path().join("dets.json");
    std::fs::write(&dt, results().to_string()).unwrap();
    let out = dir.path().join("stats.json");
    let cmd = eval_cmd(&dt, &out);
    let (ok, stdout, stderr) = common::output(cmd);
    assert!(ok, "{stderr}");
    let (stats, lines) = common::pycocotools(&annotations(), &dt);
    assert_eq!(stdout.lines().collect::<Vec<_>>(), lines, "printed lines");
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let names = [
        "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl",
    ];
    for (name, want) in names.iter().zip(&stats) {
        assert_eq!(written[name].as_f64(), Some(*want), "{name}");
    }
    assert!(
        stats[0] > 0.0 && stats[0] < 1.0,
        "a case with something to rank: {stats:?}"
    );
}

#[test]
fn bad_results_are_refused_naming_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let good =
        json!({"image_id": 1, "category_id": 1, "bbox": [0.0, 0.0, 10.0, 10.0], "score": 0.5});
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "unknown image",
            json!([good, {"image_id": 77, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.1}])
                .to_string(),
            "[1]: image_id 77 is not an image",
        ),
        (
            "malformed box",
            json!([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1], "score": 0.1}]).to_string(),
            "[0]: bbox has 3 number(s)",
        ),
        (
            "missing field",
            json!([good, {"image_id": 1, "bbox": [0, 0, 1, 1], "score": 0.1}]).to_string(),
            "at `[1]`: missing field `category_id`",
        ),
        (
            "non-finite score",
            r#"[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": NaN}]"#
                .to_string(),
            "`NaN` at line 1",
        ),
    ];
    for (what, text, want) in cases {
        let dt = dir.path().join("bad.json");
        std::fs::write(&dt, text).unwrap();
        let out = dir.path().join("stats.json");
        let mut cmd = eval_cmd(&dt, &out);
        let run = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        // 2: could not run (1 is a check's negative verdict).
        assert_eq!(run.status.code(), Some(2), "{what}: {stderr}");
        assert!(
            stderr.contains("bad.json") && stderr.contains(want),
            "{what}: {stderr} (wanted {want})"
        );
        assert!(!out.exists(), "{what}: a JSON file was written");
    }
}
