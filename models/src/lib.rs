//! focus-models: the Focus-DETR configuration and presets, the weight schema (every checkpoint
//! name and shape, written once), safetensors loading and validation, and the synthetic weights
//! `focus-synth-v1`. The model itself, written once against a `Backend` trait, lands here next.

pub mod config;
pub mod schema;
pub mod synth;
pub mod weights;

pub use config::{ConfigError, FocusDetrConfig};
pub use schema::{FocusDetrKeys, WeightSchema};
pub use weights::{WeightError, Weights};
