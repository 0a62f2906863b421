//! Weight files: strict loading against a [`WeightSchema`] of safetensors (memory-mapped) or
//! PyTorch checkpoints ([`crate::checkpoint`]), and atomic writing. f32 tensors of a
//! safetensors file are read in place from the mapping; f16, bf16 and f64 tensors are converted
//! to f32 when a tensor is read, so the file is never copied whole into memory.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::checkpoint::{CheckpointOptions, PthCheckpoint};
use crate::schema::{shape_to_string, Param, WeightSchema};

/// Errors of reading or writing weight files.
#[derive(Debug, thiserror::Error)]
pub enum WeightError {
    /// The file could not be opened, mapped or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a readable safetensors file.
    #[error("{path}: not a valid safetensors file: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// The tensors do not match the schema; every problem is listed.
    #[error("{path}: the weights do not match the {config} schema ({} problem{}):\n{}",
        problems.len(), if problems.len() == 1 { "" } else { "s" }, ProblemList(problems))]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// Config name whose schema was used.
        config: String,
        /// Every problem found.
        problems: Vec<Problem>,
    },
    /// A PyTorch checkpoint that cannot be read, or is refused.
    #[error("{path}: {message}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong and where.
        message: String,
    },
    /// A tensor was asked for that the file does not provide (a programming error upstream).
    #[error("{path}: no tensor for key `{key}`")]
    NoSuchTensor {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
}

/// One way a weight file can disagree with the schema.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// Neither the key nor any of its aliases is in the file.
    Missing {
        /// Canonical key.
        key: String,
        /// Expected shape.
        shape: Vec<usize>,
    },
    /// The key is not part of the schema.
    Unexpected {
        /// The key.
        key: String,
        /// Its shape in the file.
        shape: Vec<usize>,
    },
    /// The shape differs from the schema's.
    WrongShape {
        /// The key as found in the file.
        key: String,
        /// Expected shape.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// The dtype is not a float type we read.
    WrongDtype {
        /// The key.
        key: String,
        /// Dtype in the file.
        found: String,
    },
    /// A state-dict entry holds something other than a tensor.
    NotATensor {
        /// The key.
        key: String,
        /// What it holds.
        found: String,
    },
    /// An alias and its canonical key are both present with different values.
    AliasMismatch {
        /// The alias key.
        alias: String,
        /// The canonical key.
        canonical: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing { key, shape } => {
                write!(f, "missing key `{key}` (expected shape [{}])", shape_to_string(shape))
            }
            Problem::Unexpected { key, shape } => write!(
                f,
                "unexpected key `{key}` (shape [{}]) is not part of the model",
                shape_to_string(shape)
            ),
            Problem::WrongShape { key, expected, found } => write!(
                f,
                "wrong shape for `{key}`: expected [{}], found [{}]",
                shape_to_string(expected),
                shape_to_string(found)
            ),
            Problem::WrongDtype { key, found } => write!(
                f,
                "wrong dtype for `{key}`: found {found}, expected a float type (F32, F16, BF16 or F64)"
            ),
            Problem::NotATensor { key, found } => {
                write!(f, "`{key}` holds {found}, expected a tensor")
            }
            Problem::AliasMismatch { alias, canonical } => write!(
                f,
                "`{alias}` and `{canonical}` name the same tensor but hold different values"
            ),
        }
    }
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - {p}")?;
        }
        Ok(())
    }
}

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
}

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

fn is_float(d: Dtype) -> bool {
    matches!(d, Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::F64)
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

    /// State-dict entries that are not tensors (a PyTorch checkpoint's), with what they hold.
    pub fn non_tensors(&self) -> &[(String, String)] {
        match self {
            WeightFile::Safetensors(_) => &[],
            WeightFile::Pytorch(c) => c.non_tensors(),
        }
    }
}

/// Weights validated against a schema: every canonical key resolves to a tensor in the file.
pub struct Weights {
    file: WeightFile,
    /// canonical key → key present in the file (itself or an alias).
    source: HashMap<String, String>,
}

impl Weights {
    /// Opens `path` (safetensors or a PyTorch checkpoint's trained weights) and checks it
    /// strictly against `schema`; `config` names the schema in errors.
    pub fn load(path: &Path, schema: &WeightSchema, config: &str) -> Result<Self, WeightError> {
        Self::load_with(path, schema, config, CheckpointOptions::default())
    }

    /// [`Weights::load`] with options for PyTorch checkpoints (e.g. the EMA weights).
    pub fn load_with(
        path: &Path,
        schema: &WeightSchema,
        config: &str,
        options: CheckpointOptions,
    ) -> Result<Self, WeightError> {
        let file = WeightFile::open(path, options)?;
        let (source, problems) = check(&file, schema)?;
        if !problems.is_empty() {
            return Err(WeightError::Mismatch {
                path: path.to_path_buf(),
                config: config.to_string(),
                problems,
            });
        }
        Ok(Weights { file, source })
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
        if !is_float(dtype) {
            problems.push(Problem::WrongDtype {
                key: key.to_string(),
                found: format!("{dtype:?}"),
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

/// Writes f32 tensors to `path` atomically (temporary file in the same folder, then rename).
/// Tensor order in the file is safetensors' canonical one, so the bytes depend only on the input.
pub fn write_f32_safetensors<'a>(
    path: &Path,
    tensors: impl IntoIterator<Item = (&'a str, &'a [usize], &'a [f32])>,
    metadata: Option<(String, String)>,
) -> Result<(), WeightError> {
    let io = |source| WeightError::Io {
        path: path.to_path_buf(),
        source,
    };
    let views = tensors
        .into_iter()
        .map(|(k, shape, data)| {
            TensorView::new(Dtype::F32, shape.to_vec(), bytemuck::cast_slice(data))
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
    let tmp = output_tempfile_builder(".focus-export-").tempfile_in(dir)?;
    let mut w = std::io::BufWriter::new(tmp);
    let out = write(&mut w)?;
    let tmp = w.into_inner().map_err(|e| e.into_error())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(out)
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
