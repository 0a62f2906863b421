//! Parity between a runtime's outputs and the torch reference's, with every difference either
//! within a named tolerance or *explained*. Top-k selections are compared as sets; a token in one
//! set only is explained when the reference's own score for it lies within [`NEAR_TIE`] of that
//! stage's cut-off, and the two-stage proposal order may differ only within near-tie clusters
//! (golden README §6). Tensors downstream of the first explained divergence are reported, not
//! judged numerically: one swapped proposal moves every query through the decoder's
//! self-attention. So each image runs twice: free running (what a deployment computes) and
//! forced, with the reference's selections fed to the model (a `--debug --selection-inputs`
//! export), where every tensor is judged at its full budget and nothing is explained away.
//!
//! The files: `budgets` (the named tolerances), `report` (what is reported), `tensors`,
//! `selections` and `detections` (the three kinds of comparison), `passes` (the two passes
//! over one input), and the report's renderings, `render` (text), `json` and `html`.

mod budgets;
mod detections;
pub mod html;
pub mod json;
mod passes;
mod render;
mod report;
mod selections;
mod tensors;
#[cfg(test)]
mod tests;

pub use budgets::{
    budgets_for, tolerances_json, Budgets, FP16, FP32, INT8, MIN_IOU, MIN_MATCHED,
    MIN_MATCHED_FORCED, NEAR_TIE, TOL_BOXES, TOL_FEATURES, TOL_PIXELS, TOP_DETECTIONS,
};
pub use detections::{iou, matched_detections};
pub use passes::{check_input, compare, forcible_selections, CheckedInput, ForcedRun};
pub use render::{closest_to_budget, lead_line, render, status_word};
pub use report::{CaseReport, DetectionReport, SelectionReport, Status, TensorReport};
pub use tensors::{f64s, final_list_report, tensor_report};
