//! Swin-T and Swin-B against the official implementation's outputs (tests/data/golden_swin,
//! produced by the official detrex modules on torch 2.13.0, see its README): synthetic weights
//! key by key, and the torch reference, ONNX Runtime (standard and `--target ort-cpu` exports)
//! and tract held to the ResNet goldens' criterion on every case (tests/common/golden.rs:
//! (a) or (b) free running, the forced pass at full budget), the batch-2 case image by image.
#![cfg(all(feature = "torch", feature = "ort", feature = "tract"))]

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::golden::{self, ExportedModel};
use focus_export::runtimes::ort::{OrtOptions, OrtRuntime, Provider};
use focus_export::runtimes::torch::{TorchOptions, TorchRuntime};
use focus_export::runtimes::tract::{TractOptions, TractRuntime};
use focus_export::runtimes::Runtime;
use focus_export::tensors::{read_tensors, TensorMap};
use focus_models::model::selections::Forcible;
use focus_models::schema::shape_to_string;
use focus_models::{synth, FocusDetrConfig, WeightSchema, Weights};

/// A model of the Swin goldens: its file prefix and preset.
#[derive(Clone, Copy)]
struct Model {
    prefix: &'static str,
    preset: &'static str,
}

const SWIN_T: Model = Model {
    prefix: "swin_t",
    preset: "swin_tiny_224_4scale_36ep",
};
const SWIN_B: Model = Model {
    prefix: "swin_b",
    preset: "swin_base_384_4scale_36ep",
};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden_swin")
}

impl Model {
    fn cfg(self) -> FocusDetrConfig {
        FocusDetrConfig::preset(self.preset).unwrap()
    }

    /// The case files of this model, by name (batch-1 cases first).
    fn cases(self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(golden_dir())
            .unwrap()
            .filter_map(|e| {
                let name = e.ok()?.file_name().to_string_lossy().into_owned();
                let stem = name.strip_suffix(".safetensors")?;
                stem.starts_with(&format!("{}_", self.prefix))
                    .then(|| stem.to_string())
            })
            .collect();
        names.sort_by_key(|n| (n.contains("batch2"), n.clone()));
        assert!(names.len() >= 3, "{}: golden cases {names:?}", self.prefix);
        names
    }

    /// The seed-0 synthetic weights, written once per test binary.
    fn weights(self) -> PathBuf {
        static FILES: OnceLock<std::sync::Mutex<Vec<(&'static str, PathBuf)>>> = OnceLock::new();
        let files = FILES.get_or_init(Default::default);
        let mut files = files.lock().unwrap();
        if let Some((_, p)) = files.iter().find(|(n, _)| *n == self.prefix) {
            return p.clone();
        }
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{}_synth_seed0.safetensors", self.prefix));
        synth::write(&path, &WeightSchema::new(&self.cfg()), 0, None).unwrap();
        files.push((self.prefix, path.clone()));
        path
    }

    /// This model exported with `flags` (`--debug` added).
    fn export(self, flags: &[&str], file: &str) -> ExportedModel {
        self.export_as(&[&["--debug"], flags].concat(), file)
    }

    /// This model exported with exactly `flags`.
    fn export_as(self, flags: &[&str], file: &str) -> ExportedModel {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}_{file}", self.prefix));
        let mut cmd = common::cli();
        cmd.arg("--weights")
            .arg(self.weights())
            .args(["--config", self.preset, "-o"])
            .arg(&out)
            .args(flags);
        let (ok, _, stderr) = common::output(cmd);
        assert!(ok, "{}: export {flags:?} failed: {stderr}", self.prefix);
        ExportedModel::new(out)
    }

    fn torch(self, force: bool) -> TorchRuntime {
        tch::set_num_threads(2);
        let cfg = self.cfg();
        let schema = WeightSchema::new(&cfg);
        let w = Weights::load(&self.weights(), &schema, &cfg.name).unwrap();
        let opts = TorchOptions {
            debug: true,
            force: if force { Forcible::All } else { Forcible::None },
            clamp_object_tokens: false,
        };
        TorchRuntime::new(cfg, &w, tch::Device::Cpu, opts).unwrap()
    }
}

