//! Build script of focus-export: rpath to libtorch for builds with the `torch` feature.

include!("build-support/torch_rpath.rs");

fn main() {
    emit_torch_rpath();
}
