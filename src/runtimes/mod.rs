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
use focus_models::model::selections::Forcible;

/// Which runtime executes the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeKind {
    /// The libtorch reference (needs the `torch` feature and --weights).
    Torch,
    /// ONNX Runtime on an exported model (--model).
    Ort,
    /// tract (pure Rust) on an exported model (--model).
    Tract,
}

/// ONNX Runtime execution provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProviderKind {
    /// CPU.
    Cpu,
    /// CUDA.
    Cuda,
    /// TensorRT.
    Tensorrt,
}

/// What the torch reference computes besides the outputs (the model flags of `run`, `check`
/// and `predict`; exported models fix theirs at export time).
#[derive(Debug, Clone, Copy, Default)]
pub struct TorchOptions {
    /// Also return the intermediate tensors.
    pub debug: bool,
    /// Which selections the inputs may force (tensors named `<selection>_in`, e.g.
    /// `enc_topk_idx_0_in`; the proposal override also reads `topk_proposals`).
    pub force: Forcible,
    /// Run inputs too small for the official model with fewer object tokens.
    pub clamp_object_tokens: bool,
}

/// The CUDA device index a device name asks for: `cpu` and `cuda` → 0, `cuda:N` → N.
pub fn cuda_index(device: &str) -> Result<i32, RuntimeError> {
    match device {
        "cpu" | "cuda" => Ok(0),
        d => d
            .strip_prefix("cuda:")
            .and_then(|i| i.parse().ok())
            .ok_or_else(|| {
                RuntimeError::Options(format!("--device {d}: expected cpu, cuda or cuda:N"))
            }),
    }
}

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
    /// The runtime's options ask for something it cannot do (a device, a provider setting).
    #[error("{0}")]
    Options(String),
    /// The weights could not be loaded.
    #[error(transparent)]
    Weights(#[from] focus_models::WeightError),
}

/// Something that runs the model.
pub trait Runtime {
    /// A short name for reports (`torch-cpu`, `ort-cpu`, ...).
    fn name(&self) -> String;
    /// Runs the model on `inputs` (`images` [B, 3, H, W] float32, normalised) and returns the
    /// outputs (`pred_logits`, `pred_boxes`, `scores`, `labels`, `boxes_xyxy`, and the debug
    /// intermediates when enabled).
    fn run(&mut self, inputs: &TensorMap) -> Result<TensorMap, RuntimeError>;
    /// The model's input names (exported models; the torch reference takes `images` and the
    /// selections it may be forced to, under their own names).
    fn inputs(&self) -> Vec<String> {
        vec!["images".into()]
    }
    /// The precision the model computes in (exported models say so in their metadata).
    fn precision(&self) -> focus_exporters::precision::Precision {
        focus_exporters::precision::Precision::Fp32
    }
    /// The model's configuration, when known (an exported model records it in its metadata).
    fn config(&self) -> Option<&focus_models::FocusDetrConfig> {
        None
    }
    /// Ends the runtime's own profiling, when it was asked for, and sums its last `runs` runs.
    fn take_profile(
        &mut self,
        _runs: usize,
    ) -> Option<Result<crate::profile::OpProfile, RuntimeError>> {
        None
    }
}

/// The precision recorded in an exported model's metadata (absent: float32, as every export
/// before `--precision` existed).
pub fn precision_from_metadata(value: Option<&str>) -> focus_exporters::precision::Precision {
    value.and_then(|v| v.parse().ok()).unwrap_or_default()
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

/// Metadata key of the exported model's configuration (JSON; the exporter owns it).
pub use focus_exporters::export::CONFIG_METADATA_KEY;

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

/// The tensor an exported model's input `name` is fed from: the input of that name, checked for
/// a selection-override input (`<selection>_in`, which gets −1 everywhere when absent: the model
/// keeps its own selection; a golden file's own `topk_proposals` never forces anything);
/// `orig_sizes` defaults to each image's own input size (boxes then stay in input pixels).
pub fn model_input<'a>(
    inputs: &'a TensorMap,
    name: &str,
    cfg: Option<&focus_models::FocusDetrConfig>,
) -> Result<Cow<'a, HostTensor>, RuntimeError> {
    use focus_exporters::export::{forced_selection, ORIG_SIZES_INPUT};
    if let Some((cfg, selection)) = cfg.and_then(|c| Some((c, forced_selection(c, name)?))) {
        if inputs.contains_key("images") {
            let images = check_images(inputs)?;
            let n = cfg.token_count(images.shape[2], images.shape[3]);
            let want = [images.shape[0], selection_len(cfg, selection, n)];
            return match inputs.get(name) {
                Some(t) => check_selection(selection, t, want).map(Cow::Borrowed),
                None => Ok(Cow::Owned(HostTensor::i64(
                    want.to_vec(),
                    vec![-1; want[0] * want[1]],
                ))),
            };
        }
    }
    if let Some(t) = inputs.get(name) {
        return Ok(Cow::Borrowed(t));
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

/// Indices per image of selection `name` for an image of `n_tokens` tokens.
pub fn selection_len(cfg: &focus_models::FocusDetrConfig, name: &str, n_tokens: usize) -> usize {
    focus_models::model::selections::specs(cfg, n_tokens)
        .into_iter()
        .find(|s| s.name == name)
        .map_or(0, |s| s.len)
}

/// Checks a forced selection: int64 [B, len] (entries are token indices, or −1 rows).
pub fn check_selection<'a>(
    name: &str,
    t: &'a HostTensor,
    want: [usize; 2],
) -> Result<&'a HostTensor, RuntimeError> {
    if t.as_i64().is_none() || t.shape != want {
        return Err(RuntimeError::Input {
            name: name.into(),
            message: format!(
                "a forced selection has shape {:?}{}; expected int64 {want:?} (batch, indices per image) for these images",
                t.shape,
                if t.as_i64().is_none() { " and is not int64" } else { "" }
            ),
        });
    }
    Ok(t)
}

/// Adds the selections held by a forcing file (`forced`: a golden case or a `--debug` output) to
/// `inputs` as override inputs (`<name>_in`), for a runtime that `takes` them. Every selection the file
/// holds must be takeable, and it must hold at least one; returns the names added.
pub fn add_forced_selections(
    inputs: &mut TensorMap,
    forced: &TensorMap,
    takes: &dyn Fn(&str) -> bool,
) -> Result<Vec<String>, String> {
    use focus_models::model::selections::is_selection_name;
    let held: Vec<&String> = forced.keys().filter(|k| is_selection_name(k)).collect();
    if held.is_empty() {
        return Err("it holds no selection (enc_topk_idx_l, enc_oesm_token_idx_l, topk_proposals): use a golden case or the output of a --debug run".into());
    }
    let refused: Vec<&str> = held
        .iter()
        .filter(|k| !takes(k))
        .map(|k| k.as_str())
        .collect();
    if !refused.is_empty() {
        return Err(format!(
            "the model cannot be forced to {}: export it with --debug --selection-inputs (or run --runtime torch)",
            refused.join(", ")
        ));
    }
    for k in &held {
        inputs.insert(
            focus_exporters::export::selection_input(k),
            forced[*k].clone(),
        );
    }
    Ok(held.into_iter().cloned().collect())
}
