//! Strict loading: every problem of a weight file is reported at once, aliases are accepted in
//! either form, half-precision and f64 files are converted, and bad files name themselves.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

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
