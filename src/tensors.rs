//! Host tensors: the exchange format between runtimes, the CLI and the goldens, read from and
//! written to safetensors files.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use focus_models::finite::NonFinite;

/// Errors of reading or writing tensor files.
#[derive(Debug, thiserror::Error)]
pub enum TensorFileError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid safetensors, or a tensor has an unsupported dtype.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Values of a host tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum HostData {
    /// float32 (f16, bf16 and f64 files are converted).
    F32(Vec<f32>),
    /// int64 (int32 files are widened).
    I64(Vec<i64>),
    /// uint8 (images).
    U8(Vec<u8>),
}

/// A dense row-major tensor in host memory.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Values.
    pub data: HostData,
}

impl HostTensor {
    /// A float32 tensor.
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Self {
        HostTensor {
            shape,
            data: HostData::F32(data),
        }
    }

    /// An int64 tensor.
    pub fn i64(shape: Vec<usize>, data: Vec<i64>) -> Self {
        HostTensor {
            shape,
            data: HostData::I64(data),
        }
    }

    /// The float32 values, if this is a float tensor.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            HostData::F32(v) => Some(v),
            _ => None,
        }
    }

    /// The int64 values, if this is an integer tensor.
    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            HostData::I64(v) => Some(v),
            _ => None,
        }
    }

    /// Its NaN and ±Inf values (float tensors); `None` when every value is finite.
    pub fn non_finite(&self) -> Option<NonFinite> {
        NonFinite::scan(self.as_f32()?, &self.shape)
    }

    fn dtype_and_bytes(&self) -> (Dtype, Vec<u8>) {
        match &self.data {
            HostData::F32(v) => (Dtype::F32, bytemuck::cast_slice(v).to_vec()),
            HostData::I64(v) => (Dtype::I64, bytemuck::cast_slice(v).to_vec()),
            HostData::U8(v) => (Dtype::U8, v.clone()),
        }
    }
}

/// Named tensors, sorted by name.
pub type TensorMap = BTreeMap<String, HostTensor>;

/// The tensors of `tensors` that hold NaN or ±Inf, by name.
pub fn non_finite(tensors: &TensorMap) -> Vec<(&str, NonFinite)> {
    tensors
        .iter()
        .filter_map(|(k, t)| Some((k.as_str(), t.non_finite()?)))
        .collect()
}

/// Reads every tensor of a safetensors file.
pub fn read_tensors(path: &Path) -> Result<TensorMap, TensorFileError> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| TensorFileError::Io {
        path: p.clone(),
        source,
    })?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| TensorFileError::Format {
        path: p.clone(),
        message: format!("not a valid safetensors file: {e}"),
    })?;
    let mut out = TensorMap::new();
    for (name, view) in st.iter() {
        let b = view.data();
        let data = match focus_models::weights::to_f32(view.dtype(), b) {
            Some(v) => HostData::F32(v.into_owned()),
            None => match view.dtype() {
            Dtype::I64 => HostData::I64(
                b.chunks_exact(8)
                    .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
            ),
            Dtype::I32 => HostData::I64(b.chunks_exact(4).map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect()),
            Dtype::U8 => HostData::U8(b.to_vec()),
            other => {
                return Err(TensorFileError::Format {
                    path: p,
                    message: format!("tensor `{name}` has dtype {other:?}; expected a float, int64/int32 or uint8 tensor"),
                })
            }
            },
        };
        out.insert(
            name.to_string(),
            HostTensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok(out)
}

/// Writes tensors to a safetensors file atomically (temporary file, then rename); the bytes
/// depend only on the tensors.
pub fn write_tensors(path: &Path, tensors: &TensorMap) -> Result<(), TensorFileError> {
    let p = path.display().to_string();
    let encoded: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(k, t)| {
            let (d, b) = t.dtype_and_bytes();
            (k.clone(), d, t.shape.clone(), b)
        })
        .collect();
    let views = encoded
        .iter()
        .map(|(k, d, s, b)| {
            TensorView::new(*d, s.clone(), b)
                .map(|v| (k.clone(), v))
                .map_err(|e| TensorFileError::Format {
                    path: p.clone(),
                    message: format!("tensor `{k}`: {e}"),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bytes = safetensors::serialize(views, None).map_err(|e| TensorFileError::Format {
        path: p.clone(),
        message: e.to_string(),
    })?;
    focus_models::weights::write_atomically(path, &bytes)
        .map_err(|source| TensorFileError::Io { path: p, source })
}
