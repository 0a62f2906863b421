//! Strict loading: every problem of a weight file is reported at once, aliases are accepted in
//! either form, half-precision and f64 files are converted, and bad files name themselves.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::pth::Value;
use focus_models::weights::{Problem, WeightError};
use focus_models::{synth, WeightSchema, Weights};
use safetensors::tensor::{Dtype, TensorView};

/// Raw tensors to write: key → (dtype, shape, bytes).
type Raw = BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>;

fn tiny_raw(schema: &WeightSchema) -> Raw {
    synth::synthesize(schema, 7)
        .unwrap()
        .into_iter()
        .map(|t| {
            let bytes = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            (t.key, (Dtype::F32, t.shape, bytes))
        })
        .collect()
}

fn write(path: &Path, raw: &Raw) {
    let views: Vec<(String, TensorView<'_>)> = raw
        .iter()
        .map(|(k, (d, s, b))| (k.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn problems(path: &Path, schema: &WeightSchema) -> Vec<Problem> {
    match Weights::load(path, schema, "tiny") {
        Err(WeightError::Mismatch { problems, .. }) => problems,
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("{} loaded although it is wrong", path.display()),
    }
}

#[test]
fn every_problem_is_reported_at_once_by_names_check() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = common::write_tiny_config(dir.path());
    let schema = WeightSchema::new(&common::tiny_config());
    let mut raw = tiny_raw(&schema);
    raw.remove("transformer.alpha");
    let w = raw.get_mut("neck.convs.0.norm.bias").unwrap();
    w.1 = vec![w.1[0] / 2, 2];
    raw.insert(
        "backbone.extra.weight".into(),
        (Dtype::F32, vec![1], vec![0; 4]),
    );
    let path = dir.path().join("bad.safetensors");
    write(&path, &raw);

    let mut cmd = common::cli();
    cmd.args(["names", "--config"])
        .arg(&cfg_path)
        .arg("--check")
        .arg(&path);
    let (ok, _, stderr) = common::output(cmd);
    assert!(!ok, "names --check accepted a bad file");
    assert!(stderr.contains("bad.safetensors"), "{stderr}");
    assert!(stderr.contains("3 problems"), "{stderr}");
    assert!(
        stderr.contains("missing key `transformer.alpha`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("wrong shape for `neck.convs.0.norm.bias`: expected [32], found [16,2]"),
        "{stderr}"
    );
    assert!(
        stderr.contains("unexpected key `backbone.extra.weight`"),
        "{stderr}"
    );
}

#[test]
fn aliases_are_accepted_in_either_form_and_must_agree() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::tiny_config();
    let keys = focus_models::FocusDetrKeys::new(&cfg);
    let schema = WeightSchema::from_keys(&keys);
    let mut raw = tiny_raw(&schema);

    // Only the alias name of the shared encoder class head.
    let canonical = raw.remove("class_embed.6.weight").unwrap();
    raw.insert(
        "transformer.encoder.enhance_MCSP.3.weight".into(),
        canonical.clone(),
    );
    let path = dir.path().join("alias.safetensors");
    write(&path, &raw);
    let w = Weights::load(&path, &schema, "tiny").unwrap();
    let got = w.get(&keys.encoder_class_head().weight).unwrap();
    assert_eq!(
        bytemuck::cast_slice::<f32, u8>(&got),
        canonical.2.as_slice()
    );

    // Both names, equal: fine. Different: reported.
    raw.insert("class_embed.6.weight".into(), canonical.clone());
    write(&path, &raw);
    Weights::load(&path, &schema, "tiny").unwrap();
    let mut changed = canonical;
    changed.2[0] ^= 1;
    raw.insert("transformer.encoder.enhance_MCSP.3.weight".into(), changed);
    write(&path, &raw);
    assert_eq!(
        problems(&path, &schema),
        vec![Problem::AliasMismatch {
            alias: "transformer.encoder.enhance_MCSP.3.weight".into(),
            canonical: "class_embed.6.weight".into()
        }]
    );
}

#[test]
fn half_precision_and_f64_are_converted_and_integers_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::tiny_config();
    let keys = focus_models::FocusDetrKeys::new(&cfg);
    let schema = WeightSchema::from_keys(&keys);
    let mut raw = tiny_raw(&schema);
    let f32s = |b: &[u8]| -> Vec<f32> {
        b.chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let convert = |raw: &mut Raw, key: &str, dtype: Dtype| -> Vec<f32> {
        let e = raw.get_mut(key).unwrap();
        let v = f32s(&e.2);
        e.0 = dtype;
        e.2 = match dtype {
            Dtype::F16 => v
                .iter()
                .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
                .collect(),
            Dtype::BF16 => v
                .iter()
                .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
                .collect(),
            Dtype::F64 => v.iter().flat_map(|x| f64::from(*x).to_le_bytes()).collect(),
            _ => unreachable!(),
        };
        v
    };
    let v16 = convert(&mut raw, "transformer.level_embeds", Dtype::F16);
    let vbf = convert(&mut raw, "transformer.tgt_embed.weight", Dtype::BF16);
    let v64 = convert(&mut raw, "label_enc.weight", Dtype::F64);
    let path = dir.path().join("mixed.safetensors");
    write(&path, &raw);
    let w = Weights::load(&path, &schema, "tiny").unwrap();
    let t = &keys.transformer;
    let want16: Vec<f32> = v16
        .iter()
        .map(|x| half::f16::from_f32(*x).to_f32())
        .collect();
    let wantbf: Vec<f32> = vbf
        .iter()
        .map(|x| half::bf16::from_f32(*x).to_f32())
        .collect();
    assert_eq!(w.get(&t.level_embeds).unwrap().as_ref(), want16.as_slice());
    assert_eq!(w.get(&t.tgt_embed).unwrap().as_ref(), wantbf.as_slice());
    assert_eq!(w.get(&keys.label_enc).unwrap().as_ref(), v64.as_slice());

    let e = raw.get_mut("transformer.alpha").unwrap();
    e.0 = Dtype::I32;
    write(&path, &raw);
    assert_eq!(
        problems(&path, &schema),
        vec![Problem::WrongDtype {
            key: "transformer.alpha".into(),
            found: "I32".into(),
            integer: false,
        }]
    );
}

#[test]
fn a_file_that_is_not_safetensors_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let schema = WeightSchema::new(&common::tiny_config());
    // By extension: a .safetensors file is read as one, a .pth as a PyTorch checkpoint.
    for (name, want) in [
        ("model.safetensors", "not a valid safetensors file"),
        ("model.pth", "not a readable zip archive"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, b"PK\x03\x04 not a weight file at all").unwrap();
        let e = Weights::load(&path, &schema, "tiny")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains(name) && e.contains(want), "{e}");
    }
    let e = Weights::load(&dir.path().join("absent.safetensors"), &schema, "tiny")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("absent.safetensors"), "{e}");
}

