//! COCO bounding-box evaluation with pycocotools' `COCOeval(iouType="bbox")` semantics, in Rust:
//! reading ground truth and results files ([`data`]), per-image matching and accumulation
//! ([`eval`]), and the twelve summary numbers ([`summary`]). No Python at run time; the tests
//! compare every number with pycocotools 2.0.11.

pub mod data;
pub mod eval;
pub mod summary;

pub use data::{
    parse_ground_truth, parse_results, read_ground_truth, read_results, results_json, Annotation,
    Detection, GroundTruth, Results,
};
pub use eval::{evaluate, Evaluation};
pub use summary::{Stats, STAT_NAMES};

/// Errors while reading or checking COCO files.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file could not be read.
    #[error("{file}: {message}")]
    Read {
        /// The file.
        file: String,
        /// What went wrong.
        message: String,
    },
    /// A file is not what a COCO annotation or results file must be.
    #[error("{file}: {message}")]
    Invalid {
        /// The file (or the name given to an in-memory text).
        file: String,
        /// Which entry is wrong and what was expected.
        message: String,
    },
}
