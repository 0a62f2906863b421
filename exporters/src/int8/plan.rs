//! The int8 rewrite's vocabulary: what stays float32 and why, the plan (layers and sites),
//! its summary and errors.

use std::collections::BTreeMap;

use super::calib::Range;

/// Metadata key of the int8 calibration record (JSON: method, images, sites, kept layers).
pub const INT8_METADATA_KEY: &str = "focus_export.int8";

/// Layers (module paths) kept in float32 by default, with the reason. A pattern names a run of
/// path components: `class_embed` matches `class_embed.6`, `transformer.enc_output` matches
/// itself. The fp16 islands are in [`crate::fp16::ISLAND_OPS`]; these are the int8 ones.
pub const KEEP_FP32: &[(&str, &str)] = &[
    (
        "sampling_offsets",
        "deformable attention's sampling offsets: one int8 step of an offset moves every \
         bilinear sample it drives; int8 here is the known AP collapse of deformable DETRs \
         (RT-DETR 47.7 → 19.3 AP)",
    ),
    (
        "attention_weights",
        "deformable attention's weights: softmax logits over each head's samples, whose \
         differences (not their size) decide the mix",
    ),
    (
        "transformer.enc_mask_predictor",
        "the foreground scores that drive the six encoder top-k selections: a rank flip \
         changes which tokens the encoder keeps",
    ),
    (
        "class_embed",
        "class scores: they pick the OESM tokens of every encoder layer, the 900 two-stage \
         proposals and the final detections",
    ),
    (
        "transformer.enc_output",
        "the proposal features the two-stage top-k scores",
    ),
    (
        "bbox_embed",
        "box regression: its outputs' last digits are the boxes' pixel coordinates",
    ),
];

/// Options of the int8 rewrite.
#[derive(Debug, Clone, Default)]
pub struct Int8Options {
    /// Module paths kept in float32 besides [`KEEP_FP32`] (`--int8-keep`).
    pub keep: Vec<String>,
}

/// Whether `pattern` (dot-separated path components) occurs as a run in `module`.
pub fn path_matches(module: &str, pattern: &str) -> bool {
    let m: Vec<&str> = module.split('.').collect();
    let p: Vec<&str> = pattern.split('.').filter(|s| !s.is_empty()).collect();
    !p.is_empty() && m.windows(p.len()).any(|w| w == p.as_slice())
}

/// The op a quantised layer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerOp {
    /// A convolution (int8 in and out: QLinearConv).
    Conv,
    /// A matrix product with a constant right side (int8 in, float out: MatMulIntegerToFloat).
    MatMul,
}

/// A layer with weights: quantised or kept.
#[derive(Debug, Clone)]
pub struct Layer {
    /// Its module path (the checkpoint prefix of its weight).
    pub module: String,
    /// The node.
    pub node: String,
    /// Conv or MatMul.
    pub op: LayerOp,
    /// Why it stays float32 (None: quantised).
    pub kept: Option<String>,
}

/// A tensor that gets QuantizeLinear → DequantizeLinear.
#[derive(Debug, Clone)]
pub struct Site {
    /// The float tensor.
    pub tensor: String,
    /// Every consumer reads the quantised value (a convolution's output, which ONNX Runtime
    /// fuses only when all of it goes through QuantizeLinear, and the int8 backbone's
    /// tensors); otherwise only the quantised layers do.
    pub all_consumers: bool,
    /// The range is that of another site (MaxPool's output: the same values, so ONNX Runtime
    /// runs the pooling on the integers).
    pub same_as: Option<String>,
}

/// What [`prepare`] decided: the layers and the sites to calibrate.
#[derive(Debug, Clone, Default)]
pub struct Int8Plan {
    /// Every Conv and constant-weight MatMul, in graph order.
    pub layers: Vec<Layer>,
    /// The tensors to quantise, in graph order.
    pub sites: Vec<Site>,
    /// Frozen batch norms folded into their convolutions.
    pub folded_norms: usize,
    /// The float32 model the sites' names refer to (batch norms folded).
    pub(crate) model: onnx_protobuf::ModelProto,
}

impl Int8Plan {
    /// The tensors whose values calibration observes (sites with a range of their own).
    pub fn observed(&self) -> Vec<&str> {
        self.sites
            .iter()
            .filter(|s| s.same_as.is_none())
            .map(|s| s.tensor.as_str())
            .collect()
    }

    /// The float32 model with each observed tensor added as an output (graph inputs and
    /// existing outputs are not repeated: the caller reads them from its inputs and outputs).
    pub fn calibration_model(&self) -> onnx_protobuf::ModelProto {
        super::consts::with_outputs(&self.model, &self.observed())
    }
}

/// What the int8 rewrite did.
#[derive(Debug, Clone, Default)]
pub struct Int8Summary {
    /// The calibration method's name.
    pub method: String,
    /// Calibration images (runs).
    pub images: usize,
    /// Convolutions quantised.
    pub conv: usize,
    /// Matrix products quantised.
    pub matmul: usize,
    /// Layers kept in float32 (module path, reason).
    pub kept: Vec<(String, String)>,
    /// Quantised tensors (sites).
    pub sites: usize,
    /// Frozen batch norms folded into their convolutions.
    pub folded_norms: usize,
}

/// Errors of the int8 rewrite.
#[derive(Debug, thiserror::Error)]
pub enum Int8Error {
    /// A tensor the rewrite needs is not where it should be.
    #[error("int8: {0}")]
    Graph(String),
    /// Calibration left a site without a range.
    #[error("int8 calibration: no finite value of `{0}` was observed; calibrate on more or other images")]
    Uncalibrated(String),
    /// A `--int8-keep` pattern matches no layer.
    #[error("--int8-keep `{pattern}` matches no layer with weights; layers are named by module path, e.g. backbone.res2, transformer.encoder.layers.0.ffns")]
    UnknownKeep {
        /// The pattern.
        pattern: String,
    },
}

/// Ranges per observed tensor, as calibration measured them.
pub type Ranges = BTreeMap<String, Range>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_runs_of_path_components() {
        let m = "transformer.encoder.layers.3.attentions.1.sampling_offsets";
        assert!(path_matches(m, "sampling_offsets"));
        assert!(path_matches(m, "layers.3.attentions"));
        assert!(path_matches(m, "transformer.encoder"));
        assert!(!path_matches(m, "layers.30"));
        assert!(!path_matches(m, "sampling"));
        assert!(!path_matches(m, ""));
        assert!(path_matches("class_embed.6", "class_embed"));
    }
}
