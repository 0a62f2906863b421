//! `focus-export convert` and `--weights model.pth` end to end, on checkpoints from the test-only
//! writer (tests/common/pth.rs): the tiny config with a shared-head alias, and full-size R50 and
//! R101. Converted tensors equal the source bit for bit; the export from the .pth equals the
//! export from the converted file but for the metadata naming the source; hostile files are
//! refused without an output file.

mod common;

use std::path::{Path, PathBuf};

use common::pth::{write, Value};
use focus_models::weights::SafetensorsFile;
use focus_models::{synth, FocusDetrConfig, WeightSchema};

fn sha256(path: &Path) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(path).unwrap();
    sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes seeded weights of `cfg` as a detectron2-layout checkpoint (plus `alias` entries:
/// (alias, canonical) pairs written as their own copies, as a state dict holds shared heads).
fn checkpoint(
    cfg: &FocusDetrConfig,
    path: &Path,
    aliases: &[(String, String)],
) -> Vec<synth::SynthTensor> {
    let schema = WeightSchema::new(cfg);
    let tensors = synth::synthesize(&schema, 3).unwrap();
    let index = synth::index_buffers(&schema);
    let mut entries: Vec<(&str, Value)> = tensors
        .iter()
        .map(|t| (t.key.as_str(), Value::F32(&t.shape, &t.data)))
        .chain(index.iter().map(|(k, s, v)| (k.as_str(), Value::I64(s, v))))
        .collect();
    for (alias, canonical) in aliases {
        let t = tensors.iter().find(|t| &t.key == canonical).unwrap();
        entries.push((alias.as_str(), Value::F32(&t.shape, &t.data)));
    }
    write(path, &entries, true, "little");
    tensors
}

fn run(args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let mut cmd = common::cli();
    cmd.args(args);
    common::output(cmd)
}

/// Converts `pth` and exports both it and the converted file; checks both claims.
fn convert_and_export(dir: &Path, pth: &Path, config: &str, tensors: &[synth::SynthTensor]) {
    let conv = dir.join("converted.safetensors");
    let (ok, stdout, stderr) = run(&[
        "convert".as_ref(),
        pth.as_os_str(),
        "-o".as_ref(),
        conv.as_os_str(),
        "--config".as_ref(),
        config.as_ref(),
    ]);
    assert!(ok, "convert failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("the state dict under `model`"), "{stdout}");
    let f = SafetensorsFile::open(&conv).unwrap();
    let names: Vec<&str> = f.tensors().map(|(k, _, _)| k).collect();
    let schema = WeightSchema::new(&focus_models::FocusDetrConfig::resolve(config).unwrap());
    let index = synth::index_buffers(&schema);
    let mut want: Vec<&str> = tensors
        .iter()
        .map(|t| t.key.as_str())
        .chain(index.iter().map(|(k, _, _)| k.as_str()))
        .collect();
    want.sort();
    assert_eq!(names, want, "canonical keys, aliases folded");
    for (key, _, value) in &index {
        let file =
            focus_models::weights::WeightFile::Safetensors(SafetensorsFile::open(&conv).unwrap());
        assert_eq!(file.read_i64(key).unwrap().as_ref(), Some(value), "{key}");
    }
    for t in tensors {
        let got = f.read_f32(&t.key).unwrap().unwrap();
        let same = got
            .iter()
            .zip(&t.data)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same && got.len() == t.data.len(), "{} differs", t.key);
    }
    let source = &f.metadata()["focus_export.source"];
    assert!(
        source.ends_with(&format!("sha256:{}", sha256(pth))),
        "{source}"
    );
    // The export from the checkpoint and from the converted file.
    let export = |w: &Path, out: &Path| {
        let (ok, stdout, stderr) = run(&[
            "--weights".as_ref(),
            w.as_os_str(),
            "--config".as_ref(),
            config.as_ref(),
            "-o".as_ref(),
            out.as_os_str(),
        ]);
        assert!(ok, "export of {} failed:\n{stdout}\n{stderr}", w.display());
        std::fs::read(out).unwrap()
    };
    let from_pth = export(pth, &dir.join("from_pth.onnx"));
    let from_conv = export(&conv, &dir.join("from_conv.onnx"));
    // The only difference: the recorded sha256 of the weights file (same length, hex).
    let (a, b) = (sha256(pth), sha256(&conv));
    let pos = from_pth
        .windows(a.len())
        .position(|w| w == a.as_bytes())
        .expect("the checkpoint's sha256 is recorded");
    let mut patched = from_pth.clone();
    patched[pos..pos + b.len()].copy_from_slice(b.as_bytes());
    assert!(
        patched == from_conv,
        "the exports differ beyond the source's sha256"
    );
}

#[test]
fn convert_and_export_a_tiny_checkpoint_with_an_alias() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_tiny_config(dir.path());
    let cfg = common::tiny_config();
    let schema = WeightSchema::new(&cfg);
    let alias: Vec<(String, String)> = schema
        .aliases()
        .take(1)
        .map(|(a, c)| (a.to_string(), c.to_string()))
        .collect();
    let pth = dir.path().join("tiny.pth");
    let tensors = checkpoint(&cfg, &pth, &alias);
    convert_and_export(dir.path(), &pth, config.to_str().unwrap(), &tensors);
}

