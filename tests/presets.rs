//! Every built-in preset is covered: each one's model is a model some test exports and checks,
//! and the models no golden covers (ResNet-101, Swin-S, Swin-L) are exported here from
//! synthetic weights and pass `check` on a photo with ONNX Runtime and with tract, the forced
//! pass at full budget. scripts/check-presets.sh runs every preset at the model's own input size.
#![cfg(all(feature = "torch", feature = "ort", feature = "tract"))]

mod common;

use std::path::Path;

use common::golden::ExportedModel;

use focus_models::FocusDetrConfig;

/// Each model a preset can build, by a preset that builds it, and where it is checked against
/// a reference. Presets differ from these in their name, and perhaps in the position embedding,
/// whose two forms are both checked against the official code (below).
const MODELS: [(&str, &str); 7] = [
    (
        "r50_4scale_36ep",
        "tests/golden_reference.rs (official goldens)",
    ),
    ("r101_4scale_24ep", "this file"),
    (
        "swin_tiny_224_4scale_36ep",
        "tests/golden_swin.rs (official goldens)",
    ),
    ("swin_small_224_4scale", "this file"),
    (
        "swin_base_384_4scale_36ep",
        "tests/golden_swin.rs (official goldens)",
    ),
    (
        "swin_large_224_4scale",
        "scripts/check-presets.sh only (Swin-L width as below, window 7 as Swin-T)",
    ),
    ("swin_large_384_4scale_36ep", "this file"),
];

/// Presets whose position embedding the official goldens fix: (T, offset) = (20, 0) in the
/// ResNet goldens, (10000, −0.5) in the Swin goldens.
const POSITION_EMBEDDINGS: [&str; 2] = ["r50_4scale_36ep", "swin_tiny_224_4scale_36ep"];

/// The shortest edge the photo is resized to here: Swin-L's check at the presets' 800 takes
/// minutes on 2 cores; 400 keeps every selection well-posed (the model needs ≥ 2998 tokens,
/// 377² pixels) and every stage's size off the window grid.
const SHORT_EDGE: usize = 400;

fn config(name: &str) -> FocusDetrConfig {
    FocusDetrConfig::preset(name).unwrap_or_else(|| panic!("preset {name}"))
}

/// `c` without what [`MODELS`] and [`POSITION_EMBEDDINGS`] leave free.
fn model_part(c: &FocusDetrConfig) -> FocusDetrConfig {
    let mut c = c.clone();
    c.name = String::new();
    c.position_embedding = config(MODELS[0].0).position_embedding;
    c
}

#[test]
fn every_preset_builds_a_model_that_a_test_checks() {
    for (name, c) in FocusDetrConfig::presets() {
        let model = MODELS
            .iter()
            .find(|(m, _)| model_part(&config(m)) == model_part(&c))
            .unwrap_or_else(|| panic!("{name}: its model is none of those MODELS lists"));
        assert!(
            POSITION_EMBEDDINGS
                .iter()
                .any(|p| config(p).position_embedding == c.position_embedding),
            "{name}: position embedding {:?} is checked by no golden",
            c.position_embedding
        );
        eprintln!("{name}: the model of {} ({})", model.0, model.1);
    }
}

/// A scratch file of this test binary, removed when dropped (Swin-L's weights and model are
/// 0.9 GB each).
fn scratch(name: &str) -> ExportedModel {
    ExportedModel::new(Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("presets_{name}")))
}

/// Synthetic weights for `preset`, its forcing export, and `check` on a photo with each runtime.
fn exports_and_passes_check(preset: &str) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("presets_{preset}"));
    std::fs::create_dir_all(&dir).unwrap();
    let photos = Path::new(env!("CARGO_MANIFEST_DIR")).join(".runtimes/photos");
    std::fs::copy(photos.join("astronaut.png"), dir.join("astronaut.png"))
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup-env.sh)", photos.display()));
    let small = dir.join("small.json");
    let json = serde_json::json!({
        "base": preset,
        "preprocess": {"min_size": SHORT_EDGE, "max_size": SHORT_EDGE * 3 / 2},
    });
    std::fs::write(&small, json.to_string()).unwrap();

    let weights = scratch(&format!("{preset}.safetensors"));
    let mut cmd = common::cli();
    cmd.args(["init-weights", "--seed", "0", "--config", preset, "-o"])
        .arg(&*weights);
    let (ok, _, stderr) = common::output(cmd);
    assert!(ok, "{preset}: init-weights failed: {stderr}");
    let model = scratch(&format!("{preset}.onnx"));
    let mut cmd = common::cli();
    cmd.arg("--weights")
        .arg(&*weights)
        .args(["--config", preset, "--debug", "--selection-inputs", "-o"])
        .arg(&*model);
    let (ok, _, stderr) = common::output(cmd);
    assert!(ok, "{preset}: export failed: {stderr}");

    for runtime in ["ort", "tract"] {
        let report = dir.join(format!("{runtime}.json"));
        let mut cmd = common::cli();
        cmd.args(["check", "--runtime", runtime, "--threads", "2", "--weights"])
            .arg(&*weights)
            .arg("--config")
            .arg(&small)
            .arg("--model")
            .arg(&*model)
            .arg("--images")
            .arg(&dir)
            .arg("--report")
            .arg(&report);
        let (ok, stdout, stderr) = common::output(cmd);
        let summary = stdout
            .lines()
            .filter(|l| l.contains(" vs "))
            .collect::<Vec<_>>();
        eprintln!("{preset} on {runtime}: {}", summary.join(" / "));
        assert!(
            ok,
            "{preset} on {runtime}: check failed:\n{stdout}\n{stderr}"
        );
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert_eq!(r["passed"], true, "{preset} on {runtime}");
        assert_eq!(r["images"], 1, "{preset} on {runtime}");
        assert_eq!(r["forced_ok"], 1, "{preset} on {runtime}");
        let case = &r["cases"][0];
        assert_ne!(case["status"], "fail", "{preset} on {runtime}: {case}");
        assert_eq!(case["forced_within_budget"], true, "{preset} on {runtime}");
        assert_eq!(
            case["forced_detections"]["status"], "pass",
            "{preset} on {runtime}"
        );
        assert_eq!(case["forced_selections"].as_array().unwrap().len(), 13);
    }
}

#[test]
fn resnet_101_exports_and_passes_check_on_ort_and_tract() {
    exports_and_passes_check(MODELS[1].0);
}

#[test]
fn swin_s_exports_and_passes_check_on_ort_and_tract() {
    exports_and_passes_check(MODELS[3].0);
}

#[test]
fn swin_l_exports_and_passes_check_on_ort_and_tract() {
    exports_and_passes_check(MODELS[6].0);
}
