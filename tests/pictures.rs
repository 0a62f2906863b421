//! The pictures people look at, end to end: `explain` on a photo (EXIF-rotated) and on a golden
//! input with the torch reference and with a `--debug` export on ONNX Runtime, `predict --draw`
//! labelled and `predict --model` on the exported model, and `check --html` as one
//! self-contained page.
#![cfg(all(feature = "torch", feature = "ort", feature = "tract"))]

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::golden::{self, forced_model};
use focus_export::tensors::{read_tensors, HostData};
use image::RgbImage;

fn tmp(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("pictures")
        .join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    p
}

/// A golden case's source photo (RGB, as the goldens hold it).
fn golden_photo(case: &str) -> RgbImage {
    let g = read_tensors(&common::golden(&format!("{case}.safetensors"))).unwrap();
    let t = &g["image_rgb_u8"];
    let HostData::U8(px) = &t.data else {
        panic!("image_rgb_u8 is not uint8")
    };
    RgbImage::from_raw(t.shape[1] as u32, t.shape[0] as u32, px.clone()).unwrap()
}

/// EXIF (little-endian TIFF) holding one tag: Orientation = `o`.
fn exif_orientation(o: u16) -> Vec<u8> {
    let mut v = b"II*\0".to_vec();
    v.extend(8u32.to_le_bytes()); // first IFD at offset 8
    v.extend(1u16.to_le_bytes()); // one entry
    v.extend(0x0112u16.to_le_bytes()); // Orientation
    v.extend(3u16.to_le_bytes()); // SHORT
    v.extend(1u32.to_le_bytes()); // count
    v.extend(u32::from(o).to_le_bytes()); // value, left-justified
    v.extend(0u32.to_le_bytes()); // no next IFD
    v
}

/// The coffee photo (480×640) stored landscape with EXIF orientation 6: viewers (and the model's
/// preprocessing) show it portrait, 480 wide and 640 high. Returns (file, the photo as shown).
fn rotated_photo() -> &'static (PathBuf, RgbImage) {
    static P: OnceLock<(PathBuf, RgbImage)> = OnceLock::new();
    P.get_or_init(|| {
        use image::ImageEncoder as _;
        let stored = golden_photo("coffee_480x640");
        let path = tmp("coffee_rotated.png");
        let mut bytes = Vec::new();
        let mut enc = image::codecs::png::PngEncoder::new(&mut bytes);
        enc.set_exif_metadata(exif_orientation(6)).unwrap();
        enc.write_image(
            stored.as_raw(),
            stored.width(),
            stored.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
        std::fs::write(&path, bytes).unwrap();
        let shown = image::imageops::rotate90(&stored);
        (path, shown)
    })
}

/// Every picture `explain` writes, besides the sheet.
fn picture_files() -> Vec<String> {
    let mut v: Vec<String> = ["P3", "P4", "P5", "P6"]
        .iter()
        .map(|l| format!("fg_{l}.png"))
        .collect();
    v.extend((0..6).map(|l| format!("kept_layer{l}.png")));
    v.extend((0..6).map(|l| format!("objects_layer{l}.png")));
    v.extend(["proposals.png".to_string(), "detections.png".to_string()]);
    v
}

/// Checks `dir` holds every picture at `size` (w, h) and a sheet; returns the detections picture.
fn assert_pictures(dir: &Path, size: (u32, u32)) -> RgbImage {
    for f in picture_files() {
        let img = image::open(dir.join(&f))
            .unwrap_or_else(|e| panic!("{f}: {e}"))
            .to_rgb8();
        assert_eq!((img.width(), img.height()), size, "{f}");
    }
    let sheet = image::open(dir.join("sheet.png")).unwrap().to_rgb8();
    assert!(sheet.width() > 5 * focus_export::pictures::PANEL_WIDTH);
    image::open(dir.join("detections.png")).unwrap().to_rgb8()
}

/// Share of pixels equal in both pictures (same size).
fn same_pixels(a: &RgbImage, b: &RgbImage) -> f64 {
    let same = a.pixels().zip(b.pixels()).filter(|(p, q)| p == q).count();
    same as f64 / a.pixels().len() as f64
}

