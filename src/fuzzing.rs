//! The fuzz targets: each feeds arbitrary bytes to one reader of files that come from elsewhere
//! and must return (an error is the expected outcome), never panic, hang or allocate without
//! bound. `fuzz/` runs them under libFuzzer (scripts/fuzz.sh); tests/fuzz_corpus.rs runs every
//! file of their corpora and every crash found as a plain test.

use std::path::PathBuf;
use std::sync::OnceLock;

use focus_models::checkpoint::{CheckpointOptions, PthCheckpoint};
use focus_models::weights::SafetensorsFile;
use focus_models::{FocusDetrConfig, WeightSchema, Weights};

/// A fuzz target: takes any bytes, must return.
pub type Target = fn(&[u8]);

/// Every target by name (the fuzz binary's and the corpus folder's name).
pub const TARGETS: &[(&str, Target)] = &[
    ("safetensors", safetensors),
    ("pth", pth),
    ("coco_annotations", coco_annotations),
    ("coco_results", coco_results),
    ("config_json", config_json),
    ("image", image),
    ("onnx", onnx),
    ("tensors", tensors),
];

/// The target named `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// The folder of the scratch files.
fn scratch_dir() -> PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// This process's scratch files' name prefix.
fn scratch_prefix() -> String {
    format!("focus-export-fuzz-{}-", std::process::id())
}

/// Removes this process's scratch files (the corpus test calls it when done).
pub fn remove_scratch() {
    let prefix = scratch_prefix();
    if let Ok(entries) = std::fs::read_dir(scratch_dir()) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// `data` written to this process's scratch file with extension `ext` (the readers take
/// paths: they memory-map, or choose the format by extension), in /dev/shm where there is one.
fn scratch(data: &[u8], ext: &str) -> Option<PathBuf> {
    let thread = format!("{:?}", std::thread::current().id())
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<String>();
    let path = scratch_dir().join(format!("{}{thread}.{ext}", scratch_prefix()));
    std::fs::write(&path, data).ok()?;
    Some(path)
}

/// The schema the weight targets check files against (the default preset's).
fn schema() -> &'static (WeightSchema, String) {
    static SCHEMA: OnceLock<(WeightSchema, String)> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let cfg = FocusDetrConfig::default();
        (WeightSchema::new(&cfg), cfg.name)
    })
}

/// safetensors: the header, every tensor read as f32, and the strict schema check.
pub fn safetensors(data: &[u8]) {
    let Some(path) = scratch(data, "safetensors") else {
        return;
    };
    if let Ok(f) = SafetensorsFile::open(&path) {
        let keys: Vec<String> = f.tensors().map(|(k, _, _)| k.to_string()).collect();
        for k in keys {
            let _ = f.read_f32(&k);
        }
    }
    let (schema, name) = schema();
    let _ = Weights::load(&path, schema, name);
}

/// PyTorch checkpoints (.pth: zip container or the legacy format, and the pickle), every
/// tensor read, the schema check; and the same bytes as a `.zip` release archive.
pub fn pth(data: &[u8]) {
    for ext in ["pth", "zip"] {
        let Some(path) = scratch(data, ext) else {
            return;
        };
        for ema in [false, true] {
            if let Ok(c) = PthCheckpoint::open(&path, CheckpointOptions { ema }) {
                let keys: Vec<String> = c.tensors().map(|(k, _, _)| k.to_string()).collect();
                for k in keys {
                    let _ = c.read_f32(&k);
                }
            }
        }
        let (schema, name) = schema();
        let _ = Weights::load(&path, schema, name);
    }
}

/// A COCO annotation file, and an evaluation against it of no detections.
pub fn coco_annotations(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(gt) = focus_cocoeval::parse_ground_truth(text, "fuzz.json") {
        let e = focus_cocoeval::evaluate(&gt, &[]);
        let _ = focus_cocoeval::Stats::of(&e);
    }
}

/// A small ground truth (two images, two categories) that results files are read against.
const GROUND_TRUTH: &str = r#"{"images": [{"id": 1, "width": 64, "height": 48},
 {"id": 2, "width": 32, "height": 32}],
 "categories": [{"id": 1, "name": "a"}, {"id": 3, "name": "b"}],
 "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 3, 20, 10],
  "area": 200, "iscrowd": 0},
 {"id": 2, "image_id": 2, "category_id": 3, "bbox": [0, 0, 8, 8], "area": 64, "iscrowd": 1}]}"#;

/// A COCO results file, read against [`GROUND_TRUTH`] and evaluated.
pub fn coco_results(data: &[u8]) {
    static GT: OnceLock<focus_cocoeval::GroundTruth> = OnceLock::new();
    let gt = GT.get_or_init(|| {
        focus_cocoeval::parse_ground_truth(GROUND_TRUTH, "ground truth")
            .expect("the fuzz ground truth is valid COCO")
    });
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = focus_cocoeval::parse_results(text, "fuzz.json", gt) {
        let e = focus_cocoeval::evaluate(gt, &r.detections);
        let _ = focus_cocoeval::Stats::of(&e);
    }
}

/// A JSON config, and the weight schema of an accepted one (what `names --config` builds).
pub fn config_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = FocusDetrConfig::from_json_str(text, "fuzz.json") {
        let _ = WeightSchema::new(&cfg);
    }
}

/// A photo (JPEG, PNG or WebP, by content) through the size guard and the decoder.
pub fn image(data: &[u8]) {
    if let Some(path) = scratch(data, "img") {
        let _ = crate::images::load_rgb(&path);
    }
}

/// An ONNX model: the protobuf decoding, its inputs and outputs, and the TensorRT lint.
pub fn onnx(data: &[u8]) {
    let _ = focus_exporters::io::graph_io_of_bytes(data);
    let _ = focus_exporters::lint::lint_tensorrt_bytes(data);
}

/// An input tensor file (`run --input`, `check --input`).
pub fn tensors(data: &[u8]) {
    if let Some(path) = scratch(data, "safetensors") {
        let _ = crate::tensors::read_tensors(&path);
    }
}
