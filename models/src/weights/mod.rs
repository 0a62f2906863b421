//! Weight files: strict loading against a [`WeightSchema`] of safetensors (memory-mapped) or
//! PyTorch checkpoints ([`crate::checkpoint`]), and atomic writing. f32 tensors of a
//! safetensors file are read in place from the mapping; f16, bf16 and f64 tensors are converted
//! to f32 when a tensor is read, so the file is never copied whole into memory.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::tensor::{Dtype, SafeTensors};

use crate::checkpoint::{CheckpointOptions, PthCheckpoint};
use crate::finite::NonFinite;
use crate::schema::{Param, WeightSchema};
use dtype::{is_float, is_int};
pub(crate) mod dtype;
mod error;
pub mod pending;
mod write;

pub use dtype::to_f32;
pub use error::{Problem, WeightError};
pub use write::{
    output_tempfile_builder, write_atomically, write_atomically_with, write_f32_safetensors,
    write_safetensors, TensorValues,
};

/// Where one tensor lives in the mapping.
struct TensorEntry {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: std::ops::Range<usize>,
}

/// A memory-mapped safetensors file and its tensor index, before any schema check.
pub struct SafetensorsFile {
    path: PathBuf,
    mmap: Mmap,
    infos: BTreeMap<String, TensorEntry>,
    metadata: BTreeMap<String, String>,
}

impl SafetensorsFile {
    /// Maps `path` and parses its header.
    pub fn open(path: &Path) -> Result<Self, WeightError> {
        let io = |source| WeightError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        // SAFETY: the mapping is read-only; like every reader of mapped files we rely on nobody
        // truncating the file while we read it.
        let mmap = unsafe { Mmap::map(&file) }.map_err(io)?;
        let format = |e: safetensors::SafeTensorError| WeightError::Format {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        // `deserialize` validates the header (offsets inside the file, no overlaps).
        SafeTensors::deserialize(&mmap).map_err(format)?;
        let (header_len, meta) = SafeTensors::read_metadata(&mmap).map_err(format)?;
        let data_start = 8 + header_len;
        let infos = meta
            .tensors()
            .into_iter()
            .map(|(k, info)| {
                let (a, b) = info.data_offsets;
                let entry = TensorEntry {
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    bytes: data_start + a..data_start + b,
                };
                (k, entry)
            })
            .collect();
        let metadata = meta
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        Ok(SafetensorsFile {
            path: path.to_path_buf(),
            mmap,
            infos,
            metadata,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tensor names with dtype and shape, sorted by name.
    pub fn tensors(&self) -> impl Iterator<Item = (&str, Dtype, &[usize])> {
        self.infos
            .iter()
            .map(|(k, e)| (k.as_str(), e.dtype, e.shape.as_slice()))
    }

    /// The `__metadata__` string map.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// A tensor's values as f32: borrowed from the mapping when stored as aligned f32, converted
    /// otherwise. `None` for non-float dtypes.
    pub fn read_f32(&self, key: &str) -> Result<Option<Cow<'_, [f32]>>, WeightError> {
        let e = self
            .infos
            .get(key)
            .ok_or_else(|| WeightError::NoSuchTensor {
                path: self.path.clone(),
                key: key.to_string(),
            })?;
        Ok(to_f32(e.dtype, &self.mmap[e.bytes.clone()]))
    }

    /// A tensor's dtype and raw little-endian bytes.
    pub fn read_bytes(&self, key: &str) -> Result<(Dtype, Cow<'_, [u8]>), WeightError> {
        let e = self
            .infos
            .get(key)
            .ok_or_else(|| WeightError::NoSuchTensor {
                path: self.path.clone(),
                key: key.to_string(),
            })?;
        Ok((e.dtype, Cow::Borrowed(&self.mmap[e.bytes.clone()])))
    }
}

/// A weight file of either kind, before any schema check.
pub enum WeightFile {
    /// A safetensors file (memory-mapped).
    Safetensors(SafetensorsFile),
    /// A PyTorch checkpoint (`.pth`, or a `.zip` holding one).
    Pytorch(PthCheckpoint),
}

/// Whether a file's first bytes are a safetensors header (a little-endian JSON length, then
/// `{`).
fn looks_like_safetensors(path: &Path) -> bool {
    let mut head = [0u8; 9];
    File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok()
        && head[8] == b'{'
        && u64::from_le_bytes([
            head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7],
        ]) < 100_000_000
}

impl WeightFile {
    /// Opens `path`: safetensors by extension (or, for other extensions, by its header),
    /// anything else as a PyTorch checkpoint.
    pub fn open(path: &Path, options: CheckpointOptions) -> Result<Self, WeightError> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let safetensors = match ext.as_str() {
            "safetensors" => true,
            "pth" | "pt" | "zip" | "pkl" | "bin" | "ckpt" => false,
            _ => looks_like_safetensors(path),
        };
        Ok(if safetensors {
            WeightFile::Safetensors(SafetensorsFile::open(path)?)
        } else {
            WeightFile::Pytorch(PthCheckpoint::open(path, options)?)
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        match self {
            WeightFile::Safetensors(f) => f.path(),
            WeightFile::Pytorch(c) => c.path(),
        }
    }

    /// Tensor names with dtype and shape, sorted by name.
    pub fn tensors(&self) -> Box<dyn Iterator<Item = (&str, Dtype, &[usize])> + '_> {
        match self {
            WeightFile::Safetensors(f) => Box::new(f.tensors()),
            WeightFile::Pytorch(c) => Box::new(c.tensors()),
        }
    }

    /// A tensor's values as f32; `None` for non-float dtypes.
    pub fn read_f32(&self, key: &str) -> Result<Option<Cow<'_, [f32]>>, WeightError> {
        match self {
            WeightFile::Safetensors(f) => f.read_f32(key),
            WeightFile::Pytorch(c) => c.read_f32(key),
        }
    }

    /// An integer tensor's values as i64 (int64 or int32 stored); `None` for other dtypes.
    pub fn read_i64(&self, key: &str) -> Result<Option<Vec<i64>>, WeightError> {
        let (dtype, bytes) = match self {
            WeightFile::Safetensors(f) => f.read_bytes(key)?,
            WeightFile::Pytorch(c) => c.read_bytes(key)?,
        };
        Ok(dtype::to_i64(dtype, &bytes))
    }

    /// State-dict entries that are not tensors (a PyTorch checkpoint's), with what they hold.
    pub fn non_tensors(&self) -> &[(String, String)] {
        match self {
            WeightFile::Safetensors(_) => &[],
            WeightFile::Pytorch(c) => c.non_tensors(),
        }
    }
}

/// How [`Weights::load_with`] reads a file and what it accepts.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// PyTorch checkpoints: which weights to take (e.g. the EMA ones).
    pub checkpoint: CheckpointOptions,
    /// Accept tensors holding NaN or ±Inf. Refused by default: every output of a model built
    /// from them is NaN, which a user would otherwise learn only from the detections.
    pub allow_nonfinite: bool,
}