#[test]
fn index_buffers_must_hold_the_defined_values() {
    let dir = tempfile::tempdir().unwrap();
    let schema = WeightSchema::new(&common::tiny_swin_config());
    let good = dir.path().join("good.safetensors");
    synth::write(&good, &schema, 7, None).unwrap();
    Weights::load(&good, &schema, "tiny_swin").unwrap();

    let key = "backbone.layers.1.blocks.0.attn.relative_position_index";
    let mut raw = tiny_raw(&schema);
    let index: Vec<u8> = focus_models::schema::relative_position_index(7)
        .iter()
        .enumerate()
        .flat_map(|(i, v)| (if i == 50 { v + 1 } else { *v }).to_le_bytes())
        .collect();
    raw.insert(key.into(), (Dtype::I64, vec![49, 49], index));
    // Another block's index stored as floats.
    let other = "backbone.layers.0.blocks.1.attn.relative_position_index";
    raw.insert(
        other.into(),
        (Dtype::F32, vec![49, 49], vec![0; 49 * 49 * 4]),
    );
    let bad = dir.path().join("bad.safetensors");
    write(&bad, &raw);
    let p = problems(&bad, &schema);
    let text: Vec<String> = p.iter().map(|p| p.to_string()).collect();
    assert!(
        text.iter()
            .any(|t| t.contains(key) && t.contains("element 50")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains(other) && t.contains("expected an integer index buffer")),
        "{text:?}"
    );
    // Every other index buffer is missing from `raw` (synthesize leaves them out).
    assert!(
        text.iter()
            .any(|t| t
                .contains("missing key `backbone.layers.3.blocks.1.attn.relative_position_index`")),
        "{text:?}"
    );
}

