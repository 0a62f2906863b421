//! PyTorch checkpoints (`.pth`, and `.zip` release archives holding one), read without executing
//! anything: `pytorch-reader` parses the pickle as data (tensor rebuilds and containers only),
//! and this module refuses any other call a file asks for, picks the state dict out of the
//! layouts training code writes (detectron2's `{"model": …, "trainer": …}`, a bare state dict,
//! `{"state_dict": …}`, EMA weights in `ema_state`), strips `module.` when every key has it, and
//! reads tensors (views gathered, f16/bf16/f64 converted to f32) one at a time.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use pytorch_reader::{DType, PickleValue, PytorchReader};
use safetensors::tensor::Dtype;

use crate::weights::dtype::to_f32;
use crate::weights::WeightError;

/// Calls a checkpoint may hold besides tensors and containers: plain data types that carry no
/// behaviour (counters and default dicts of scheduler states, numpy scalars and dtypes, torch
/// dtypes, sizes and devices). They are kept as opaque values and never called; any other call
/// is refused.
const HARMLESS_CALLS: [&str; 8] = [
    "collections.Counter",
    "collections.defaultdict",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.dtype",
    "torch.device",
    "torch.Size",
    "torch.TypedStorage",
];

/// Top-level keys that hold the model's state dict, in order of preference.
const STATE_DICT_KEYS: [&str; 2] = ["model", "state_dict"];

/// The top-level key of detrex's EMA weights.
pub const EMA_KEY: &str = "ema_state";

/// The prefix DataParallel and DistributedDataParallel put on every key.
const MODULE_PREFIX: &str = "module.";

/// A release archive's checkpoint may be at most this many times larger than the archive
/// (weights barely compress; a larger declared size is a zip bomb).
const MAX_EXPANSION: u64 = 16;

/// How to read a checkpoint.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckpointOptions {
    /// Take the EMA weights (`ema_state`) instead of the trained ones.
    pub ema: bool,
}

/// A tensor of the state dict: its dtype as safetensors names it, shape, and reader.
struct Entry {
    dtype: Dtype,
    shape: Vec<usize>,
    tensor: pytorch_reader::Tensor,
}

/// A PyTorch checkpoint's state dict, opened for reading.
pub struct PthCheckpoint {
    path: PathBuf,
    entries: BTreeMap<String, Entry>,
    non_tensors: Vec<(String, String)>,
    layout: String,
    unread_ema: bool,
    // The checkpoint extracted from a release archive, deleted when this is dropped.
    _extracted: Option<tempfile::TempPath>,
}

fn dtype_of(d: DType) -> Dtype {
    match d {
        DType::F64 => Dtype::F64,
        DType::F32 => Dtype::F32,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
        DType::I64 => Dtype::I64,
        DType::I32 => Dtype::I32,
        DType::I16 => Dtype::I16,
        DType::I8 => Dtype::I8,
        DType::U64 => Dtype::U64,
        DType::U32 => Dtype::U32,
        DType::U16 => Dtype::U16,
        DType::U8 => Dtype::U8,
        DType::Bool => Dtype::BOOL,
    }
}

/// What a pickle value is, for messages.
fn describe(v: &PickleValue) -> String {
    match v {
        PickleValue::None => "None".into(),
        PickleValue::Bool(b) => format!("a bool ({b})"),
        PickleValue::Int(i) => format!("an int ({i})"),
        PickleValue::Float(f) => format!("a float ({f})"),
        PickleValue::String(s) => format!("a string ({s:?})"),
        PickleValue::List(l) => format!("a list of {} item(s)", l.len()),
        PickleValue::Dict(d) => format!("a dict of {} item(s)", d.len()),
        PickleValue::Bytes(b) => format!("{} bytes", b.len()),
        PickleValue::Unsupported(t) => format!("a `{t}` object"),
    }
}

/// Walks the whole pickle and returns the first call or class reference that is neither a
/// tensor nor harmless data, with its dotted path.
fn first_forbidden(v: &PickleValue, path: &str) -> Option<(String, String)> {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match v {
        PickleValue::Unsupported(t) => {
            let allowed = t == "torch.Tensor"
                || t == "torch.UntypedStorage"
                || HARMLESS_CALLS.contains(&t.as_str())
                || (t.starts_with("torch.") && is_torch_dtype(&t["torch.".len()..]));
            (!allowed).then(|| (path.to_string(), t.clone()))
        }
        PickleValue::List(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, x)| first_forbidden(x, &join(&i.to_string()))),
        PickleValue::Dict(d) => {
            let mut keys: Vec<&String> = d.keys().collect();
            keys.sort();
            keys.into_iter()
                .find_map(|k| first_forbidden(&d[k], &join(k)))
        }
        _ => None,
    }
}

