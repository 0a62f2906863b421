//! Runtimes that execute Focus-DETR behind one interface: host tensors in, host tensors out.
//! The libtorch reference (feature `torch`), ONNX Runtime (feature `ort`) and tract (feature `tract`).

#[cfg(feature = "ort")]
pub mod ort;
#[cfg(feature = "ort")]
mod ort_ops;
#[cfg(feature = "torch")]
pub mod torch;
#[cfg(feature = "tract")]
pub mod tract;
#[cfg(feature = "tract")]
mod tract_ops;

use std::borrow::Cow;

use crate::tensors::{HostTensor, TensorMap};

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
    /// The model's input names (exported models; the torch reference takes `images` and, with
    /// the proposal override, `topk_proposals`).
    fn inputs(&self) -> Vec<String> {
        vec!["images".into()]
    }
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

/// Metadata key of the exported model's configuration (JSON).
pub const CONFIG_METADATA_KEY: &str = "focus_export.config";

/// The configuration recorded in an exported model's metadata, if any (a model from another
/// exporter has none; it is then run without the size check).
pub fn config_from_metadata(json: Option<&str>) -> Option<focus_models::FocusDetrConfig> {
    focus_models::FocusDetrConfig::from_json_str(json?, "model metadata").ok()
}

/// For a model with an `images` input: checks it and, when the model's configuration is known,
/// that the input gives enough tokens for the official model (an exported graph would fail
/// inside TopK instead). Other models (single-op graphs) are fed as they are.
pub fn check_model_input(
    cfg: Option<&focus_models::FocusDetrConfig>,
    model_inputs: &[String],
    inputs: &TensorMap,
) -> Result<(), RuntimeError> {
    if !model_inputs.iter().any(|n| n == "images") {
        return Ok(());
    }
    let images = check_images(inputs)?;
    if let Some(cfg) = cfg {
        let n = cfg.token_count(images.shape[2], images.shape[3]);
        cfg.check_token_count(n)
            .map_err(|message| RuntimeError::Input {
                name: "images".into(),
                message,
            })?;
    }
    Ok(())
}

/// The tensor an exported model's input `name` is fed from. Besides an exact name match:
/// the proposal-override input also accepts a golden file's `topk_proposals` and, when absent,
/// gets −1 everywhere (the model keeps its own selection); `orig_sizes` defaults to each image's
/// own input size (boxes then stay in input pixels).
pub fn model_input<'a>(
    inputs: &'a TensorMap,
    name: &str,
    cfg: Option<&focus_models::FocusDetrConfig>,
) -> Result<Cow<'a, HostTensor>, RuntimeError> {
    use focus_exporters::export::{ORIG_SIZES_INPUT, PROPOSALS_INPUT};
    if let Some(t) = inputs.get(name) {
        return Ok(Cow::Borrowed(t));
    }
    if name == PROPOSALS_INPUT {
        if let Some(t) = inputs.get("topk_proposals") {
            return Ok(Cow::Borrowed(t));
        }
        if let (Some(cfg), true) = (cfg, inputs.contains_key("images")) {
            let b = check_images(inputs)?.shape[0];
            let q = cfg.heads.num_queries;
            return Ok(Cow::Owned(HostTensor::i64(vec![b, q], vec![-1; b * q])));
        }
    }
    if name == ORIG_SIZES_INPUT && inputs.contains_key("images") {
        let images = check_images(inputs)?;
        let (b, h, w) = (
            images.shape[0],
            images.shape[2] as i64,
            images.shape[3] as i64,
        );
        return Ok(Cow::Owned(HostTensor::i64(vec![b, 2], [h, w].repeat(b))));
    }
    Err(RuntimeError::Input {
        name: name.to_string(),
        message: "the model needs this input but the input file has none".into(),
    })
}