fn explain_cmd(dir: &Path) -> std::process::Command {
    let mut cmd = common::cli();
    cmd.args(["explain", "--threads", "2", "-o"]).arg(dir);
    cmd
}

#[test]
fn explain_draws_every_picture_of_a_rotated_photo_at_its_shown_size() {
    let (photo, shown) = rotated_photo();
    let dir = tmp("explain_photo");
    let mut cmd = explain_cmd(&dir);
    cmd.arg("--weights")
        .arg(golden::weights_file())
        .arg("--image")
        .arg(photo)
        .args(["--score-threshold", "0"]);
    let (ok, stdout, stderr) = common::output(cmd);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("18 pictures (480×640)"), "{stdout}");
    let dets = assert_pictures(&dir, (480, 640));
    // Away from the boxes and titles the picture is the photo as shown (rotated), pixel for pixel.
    let same = same_pixels(&dets, shown);
    assert!(
        same > 0.2,
        "only {same:.3} of the pixels are the rotated photo's"
    );
    // The foreground maps cover the whole photo: no pixel is left as the plain photo.
    let fg = image::open(dir.join("fg_P3.png")).unwrap().to_rgb8();
    assert!(same_pixels(&fg, shown) < 0.05);
}

#[test]
fn explain_on_a_golden_input_with_the_reference_and_with_ort() {
    let case = golden::CASES[0]; // astronaut, 384×384 input
    let input = common::golden(&format!("{case}.safetensors"));
    let torch_dir = tmp("explain_golden_torch");
    let mut cmd = explain_cmd(&torch_dir);
    cmd.arg("--weights")
        .arg(golden::weights_file())
        .arg("--input")
        .arg(&input);
    let (ok, stdout, stderr) = common::output(cmd);
    assert!(ok, "{stdout}\n{stderr}");
    let torch_dets = assert_pictures(&torch_dir, (384, 384));

    // The same pictures from the exported model (a --debug export) on ONNX Runtime.
    let ort_dir = tmp("explain_golden_ort");
    let mut cmd = explain_cmd(&ort_dir);
    cmd.arg("--model")
        .arg(forced_model())
        .arg("--input")
        .arg(&input);
    let (ok, stdout, stderr) = common::output(cmd);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("ort-cpu"), "{stdout}");
    let ort_dets = assert_pictures(&ort_dir, (384, 384));
    assert!(same_pixels(&torch_dets, &ort_dets) > 0.9);

    // A model without the diagnostic outputs is refused with what to do.
    let plain = golden::export_model(&[], "plain_for_explain.onnx");
    let mut cmd = explain_cmd(&tmp("explain_plain"));
    cmd.arg("--model").arg(&plain).arg("--input").arg(&input);
    let (ok, _, stderr) = common::output(cmd);
    assert!(!ok, "a model without --debug outputs must be refused");
    assert!(
        stderr.contains("spatial_shapes") && stderr.contains("--debug"),
        "{stderr}"
    );
}

