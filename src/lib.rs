//! focus-export: the library behind the `focus-export` command. It owns the runtimes (ONNX
//! Runtime through `ort`, tract, the libtorch reference), finding their native libraries, and the
//! checks; the model lives in `focus-models`, the custom ops in `focus-ops` and the ONNX writer in
//! `focus-exporters`.

pub mod accuracy;
pub mod bench;
#[cfg(feature = "ort")]
pub mod calibrate;
pub mod check;
pub mod doctor;
pub mod explain;
pub mod fuzzing;
pub mod heap;
pub mod images;
pub mod inputs;
pub mod matrix;
pub mod ops_library;
pub mod pictures;
pub mod profile;
pub mod runtime_env;
pub mod runtimes;
pub mod tensors;
pub mod triton;

pub use focus_models as models;
