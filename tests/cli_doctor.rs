//! `focus-export doctor` finds the runtimes installed by scripts/setup-env.sh, and with them hidden
//! says what is missing, how to fix it, and fails.

mod common;

#[test]
fn doctor_finds_the_installed_runtimes() {
    let mut cmd = common::cli();
    cmd.arg("doctor")
        .env_remove("FOCUS_EXPORT_RUNTIMES")
        .env_remove("ORT_DYLIB_PATH");
    let (ok, stdout, stderr) = common::output(cmd);
    assert!(
        ok,
        "doctor failed on a set-up machine (run scripts/setup-env.sh):\n{stdout}{stderr}"
    );
    assert!(stdout.contains("[ok     ] libtorch"), "{stdout}");
    assert!(stdout.contains("[ok     ] ONNX Runtime"), "{stdout}");
    assert!(stdout.contains("1.31.1"), "{stdout}");
}

#[test]
fn doctor_with_the_environment_hidden_says_how_to_fix_it() {
    let empty = tempfile::tempdir().unwrap();
    let mut cmd = common::cli();
    cmd.arg("doctor")
        .env("FOCUS_EXPORT_RUNTIMES", empty.path())
        .env_remove("ORT_DYLIB_PATH")
        .env_remove("VIRTUAL_ENV");
    let (ok, stdout, _) = common::output(cmd);
    assert!(!ok, "doctor passed without runtimes:\n{stdout}");
    assert!(stdout.contains("[MISSING] ONNX Runtime"), "{stdout}");
    assert!(
        stdout.contains("fix: bash ") && stdout.contains("scripts/setup-env.sh"),
        "{stdout}"
    );
    if !cfg!(feature = "torch") {
        assert!(stdout.contains("[MISSING] libtorch"), "{stdout}");
    }
}

#[test]
fn doctor_rejects_a_wrong_ort_dylib_path() {
    let mut cmd = common::cli();
    cmd.arg("doctor")
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so");
    let (ok, stdout, _) = common::output(cmd);
    assert!(!ok);
    assert!(
        stdout.contains("/nonexistent/libonnxruntime.so"),
        "{stdout}"
    );
}
