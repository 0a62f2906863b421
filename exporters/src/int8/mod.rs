//! `--precision int8`: a traced float32 model rewritten with int8 convolutions and matrix
//! products in QDQ form (QuantizeLinear → DequantizeLinear before the op), which ONNX Runtime
//! fuses into its integer kernels (QLinearConv, MatMulIntegerToFloat, QLinearAdd).
//!
//! Weights are quantised per output channel, symmetric int8; activations per tensor, unsigned
//! 8-bit with a zero point (what ONNX Runtime's x86 kernels take: u8 × s8), with ranges from
//! calibration images ([`calib`]). What stays float32 is [`KEEP_FP32`], each entry with its
//! reason; `--int8-keep` adds module paths. The steps: [`prepare`] folds the frozen batch
//! norms into their convolutions and plans the sites; the caller runs
//! [`Int8Plan::calibration_model`] on images and feeds each site's values to an
//! [`calib::Observer`]; [`quantize`] writes the QDQ model from the ranges.

pub mod calib;
mod consts;
mod plan;
mod rewrite;

pub use calib::{CalibrationMethod, Observer, Range};
pub use plan::{
    path_matches, Int8Error, Int8Options, Int8Plan, Int8Summary, Layer, LayerOp, Ranges, Site,
    INT8_METADATA_KEY, KEEP_FP32,
};
pub use rewrite::{prepare, quantize};
