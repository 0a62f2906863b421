//! What a check reports: the verdict of each tensor, selection and detection list of one input.

use serde::Serialize;

/// How an item of the report came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Within its tolerance, or identical.
    Pass,
    /// Different, and explained (near-tie, or downstream of an explained divergence).
    Explained,
    /// Different, and not explained, or over its tolerance.
    Fail,
}

/// Error statistics of one output tensor.
#[derive(Debug, Clone, Serialize)]
pub struct TensorReport {
    /// Output name.
    pub name: String,
    /// max |a − r|.
    pub max_abs: f64,
    /// mean |a − r|.
    pub mean_abs: f64,
    /// max |a − r| / max(|r|, 1e-6).
    pub max_rel: f64,
    /// mean of the same.
    pub mean_rel: f64,
    /// The budget on `max_abs` (`None`: exact equality for integers, or not judged).
    pub tolerance: Option<f64>,
    /// Verdict.
    pub status: Status,
    /// Why, when not plainly within tolerance.
    pub note: Option<String>,
}

impl TensorReport {
    /// max |Δ| as a share of the budget (1: at the budget); None for tensors judged exactly.
    pub fn budget_share(&self) -> Option<f64> {
        self.tolerance
            .filter(|b| *b > 0.0)
            .map(|b| self.max_abs / b)
    }
}

/// Agreement of one top-k selection (per batch row, summed).
#[derive(Debug, Clone, Serialize)]
pub struct SelectionReport {
    /// Stage (the debug output's name).
    pub stage: String,
    /// Selected tokens per image.
    pub k: usize,
    /// Tokens selected by both.
    pub common: usize,
    /// Tokens only in the reference's selection.
    pub only_reference: usize,
    /// Tokens only in the runtime's.
    pub only_runtime: usize,
    /// Positions of the proposal order that differ (proposals only).
    pub order_differences: usize,
    /// The largest distance of a differing token's reference score from the cut-off (for the
    /// proposal order: the largest score gap spanned by a reordering); `None` when identical.
    pub max_gap: Option<f64>,
    /// Verdict.
    pub status: Status,
    /// Each differing token with its reference score and the cut-off.
    pub notes: Vec<String>,
}

/// Top-N detection agreement.
#[derive(Debug, Clone, Serialize)]
pub struct DetectionReport {
    /// Reference detections compared (per image, summed).
    pub compared: usize,
    /// Those with a runtime counterpart (same label, IoU and |Δscore| within the budgets').
    pub matched: usize,
    /// The fraction of `compared` that had to be matched.
    pub min_matched: f64,
    /// Verdict.
    pub status: Status,
    /// Why, when not judged.
    pub note: Option<String>,
}

/// The comparison of one input.
#[derive(Debug, Clone, Serialize)]
pub struct CaseReport {
    /// The input's name.
    pub name: String,
    /// Per output tensor.
    pub tensors: Vec<TensorReport>,
    /// Per top-k stage, in pipeline order.
    pub selections: Vec<SelectionReport>,
    /// Final detections, end to end.
    pub detections: Option<DetectionReport>,
    /// The first stage whose free-running selection differs (`None`: identical throughout).
    pub first_divergence: Option<String>,
    /// Why that divergence is acceptable (a near-tie, with its gap), or that it is not.
    pub divergence_note: Option<String>,
    /// The reference's top-100 detections matched by the free-running ones (summed over a batch).
    pub matched_top100: Option<usize>,
    /// The selections fed to the forced run (empty: no forced run).
    pub forced_selections: Vec<String>,
    /// The forced run's tensors, each at its full budget.
    pub forced: Option<Vec<TensorReport>>,
    /// The forced run's detections.
    pub forced_detections: Option<DetectionReport>,
    /// Whether the forced run is within budget everywhere (`None`: no forced run).
    pub forced_within_budget: Option<bool>,
    /// Overall verdict.
    pub status: Status,
}

impl CaseReport {
    /// Every item that failed, as lines.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        let tensors = self.tensors.iter().chain(self.forced.iter().flatten());
        for t in tensors.filter(|t| t.status == Status::Fail) {
            out.push(format!(
                "{}: max|Δ| {:.3e} over {:?}{}",
                t.name,
                t.max_abs,
                t.tolerance,
                t.note
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            ));
        }
        for s in self.selections.iter().filter(|s| s.status == Status::Fail) {
            out.push(format!("{}: {}", s.stage, s.notes.join("; ")));
        }
        let dets = self.detections.iter().chain(self.forced_detections.iter());
        for d in dets.filter(|d| d.status == Status::Fail) {
            out.push(format!(
                "detections: {}/{} matched (need {:.0} %)",
                d.matched,
                d.compared,
                d.min_matched * 100.0
            ));
        }
        out
    }
}
