//! focus-models: the Focus-DETR configuration and presets, the weight schema (every checkpoint
//! name and shape, written once), weight loading (safetensors and PyTorch checkpoints) and validation, and the synthetic weights
//! `focus-synth-v1`. The model, written once against the `Backend` trait, and
//! (feature `torch`) the libtorch backend that executes it as the reference.

pub mod backend;
pub mod checkpoint;
pub mod config;
pub mod finite;
pub mod model;
pub mod postprocess;
pub mod schema;
pub mod synth;
#[cfg(feature = "torch")]
pub mod torch_backend;
pub mod weights;

pub use config::{ConfigError, FocusDetrConfig};
pub use schema::{FocusDetrKeys, WeightSchema};
pub use weights::{LoadOptions, WeightError, Weights};