#[test]
fn convert_and_export_a_tiny_swin_checkpoint() {
    // Index buffers travel as int64 and must hold the defined values.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tiny_swin.json");
    std::fs::write(&config, common::TINY_SWIN_CONFIG_JSON).unwrap();
    let cfg = common::tiny_swin_config();
    let pth = dir.path().join("tiny_swin.pth");
    let tensors = checkpoint(&cfg, &pth, &[]);
    convert_and_export(dir.path(), &pth, config.to_str().unwrap(), &tensors);
}

#[test]
fn convert_and_export_full_size_r50_r101_and_swin_checkpoints() {
    for preset in [
        "r50_4scale_36ep",
        "r101_4scale_36ep",
        "swin_tiny_224_4scale_36ep",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = FocusDetrConfig::preset(preset).unwrap();
        let pth = dir.path().join(format!("{preset}.pth"));
        let tensors = checkpoint(&cfg, &pth, &[]);
        convert_and_export(dir.path(), &pth, preset, &tensors);
    }
}

#[test]
fn convert_refuses_hostile_and_broken_files_without_an_output() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_tiny_config(dir.path());
    let marker = dir.path().join("pwned");
    let touch = format!("touch {}", marker.display());
    let cfg = common::tiny_config();
    let tensors = synth::synthesize(&WeightSchema::new(&cfg), 3).unwrap();
    let mut entries: Vec<(&str, Value)> = tensors
        .iter()
        .map(|t| (t.key.as_str(), Value::F32(&t.shape, &t.data)))
        .collect();
    let out = dir.path().join("out.safetensors");
    let convert = |pth: &Path| -> String {
        let mut cmd = common::cli();
        cmd.arg("convert")
            .arg(pth)
            .arg("-o")
            .arg(&out)
            .arg("--config")
            .arg(&config);
        let o = cmd.output().unwrap();
        assert_eq!(
            o.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
        assert!(
            !out.exists(),
            "an output file was written for {}",
            pth.display()
        );
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    // A tensor replaced by an int.
    let bias = entries
        .iter()
        .position(|(k, _)| k.ends_with(".bias"))
        .unwrap();
    let key = entries[bias].0;
    entries[bias].1 = Value::Int(3);
    let int = dir.path().join("int.pth");
    write(&int, &entries, true, "little");
    let e = convert(&int);
    assert!(
        e.contains(&format!("`{key}` holds an int (3), expected a tensor")),
        "{e}"
    );
    // A tensor whose storage holds fewer values than its shape needs.
    let (shape, data) = (&tensors[bias].shape, &tensors[bias].data);
    entries[bias].1 = Value::Short(shape, data, data.len() - 1);
    let short = dir.path().join("short.pth");
    write(&short, &entries, true, "little");
    let e = convert(&short);
    assert!(e.contains("short.pth") && e.contains(key), "{e}");
    // A call of os.system.
    entries[bias].1 = Value::Call("os", "system", &touch);
    let evil = dir.path().join("evil.pth");
    write(&evil, &entries, true, "little");
    let e = convert(&evil);
    assert!(
        e.contains(&format!("`model.{key}` is a call of `os.system`")),
        "{e}"
    );
    // A safetensors file is not a checkpoint to convert.
    let st: PathBuf = dir.path().join("w.safetensors");
    let (ok, ..) = run(&[
        "init-weights".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "-o".as_ref(),
        st.as_os_str(),
    ]);
    assert!(ok);
    let e = convert(&st);
    assert!(e.contains("is a safetensors file already"), "{e}");
    assert!(!marker.exists(), "a payload ran");
}
