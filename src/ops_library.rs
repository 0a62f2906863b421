//! Finding `libfocus_ops.so`, the `ai.focus_detr` custom-op library any ONNX Runtime loads
//! (the `focus-ops-library` crate), and asking it what it is.

use std::path::{Path, PathBuf};

use focus_ops::decl::LIBRARY_NAME;

use crate::runtime_env;

/// Points straight at the library; wins over everything else.
pub const OPS_LIBRARY_ENV_VAR: &str = "FOCUS_OPS_LIBRARY";

/// The library's file name on this platform (`libfocus_ops.so` on Linux).
pub fn file_name() -> String {
    format!(
        "{}{LIBRARY_NAME}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// The command that builds the library (into `target/release/`).
pub fn build_command() -> String {
    format!(
        "cargo build --release -p focus-ops-library --manifest-path {}",
        runtime_env::source_root().join("Cargo.toml").display()
    )
}

/// Why the library could not be found or asked.
#[derive(Debug, thiserror::Error)]
pub enum OpsLibraryError {
    /// `$FOCUS_OPS_LIBRARY` names a file that does not exist.
    #[error("${OPS_LIBRARY_ENV_VAR} is {0} but that file does not exist")]
    EnvMissing(PathBuf),
    /// Not built, or not where we look.
    #[error("{file} not found (looked in: {looked}); build it with `{fix}` or set ${OPS_LIBRARY_ENV_VAR}")]
    NotFound {
        /// The file name looked for.
        file: String,
        /// Folders searched.
        looked: String,
        /// Command that builds it.
        fix: String,
    },
    /// The file is there but is not a loadable focus-ops library.
    #[error("{path}: not a usable focus-ops library: {message}")]
    Unusable {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// The folders searched, in order: beside this executable (and its parent, for test binaries
/// in `target/<profile>/deps`), then the source tree's `target/release` and `target/debug`.
fn candidate_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            dirs.push(dir.to_path_buf());
            if dir.file_name().is_some_and(|n| n == "deps") {
                if let Some(up) = dir.parent() {
                    dirs.push(up.to_path_buf());
                }
            }
        }
    }
    let target = runtime_env::source_root().join("target");
    for profile in ["release", "debug"] {
        let d = target.join(profile);
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    dirs
}

/// The library to use: `$FOCUS_OPS_LIBRARY`, else the first of [`candidate_dirs`] holding it.
pub fn find() -> Result<PathBuf, OpsLibraryError> {
    if let Some(p) = std::env::var_os(OPS_LIBRARY_ENV_VAR) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(OpsLibraryError::EnvMissing(p))
        };
    }
    let file = file_name();
    let dirs = candidate_dirs();
    if let Some(found) = dirs.iter().map(|d| d.join(&file)).find(|p| p.is_file()) {
        return Ok(found);
    }
    Err(OpsLibraryError::NotFound {
        file,
        looked: dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        fix: build_command(),
    })
}

/// The library's own description (`FocusOpsLibraryInfo`: version, domain, ops, the ONNX Runtime
/// C API it needs), read by loading it.
#[cfg(feature = "ort")]
pub fn describe(path: &Path) -> Result<String, OpsLibraryError> {
    let unusable = |message: String| OpsLibraryError::Unusable {
        path: path.display().to_string(),
        message,
    };
    // SAFETY: loading runs only the Rust standard library's own initialisers (the library has
    // no constructors); the symbols' signatures are the ones it exports, and the string it
    // returns is static.
    unsafe {
        let lib = libloading::Library::new(path).map_err(|e| unusable(e.to_string()))?;
        // The entry point ONNX Runtime looks for must be there too.
        lib.get::<unsafe extern "C" fn()>(b"RegisterCustomOps")
            .map_err(|e| unusable(e.to_string()))?;
        let info: libloading::Symbol<'_, unsafe extern "C" fn() -> *const std::ffi::c_char> = lib
            .get(b"FocusOpsLibraryInfo")
            .map_err(|e| unusable(e.to_string()))?;
        let s = info();
        if s.is_null() {
            return Err(unusable("FocusOpsLibraryInfo returned null".into()));
        }
        Ok(std::ffi::CStr::from_ptr(s).to_string_lossy().into_owned())
    }
}

/// Without ONNX Runtime support compiled in, the library is only found, not loaded.
#[cfg(not(feature = "ort"))]
pub fn describe(path: &Path) -> Result<String, OpsLibraryError> {
    Ok(format!(
        "{} (not loaded: built without the `ort` feature)",
        path.display()
    ))
}
