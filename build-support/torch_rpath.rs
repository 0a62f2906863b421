// Shared by the build scripts of the crates that link libtorch (included with `include!`): gives
// their binaries and tests an rpath to libtorch and the CUDA runtime libraries it needs, so they
// run without LD_LIBRARY_PATH. Needs a direct dependency on `torch-sys` (for DEP_TCH_LIBTORCH_LIB).

use std::path::{Path, PathBuf};

/// Emits the rpath link arguments when the crate is built with its `torch` feature.
pub fn emit_torch_rpath() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if std::env::var_os("CARGO_FEATURE_TORCH").is_none() {
        return;
    }
    let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    let lib = PathBuf::from(lib);
    let lib = lib.canonicalize().unwrap_or(lib);
    let mut dirs = vec![lib.clone()];
    // pip layout: site-packages/torch/lib and site-packages/nvidia/<pkg>/lib.
    if let Some(site) = lib.parent().and_then(Path::parent) {
        dirs.extend(nvidia_lib_dirs(&site.join("nvidia")));
    }
    // DT_RPATH (not RUNPATH) so that libtorch's own dependencies are found through it too.
    println!("cargo:rustc-link-arg=-Wl,--disable-new-dtags");
    for d in &dirs {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", d.display());
    }
    // With the GPU install (cuDNN present), keep libtorch_cuda linked: rustc's --as-needed would
    // drop it because no symbol of it is referenced directly, and CUDA would stay unavailable.
    let site_nvidia = lib
        .parent()
        .and_then(Path::parent)
        .map(|s| s.join("nvidia"));
    if site_nvidia.is_some_and(|n| n.join("cudnn").is_dir())
        && lib.join("libtorch_cuda.so").is_file()
    {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}

/// `nvidia/*/lib` and `nvidia/*/*/lib` folders of a pip install.
fn nvidia_lib_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(root) else {
        return out;
    };
    let mut pkgs: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    pkgs.sort();
    for p in pkgs {
        if p.join("lib").is_dir() {
            out.push(p.join("lib"));
        }
    }
    out
}
