//! PyTorch checkpoints: the real `torch.save` fixtures of tests/data/pth (written by
//! scripts/make_pth_fixtures.py) read to the values torch saved, in every layout and container;
//! the test-only writer reads back alike; hostile and broken files are refused with the record
//! named and nothing run.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::pth::{write, Value};
use focus_models::checkpoint::{CheckpointOptions, PthCheckpoint};
use focus_models::weights::SafetensorsFile;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/pth")
        .join(name)
}

/// The values a fixture must read back to, as f32.
fn expected(name: &str) -> BTreeMap<String, Vec<f32>> {
    let f = SafetensorsFile::open(&fixture(&format!("expected/{name}.safetensors"))).unwrap();
    f.tensors()
        .map(|(k, _, _)| (k.to_string(), f.read_f32(k).unwrap().unwrap().into_owned()))
        .collect()
}

fn read(c: &PthCheckpoint) -> BTreeMap<String, Vec<f32>> {
    c.tensors()
        .map(|(k, _, _)| (k.to_string(), c.read_f32(k).unwrap().unwrap().into_owned()))
        .collect()
}

fn open(path: &Path, ema: bool) -> PthCheckpoint {
    PthCheckpoint::open(path, CheckpointOptions { ema })
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_torch_fixture_reads_to_the_values_torch_saved() {
    // (file, --ema, expected values, words the layout description must hold)
    let cases = [
        (
            "detectron2.pth",
            false,
            "model",
            "under `model` (also in the file, not read: iteration, trainer)",
        ),
        ("legacy.pth", false, "model", "a bare state dict"),
        ("protocol4.pth", false, "model", "under `state_dict`"),
        (
            "module_prefix.pth",
            false,
            "model",
            "`module.` removed from every key",
        ),
        ("ema.pth", false, "model", "not read: ema_state, iteration"),
        ("ema.pth", true, "ema_state", "EMA weights (`ema_state`)"),
        ("dtypes.pth", false, "dtypes", "under `model`"),
        ("views.pth", false, "views", "under `model`"),
        ("aliases.pth", false, "aliases", "under `model`"),
        (
            "release.zip",
            false,
            "model",
            "from the archive's one checkpoint",
        ),
    ];
    for (file, ema, want, layout) in cases {
        let c = open(&fixture(file), ema);
        assert!(c.layout().contains(layout), "{file}: {}", c.layout());
        assert_eq!(read(&c), expected(want), "{file} (ema {ema})");
        assert!(c.non_tensors().is_empty(), "{file}: {:?}", c.non_tensors());
    }
    assert!(open(&fixture("ema.pth"), false).has_unread_ema());
    // The dtypes are reported as stored (converted to f32 only when read).
    let c = open(&fixture("dtypes.pth"), false);
    let dtypes: Vec<String> = c.tensors().map(|(_, d, _)| format!("{d:?}")).collect();
    // (sorted by name: conv1.norm.weight, conv1.weight, level_embeds)
    assert_eq!(dtypes, ["BF16", "F16", "F64"]);
}

#[test]
fn ema_without_ema_weights_says_so() {
    let e = PthCheckpoint::open(&fixture("detectron2.pth"), CheckpointOptions { ema: true })
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("no `ema_state`") && e.contains("iteration, model, trainer"),
        "{e}"
    );
}

#[test]
fn the_test_writer_reads_back_like_torch() {
    let dir = tempfile::tempdir().unwrap();
    let want = expected("model");
    let shapes: BTreeMap<String, Vec<usize>> = open(&fixture("detectron2.pth"), false)
        .tensors()
        .map(|(k, _, s)| (k.to_string(), s.to_vec()))
        .collect();
    let entries: Vec<(&str, Value)> = want
        .iter()
        .map(|(k, v)| (k.as_str(), Value::F32(&shapes[k], v)))
        .collect();
    let ours = dir.path().join("ours.pth");
    write(&ours, &entries, true, "little");
    let (a, b) = (open(&ours, false), open(&fixture("detectron2.pth"), false));
    assert_eq!(read(&a), read(&b));
    let meta = |c: &PthCheckpoint| -> Vec<(String, String, Vec<usize>)> {
        c.tensors()
            .map(|(k, d, s)| (k.to_string(), format!("{d:?}"), s.to_vec()))
            .collect()
    };
    assert_eq!(meta(&a), meta(&b));
}

