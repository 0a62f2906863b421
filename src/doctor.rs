//! `focus-export doctor`: reports which runtimes this binary can use (libtorch, ONNX Runtime and its
//! providers, CUDA) and, for anything missing, the command that fixes it.

use std::fmt::Write as _;

use crate::runtime_env;

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Finding {
    /// What was checked.
    pub item: &'static str,
    /// What was found.
    pub detail: String,
    /// `None` when fine; otherwise the fix.
    pub fix: Option<String>,
    /// Whether a failure here fails the doctor (GPU items are optional unless asked for).
    pub required: bool,
}

/// The whole report.
#[derive(Debug, Clone)]
pub struct Report {
    /// All findings in print order.
    pub findings: Vec<Finding>,
}

impl Report {
    /// True when every required item was found.
    pub fn ok(&self) -> bool {
        self.findings.iter().all(|f| f.fix.is_none() || !f.required)
    }

    /// Human-readable report.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let (dir, why) = runtime_env::runtimes_dir();
        let _ = writeln!(s, "focus-export {} doctor", env!("CARGO_PKG_VERSION"));
        let _ = writeln!(s, "  runtimes folder: {} ({why})", dir.display());
        for f in &self.findings {
            let mark = match (&f.fix, f.required) {
                (None, _) => "ok     ",
                (Some(_), true) => "MISSING",
                (Some(_), false) => "absent ",
            };
            let _ = writeln!(s, "  [{mark}] {:<14} {}", f.item, f.detail);
            if let Some(fix) = &f.fix {
                let _ = writeln!(s, "            fix: {fix}");
            }
        }
        let missing = self
            .findings
            .iter()
            .filter(|f| f.required && f.fix.is_some())
            .count();
        if missing == 0 {
            let _ = writeln!(s, "all required runtimes found");
        } else {
            let _ = writeln!(s, "{missing} required runtime(s) missing");
        }
        s
    }
}

/// Runs every check. With `gpu`, CUDA and the GPU providers are required too.
pub fn diagnose(gpu: bool) -> Report {
    let mut findings = vec![libtorch()];
    findings.extend(onnxruntime(gpu));
    findings.push(tract());
    findings.push(ops_library());
    findings.push(triton_server());
    let driver = runtime_env::nvidia_driver();
    findings.push(Finding {
        item: "CUDA driver",
        detail: driver
            .clone()
            .unwrap_or_else(|| "no NVIDIA driver on this machine (CPU only)".into()),
        fix: driver
            .is_none()
            .then(|| "run on a machine with an NVIDIA GPU and driver".to_string()),
        required: gpu,
    });
    Report { findings }
}

/// libfocus_ops.so, for running `--target ort-cpu` exports in other ONNX Runtimes (optional:
/// focus-export's own sessions register the ops themselves).
fn ops_library() -> Finding {
    let found = crate::ops_library::find()
        .and_then(|p| crate::ops_library::describe(&p).map(|d| format!("{}: {d}", p.display())));
    match found {
        Ok(detail) => Finding {
            item: "ops library",
            detail,
            fix: None,
            required: false,
        },
        Err(e) => Finding {
            item: "ops library",
            detail: format!("{e}"),
            fix: Some(crate::ops_library::build_command()),
            required: false,
        },
    }
}

/// Triton's server from the nvidia-pytriton wheel (setup-env.sh links it into
/// `.venv-deploy/triton/`), for serving `focus-export triton --backend python` repositories and
/// the Triton tests (optional).
fn triton_server() -> Finding {
    let dir = runtime_env::source_root()
        .join(".venv-deploy")
        .join("triton");
    let server = dir.join("tritonserver");
    let stub = dir.join("backends/python/triton_python_backend_stub");
    let found = server.is_file() && stub.is_file();
    Finding {
        item: "Triton server",
        detail: if found {
            format!(
                "{} (Python backend; `scripts/triton/client.py --serve REPO` starts it)",
                server.display()
            )
        } else {
            format!(
                "{} not found (or its Python backend stub)",
                server.display()
            )
        },
        fix: (!found).then(|| "bash scripts/setup-env.sh".to_string()),
        required: false,
    }
}

