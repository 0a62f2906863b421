//! What a Triton repository is made of and generated with: its model names, the options and
//! their checks, and the errors of writing one.

use std::path::PathBuf;

use focus_exporters::Target;

/// The detector model's name.
pub const DETECTOR: &str = "focus_detr";
/// The preprocessing model's name.
pub const PREPROCESS: &str = "focus_detr_preprocess";
/// The postprocessing model's name.
pub const POSTPROCESS: &str = "focus_detr_postprocess";
/// The ensemble's name: what clients call.
pub const ENSEMBLE: &str = "focus_detr_image";
/// Every model of the repository, in the order the ensemble runs them (the ensemble last).
pub const MODELS: [&str; 4] = [PREPROCESS, DETECTOR, POSTPROCESS, ENSEMBLE];

/// Which Triton backend serves the detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// Triton's ONNX Runtime backend (`platform: "onnxruntime_onnx"`).
    Onnxruntime,
    /// The Python backend running `model.onnx` on Python onnxruntime (the form the
    /// `nvidia-pytriton` server binary, which has no ONNX Runtime backend, serves).
    Python,
}

/// What the repository is generated with.
#[derive(Debug, Clone)]
pub struct RepositoryOptions {
    /// The detector's backend.
    pub backend: Backend,
    /// Where the detector runs (ort-cpu, ort-cuda or tensorrt).
    pub target: Target,
    /// float16 (the fp16 export; TensorRT also builds in FP16).
    pub fp16: bool,
    /// `max_batch_size` of every model (≥ 1).
    pub max_batch: u32,
    /// Instances of each model.
    pub instances: u32,
    /// Dynamic batching's queue delay, or `None` for no dynamic batching.
    pub queue_delay_us: Option<u64>,
    /// ONNX Runtime intra-op threads per detector instance (`None`: the runtime's default).
    pub threads: Option<u32>,
    /// Detections scoring less are dropped by the postprocessing.
    pub score_threshold: f32,
    /// Where the repository will be when Triton serves it (absolute), for the ops library's
    /// path in `model_operations`.
    pub serve_path: PathBuf,
}

/// Why a repository could not be written.
#[derive(Debug, thiserror::Error)]
pub enum TritonError {
    /// The options do not make a servable repository.
    #[error("{0}")]
    Options(String),
    /// The exported graph lacks what the repository needs.
    #[error("the exported model does not fit the repository: {0}")]
    Graph(String),
    /// Writing failed.
    #[error("{path}: {cause}")]
    Io {
        /// The file or folder.
        path: String,
        /// The error (not a `source`: the message already says it).
        cause: std::io::Error,
    },
}

/// The ops library in the repository: its path relative to the detector's folder, and where
/// Triton will find it.
pub struct Where {
    /// Relative to `focus_detr/`.
    pub relative: String,
    /// Absolute, under [`RepositoryOptions::serve_path`].
    pub serve: PathBuf,
}

/// What was written.
#[derive(Debug)]
pub struct RepositoryReport {
    /// Files written, relative to the repository, in order.
    pub files: Vec<(String, u64)>,
}

impl RepositoryOptions {
    /// Checks that the options make a repository Triton can serve.
    pub fn validate(&self) -> Result<(), TritonError> {
        let bad = |m: &str| Err(TritonError::Options(m.into()));
        if self.max_batch == 0 {
            return bad(
                "--max-batch must be at least 1 (Triton batches along the first dimension)",
            );
        }
        if self.instances == 0 {
            return bad("--instances must be at least 1");
        }
        if self.target == Target::Tract {
            return bad(
                "--target tract: Triton has no tract backend; use ort-cpu, ort-cuda or tensorrt",
            );
        }
        if self.backend == Backend::Python && self.target == Target::TensorRt {
            return bad("--backend python with --target tensorrt: the TensorRT plugin form runs only inside TensorRT; use --backend onnxruntime");
        }
        if !self.serve_path.is_absolute() {
            return bad(&format!(
                "--serve-path {}: must be absolute (Triton loads the ops library by this path)",
                self.serve_path.display()
            ));
        }
        if !self.score_threshold.is_finite() || !(0.0..=1.0).contains(&self.score_threshold) {
            return bad("--score-threshold must be between 0 and 1");
        }
        Ok(())
    }
}
