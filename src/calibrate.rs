//! int8 calibration: the float32 model's calibration form (every site an output) run on
//! ONNX Runtime, with our custom ops, over photos; each site's values feed an observer, whose
//! range the chosen method reads.

use std::path::PathBuf;

use focus_exporters::int8::{CalibrationMethod, Int8Plan, Observer, Ranges};

use crate::inputs::InputItem;
use crate::runtimes::ort::{OrtOptions, OrtRuntime, Provider};
use crate::runtimes::Runtime;

/// Errors of the calibration.
#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    /// Writing the calibration model to a temporary file failed.
    #[error("int8 calibration: writing the calibration model to {path}: {message}")]
    Write {
        /// The temporary file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// ONNX Runtime failed.
    #[error("int8 calibration on ONNX Runtime: {0}")]
    Runtime(String),
    /// A run did not give a site's values.
    #[error("int8 calibration: image `{image}`: the run gave no float32 values for `{tensor}`")]
    Missing {
        /// The input's name.
        image: String,
        /// The tensor.
        tensor: String,
    },
    /// No images.
    #[error("int8 calibration needs at least one image")]
    NoImages,
}

/// What calibration measured.
#[derive(Debug, Clone)]
pub struct Calibration {
    /// Range per observed tensor.
    pub ranges: Ranges,
    /// Images run.
    pub images: usize,
    /// Non-finite values seen, per tensor (left out of the ranges).
    pub non_finite: Vec<(String, u64)>,
}

/// Runs `plan`'s calibration model on `items` (ONNX Runtime CPU, `threads` intra-op threads)
/// and reads each site's range with `method`; `progress` is told after each image.
pub fn calibrate(
    plan: &Int8Plan,
    items: &[InputItem],
    method: CalibrationMethod,
    threads: Option<usize>,
    mut progress: impl FnMut(usize),
) -> Result<Calibration, CalibrationError> {
    if items.is_empty() {
        return Err(CalibrationError::NoImages);
    }
    let file = tempfile::Builder::new()
        .prefix("focus-export-calibration-")
        .suffix(".onnx")
        .tempfile()
        .map_err(|e| CalibrationError::Write {
            path: std::env::temp_dir(),
            message: e.to_string(),
        })?;
    let _pending = focus_models::weights::pending::track(file.path());
    let write_err = |e: String| CalibrationError::Write {
        path: file.path().to_path_buf(),
        message: e,
    };
    let bytes = focus_exporters::graph::to_bytes(&plan.calibration_model())
        .map_err(|e| write_err(e.to_string()))?;
    std::fs::write(file.path(), bytes).map_err(|e| write_err(e.to_string()))?;
    let opts = OrtOptions {
        provider: Provider::Cpu,
        threads,
        emulate_trt_plugins: false,
        profile: false,
    };
    let mut rt = OrtRuntime::new(file.path(), &opts)
        .map_err(|e| CalibrationError::Runtime(e.to_string()))?;
    let observed = plan.observed();
    let mut obs: Vec<Observer> = vec![Observer::default(); observed.len()];
    for (k, item) in items.iter().enumerate() {
        let out = rt
            .run(&item.tensors)
            .map_err(|e| CalibrationError::Runtime(format!("image `{}`: {e}", item.name)))?;
        for (name, o) in observed.iter().zip(obs.iter_mut()) {
            let v = out
                .get(*name)
                .or_else(|| item.tensors.get(*name))
                .and_then(|t| t.as_f32())
                .ok_or_else(|| CalibrationError::Missing {
                    image: item.name.clone(),
                    tensor: name.to_string(),
                })?;
            o.observe(v);
        }
        progress(k + 1);
    }
    let mut ranges = Ranges::new();
    let mut non_finite = Vec::new();
    for (name, o) in observed.iter().zip(&obs) {
        if let Some(r) = o.range(method) {
            ranges.insert(name.to_string(), r);
        }
        if o.non_finite() > 0 {
            non_finite.push((name.to_string(), o.non_finite()));
        }
    }
    Ok(Calibration {
        ranges,
        images: items.len(),
        non_finite,
    })
}
