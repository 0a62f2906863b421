//! `focus-export run --runtime torch` end to end: reads `images` from a safetensors file, writes
//! the outputs (and intermediates with --debug), and refuses bad input without writing anything.
#![cfg(feature = "torch")]

mod common;

use std::path::PathBuf;

use focus_export::tensors::{read_tensors, write_tensors, HostTensor, TensorMap};

/// Budgets of the model issue: features 1e-4, boxes with the golden proposal order 1e-5.
const TOL_FEATURES: f32 = 1e-4;
const TOL_BOXES: f32 = 1e-5;

fn weights(dir: &std::path::Path) -> PathBuf {
    let w = dir.join("w.safetensors");
    let mut cmd = common::cli();
    cmd.args(["init-weights", "--seed", "0", "-o"]).arg(&w);
    let (ok, _, e) = common::output(cmd);
    assert!(ok, "{e}");
    w
}

fn max_abs(a: &HostTensor, b: &HostTensor) -> f32 {
    assert_eq!(a.shape, b.shape);
    a.as_f32()
        .unwrap()
        .iter()
        .zip(b.as_f32().unwrap())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn run_writes_outputs_and_debug_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let w = weights(dir.path());
    let golden = read_tensors(&common::golden("astronaut_384x384.safetensors")).unwrap();
    let out = dir.path().join("out.safetensors");
    let mut cmd = common::cli();
    cmd.args([
        "run",
        "--runtime",
        "torch",
        "--threads",
        "2",
        "--debug",
        "--override-proposals",
        "--weights",
    ])
    .arg(&w)
    .arg("--input")
    .arg(common::golden("astronaut_384x384.safetensors"))
    .arg("--output")
    .arg(&out);
    let (ok, stdout, stderr) = common::output(cmd);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("torch-cpu"), "{stdout}");
    let o = read_tensors(&out).unwrap();
    assert_eq!(o["pred_logits"].shape, vec![1, 900, 80]);
    assert_eq!(o["scores"].shape, vec![1, 300]);
    assert_eq!(o["labels"].as_i64().unwrap().len(), 300);
    assert_eq!(o["boxes_xyxy"].shape, vec![1, 300, 4]);
    assert!(max_abs(&o["fg_logits"], &golden["fg_logits"]) <= TOL_FEATURES);
    assert!(max_abs(&o["pred_boxes"], &golden["pred_boxes"]) <= TOL_BOXES);
    assert_eq!(o["enc_topk_idx_5"].shape, vec![1, 306]);
}

#[test]
fn bad_inputs_are_named_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let w = weights(dir.path());
    let out = dir.path().join("out.safetensors");
    let run = |input: &std::path::Path| {
        let mut cmd = common::cli();
        cmd.args(["run", "--runtime", "torch", "--weights"])
            .arg(&w)
            .arg("--input")
            .arg(input)
            .arg("--output")
            .arg(&out);
        common::output(cmd)
    };
    let input = dir.path().join("in.safetensors");
    let mut m = TensorMap::new();
    m.insert(
        "pixels".into(),
        HostTensor::f32(vec![1, 3, 4, 4], vec![0.0; 48]),
    );
    write_tensors(&input, &m).unwrap();
    let (ok, _, e) = run(&input);
    assert!(!ok && e.contains("input `images`: missing"), "{e}");

    m.insert(
        "images".into(),
        HostTensor::f32(vec![1, 4, 4], vec![0.0; 16]),
    );
    write_tensors(&input, &m).unwrap();
    let (ok, _, e) = run(&input);
    assert!(!ok && e.contains("expected [B, 3, H, W]"), "{e}");

    m.insert(
        "images".into(),
        HostTensor::f32(vec![1, 3, 64, 64], vec![0.0; 3 * 64 * 64]),
    );
    write_tensors(&input, &m).unwrap();
    let (ok, _, e) = run(&input);
    assert!(!ok && e.contains("too small"), "{e}");

    let (ok, _, e) = run(&dir.path().join("absent.safetensors"));
    assert!(!ok && e.contains("absent.safetensors"), "{e}");
    assert!(!out.exists(), "an output file was written for a failed run");
}

#[test]
fn force_selections_reproduces_the_golden_selections_and_boxes() {
    let dir = tempfile::tempdir().unwrap();
    let w = weights(dir.path());
    // chelsea: the free-running proposal order differs from the golden's at near-ties here.
    let case = common::golden("chelsea_448x640.safetensors");
    let golden = read_tensors(&case).unwrap();
    let out = dir.path().join("out.safetensors");
    let run = |force: &std::path::Path| {
        let mut cmd = common::cli();
        cmd.args(["run", "--runtime", "torch", "--threads", "2", "--debug"])
            .arg("--weights")
            .arg(&w)
            .arg("--input")
            .arg(&case)
            .arg("--output")
            .arg(&out)
            .arg("--force-selections")
            .arg(force);
        common::output(cmd)
    };
    let (ok, stdout, stderr) = run(&case);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("forcing 13 selection(s)"), "{stdout}");
    let o = read_tensors(&out).unwrap();
    for l in 0..6 {
        for n in [
            format!("enc_topk_idx_{l}"),
            format!("enc_oesm_token_idx_{l}"),
        ] {
            assert_eq!(o[&n].as_i64(), golden[&n].as_i64(), "{n}");
        }
    }
    assert_eq!(
        o["topk_proposals"].as_i64(),
        golden["topk_proposals"].as_i64()
    );
    assert!(max_abs(&o["pred_boxes"], &golden["pred_boxes"]) <= TOL_BOXES);

    // A file without selections is refused, naming it, and nothing is written.
    std::fs::remove_file(&out).unwrap();
    let mut m = TensorMap::new();
    m.insert("images".into(), golden["images"].clone());
    let bare = dir.path().join("bare.safetensors");
    write_tensors(&bare, &m).unwrap();
    let (ok, _, e) = run(&bare);
    assert!(
        !ok && e.contains("bare.safetensors") && e.contains("holds no selection"),
        "{e}"
    );
    // A selection of the wrong size is named.
    m.insert(
        "topk_proposals".into(),
        HostTensor::i64(vec![1, 3], vec![0, 1, 2]),
    );
    write_tensors(&bare, &m).unwrap();
    let (ok, _, e) = run(&bare);
    assert!(
        !ok && e.contains("topk_proposals") && e.contains("[1, 900]"),
        "{e}"
    );
    assert!(!out.exists(), "an output file was written for a failed run");
}

#[test]
fn a_closed_stdout_ends_the_process_quietly() {
    // As `focus-export names | head -1`: the reader is gone before the first line is written.
    use std::process::Stdio;
    let mut child = common::cli()
        .args(["names", "--all"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}", out.status);
    }
}