#[cfg(feature = "torch")]
fn libtorch() -> Finding {
    let install = runtime_env::find_libtorch();
    let where_ = install
        .as_ref()
        .map(|i| {
            format!(
                "{} at {}",
                i.version.as_deref().unwrap_or("?"),
                i.dir.display()
            )
        })
        .unwrap_or_else(|| "linked at build time".into());
    let cuda = if tch::Cuda::is_available() {
        format!("CUDA devices: {}", tch::Cuda::device_count())
    } else {
        "CUDA: not available".into()
    };
    Finding {
        item: "libtorch",
        detail: format!("{where_}; {cuda}"),
        fix: None,
        required: true,
    }
}

#[cfg(not(feature = "torch"))]
fn libtorch() -> Finding {
    let fix = format!(
        "{} && cargo build --release --features torch",
        runtime_env::setup_command(false)
    );
    match runtime_env::find_libtorch() {
        Some(i) => Finding {
            item: "libtorch",
            detail: format!(
                "{} installed at {}, but this binary was built without the `torch` feature",
                i.version.as_deref().unwrap_or("?"),
                i.dir.display()
            ),
            fix: Some("cargo build --release --features torch".into()),
            required: true,
        },
        None => Finding {
            item: "libtorch",
            detail: "not installed, and this binary was built without the `torch` feature".into(),
            fix: Some(fix),
            required: true,
        },
    }
}

#[cfg(feature = "ort")]
fn onnxruntime(gpu: bool) -> Vec<Finding> {
    use ort::ep::ExecutionProvider as _;
    let path = match runtime_env::find_onnxruntime() {
        Ok(p) => p,
        Err(e) => {
            return vec![Finding {
                item: "ONNX Runtime",
                detail: e.to_string(),
                fix: Some(runtime_env::setup_command(gpu)),
                required: true,
            }]
        }
    };
    // Loading the library is enough to query it; no environment is needed.
    let loaded = ort::init_from(&path).map(drop);
    if let Err(e) = loaded {
        return vec![Finding {
            item: "ONNX Runtime",
            detail: format!("{} failed to load: {e}", path.display()),
            fix: Some(format!(
                "{} (needs ONNX Runtime ≥ {}.{})",
                runtime_env::setup_command(gpu),
                runtime_env::ORT_MIN_VERSION.0,
                runtime_env::ORT_MIN_VERSION.1
            )),
            required: true,
        }];
    }
    let version = runtime_env::onnxruntime_version(&path)
        .unwrap_or_else(|e| format!("version unknown ({e})"));
    let mut providers = vec!["CPU"];
    let cuda = ort::ep::CUDA::is_available().unwrap_or(false);
    let trt = ort::ep::TensorRT::is_available().unwrap_or(false);
    if cuda {
        providers.push("CUDA");
    }
    if trt {
        providers.push("TensorRT");
    }
    let gpu_fix = (!cuda || !trt).then(|| runtime_env::setup_command(true));
    vec![
        Finding {
            item: "ONNX Runtime",
            detail: format!("{version} at {}", path.display()),
            fix: None,
            required: true,
        },
        Finding {
            item: "ORT providers",
            detail: format!(
                "{}{}",
                providers.join(", "),
                if gpu_fix.is_some() {
                    " (this build of ONNX Runtime has no GPU providers)"
                } else {
                    ""
                }
            ),
            fix: gpu_fix,
            required: gpu,
        },
    ]
}

#[cfg(feature = "tract")]
fn tract() -> Finding {
    use crate::runtimes::tract::{kernel_choice, vex_encoded};
    let vex = if vex_encoded() {
        "; Rust code VEX-encoded (+avx), so it pays no AVX–SSE transition penalty after tract's kernels"
    } else {
        "; Rust code in legacy SSE encoding: on Intel it runs slower after tract's AVX kernels (measured: the whole model 17–25 %)"
    };
    Finding {
        item: "tract",
        detail: format!("built in; kernels: {}{vex}", kernel_choice()),
        fix: (!vex_encoded()).then(|| {
            "rebuild with the repository's .cargo/config.toml in effect (it adds -C target-feature=+avx; a RUSTFLAGS variable replaces it)".into()
        }),
        required: false,
    }
}

#[cfg(not(feature = "tract"))]
fn tract() -> Finding {
    Finding {
        item: "tract",
        detail: "this binary was built without the `tract` feature".into(),
        fix: Some("cargo build --release --features tract".into()),
        required: false,
    }
}

#[cfg(not(feature = "ort"))]
fn onnxruntime(_gpu: bool) -> Vec<Finding> {
    vec![Finding {
        item: "ONNX Runtime",
        detail: "this binary was built without the `ort` feature".into(),
        fix: Some("cargo build --release --features ort".into()),
        required: true,
    }]
}