fn is_torch_dtype(name: &str) -> bool {
    matches!(
        name,
        "float16"
            | "float32"
            | "float64"
            | "bfloat16"
            | "half"
            | "float"
            | "double"
            | "int8"
            | "int16"
            | "int32"
            | "int64"
            | "uint8"
            | "bool"
            | "long"
            | "int"
    )
}

/// The leaves of a state dict that are not tensors, with their dotted keys.
fn non_tensor_leaves(v: &PickleValue, path: &str, out: &mut Vec<(String, String)>) {
    match v {
        PickleValue::Dict(d) => {
            for (k, x) in d {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                non_tensor_leaves(x, &p, out);
            }
        }
        PickleValue::Unsupported(t) if t == "torch.Tensor" => {}
        other => out.push((path.to_string(), describe(other))),
    }
}

fn bad(path: &Path, message: impl Into<String>) -> WeightError {
    WeightError::Checkpoint {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Whether a file is a zip archive (a torch ≥ 1.6 checkpoint, or a release archive).
fn is_zip(path: &Path) -> Result<bool, WeightError> {
    let mut head = [0u8; 4];
    let mut f = std::fs::File::open(path).map_err(|source| WeightError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let n = f.read(&mut head).map_err(|source| WeightError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(n == 4 && (head == *b"PK\x03\x04" || head == *b"PK\x05\x06"))
}

/// For a release archive (a zip that is not itself a checkpoint): the one `.pth`/`.pt` it
/// holds, extracted to a temporary file. `None` for a torch checkpoint zip.
fn extract_release(path: &Path) -> Result<Option<tempfile::TempPath>, WeightError> {
    let file = std::fs::File::open(path).map_err(|source| WeightError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let archive_len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut zip = zip::ZipArchive::new(file).map_err(|e| {
        bad(
            path,
            format!("not a readable zip archive ({e}): truncated or damaged?"),
        )
    })?;
    let names: Vec<String> = zip.file_names().map(str::to_string).collect();
    if names
        .iter()
        .any(|n| n == "data.pkl" || n.ends_with("/data.pkl"))
    {
        return Ok(None);
    }
    let checkpoints: Vec<&String> = names
        .iter()
        .filter(|n| n.ends_with(".pth") || n.ends_with(".pt"))
        .collect();
    let [inner] = checkpoints.as_slice() else {
        return Err(bad(
            path,
            format!(
                "a zip archive must hold exactly one .pth (or .pt) checkpoint, this one holds {}: {}",
                checkpoints.len(),
                names.join(", ")
            ),
        ));
    };
    let mut entry = zip
        .by_name(inner)
        .map_err(|e| bad(path, format!("`{inner}`: {e}")))?;
    let declared = entry.size();
    if declared > archive_len.saturating_mul(MAX_EXPANSION) {
        return Err(bad(
            path,
            format!(
                "`{inner}` declares {declared} bytes, more than {MAX_EXPANSION}× the {archive_len}-byte \
                 archive: refused as a zip bomb"
            ),
        ));
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".focus-export-")
        .suffix(".pth")
        .tempfile()
        .map_err(|source| WeightError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    // Never more than declared: a lying header cannot fill the disk.
    let copied = std::io::copy(&mut (&mut entry).take(declared + 1), tmp.as_file_mut())
        .map_err(|e| bad(path, format!("`{inner}`: {e}")))?;
    if copied != declared {
        return Err(bad(
            path,
            format!("`{inner}` holds {copied} bytes, its header declares {declared}"),
        ));
    }
    Ok(Some(tmp.into_temp_path()))
}

impl PthCheckpoint {
    /// Opens a `.pth` (or a `.zip` release archive holding one) and finds its state dict.
    pub fn open(path: &Path, options: CheckpointOptions) -> Result<Self, WeightError> {
        let extracted = if is_zip(path)? {
            extract_release(path)?
        } else {
            None
        };
        let source: &Path = extracted.as_deref().unwrap_or(path);
        let what = |e: pytorch_reader::PytorchError| {
            bad(path, format!("not a readable PyTorch checkpoint: {e}"))
        };
        let root = PytorchReader::read_pickle_data(source, None).map_err(what)?;
        if let Some((at, call)) = first_forbidden(&root, "") {
            let at = if at.is_empty() {
                "the top level".into()
            } else {
                format!("`{at}`")
            };
            return Err(bad(
                path,
                format!(
                    "{at} is a call of `{call}`: a checkpoint holds tensors and plain data, so \
                     this file is refused (nothing in it was run)"
                ),
            ));
        }
        let top: Vec<String> = match &root {
            PickleValue::Dict(d) => {
                let mut k: Vec<String> = d.keys().cloned().collect();
                k.sort();
                k
            }
            other => {
                return Err(bad(
                    path,
                    format!("the checkpoint is {}, expected a dict", describe(other)),
                ))
            }
        };
        let is_dict = |k: &str| matches!(&root, PickleValue::Dict(d) if matches!(d.get(k), Some(PickleValue::Dict(_))));
        let key: Option<&str> = if options.ema {
            if !is_dict(EMA_KEY) {
                return Err(bad(
                    path,
                    format!(
                        "--ema: the checkpoint has no `{EMA_KEY}` (top-level keys: {}): it holds no \
                         EMA weights; leave out --ema to read the trained weights",
                        top.join(", ")
                    ),
                ));
            }
            Some(EMA_KEY)
        } else {
            STATE_DICT_KEYS.into_iter().find(|k| is_dict(k))
        };
        let state = match (&root, key) {
            (PickleValue::Dict(d), Some(k)) => &d[k],
            (r, _) => r,
        };
        let mut non_tensors = Vec::new();
        non_tensor_leaves(state, "", &mut non_tensors);
        let reader = match key {
            Some(k) => PytorchReader::with_top_level_key(source, k),
            None => PytorchReader::new(source),
        }
        .map_err(what)?;
        let tensors = reader.into_tensors();
        let strip = !tensors.is_empty() && tensors.keys().all(|k| k.starts_with(MODULE_PREFIX));
        let rename = |k: &str| {
            if strip {
                k[MODULE_PREFIX.len()..].to_string()
            } else {
                k.to_string()
            }
        };
        for (k, _) in non_tensors.iter_mut() {
            if strip {
                if let Some(s) = k.strip_prefix(MODULE_PREFIX) {
                    *k = s.to_string();
                }
            }
        }
        non_tensors.sort();
        let entries: BTreeMap<String, Entry> = tensors
            .into_iter()
            .map(|(k, t)| {
                (
                    rename(&k),
                    Entry {
                        dtype: dtype_of(t.dtype()),
                        shape: t.shape().to_vec(),
                        tensor: t,
                    },
                )
            })
            .collect();
        let mut layout = match key {
            Some(EMA_KEY) => format!("EMA weights (`{EMA_KEY}`)"),
            Some(k) => format!("the state dict under `{k}`"),
            None => "a bare state dict".to_string(),
        };
        let others: Vec<&str> = top
            .iter()
            .map(String::as_str)
            .filter(|k| Some(*k) != key && key.is_some())
            .collect();
        if !others.is_empty() {
            layout += &format!(" (also in the file, not read: {})", others.join(", "));
        }
        if strip {
            layout += &format!(", `{MODULE_PREFIX}` removed from every key");
        }
        if extracted.is_some() {
            layout += ", from the archive's one checkpoint";
        }
        Ok(PthCheckpoint {
            path: path.to_path_buf(),
            entries,
            non_tensors,
            layout,
            unread_ema: key != Some(EMA_KEY) && is_dict(EMA_KEY),
            _extracted: extracted,
        })
    }

    /// The file as the user named it.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the state dict was found, in words (for notes).
    pub fn layout(&self) -> &str {
        &self.layout
    }

    /// Whether the file also holds EMA weights that were not read.
    pub fn has_unread_ema(&self) -> bool {
        self.unread_ema
    }

    /// Tensor names with dtype and shape, sorted by name.
    pub fn tensors(&self) -> impl Iterator<Item = (&str, Dtype, &[usize])> {
        self.entries
            .iter()
            .map(|(k, e)| (k.as_str(), e.dtype, e.shape.as_slice()))
    }

    /// State-dict entries that are not tensors: (key, what they hold).
    pub fn non_tensors(&self) -> &[(String, String)] {
        &self.non_tensors
    }

    /// A tensor's values as f32 (views gathered, other float types converted). `None` for
    /// non-float dtypes.
    pub fn read_f32(&self, key: &str) -> Result<Option<Cow<'_, [f32]>>, WeightError> {
        let (dtype, bytes) = self.read_bytes(key)?;
        Ok(to_f32(dtype, &bytes).map(|v| Cow::Owned(v.into_owned())))
    }

    /// A tensor's dtype and its elements' little-endian bytes in row-major order (views
    /// gathered).
    pub fn read_bytes(&self, key: &str) -> Result<(Dtype, Cow<'_, [u8]>), WeightError> {
        let e = self
            .entries
            .get(key)
            .ok_or_else(|| WeightError::NoSuchTensor {
                path: self.path.clone(),
                key: key.to_string(),
            })?;
        let bytes = e
            .tensor
            .read()
            .map_err(|err| bad(&self.path, format!("tensor `{key}`: {err}")))?;
        Ok((e.dtype, Cow::Owned(bytes)))
    }
}
