//! Shared by the comparison test and the benchmark: seeded random COCO cases that reach every
//! corner of `COCOeval` (crowds, tied scores, duplicates, empty images, categories missing from
//! either side, every area range and its boundaries, more than 100 detections per image), and a
//! runner for pycocotools (tests/pycocotools_eval.py in the project's .venv).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use serde_json::{json, Value};

/// The pycocotools release the numbers must equal (scripts/requirements/test-data.txt).
pub const PYCOCOTOOLS_VERSION: &str = "2.0.11";

/// The project's Python (scripts/setup-env.sh installs pycocotools there).
pub fn python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python")
}

/// What pycocotools computed for one case.
#[derive(Debug, Deserialize)]
pub struct Reference {
    /// `COCOeval.stats`.
    pub stats: Vec<f64>,
    /// The lines `summarize()` printed.
    pub lines: Vec<String>,
    /// `eval["recall"]`, flattened.
    pub recall: Vec<f64>,
    /// `eval["precision"]`, flattened (when asked for).
    pub precision: Option<Vec<f64>>,
    /// Seconds in pycocotools (load, evaluate, accumulate, summarize).
    pub seconds: f64,
    /// pycocotools' version.
    pub version: String,
}

/// Runs pycocotools on (ground truth, results, full precision wanted) file pairs.
pub fn pycocotools(dir: &Path, cases: &[(PathBuf, PathBuf, bool)]) -> Vec<Reference> {
    let list: Vec<Value> = cases
        .iter()
        .map(|(g, d, full)| json!({"gt": g, "dt": d, "full": full}))
        .collect();
    let list_path = dir.join("cases.json");
    let out_path = dir.join("pycocotools.json");
    std::fs::write(&list_path, serde_json::to_string(&list).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pycocotools_eval.py");
    let status = std::process::Command::new(python())
        .arg(&script)
        .arg(&list_path)
        .arg(&out_path)
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run scripts/setup-env.sh to install pycocotools {PYCOCOTOOLS_VERSION}",
                python().display()
            )
        });
    assert!(status.success(), "pycocotools failed: {status}");
    let refs: Vec<Reference> =
        serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    for r in &refs {
        assert_eq!(r.version, PYCOCOTOOLS_VERSION, "pycocotools version");
    }
    refs
}

/// A number with two decimals, or a whole one (COCO files hold both).
fn coord(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    let v = rng.gen_range(lo..hi);
    if rng.gen_bool(0.5) {
        v.round()
    } else {
        (v * 100.0).round() / 100.0
    }
}

/// A box [x, y, w, h] of a random area class, boundary areas (32², 96²) included.
fn random_box(rng: &mut ChaCha8Rng) -> [f64; 4] {
    let (w, h) = match rng.gen_range(0..7) {
        0 => (coord(rng, 1.0, 32.0), coord(rng, 1.0, 32.0)),
        1 => (coord(rng, 30.0, 96.0), coord(rng, 30.0, 96.0)),
        2 => (coord(rng, 90.0, 400.0), coord(rng, 90.0, 400.0)),
        3 => (32.0, 32.0),
        4 => (96.0, 96.0),
        5 => (coord(rng, 1.0, 600.0), coord(rng, 1.0, 20.0)),
        _ => (coord(rng, 5.0, 200.0), coord(rng, 5.0, 200.0)),
    };
    [coord(rng, 0.0, 500.0), coord(rng, 0.0, 500.0), w, h]
}

/// A box near `b`: shifted and scaled by up to `jitter` of its size (IoUs over the whole
/// threshold range).
fn near(rng: &mut ChaCha8Rng, b: &[f64; 4], jitter: f64) -> [f64; 4] {
    let dx = rng.gen_range(-jitter..=jitter) * b[2];
    let dy = rng.gen_range(-jitter..=jitter) * b[3];
    let sw = 1.0 + rng.gen_range(-jitter..=jitter);
    let sh = 1.0 + rng.gen_range(-jitter..=jitter);
    [
        b[0] + dx,
        b[1] + dy,
        (b[2] * sw).max(0.0),
        (b[3] * sh).max(0.0),
    ]
}

