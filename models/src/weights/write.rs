//! Writing files atomically (a temporary file in the same folder, then a rename), and f32 /
//! int64 tensors as safetensors.

use std::io::Write;
use std::path::Path;

use std::collections::HashMap;

use safetensors::tensor::{Dtype, TensorView};

use super::error::WeightError;

/// The values of a tensor to write.
#[derive(Clone, Copy)]
pub enum TensorValues<'a> {
    /// float32.
    F32(&'a [f32]),
    /// int64 (index buffers).
    I64(&'a [i64]),
}

/// Writes f32 tensors to `path` atomically (temporary file in the same folder, then rename).
/// Tensor order in the file is safetensors' canonical one, so the bytes depend only on the input.
pub fn write_f32_safetensors<'a>(
    path: &Path,
    tensors: impl IntoIterator<Item = (&'a str, &'a [usize], &'a [f32])>,
    metadata: Option<(String, String)>,
) -> Result<(), WeightError> {
    write_safetensors(
        path,
        tensors
            .into_iter()
            .map(|(k, s, d)| (k, s, TensorValues::F32(d))),
        metadata,
    )
}

/// [`write_f32_safetensors`] for tensors of either element type.
pub fn write_safetensors<'a>(
    path: &Path,
    tensors: impl IntoIterator<Item = (&'a str, &'a [usize], TensorValues<'a>)>,
    metadata: Option<(String, String)>,
) -> Result<(), WeightError> {
    let io = |source| WeightError::Io {
        path: path.to_path_buf(),
        source,
    };
    let views = tensors
        .into_iter()
        .map(|(k, shape, data)| {
            let (dtype, bytes): (Dtype, &[u8]) = match data {
                TensorValues::F32(d) => (Dtype::F32, bytemuck::cast_slice(d)),
                TensorValues::I64(d) => (Dtype::I64, bytemuck::cast_slice(d)),
            };
            TensorView::new(dtype, shape.to_vec(), bytes)
                .map(|v| (k.to_string(), v))
                .map_err(|e| WeightError::Format {
                    path: path.to_path_buf(),
                    message: format!("tensor `{k}`: {e}"),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    // A single metadata entry: safetensors writes its metadata map in hash order, so more than
    // one entry would make the header bytes vary between runs.
    let meta = metadata.map(|(k, v)| HashMap::from([(k, v)]));
    let bytes = safetensors::serialize(views, meta).map_err(|e| WeightError::Format {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    write_atomically(path, &bytes).map_err(io)
}

/// A temporary-file builder for outputs: the file gets the permissions a plain
/// `File::create` would (0666 less the umask), not tempfile's private 0600, since it becomes
/// the user's output file once renamed into place.
pub fn output_tempfile_builder<'a>(prefix: &'a str) -> tempfile::Builder<'a, 'a> {
    let mut b = tempfile::Builder::new();
    b.prefix(prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(0o666));
    }
    b
}

/// Writes `bytes` to a temporary file beside `path`, then renames it into place.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomically_with(path, |w| w.write_all(bytes))
}

/// Has `write` fill a temporary file beside `path` (buffered), then renames it into place; on
/// any error the temporary file is removed and `path` is left as it was.
pub fn write_atomically_with<T>(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<T>,
) -> std::io::Result<T> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    use super::pending::{step, track, Gated};
    let (tmp, _pending) = step(|| {
        let tmp = output_tempfile_builder(".focus-export-").tempfile_in(dir)?;
        let pending = track(tmp.path());
        Ok::<_, std::io::Error>((tmp, pending))
    })?;
    let mut w = std::io::BufWriter::new(Gated(tmp));
    let out = write(&mut w)?;
    let Gated(tmp) = w.into_inner().map_err(|e| e.into_error())?;
    step(|| tmp.as_file().sync_all())?;
    step(|| tmp.persist(path)).map_err(|e| e.error)?;
    Ok(out)
}