/// Weights validated against a schema: every canonical key resolves to a tensor in the file.
pub struct Weights {
    file: WeightFile,
    /// canonical key → key present in the file (itself or an alias).
    source: HashMap<String, String>,
}

impl Weights {
    /// Opens `path` (safetensors or a PyTorch checkpoint's trained weights) and checks it
    /// strictly against `schema` (names, shapes, dtypes, and finite values); `config` names
    /// the schema in errors.
    pub fn load(path: &Path, schema: &WeightSchema, config: &str) -> Result<Self, WeightError> {
        Self::load_with(path, schema, config, LoadOptions::default())
    }

    /// [`Weights::load`] with options (the EMA weights of a checkpoint, non-finite values).
    pub fn load_with(
        path: &Path,
        schema: &WeightSchema,
        config: &str,
        options: LoadOptions,
    ) -> Result<Self, WeightError> {
        let file = WeightFile::open(path, options.checkpoint)?;
        let (source, problems) = check(&file, schema)?;
        if !problems.is_empty() {
            return Err(WeightError::Mismatch {
                path: path.to_path_buf(),
                config: config.to_string(),
                problems,
            });
        }
        let weights = Weights { file, source };
        if !options.allow_nonfinite {
            let tensors = weights.non_finite(schema)?;
            if !tensors.is_empty() {
                return Err(WeightError::NonFinite {
                    path: path.to_path_buf(),
                    tensors,
                });
            }
        }
        Ok(weights)
    }

    /// Every float tensor of the schema that holds NaN or ±Inf, by its key in the file (in
    /// key order), with its counts and first index.
    pub fn non_finite(
        &self,
        schema: &WeightSchema,
    ) -> Result<Vec<(String, NonFinite)>, WeightError> {
        let mut found = Vec::new();
        for p in schema.canonical().filter(|e| e.is_float()) {
            let Some(key) = self.source.get(&p.key) else {
                continue;
            };
            if let Some(values) = self.file.read_f32(key)? {
                if let Some(n) = NonFinite::scan(&values, &p.shape) {
                    found.push((key.clone(), n));
                }
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found)
    }

    /// The underlying file.
    pub fn file(&self) -> &WeightFile {
        &self.file
    }

    /// A tensor's values as f32 (borrowed from the mapping when possible), by its schema entry.
    pub fn get(&self, p: &Param) -> Result<Cow<'_, [f32]>, WeightError> {
        let missing = || WeightError::NoSuchTensor {
            path: self.file.path().to_path_buf(),
            key: p.key.clone(),
        };
        let key = self.source.get(&p.key).ok_or_else(missing)?;
        self.file.read_f32(key)?.ok_or_else(missing)
    }
}

