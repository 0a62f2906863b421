//! Where the native runtimes come from. `scripts/setup-env.sh` installs the pinned `torch` and
//! `onnxruntime` wheels into the git-ignored `.venv` and links what we need into `.runtimes/`:
//! `libtorch` (the wheel's `torch` folder) and `libonnxruntime.so`. This module finds them again at
//! run time, and says how to install them when they are missing.

use std::path::{Path, PathBuf};

/// Overrides the runtimes folder (default: `.runtimes` in the source tree this binary was built from).
pub const RUNTIMES_ENV_VAR: &str = "FOCUS_EXPORT_RUNTIMES";
/// Points straight at an ONNX Runtime shared library; wins over everything else.
pub const ORT_DYLIB_ENV_VAR: &str = "ORT_DYLIB_PATH";
/// The ONNX Runtime version the `ort` crate is built against (`api-31`); older libraries fail.
pub const ORT_MIN_VERSION: (u32, u32) = (1, 31);

/// The repository this binary was built from.
pub fn source_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The command that installs the CPU runtimes.
pub fn setup_command(gpu: bool) -> String {
    let script = source_root().join("scripts/setup-env.sh");
    if gpu {
        format!("bash {} --gpu", script.display())
    } else {
        format!("bash {}", script.display())
    }
}

/// The runtimes folder and why it was chosen.
pub fn runtimes_dir() -> (PathBuf, String) {
    match std::env::var_os(RUNTIMES_ENV_VAR) {
        Some(v) => (PathBuf::from(v), format!("from ${RUNTIMES_ENV_VAR}")),
        None => (
            source_root().join(".runtimes"),
            "the source tree's .runtimes".to_string(),
        ),
    }
}

/// Why a runtime library could not be found.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeEnvError {
    /// `$ORT_DYLIB_PATH` names a file that does not exist.
    #[error("${ORT_DYLIB_ENV_VAR} is {0} but that file does not exist")]
    OrtEnvMissing(PathBuf),
    /// No ONNX Runtime library anywhere we look.
    #[error("ONNX Runtime library not found (looked in: {looked}); install it with `{fix}` or set ${ORT_DYLIB_ENV_VAR}")]
    OrtNotFound {
        /// Places searched.
        looked: String,
        /// Command that installs it.
        fix: String,
    },
}

/// The ONNX Runtime shared library to load: `$ORT_DYLIB_PATH`, else the runtimes folder, else an
/// active Python virtual environment with the `onnxruntime` package.
pub fn find_onnxruntime() -> Result<PathBuf, RuntimeEnvError> {
    if let Some(p) = std::env::var_os(ORT_DYLIB_ENV_VAR) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(RuntimeEnvError::OrtEnvMissing(p))
        };
    }
    let (dir, _) = runtimes_dir();
    let mut looked = vec![dir.display().to_string()];
    let linked = dir.join("libonnxruntime.so");
    if linked.is_file() {
        return Ok(linked);
    }
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV") {
        let venv = PathBuf::from(venv);
        looked.push(venv.display().to_string());
        for site in site_packages(&venv) {
            if let Some(lib) = versioned_lib(&site.join("onnxruntime/capi"), "libonnxruntime.so.") {
                return Ok(lib);
            }
        }
    }
    Err(RuntimeEnvError::OrtNotFound {
        looked: looked.join(", "),
        fix: setup_command(false),
    })
}

/// The version string an ONNX Runtime library reports (`OrtGetApiBase()->GetVersionString()`).
#[cfg(feature = "ort")]
pub fn onnxruntime_version(path: &Path) -> Result<String, String> {
    // SAFETY: loading ONNX Runtime runs no user-visible initialisers beyond its own; the symbol's
    // signature is the one of the C API header (`ort_sys`), and the returned string is static.
    unsafe {
        let lib = libloading::Library::new(path).map_err(|e| e.to_string())?;
        let get_base: libloading::Symbol<
            '_,
            unsafe extern "C" fn() -> *const ort::sys::OrtApiBase,
        > = lib.get(b"OrtGetApiBase").map_err(|e| e.to_string())?;
        let base = get_base();
        if base.is_null() {
            return Err("OrtGetApiBase returned null".into());
        }
        let s = ((*base).GetVersionString)();
        if s.is_null() {
            return Err("GetVersionString returned null".into());
        }
        Ok(std::ffi::CStr::from_ptr(s).to_string_lossy().into_owned())
    }
}

/// libtorch as installed by the setup script, if present.
#[derive(Debug, Clone)]
pub struct LibtorchInstall {
    /// The `torch` package folder (has `lib/` and `include/`).
    pub dir: PathBuf,
    /// The wheel's version string, e.g. `2.13.0+cu130`.
    pub version: Option<String>,
}

/// Looks for libtorch in the runtimes folder.
pub fn find_libtorch() -> Option<LibtorchInstall> {
    let dir = runtimes_dir().0.join("libtorch");
    if !dir.join("lib/libtorch_cpu.so").is_file() {
        return None;
    }
    let version = std::fs::read_to_string(dir.join("version.py"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("__version__ = "))
                .map(|v| v.trim().trim_matches('\'').trim_matches('"').to_string())
        });
    Some(LibtorchInstall { dir, version })
}

/// `lib/python3*/site-packages` folders of a Python environment.
fn site_packages(env: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(env.join("lib")) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path().join("site-packages"))
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

/// The file in `dir` whose name starts with `prefix` (e.g. `libonnxruntime.so.1.31.1`).
fn versioned_lib(dir: &Path, prefix: &str) -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect();
    v.sort();
    v.pop()
}

/// Whether an NVIDIA driver is visible on this machine (its user-space library loads).
pub fn nvidia_driver() -> Option<String> {
    if let Ok(v) = std::fs::read_to_string("/proc/driver/nvidia/version") {
        return Some(v.lines().next().unwrap_or("").trim().to_string());
    }
    None
}