fn ort(model: &Path) -> OrtRuntime {
    OrtRuntime::new(
        model,
        &OrtOptions {
            provider: Provider::Cpu,
            threads: Some(2),
            emulate_trt_plugins: false,
            profile: false,
        },
    )
    .unwrap()
}

/// Image `i` of a batch-2 map: batch-first tensors sliced, `<name>_<i>` renamed to `<name>`,
/// everything else (sizes, budgets) kept.
fn image_of(m: &TensorMap, i: usize) -> TensorMap {
    let mut out = TensorMap::new();
    for (k, t) in m {
        if let Some(base) = k.strip_suffix(&format!("_{i}")) {
            if base.starts_with("final_") {
                out.insert(base.to_string(), t.clone());
                continue;
            }
        }
        if k.starts_with("final_") {
            continue;
        }
        if t.shape.first() == Some(&2) && !matches!(k.as_str(), "enc_k_per_layer") {
            let Some(part) = golden::batch_row(t, i) else {
                continue;
            };
            out.insert(k.clone(), part);
        } else {
            out.insert(k.clone(), t.clone());
        }
    }
    out
}

/// Every case of `model` on `plain` and `forced`, judged per case (per image for batch 2).
fn check_cases(what: &str, model: Model, plain: &mut dyn Runtime, forced: &mut dyn Runtime) {
    for name in model.cases() {
        let g = read_tensors(&golden_dir().join(format!("{name}.safetensors"))).unwrap();
        let out = golden::run_case(plain, &g, false);
        let inj = golden::run_case(forced, &g, true);
        let batch = g["images"].shape[0];
        for i in 0..batch {
            let (gi, oi, fi) = if batch == 1 {
                (g.clone(), out.clone(), inj.clone())
            } else {
                (image_of(&g, i), image_of(&out, i), image_of(&inj, i))
            };
            let case = format!("{name} image {i}");
            let mut report = Vec::new();
            // The Swin backbone's own outputs, where the case stores them.
            for key in ["patch_embed", "backbone_0", "backbone_1", "backbone_2"] {
                if let Some(want) = gi.get(key) {
                    let d = golden::max_abs(&oi[key], want);
                    assert!(d <= golden::TOL_FEATURES, "{case}: {key} max|Δ| {d}");
                    report.push(format!("{key} max|Δ| {d:.2e}"));
                }
            }
            report.extend(golden::check_case(&case, &oi, &fi, &gi));
            eprintln!("{what}, {case}:\n  {}", report.join("\n  "));
        }
    }
}

