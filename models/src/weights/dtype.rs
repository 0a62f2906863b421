//! Tensor bytes to f32 (float dtypes) or i64 (index buffers): the conversions safetensors files
//! and PyTorch checkpoints share.

use std::borrow::Cow;

use safetensors::tensor::Dtype;

/// Converts little-endian tensor bytes of a float dtype (F32, F16, BF16, F64) to f32 values,
/// borrowing aligned F32 data; `None` for other dtypes.
pub fn to_f32(dtype: Dtype, bytes: &[u8]) -> Option<Cow<'_, [f32]>> {
    fn words<const N: usize>(bytes: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
        bytes
            .chunks_exact(N)
            .map(|c| c.try_into().unwrap_or([0; N]))
    }
    Some(match dtype {
        Dtype::F32 => match bytemuck::try_cast_slice::<u8, f32>(bytes) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => Cow::Owned(words::<4>(bytes).map(f32::from_le_bytes).collect()),
        },
        Dtype::F16 => Cow::Owned(
            words::<2>(bytes)
                .map(|w| half::f16::from_le_bytes(w).to_f32())
                .collect(),
        ),
        Dtype::BF16 => Cow::Owned(
            words::<2>(bytes)
                .map(|w| half::bf16::from_le_bytes(w).to_f32())
                .collect(),
        ),
        Dtype::F64 => Cow::Owned(
            words::<8>(bytes)
                .map(|w| f64::from_le_bytes(w) as f32)
                .collect(),
        ),
        _ => return None,
    })
}

pub(crate) fn is_float(d: Dtype) -> bool {
    matches!(d, Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::F64)
}

pub(crate) fn is_int(d: Dtype) -> bool {
    matches!(d, Dtype::I64 | Dtype::I32)
}

/// Converts little-endian tensor bytes of an int64 or int32 dtype to i64 values; `None` for
/// other dtypes.
pub(crate) fn to_i64(dtype: Dtype, bytes: &[u8]) -> Option<Vec<i64>> {
    fn words<const N: usize>(bytes: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
        bytes
            .chunks_exact(N)
            .map(|c| c.try_into().unwrap_or([0; N]))
    }
    match dtype {
        Dtype::I64 => Some(words::<8>(bytes).map(i64::from_le_bytes).collect()),
        Dtype::I32 => Some(
            words::<4>(bytes)
                .map(|w| i32::from_le_bytes(w).into())
                .collect(),
        ),
        _ => None,
    }
}
