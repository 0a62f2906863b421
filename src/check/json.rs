//! `check --report`: a whole check run as one JSON document (the budgets it was judged by, the
//! verdicts, the accuracy pass and every case report), for CI to read.

use std::path::PathBuf;

use super::budgets::{tolerances_json, Budgets};
use super::report::CaseReport;
use crate::accuracy::AccuracyReport;

/// COCO results files a check run wrote: the reference's, the exported model's free-running
/// ones, and its forced ones (when the model can be forced).
pub type ResultsFiles = (PathBuf, PathBuf, Option<PathBuf>);

/// What one check run found, as its JSON report states it.
pub struct RunReport<'a> {
    /// The exported model's file.
    pub model: String,
    /// The runtime that ran it (`ort-cpu`, ...).
    pub runtime: &'a str,
    /// The reference runtime (`torch-cpu`).
    pub reference: &'a str,
    /// The budgets the tensors were judged by.
    pub budgets: &'a Budgets,
    /// The overall verdict (tensors and, when run, accuracy).
    pub passed: bool,
    /// Whether every tensor comparison passed.
    pub tensors_passed: bool,
    /// Images whose forced pass is within budget.
    pub forced_ok: usize,
    /// Images whose free-running pass has no divergence.
    pub free_identical: usize,
    /// The COCO accuracy pass, when ground truth was given.
    pub accuracy: Option<&'a AccuracyReport>,
    /// The COCO results files written, when asked for.
    pub results_files: Option<&'a ResultsFiles>,
    /// The report of each image.
    pub cases: &'a [CaseReport],
}

/// The JSON document of a run.
pub fn document(r: &RunReport) -> serde_json::Value {
    serde_json::json!({
        "model": r.model,
        "runtime": r.runtime,
        "reference": r.reference,
        "tolerances": tolerances_json(r.budgets),
        "passed": r.passed,
        "tensors_passed": r.tensors_passed,
        "images": r.cases.len(),
        "forced_ok": r.forced_ok,
        "free_identical": r.free_identical,
        "accuracy": r.accuracy,
        "results_files": r.results_files.map(|(reference, exported, forced)| serde_json::json!({
            "reference": reference.display().to_string(),
            "exported": exported.display().to_string(),
            "exported_forced": forced.as_ref().map(|f| f.display().to_string()),
        })),
        "cases": r.cases,
    })
}
