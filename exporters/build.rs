//! Build script of focus-exporters: rpath to libtorch when built with the `torch` feature, which
//! a workspace build with the reference turns on (`--workspace --all-features`): focus-models
//! then links libtorch into this crate's test binaries too.

include!("../build-support/torch_rpath.rs");

fn main() {
    emit_torch_rpath();
}
