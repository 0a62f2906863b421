//! What can go wrong reading or writing a weight file, and the schema problems listed in a
//! mismatch.

use std::fmt;
use std::path::PathBuf;

use crate::finite::NonFinite;
use crate::schema::shape_to_string;

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
    /// Tensors hold NaN or ±Inf (a model built from them computes NaN); every one is listed.
    #[error("{path}: {} tensor{} hold{} NaN or infinite values, and a model built from them \
        computes NaN; refused (--allow-nonfinite loads them anyway):\n{}",
        tensors.len(), if tensors.len() == 1 { "" } else { "s" },
        if tensors.len() == 1 { "s" } else { "" }, NonFiniteList(tensors))]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// Each tensor holding non-finite values (its key in the file), in key order.
        tensors: Vec<(String, NonFinite)>,
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
    /// The dtype is not one we read for this tensor (a float type, or an integer type for
    /// index buffers).
    WrongDtype {
        /// The key.
        key: String,
        /// Dtype in the file.
        found: String,
        /// Whether the schema expects integers (an index buffer).
        integer: bool,
    },
    /// An index buffer holds other values than the model defines.
    WrongValue {
        /// The key.
        key: String,
        /// The first differing element (row-major).
        index: usize,
        /// The value there (`None`: the tensor is shorter).
        found: Option<i64>,
        /// The defined value.
        expected: i64,
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
            Problem::WrongDtype {
                key,
                found,
                integer: false,
            } => write!(
                f,
                "wrong dtype for `{key}`: found {found}, expected a float type (F32, F16, BF16 or F64)"
            ),
            Problem::WrongDtype {
                key,
                found,
                integer: true,
            } => write!(
                f,
                "wrong dtype for `{key}`: found {found}, expected an integer index buffer (I64 or I32)"
            ),
            Problem::WrongValue {
                key,
                index,
                found,
                expected,
            } => write!(
                f,
                "`{key}` holds other values than the model defines: element {index} is {}, \
                 expected {expected}",
                found.map_or_else(|| "missing".to_string(), |v| v.to_string())
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

struct NonFiniteList<'a>(&'a [(String, NonFinite)]);

impl fmt::Display for NonFiniteList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (key, n)) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - `{key}`: {n}")?;
        }
        Ok(())
    }
}