/// `predict --json` on `photo` with extra arguments; returns the detections.
fn predict_json(args: &[&std::ffi::OsStr], photo: &Path) -> Vec<serde_json::Value> {
    let mut cmd = common::cli();
    cmd.args([
        "predict",
        "--json",
        "--score-threshold",
        "0.2",
        "--threads",
        "2",
    ])
    .args(args)
    .arg("--image")
    .arg(photo);
    let (ok, stdout, stderr) = common::output(cmd);
    assert!(ok, "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    doc["detections"].as_array().unwrap().clone()
}

#[test]
fn predict_draws_labelled_boxes_and_runs_the_exported_model() {
    let (photo, shown) = rotated_photo();
    let w = golden::weights_file().as_os_str();
    let drawn = tmp("predict_drawn.png");
    let reference = predict_json(
        &[
            "--weights".as_ref(),
            w,
            "--draw".as_ref(),
            drawn.as_os_str(),
        ],
        photo,
    );
    assert!(!reference.is_empty(), "no detection at score 0.2");
    let pic = image::open(&drawn).unwrap().to_rgb8();
    assert_eq!((pic.width(), pic.height()), (480, 640));
    // The best detection's box and caption tab are in its class colour.
    let label = reference[0]["label"].as_i64().unwrap();
    let colour = focus_export::pictures::class_colour(label);
    let inked = pic.pixels().filter(|p| **p == colour).count();
    assert!(inked > 200, "{inked} pixels of the class colour");
    assert!(same_pixels(&pic, shown) > 0.2);

    // The exported model on ONNX Runtime: predict shows exactly what the model computes on the
    // photo (here checked against `run` on the same preprocessed input). Free-running
    // detections of synthetic weights may differ from the reference's after a near-tie (README,
    // "Selections"), so this compares the deployment with itself, not with torch.
    let model = forced_model().as_os_str();
    let exported = predict_json(&["--model".as_ref(), model], photo);
    let cfg = focus_models::FocusDetrConfig::default();
    let (_, input) = focus_export::images::preprocess(shown, &cfg.preprocess);
    let (in_h, in_w) = (input.shape[2], input.shape[3]);
    let mut t = focus_export::tensors::TensorMap::new();
    t.insert("images".into(), input);
    let (tin, tout) = (
        tmp("predict_in.safetensors"),
        tmp("predict_out.safetensors"),
    );
    focus_export::tensors::write_tensors(&tin, &t).unwrap();
    let mut cmd = common::cli();
    cmd.args(["run", "--runtime", "ort", "--threads", "2", "--model"])
        .arg(forced_model())
        .arg("--input")
        .arg(&tin)
        .arg("--output")
        .arg(&tout);
    let (ok, _, stderr) = common::output(cmd);
    assert!(ok, "{stderr}");
    let out = read_tensors(&tout).unwrap();
    let want =
        focus_export::explain::photo_detections(&out, (in_h, in_w), (640, 480), 0.2, 100).unwrap();
    assert_eq!(exported.len(), want.scores.len());
    for (d, i) in exported.iter().zip(0..) {
        assert_eq!(d["label"].as_i64().unwrap(), want.labels[i]);
        assert_eq!(d["score"].as_f64().unwrap() as f32, want.scores[i]);
        let b: Vec<f32> = d["bbox_xyxy"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(b, want.boxes[i]);
    }
    // tract runs it too, with the same report.
    let tracted = predict_json(
        &[
            "--model".as_ref(),
            model,
            "--runtime".as_ref(),
            "tract".as_ref(),
        ],
        photo,
    );
    for d in &tracted {
        assert!(
            d["name"].is_string() && d["category_id"].as_u64().unwrap() >= 1,
            "{d}"
        );
    }
}

#[test]
fn check_html_is_one_self_contained_page() {
    let html = tmp("report.html");
    let mut cmd = common::cli();
    cmd.args(["check", "--runtime", "ort", "--threads", "2", "--weights"])
        .arg(golden::weights_file())
        .arg("--model")
        .arg(forced_model())
        .arg("--input")
        .arg(common::golden(&format!("{}.safetensors", golden::CASES[0])))
        .arg("--html")
        .arg(&html);
    let (ok, stdout, stderr) = common::output(cmd);
    assert!(ok, "{stdout}\n{stderr}");
    let text = std::fs::read_to_string(&html).unwrap();
    common::assert_self_contained_html(&text);
    let doc = scraper::Html::parse_document(&text);
    let sel = |s: &str| scraper::Selector::parse(s).unwrap();
    // Both sides' detections, the tensor tables of both passes.
    assert!(doc.select(&sel("figure img")).count() >= 2);
    let captions: Vec<String> = doc
        .select(&sel("caption"))
        .map(|c| c.text().collect())
        .collect();
    assert!(
        captions.iter().any(|c| c.contains("tensors, free running")),
        "{captions:?}"
    );
    assert!(
        captions.iter().any(|c| c.contains("forced")),
        "{captions:?}"
    );
    assert!(
        captions.iter().any(|c| c.contains("selections")),
        "{captions:?}"
    );
    assert!(
        doc.select(&sel("h1.ok")).next().is_some(),
        "the title says passed"
    );
}
