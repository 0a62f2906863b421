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

#[cfg(feature = "tract")]
#[test]
fn doctor_says_how_tract_picks_its_kernels() {
    let mut cmd = common::cli();
    cmd.arg("doctor").env_remove("TRACT_CPU_ISA");
    let (_, stdout, _) = common::output(cmd);
    assert!(
        stdout.contains("[ok     ] tract") && stdout.contains("kernels: "),
        "{stdout}"
    );
    // The build is VEX-encoded (.cargo/config.toml): no transition penalty after tract's kernels.
    if cfg!(target_arch = "x86_64") {
        assert!(stdout.contains("Rust code VEX-encoded (+avx)"), "{stdout}");
    }
    let mut cmd = common::cli();
    cmd.arg("doctor").env("TRACT_CPU_ISA", "-avx512f,+fma");
    let (_, stdout, _) = common::output(cmd);
    assert!(
        stdout.contains("TRACT_CPU_ISA=-avx512f,+fma (from the environment)"),
        "{stdout}"
    );
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

#[test]
fn the_gpu_check_script_skips_every_gpu_part_here_and_says_why() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let has_gpu_driver = std::process::Command::new("nvidia-smi")
        .arg("-L")
        .output()
        .is_ok_and(|o| o.status.success());
    if has_gpu_driver {
        eprintln!("SKIPPED: this machine has an NVIDIA GPU; run scripts/gpu-check.sh itself");
        return;
    }
    let out = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("gpu-check");
    let run = std::process::Command::new("bash")
        .arg(root.join("scripts/gpu-check.sh"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let parts = summary["parts"].as_array().unwrap();
    let names: Vec<&str> = parts.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["tensorrt-fp32", "tensorrt-fp16", "cuda"],
        "{summary}"
    );
    for p in parts {
        assert_eq!(p["status"], "skipped", "{p}");
        assert!(
            p["reason"].as_str().is_some_and(|r| r.contains("NVIDIA")),
            "{p}"
        );
    }
}