/// One seeded case: (ground truth, results), as JSON values.
pub fn random_case(seed: u64) -> (Value, Value) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n_images = rng.gen_range(1..=8);
    let mut image_ids: Vec<i64> = (0..1000).collect();
    image_ids.shuffle(&mut rng);
    image_ids.truncate(n_images);
    let n_cats = rng.gen_range(1..=5);
    let mut cat_ids: Vec<i64> = (1..=90).collect();
    cat_ids.shuffle(&mut rng);
    cat_ids.truncate(n_cats + 1);
    // The last category is not listed: boxes and detections of it are not evaluated.
    let unlisted = cat_ids[n_cats];
    let listed = &cat_ids[..n_cats];
    let crowd_rate = if rng.gen_bool(0.3) { 0.25 } else { 0.05 };
    // Some cases number annotations from 0: pycocotools takes a match to id 0 as no match.
    let mut next_id: i64 = if rng.gen_bool(0.15) {
        0
    } else {
        rng.gen_range(1..50)
    };
    let mut anns = Vec::new();
    let mut boxes_of: Vec<(i64, i64, [f64; 4])> = Vec::new();
    for &img in &image_ids {
        let n = if rng.gen_bool(0.2) {
            0
        } else {
            rng.gen_range(1..=7)
        };
        for _ in 0..n {
            let cat = if rng.gen_bool(0.05) {
                unlisted
            } else {
                listed[rng.gen_range(0..listed.len())]
            };
            let b = random_box(&mut rng);
            let area = match rng.gen_range(0..10) {
                0 => (b[2] * b[3] * rng.gen_range(0.5..1.0) * 100.0).round() / 100.0,
                1 => 1024.0,
                2 => 9216.0,
                _ => b[2] * b[3],
            };
            let crowd = rng.gen_bool(crowd_rate);
            anns.push(
                json!({"id": next_id, "image_id": img, "category_id": cat, "bbox": b,
                             "area": area, "iscrowd": i32::from(crowd)}),
            );
            next_id += rng.gen_range(1..3);
            boxes_of.push((img, cat, b));
        }
    }
    anns.shuffle(&mut rng);
    let mut images: Vec<Value> = image_ids
        .iter()
        .map(|&id| json!({"id": id, "file_name": format!("{id}.jpg"), "width": 640, "height": 640}))
        .collect();
    images.shuffle(&mut rng);
    let categories: Vec<Value> = listed
        .iter()
        .map(|&id| json!({"id": id, "name": format!("c{id}")}))
        .collect();
    let gt = json!({"images": images, "annotations": anns, "categories": categories});

    // Scores from a short list (ties) or continuous.
    let tied = rng.gen_bool(0.4);
    let score = |rng: &mut ChaCha8Rng| {
        if tied {
            [0.9, 0.75, 0.5, 0.5, 0.25][rng.gen_range(0..5)]
        } else {
            rng.gen_range(0.0..1.0)
        }
    };
    let mut dets: Vec<Value> = Vec::new();
    for &img in &image_ids {
        if rng.gen_bool(0.15) {
            continue; // an image without detections
        }
        let mut det_cats: Vec<i64> = cat_ids.clone();
        det_cats.push(91); // a category no file lists
        for &cat in &det_cats {
            if rng.gen_bool(0.4) {
                continue;
            }
            let own: Vec<[f64; 4]> = boxes_of
                .iter()
                .filter(|(i, c, _)| *i == img && *c == cat)
                .map(|(_, _, b)| *b)
                .collect();
            let many = rng.gen_bool(0.05);
            let n = if many {
                rng.gen_range(101..=130)
            } else {
                rng.gen_range(0..=8)
            };
            for _ in 0..n {
                let b = if !own.is_empty() && rng.gen_bool(0.7) {
                    let g = own[rng.gen_range(0..own.len())];
                    let jitter = if rng.gen_bool(0.5) { 0.05 } else { 0.3 };
                    near(&mut rng, &g, jitter)
                } else {
                    random_box(&mut rng)
                };
                let d = json!({"image_id": img, "category_id": cat, "bbox": b, "score": score(&mut rng)});
                if rng.gen_bool(0.1) {
                    dets.push(d.clone()); // a duplicate detection
                }
                dets.push(d);
            }
        }
    }
    if dets.is_empty() {
        // pycocotools cannot load an empty results list.
        dets.push(json!({"image_id": image_ids[0], "category_id": listed[0],
                         "bbox": [0.0, 0.0, 10.0, 10.0], "score": 0.5}));
    }
    dets.shuffle(&mut rng);
    (gt, Value::Array(dets))
}

/// A COCO-sized case: `images` images, ~7 boxes each over 80 categories, `per_image` detections
/// each (near the boxes or anywhere).
pub fn large_case(images: usize, per_image: usize, seed: u64) -> (Value, Value) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let cats: Vec<i64> = (1..=80).collect();
    let mut anns = Vec::new();
    let mut dets = Vec::new();
    let mut id = 1;
    for img in 0..images as i64 {
        let mut own = Vec::new();
        for _ in 0..rng.gen_range(1..=13) {
            let cat = cats[rng.gen_range(0..cats.len())];
            let b = random_box(&mut rng);
            anns.push(
                json!({"id": id, "image_id": img, "category_id": cat, "bbox": b,
                             "area": b[2] * b[3], "iscrowd": i32::from(rng.gen_bool(0.01))}),
            );
            id += 1;
            own.push((cat, b));
        }
        for _ in 0..per_image {
            let (cat, b) = if rng.gen_bool(0.3) {
                let (c, g) = own[rng.gen_range(0..own.len())];
                (c, near(&mut rng, &g, 0.2))
            } else {
                (cats[rng.gen_range(0..cats.len())], random_box(&mut rng))
            };
            dets.push(json!({"image_id": img, "category_id": cat, "bbox": b,
                             "score": (rng.gen_range(0.0..1.0f64) * 1e4).round() / 1e4}));
        }
    }
    let images: Vec<Value> = (0..images)
        .map(|i| json!({"id": i, "file_name": format!("{i}.jpg"), "width": 640, "height": 640}))
        .collect();
    let categories: Vec<Value> = cats
        .iter()
        .map(|&c| json!({"id": c, "name": format!("c{c}")}))
        .collect();
    (
        json!({"images": images, "annotations": anns, "categories": categories}),
        Value::Array(dets),
    )
}
