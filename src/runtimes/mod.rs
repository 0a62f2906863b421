//! Runtimes that execute Focus-DETR behind one interface: host tensors in, host tensors out.
//! The libtorch reference (feature `torch`) and ONNX Runtime (feature `ort`).

#[cfg(feature = "ort")]
pub mod ort;
#[cfg(feature = "torch")]
pub mod torch;

use crate::tensors::TensorMap;

/// Errors of a runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// An input is missing or malformed.
    #[error("input `{name}`: {message}")]
    Input {
        /// The tensor name.
        name: String,
        /// What is wrong and what was expected.
        message: String,
    },
    /// The runtime itself failed (library, session, provider, run).
    #[error("{0}")]
    Backend(String),
    /// The model failed.
    #[error(transparent)]
    Model(#[from] focus_models::backend::ModelError),
}

/// Something that runs the model.
pub trait Runtime {
    /// A short name for reports (`torch-cpu`, `ort-cpu`, ...).
    fn name(&self) -> String;
    /// Runs the model on `inputs` (`images` [B, 3, H, W] float32, normalised) and returns the
    /// outputs (`pred_logits`, `pred_boxes`, `scores`, `labels`, `boxes_xyxy`, and the debug
    /// intermediates when enabled).
    fn run(&mut self, inputs: &TensorMap) -> Result<TensorMap, RuntimeError>;
}

/// Checks the `images` input: float32, [B, 3, H, W].
pub fn check_images(inputs: &TensorMap) -> Result<&crate::tensors::HostTensor, RuntimeError> {
    let bad = |message: String| RuntimeError::Input {
        name: "images".into(),
        message,
    };
    let t = inputs
        .get("images")
        .ok_or_else(|| bad("missing; expected a float32 tensor [B, 3, H, W]".into()))?;
    if t.as_f32().is_none() {
        return Err(bad("must be a float tensor".into()));
    }
    if t.shape.len() != 4 || t.shape[1] != 3 || t.shape.contains(&0) {
        return Err(bad(format!(
            "has shape {:?}; expected [B, 3, H, W] with B, H, W ≥ 1",
            t.shape
        )));
    }
    Ok(t)
}
