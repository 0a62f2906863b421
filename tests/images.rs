//! Image preprocessing against the goldens, and `predict` end to end on a real photo.

mod common;

use focus_export::images;
use focus_export::tensors::{read_tensors, HostData};
use image::RgbImage;

fn golden_rgb(name: &str) -> (RgbImage, focus_export::tensors::TensorMap) {
    let g = read_tensors(&common::golden(&format!("{name}.safetensors"))).unwrap();
    let t = &g["image_rgb_u8"];
    let HostData::U8(px) = &t.data else {
        panic!("image_rgb_u8 is not uint8")
    };
    let img = RgbImage::from_raw(t.shape[1] as u32, t.shape[0] as u32, px.clone()).unwrap();
    (img, g)
}

#[test]
fn normalisation_is_bit_identical_to_the_golden_inputs() {
    let p = focus_models::FocusDetrConfig::default().preprocess;
    for case in [
        "astronaut_384x384",
        "chelsea_448x640",
        "coffee_480x640",
        "rocket_800x1184",
    ] {
        let (img, g) = golden_rgb(case);
        let ours = images::normalise(&img, &p);
        assert_eq!(ours.shape, g["images"].shape, "{case}");
        assert!(
            ours.as_f32().unwrap() == g["images"].as_f32().unwrap(),
            "{case}: normalised pixels differ"
        );
    }
}

#[cfg(feature = "torch")]
#[test]
fn predict_prints_draws_and_reports_json() {
    let dir = tempfile::tempdir().unwrap();
    let (img, _) = golden_rgb("coffee_480x640");
    let photo = dir.path().join("coffee.png");
    img.save(&photo).unwrap();
    let w = dir.path().join("w.safetensors");
    let mut cmd = common::cli();
    cmd.args(["init-weights", "-o"]).arg(&w);
    assert!(common::output(cmd).0);

    let drawn = dir.path().join("drawn.png");
    let mut cmd = common::cli();
    cmd.args([
        "predict",
        "--json",
        "--score-threshold",
        "0",
        "--top",
        "5",
        "--weights",
    ])
    .arg(&w)
    .arg("--image")
    .arg(&photo)
    .arg("--draw")
    .arg(&drawn);
    let (ok, stdout, stderr) = common::output(cmd);
    assert!(ok, "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["image_size"], serde_json::json!([480, 640]));
    // Shortest side 800: 480×640 → 800×1067.
    assert_eq!(doc["input_size"], serde_json::json!([800, 1067]));
    let dets = doc["detections"].as_array().unwrap();
    assert_eq!(dets.len(), 5);
    for d in dets {
        let b: Vec<f64> = d["bbox_xyxy"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert!(
            b[0] >= 0.0
                && b[2] <= 640.0
                && b[1] >= 0.0
                && b[3] <= 480.0
                && b[0] < b[2]
                && b[1] < b[3],
            "{d}"
        );
        assert!(d["category_id"].as_u64().unwrap() >= 1 && d["name"].is_string());
    }
    let pic = image::open(&drawn).unwrap().to_rgb8();
    assert_eq!((pic.width(), pic.height()), (640, 480));
    assert_ne!(pic, img, "no box was drawn");

    let mut cmd = common::cli();
    cmd.args(["predict", "--weights"])
        .arg(&w)
        .arg("--image")
        .arg(dir.path().join("nope.jpg"));
    let (ok, _, stderr) = common::output(cmd);
    assert!(!ok && stderr.contains("nope.jpg"), "{stderr}");
}