fn check_keys_and_weights(model: Model) {
    let schema = WeightSchema::new(&model.cfg());
    let keys =
        std::fs::read_to_string(golden_dir().join(format!("{}_keys.txt", model.prefix))).unwrap();
    let ours: Vec<String> = schema
        .canonical()
        .map(|e| format!("{}\t{}", e.key, shape_to_string(&e.shape)))
        .collect();
    let theirs: Vec<String> = keys
        .lines()
        .map(|l| l.split('\t').take(2).collect::<Vec<_>>().join("\t"))
        .collect();
    assert_eq!(
        ours, theirs,
        "{}: canonical keys in state_dict order",
        model.prefix
    );
    let aliases =
        std::fs::read_to_string(golden_dir().join(format!("{}_aliases.txt", model.prefix)))
            .unwrap();
    let ours: Vec<String> = schema.aliases().map(|(a, c)| format!("{a}\t{c}")).collect();
    assert_eq!(
        ours,
        aliases.lines().collect::<Vec<_>>(),
        "{}: aliases",
        model.prefix
    );

    // Every value, as the check file's sum and first three.
    let checks = std::fs::read_to_string(
        golden_dir().join(format!("{}_synth_seed0_checks.txt", model.prefix)),
    )
    .unwrap();
    let floats = synth::synthesize(&schema, 0).unwrap();
    let index = synth::index_buffers(&schema);
    let mut bad = Vec::new();
    for line in checks.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let (key, sum, first3) = (cols[0], cols[2], cols[3]);
        if let Some(t) = floats.iter().find(|t| t.key == key) {
            let s = t.data.iter().fold(0f64, |s, &v| s + f64::from(v));
            let want3: Vec<f32> = first3.split(',').map(|v| v.parse().unwrap()).collect();
            if s != sum.parse::<f64>().unwrap() || t.data[..t.data.len().min(3)] != want3[..] {
                bad.push(key.to_string());
            }
        } else if let Some((_, _, v)) = index.iter().find(|(k, _, _)| k == key) {
            let s: i64 = v.iter().sum();
            let want3: Vec<i64> = first3.split(',').map(|v| v.parse().unwrap()).collect();
            if s != sum.parse::<i64>().unwrap() || v[..v.len().min(3)] != want3[..] {
                bad.push(key.to_string());
            }
        } else {
            bad.push(format!("{key} (not generated)"));
        }
    }
    assert!(
        bad.is_empty(),
        "{}: {} keys differ: {bad:?}",
        model.prefix,
        bad.len()
    );
}

#[test]
fn swin_t_keys_and_synthetic_weights_match_the_official_model() {
    check_keys_and_weights(SWIN_T);
}

#[test]
fn swin_b_keys_and_synthetic_weights_match_the_official_model() {
    check_keys_and_weights(SWIN_B);
}

fn reference(model: Model) {
    check_cases(
        "torch reference",
        model,
        &mut model.torch(false),
        &mut model.torch(true),
    );
}

/// ORT on the standard export and on `--target ort-cpu` (custom ops), then tract on the
/// standard export: one model's exports at a time (Swin-B's are 0.5 GB each).
fn exported(model: Model) {
    for (target, file) in [("standard", "std"), ("ort-cpu", "ortcpu")] {
        let flags: &[&str] = if target == "standard" {
            &[]
        } else {
            &["--target", target]
        };
        let plain = model.export(flags, &format!("{file}.onnx"));
        let forced = model.export(
            &[flags, &["--selection-inputs"]].concat(),
            &format!("{file}_forced.onnx"),
        );
        check_cases(
            &format!("ONNX Runtime CPU ({target})"),
            model,
            &mut ort(&plain),
            &mut ort(&forced),
        );
        if target == "standard" {
            let (mut a, mut b) = (
                TractRuntime::new(&plain, &TractOptions::default()).unwrap(),
                TractRuntime::new(&forced, &TractOptions::default()).unwrap(),
            );
            check_cases("tract", model, &mut a, &mut b);
        }
    }
}

#[test]
fn swin_t_reference_matches_the_official_code() {
    reference(SWIN_T);
}

#[test]
fn swin_b_reference_matches_the_official_code() {
    reference(SWIN_B);
}

#[test]
fn swin_t_exports_match_the_official_code_on_ort_and_tract() {
    exported(SWIN_T);
}

#[test]
fn swin_b_exports_match_the_official_code_on_ort_and_tract() {
    exported(SWIN_B);
}

#[test]
fn swin_t_exports_are_byte_identical_checked_and_tensorrt_clean() {
    let a = SWIN_T.export_as(&[], "twice_a.onnx");
    let b = SWIN_T.export_as(&[], "twice_b.onnx");
    assert!(
        std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
        "two Swin-T exports differ"
    );
    common::run_python_on_model(
        "import onnx, sys; m = onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True); print('ok')",
        &a,
    );
    drop((a, b));
    for flags in [
        &["--target", "tensorrt"][..],
        &["--target", "tensorrt", "--precision", "fp16"][..],
    ] {
        let m = SWIN_T.export_as(flags, "trt.onnx");
        common::assert_tensorrt_clean(&m, &flags.join(" "));
    }
}
