//! The text rendering of a report: the lead line, and the tables of what failed or was explained.

use super::budgets::TOP_DETECTIONS;
use super::report::{CaseReport, DetectionReport, Status, TensorReport};

/// The word a report uses for a verdict.
pub fn status_word(s: Status) -> &'static str {
    match s {
        Status::Pass => "ok",
        Status::Explained => "explained",
        Status::Fail => "FAIL",
    }
}

/// The tensor closest to its budget (largest max|Δ| / budget) among those judged by a budget
/// (explained ones are judged otherwise: final-list positions by detection matching), with
/// that share.
pub fn closest_to_budget(v: &[TensorReport]) -> Option<(&TensorReport, f64)> {
    v.iter()
        .filter(|t| t.status != Status::Explained)
        .filter_map(|t| Some((t, t.budget_share()?)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// The one-line summary of an image: forced ok/FAIL (the tensor closest to its budget),
/// free-running identical or diverged at a stage (gap), top-100 matched.
pub fn lead_line(r: &CaseReport) -> String {
    let forced = match (&r.forced, r.forced_within_budget) {
        (Some(v), Some(ok)) => {
            let worst = closest_to_budget(v).map_or_else(String::new, |(t, _)| {
                format!(
                    " ({} max|Δ| {:.2e} of {:e})",
                    t.name,
                    t.max_abs,
                    t.tolerance.unwrap_or(0.0)
                )
            });
            format!("forced {}{worst}", if ok { "ok" } else { "FAIL" })
        }
        _ => "forced: not run (export with --debug --selection-inputs)".into(),
    };
    let free = match &r.first_divergence {
        None => "free-running identical".to_string(),
        Some(stage) => {
            let sel = r.selections.iter().find(|s| &s.stage == stage);
            let gap = sel
                .and_then(|s| s.max_gap)
                .map_or_else(String::new, |g| format!(", gap {g:.1e}"));
            let bad = sel.is_some_and(|s| s.status == Status::Fail);
            format!(
                "free-running diverged at {stage} ({}{gap})",
                if bad { "NOT a near-tie" } else { "near-tie" }
            )
        }
    };
    let matched = r.detections.as_ref().map_or_else(
        || "no detections to match".to_string(),
        |d| format!("top-{TOP_DETECTIONS} matched {}/{}", d.matched, d.compared),
    );
    format!(
        "{} [{}]: {forced} · {free} · {matched}",
        r.name,
        status_word(r.status)
    )
}

/// A human-readable block for one input: the lead line, then (all with `verbose`, else only
/// what is not plainly ok) the tensors, selections and detections of both passes.
pub fn render(r: &CaseReport, verbose: bool) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o, "{}", lead_line(r));
    let show = |s: Status| verbose || s != Status::Pass;
    let _ = write!(o, "{}", tensor_table(&r.tensors, &show, "free running"));
    let agree = r
        .selections
        .iter()
        .filter(|s| s.status == Status::Pass)
        .count();
    let _ = writeln!(
        o,
        "  selections: {agree}/{} identical as sets",
        r.selections.len()
    );
    for s in r.selections.iter().filter(|s| show(s.status)) {
        let _ = writeln!(
            o,
            "    {:<24} k {:>5}  common {:>6}  only ref {:>3}  only ours {:>3}  order diffs {:>3}  {}",
            s.stage,
            s.k,
            s.common,
            s.only_reference,
            s.only_runtime,
            s.order_differences,
            status_word(s.status)
        );
        for n in s.notes.iter().take(if verbose { usize::MAX } else { 4 }) {
            let _ = writeln!(o, "      {n}");
        }
    }
    if let (Some(f), Some(n)) = (&r.first_divergence, &r.divergence_note) {
        let _ = writeln!(o, "  first divergence: {f}: {n}");
    }
    if let Some(d) = &r.detections {
        let _ = writeln!(
            o,
            "  detections: {}/{} of the reference's top-{TOP_DETECTIONS} matched {}",
            d.matched,
            d.compared,
            detection_verdict(d)
        );
    }
    if let Some(v) = &r.forced {
        let _ = writeln!(
            o,
            "  forced ({} selection(s) from the reference): {}",
            r.forced_selections.len(),
            if r.forced_within_budget == Some(true) {
                "every tensor within its budget"
            } else {
                "OVER budget"
            }
        );
        let _ = write!(o, "{}", tensor_table(v, &show, "forced"));
        if let Some(d) = &r.forced_detections {
            let _ = writeln!(
                o,
                "    detections: {}/{} matched {}",
                d.matched,
                d.compared,
                detection_verdict(d)
            );
        }
    }
    o
}

/// The rows of `v` that `show` keeps, as a table.
pub(super) fn tensor_table(
    v: &[TensorReport],
    show: &dyn Fn(Status) -> bool,
    pass: &str,
) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let tensors: Vec<&TensorReport> = v.iter().filter(|t| show(t.status)).collect();
    if tensors.is_empty() {
        return o;
    }
    let _ = writeln!(
        o,
        "  {:<26} {:>10} {:>10} {:>10} {:>10} {:>8}  status ({pass})",
        "tensor", "max|Δ|", "mean|Δ|", "max rel", "mean rel", "budget"
    );
    for t in tensors {
        let _ = writeln!(
            o,
            "  {:<26} {:>10.2e} {:>10.2e} {:>10.2e} {:>10.2e} {:>8}  {}{}",
            t.name,
            t.max_abs,
            t.mean_abs,
            t.max_rel,
            t.mean_rel,
            t.tolerance
                .map_or_else(|| "exact".into(), |v| format!("{v:e}")),
            status_word(t.status),
            t.note
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        );
    }
    o
}

/// A detection comparison's verdict word, and its note: `[ok]`, `[FAIL] (why)`.
fn detection_verdict(d: &DetectionReport) -> String {
    let note = d
        .note
        .as_deref()
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    format!("[{}]{note}", status_word(d.status))
}