#[test]
fn non_finite_weights_are_refused_by_name_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    // The tiny model on small photos, so that `check` below takes a second.
    let cfg_path = dir.path().join("tiny_small.json");
    let small = common::TINY_CONFIG_JSON
        .trim_end()
        .trim_end_matches('}')
        .to_string()
        + r#", "preprocess": {"min_size": 96, "max_size": 128}}"#;
    std::fs::write(&cfg_path, small).unwrap();
    let schema = WeightSchema::new(&common::tiny_config());
    let mut raw = tiny_raw(&schema);
    let set = |raw: &mut Raw, key: &str, flat: usize, v: f32| {
        let t = raw.get_mut(key).unwrap_or_else(|| panic!("no {key}"));
        t.2[flat * 4..flat * 4 + 4].copy_from_slice(&v.to_le_bytes());
    };
    // The issue's case (one NaN in a norm bias), and a conv weight with two infinities.
    set(&mut raw, "backbone.res2.0.conv2.norm.bias", 0, f32::NAN);
    let conv = "backbone.res2.0.conv2.weight";
    let shape = raw[conv].1.clone();
    let (c, k) = (shape[1] * shape[2] * shape[3], shape[2] * shape[3]);
    set(&mut raw, conv, c + k + 1, f32::INFINITY);
    set(&mut raw, conv, c + 2 * k, f32::NEG_INFINITY);
    let path = dir.path().join("nan.safetensors");
    write(&path, &raw);
    let before = std::fs::read(&path).unwrap();
    // The same tensors as a PyTorch checkpoint, for `convert`.
    let values: Vec<(String, Vec<usize>, Vec<f32>)> = raw
        .iter()
        .map(|(k, (_, shape, b))| {
            let v = b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            (k.clone(), shape.clone(), v.collect())
        })
        .collect();
    let entries: Vec<(&str, Value)> = values
        .iter()
        .map(|(k, shape, v)| (k.as_str(), Value::F32(shape, v)))
        .collect();
    let pth = dir.path().join("nan.pth");
    common::pth::write(&pth, &entries, true, "little");

    match Weights::load(&path, &schema, "tiny") {
        Err(WeightError::NonFinite { tensors, .. }) => {
            let keys: Vec<&str> = tensors.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(keys, ["backbone.res2.0.conv2.norm.bias", conv]);
            assert_eq!(
                (tensors[0].1.nan, tensors[0].1.first.as_slice()),
                (1, &[0][..])
            );
            assert_eq!(tensors[1].1.first, vec![1, 1, 0, 1]);
            assert_eq!((tensors[1].1.pos_inf, tensors[1].1.neg_inf), (1, 1));
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("weights holding NaN loaded"),
    }

    // Every command that reads weights refuses the file, naming each tensor and its first
    // index, and writes nothing; --allow-nonfinite accepts it (names --check still says so).
    let onnx = dir.path().join("m.onnx");
    let st = dir.path().join("c.safetensors");
    let commands: [(&str, Vec<&std::ffi::OsStr>, Option<&Path>); 3] = [
        (
            "names",
            vec!["names".as_ref(), "--check".as_ref(), path.as_os_str()],
            None,
        ),
        (
            "export",
            vec![
                "--weights".as_ref(),
                path.as_os_str(),
                "-o".as_ref(),
                onnx.as_os_str(),
            ],
            Some(&onnx),
        ),
        (
            "convert",
            vec![
                "convert".as_ref(),
                pth.as_os_str(),
                "-o".as_ref(),
                st.as_os_str(),
            ],
            Some(&st),
        ),
    ];
    for (what, args, output) in &commands {
        let mut cmd = common::cli();
        cmd.args(args).arg("--config").arg(&cfg_path);
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        for want in [
            if *what == "convert" {
                "nan.pth"
            } else {
                "nan.safetensors"
            },
            "2 tensors hold NaN or infinite values",
            "`backbone.res2.0.conv2.norm.bias`: 1 NaN, the first at [0]",
            "`backbone.res2.0.conv2.weight`: 1 +Inf, 1 -Inf, the first at [1, 1, 0, 1]",
            "--allow-nonfinite",
        ] {
            assert!(stderr.contains(want), "{what}: no {want:?} in {stderr}");
        }
        assert!(!output.is_some_and(Path::exists), "{what} wrote a file");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "{what} changed its input"
        );

        let mut cmd = common::cli();
        cmd.args(args)
            .arg("--config")
            .arg(&cfg_path)
            .arg("--allow-nonfinite");
        let (ok, stdout, stderr) = common::output(cmd);
        assert!(ok, "{what} --allow-nonfinite: {stderr}");
        if *what == "names" {
            assert!(
                stdout.contains("warning  `backbone.res2.0.conv2.norm.bias` holds 1 NaN"),
                "{stdout}"
            );
        }
    }
    assert!(onnx.exists() && st.exists());

    // The model of those weights computes NaN: `check` fails each such tensor by name (not
    // as a number), and `run` warns per output.
    let photos = Path::new(env!("CARGO_MANIFEST_DIR")).join(".runtimes/photos");
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    std::fs::copy(photos.join("astronaut.png"), images.join("astronaut.png")).unwrap();
    let check = || {
        let mut cmd = common::cli();
        cmd.args(["check", "--runtime", "ort", "--threads", "2", "--weights"])
            .arg(&path)
            .arg("--model")
            .arg(&onnx)
            .arg("--config")
            .arg(&cfg_path)
            .arg("--images")
            .arg(&images);
        cmd
    };
    let mut cmd = check();
    cmd.arg("--allow-nonfinite")
        .arg("--dump-failures")
        .arg(dir.path().join("dump"));
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("pred_logits") && stdout.contains("non-finite values: here "),
        "{stdout}"
    );
    for side in ["reference", "ort-cpu.free"] {
        let dumped = dir
            .path()
            .join(format!("dump/astronaut_png.{side}.safetensors"));
        let t = focus_export::tensors::read_tensors(&dumped).unwrap();
        assert!(t["pred_logits"].non_finite().is_some(), "{side}");
    }
    let cmd = check();
    let (ok, _, stderr) = common::output(cmd);
    assert!(
        !ok && stderr.contains("--allow-nonfinite loads them anyway"),
        "check read the weights: {stderr}"
    );
}
