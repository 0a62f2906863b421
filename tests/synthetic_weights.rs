//! focus-synth-v1 is bit-exact: every R50 tensor for seed 0 matches the check file (f64 sum of
//! the f32 values and the first three values), and `init-weights` writes it deterministically.

mod common;

use focus_models::schema::shape_to_string;
use focus_models::weights::SafetensorsFile;
use focus_models::{synth, FocusDetrConfig, WeightSchema, Weights};

#[test]
fn seed0_matches_every_key_of_the_check_file() {
    let schema = WeightSchema::new(&FocusDetrConfig::default());
    let tensors = synth::synthesize(&schema, 0).unwrap();
    let checks = std::fs::read_to_string(common::golden("r50_synth_seed0_checks.txt")).unwrap();
    let lines: Vec<&str> = checks.lines().collect();
    assert_eq!(tensors.len(), lines.len());
    let mut bad = Vec::new();
    for (t, line) in tensors.iter().zip(&lines) {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 4, "malformed check line {line}");
        assert_eq!(cols[0], t.key);
        assert_eq!(cols[1], shape_to_string(&t.shape));
        // Sequential f64 accumulation in row-major order, as the spec prints it (%.17g
        // round-trips exactly, so the comparison is exact).
        let sum = t.data.iter().fold(0f64, |s, &v| s + f64::from(v));
        let want_sum: f64 = cols[2].parse().unwrap();
        let want3: Vec<f32> = cols[3].split(',').map(|v| v.parse().unwrap()).collect();
        let first = &t.data[..t.data.len().min(3)];
        if sum != want_sum || first != want3.as_slice() {
            bad.push(format!(
                "{}: sum {sum:e} vs {want_sum:e}, first3 {:?} vs {want3:?}",
                t.key, first
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} keys differ:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn init_weights_writes_a_valid_deterministic_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.safetensors");
    let b = dir.path().join("b.safetensors");
    for p in [&a, &b] {
        let mut cmd = common::cli();
        cmd.args([
            "init-weights",
            "--config",
            "r50_4scale_36ep",
            "--seed",
            "0",
            "-o",
        ])
        .arg(p);
        let (ok, _, stderr) = common::output(cmd);
        assert!(ok, "{stderr}");
    }
    let bytes = std::fs::read(&a).unwrap();
    assert!(
        bytes == std::fs::read(&b).unwrap(),
        "two runs gave different bytes"
    );
    // No temporary file left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    let cfg = FocusDetrConfig::default();
    let schema = WeightSchema::new(&cfg);
    let w = Weights::load(&a, &schema, &cfg.name).unwrap();
    let file = SafetensorsFile::open(&a).unwrap();
    assert!(file.metadata()["focus_export"].contains("focus-synth-v1"));
    // Values read back equal the generator's.
    let key = &schema.canonical().nth(1).unwrap().key;
    let keys = focus_models::FocusDetrKeys::new(&cfg);
    let focus_models::schema::Backbone::Resnet(resnet) = &keys.backbone else {
        panic!("the default preset is a ResNet")
    };
    assert_eq!(key, &resnet.stem.norm.weight.key);
    let want = synth::generate(key, &[64], 0).unwrap();
    assert_eq!(
        w.get(&resnet.stem.norm.weight).unwrap().as_ref(),
        want.as_slice()
    );

    let mut cmd = common::cli();
    cmd.args(["names", "--check"]).arg(&a);
    let (ok, stdout, stderr) = common::output(cmd);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("ok"), "{stdout}");
}