/// `PthCheckpoint::open`'s error on `path`.
fn refusal(path: &Path) -> String {
    match PthCheckpoint::open(path, CheckpointOptions::default()) {
        Ok(_) => panic!("{} was accepted", path.display()),
        Err(e) => {
            eprintln!("refused: {e}");
            e.to_string()
        }
    }
}

#[test]
fn hostile_and_broken_files_are_refused_and_nothing_runs() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let touch = format!("touch {}", marker.display());
    let w = [1.0f32, 2.0, 3.0, 4.0];
    let shape = [2usize, 2];

    // A state dict with a call of os.system among its tensors (zip container).
    let evil = dir.path().join("evil.pth");
    write(
        &evil,
        &[
            ("class_embed.0.weight", Value::F32(&shape, &w)),
            ("evil", Value::Call("os", "system", &touch)),
        ],
        true,
        "little",
    );
    let e = refusal(&evil);
    assert!(
        e.contains("`model.evil` is a call of `os.system`") && e.contains("nothing in it was run"),
        "{e}"
    );
    // A plain pickle whose root is the call (another global, another container).
    let plain = dir.path().join("plain.pth");
    let mut bytes = vec![0x80, 2];
    bytes.extend_from_slice(b"cposix\nsystem\n(X");
    bytes.extend_from_slice(&(touch.len() as u32).to_le_bytes());
    bytes.extend_from_slice(touch.as_bytes());
    bytes.extend_from_slice(b"tR.");
    std::fs::write(&plain, bytes).unwrap();
    let e = refusal(&plain);
    assert!(
        e.contains("the top level is a call of `posix.system`"),
        "{e}"
    );
    assert!(!marker.exists(), "a payload ran");

    // A truncated checkpoint.
    let full = std::fs::read(fixture("detectron2.pth")).unwrap();
    let cut = dir.path().join("truncated.pth");
    std::fs::write(&cut, &full[..full.len() / 2]).unwrap();
    let e = refusal(&cut);
    assert!(e.contains("truncated.pth") && e.contains("zip"), "{e}");

    // A zip bomb: a release archive whose checkpoint declares far more than the archive holds.
    let bomb = dir.path().join("bomb.zip");
    common::pth::write_zip_bomb(&bomb, "model_final.pth");
    let e = refusal(&bomb);
    assert!(
        e.contains("zip bomb") && e.contains("model_final.pth"),
        "{e}"
    );

    // A tensor whose storage is shorter than its shape needs.
    let short = dir.path().join("short.pth");
    write(
        &short,
        &[("class_embed.0.weight", Value::Short(&shape, &w, 3))],
        true,
        "little",
    );
    // The shape is checked against the storage when the tensor is read (converting or
    // exporting reads every tensor, so neither gets past it).
    let c = open(&short, false);
    let e = c
        .read_f32("class_embed.0.weight")
        .expect_err("refused")
        .to_string();
    assert!(
        e.contains("short.pth") && e.contains("class_embed.0.weight"),
        "{e}"
    );

    // A big-endian file.
    let big = dir.path().join("big.pth");
    write(
        &big,
        &[("class_embed.0.weight", Value::F32(&shape, &w))],
        true,
        "big",
    );
    let e = refusal(&big);
    assert!(
        e.contains("big.pth") && e.to_lowercase().contains("endian"),
        "{e}"
    );

    // A non-tensor where a tensor belongs: opened, and reported by name.
    let int = dir.path().join("int.pth");
    write(
        &int,
        &[
            ("class_embed.0.weight", Value::F32(&shape, &w)),
            ("class_embed.0.bias", Value::Int(3)),
        ],
        true,
        "little",
    );
    let c = open(&int, false);
    assert_eq!(
        c.non_tensors(),
        [("class_embed.0.bias".to_string(), "an int (3)".to_string())]
    );
    assert!(!marker.exists(), "a payload ran");
}