/// Compares a file with the schema; returns the canonical → file-key map and every problem.
pub fn check(
    file: &WeightFile,
    schema: &WeightSchema,
) -> Result<(HashMap<String, String>, Vec<Problem>), WeightError> {
    let mut problems = Vec::new();
    for (key, found) in file.non_tensors() {
        problems.push(Problem::NotATensor {
            key: key.clone(),
            found: found.clone(),
        });
    }
    // Keys of the file that stand for each canonical key, in file-name order.
    let mut present: HashMap<&str, Vec<&str>> = HashMap::new();
    for (key, dtype, shape) in file.tensors() {
        let Some(entry) = schema.get(key) else {
            problems.push(Problem::Unexpected {
                key: key.to_string(),
                shape: shape.to_vec(),
            });
            continue;
        };
        if is_float(dtype) != entry.is_float() || !(is_float(dtype) || is_int(dtype)) {
            problems.push(Problem::WrongDtype {
                key: key.to_string(),
                found: format!("{dtype:?}"),
                integer: !entry.is_float(),
            });
        } else if shape != entry.shape.as_slice() {
            problems.push(Problem::WrongShape {
                key: key.to_string(),
                expected: entry.shape.clone(),
                found: shape.to_vec(),
            });
        } else if let Some(c) = schema.canonical_of(key) {
            present.entry(c).or_default().push(key);
        }
    }
    let mut source = HashMap::new();
    for e in schema.canonical() {
        match present.get(e.key.as_str()) {
            None => {
                // Report a missing key only when no variant of it is present at all (a wrong
                // shape, dtype or kind was reported already).
                let reported = file
                    .tensors()
                    .map(|(k, _, _)| k)
                    .chain(file.non_tensors().iter().map(|(k, _)| k.as_str()))
                    .any(|k| schema.canonical_of(k) == Some(e.key.as_str()));
                if !reported {
                    problems.push(Problem::Missing {
                        key: e.key.clone(),
                        shape: e.shape.clone(),
                    });
                }
            }
            Some(keys) if !e.is_float() => {
                // An index buffer: the values the model defines, and nothing else.
                let key = keys[0];
                let found = file.read_i64(key)?.unwrap_or_default();
                if let Some(expected) = e.fixed_value() {
                    if let Some(i) =
                        (0..expected.len()).find(|&i| found.get(i) != Some(&expected[i]))
                    {
                        problems.push(Problem::WrongValue {
                            key: key.to_string(),
                            index: i,
                            found: found.get(i).copied(),
                            expected: expected[i],
                        });
                    }
                }
                source.insert(e.key.clone(), key.to_string());
            }
            Some(keys) => {
                // Prefer the canonical name; otherwise the first alias.
                let first = keys.iter().find(|k| **k == e.key).unwrap_or(&keys[0]);
                let reference = file.read_f32(first)?;
                for other in keys.iter().filter(|k| *k != first) {
                    if file.read_f32(other)? != reference {
                        let (alias, canonical) = if *first == e.key {
                            (other.to_string(), e.key.clone())
                        } else {
                            (other.to_string(), first.to_string())
                        };
                        problems.push(Problem::AliasMismatch { alias, canonical });
                    }
                }
                source.insert(e.key.clone(), first.to_string());
            }
        }
    }
    Ok((source, problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn atomic_writes_get_the_permissions_of_a_plain_create() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (ours, plain) = (dir.path().join("a.onnx"), dir.path().join("b.onnx"));
        write_atomically(&ours, b"x").unwrap();
        std::fs::write(&plain, b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&ours), mode(&plain));
        assert_eq!(std::fs::read(&ours).unwrap(), b"x");
    }

    #[test]
    fn converts_half_types_and_f64() {
        let h: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect();
        assert_eq!(to_f32(Dtype::F16, &h).unwrap().as_ref(), &[1.5, -2.0]);
        let b: Vec<u8> = [0.25f32, 3.0]
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect();
        assert_eq!(to_f32(Dtype::BF16, &b).unwrap().as_ref(), &[0.25, 3.0]);
        let d: Vec<u8> = [0.1f64].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(to_f32(Dtype::F64, &d).unwrap().as_ref(), &[0.1f32]);
        assert!(to_f32(Dtype::I64, &[0; 8]).is_none());
    }
}
