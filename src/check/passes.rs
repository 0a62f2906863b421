//! The two passes over one input: free running (what a deployment computes) and forced (the reference's selections fed in), each judged.

use std::collections::BTreeMap;

use super::budgets::Budgets;
use super::detections::{detection_report, detection_report_at};
use super::report::{CaseReport, DetectionReport, SelectionReport, Status, TensorReport};
use super::selections::{compare_proposals, compare_sets};
use super::tensors::{
    align_rows, f64s, final_list_report, position, rows, selection_layer, tensor_report,
};
use crate::tensors::TensorMap;

/// A run of the model with some of the reference's selections fed to it.
#[derive(Debug, Clone, Copy)]
pub struct ForcedRun<'a> {
    /// Its outputs (with the debug intermediates).
    pub outputs: &'a TensorMap,
    /// The selections it was forced to (names as in [`focus_models::model::selections`]).
    pub stages: &'a [String],
}

/// Whether `name` is a selection output, judged as a selection rather than as a tensor
/// (`enc_oesm_subidx_l` are positions in a selection's order, judged through the token ids).
pub(super) fn is_selection_output(name: &str) -> bool {
    focus_models::model::selections::is_selection_name(name) || name.starts_with("enc_oesm_subidx_")
}

/// Compares a runtime's free-running outputs `ours` with the reference's (`reference`, a debug
/// run of the torch model) and, when given, its `forced` run.
pub fn compare(
    name: &str,
    ours: &TensorMap,
    reference: &TensorMap,
    forced: Option<ForcedRun<'_>>,
    b: &Budgets,
) -> CaseReport {
    // Reference scores of each stage.
    let fg = reference.get("fg_logits").map(f64s);
    let n_tokens = reference
        .get("fg_logits")
        .and_then(|t| t.shape.last().copied())
        .unwrap_or(1);
    let mut selections = Vec::new();
    let stages: Vec<&String> = {
        let mut v: Vec<&String> = ours
            .keys()
            .filter(|k| {
                (k.starts_with("enc_topk_idx_") || k.starts_with("enc_oesm_token_idx_"))
                    && reference.contains_key(*k)
            })
            .collect();
        v.sort_by_key(|k| position(k));
        v
    };
    for stage in stages {
        let rep = if let Some(l) = stage.strip_prefix("enc_topk_idx_") {
            let _ = l;
            compare_sets(
                stage,
                &ours[stage],
                &reference[stage],
                &|row, t| {
                    fg.as_ref()
                        .and_then(|v| v.get(row * n_tokens + t as usize).copied())
                },
                b,
            )
        } else {
            let l = stage.trim_start_matches("enc_oesm_token_idx_");
            // OESM scores are over the layer's selected tokens, in the reference's order.
            let sel = reference.get(&format!("enc_topk_idx_{l}")).map(rows);
            let sc = reference.get(&format!("enc_oesm_score_{l}")).map(|t| {
                let v = f64s(t);
                let k = *t.shape.last().unwrap_or(&1);
                v.chunks(k.max(1)).map(<[f64]>::to_vec).collect::<Vec<_>>()
            });
            let lookup: Vec<BTreeMap<i64, f64>> = match (sel, sc) {
                (Some(sel), Some(sc)) => sel
                    .iter()
                    .zip(&sc)
                    .map(|(a, b)| a.iter().copied().zip(b.iter().copied()).collect())
                    .collect(),
                _ => Vec::new(),
            };
            compare_sets(
                stage,
                &ours[stage],
                &reference[stage],
                &|row, t| lookup.get(row).and_then(|m| m.get(&t).copied()),
                b,
            )
        };
        selections.push(rep);
    }
    if let (Some(a), Some(r)) = (ours.get("topk_proposals"), reference.get("topk_proposals")) {
        selections.push(compare_proposals(
            a,
            r,
            reference.get("topk_proposal_scores"),
            b,
        ));
    }

    // The first divergence decides which tensors are judged numerically.
    let first = selections
        .iter()
        .filter(|s| s.status != Status::Pass)
        .min_by_key(|s| position(&s.stage))
        .cloned();
    let first = first.as_ref();
    let cut = first.map_or(u32::MAX, |s| position(&s.stage));
    let first_divergence = first.map(|s| s.stage.clone());
    let divergence_note = first.map(|s| {
        format!(
            "{} ({})",
            if s.status == Status::Explained {
                "near-tie difference"
            } else {
                "UNEXPLAINED difference"
            },
            s.notes.first().cloned().unwrap_or_default()
        )
    });
    // Stages after the first divergence see different inputs: they are downstream, not judged.
    for s in &mut selections {
        if position(&s.stage) > cut && s.status == Status::Fail {
            s.status = Status::Explained;
            s.notes.insert(
                0,
                format!(
                    "downstream of the divergence at {}",
                    first.map_or("", |f| f.stage.as_str())
                ),
            );
        }
    }
    let first_explained = first.is_none_or(|s| s.status == Status::Explained);

    let tensors = judge_tensors(
        ours,
        reference,
        cut,
        &|| {
            format!(
                "downstream of the divergence at {}; judged at detection level",
                first.map_or("", |f| f.stage.as_str())
            )
        },
        b,
    );

    let detections = if cut == u32::MAX {
        detection_report(ours, reference, true, None, b)
    } else {
        detection_report(
            ours,
            reference,
            false,
            Some("not judged end to end: downstream of an explained divergence".into()),
            b,
        )
    };

    let matched_top100 = detections.as_ref().map(|d| d.matched);
    let (forced_tensors, forced_detections) = match forced {
        Some(run) => {
            let (v, d) = judge_forced(run, reference, &selections, b);
            (Some(v), d)
        }
        None => (None, None),
    };
    let forced_within_budget = forced_tensors.as_ref().map(|v| {
        v.iter().all(|t| t.status != Status::Fail)
            && forced_detections
                .as_ref()
                .is_none_or(|d| d.status != Status::Fail)
    });

    let mut report = CaseReport {
        name: name.into(),
        tensors,
        selections,
        detections,
        first_divergence,
        divergence_note,
        matched_top100,
        forced_selections: forced.map_or_else(Vec::new, |r| r.stages.to_vec()),
        forced: forced_tensors,
        forced_detections,
        forced_within_budget,
        status: Status::Pass,
    };
    let failed = !report.failures().is_empty() || !first_explained;
    let explained = report.first_divergence.is_some();
    report.status = match (failed, explained) {
        (true, _) => Status::Fail,
        (false, true) => Status::Explained,
        _ => Status::Pass,
    };
    report
}

/// One input checked: the report and the outputs of both passes.
#[derive(Debug, Clone)]
pub struct CheckedInput {
    /// The comparison with the reference.
    pub report: CaseReport,
    /// The free-running outputs (what a deployment computes).
    pub free: TensorMap,
    /// The outputs forced to the reference's selections (None when the model takes none).
    pub forced: Option<TensorMap>,
}

/// The selections a model with inputs `model_inputs` can be forced to (a `--debug
/// --selection-inputs` export: all 13).
pub fn forcible_selections(model_inputs: &[String]) -> Vec<String> {
    model_inputs
        .iter()
        .filter_map(|n| {
            let base = n.strip_suffix(focus_exporters::export::SELECTION_INPUT_SUFFIX)?;
            focus_models::model::selections::is_selection_name(base).then(|| base.to_string())
        })
        .collect()
}

/// Both passes of one input on `rt`, compared with the reference's debug outputs `reference`:
/// free running on the images (and original sizes) only, never on selections an input file
/// (e.g. a golden case) happens to hold; then, where the model takes them, forced to the
/// reference's selections (`forcible`, from [`forcible_selections`]).
pub fn check_input(
    name: &str,
    rt: &mut dyn crate::runtimes::Runtime,
    inputs: &TensorMap,
    reference: &TensorMap,
    forcible: &[String],
    b: &Budgets,
) -> Result<CheckedInput, crate::runtimes::RuntimeError> {
    let mut own = TensorMap::new();
    for key in ["images", focus_exporters::export::ORIG_SIZES_INPUT] {
        if let Some(t) = inputs.get(key) {
            own.insert(key.to_string(), t.clone());
        }
    }
    let ours = rt.run(&own)?;
    let forced = if forcible.is_empty() {
        None
    } else {
        let mut feed = own;
        for stage in forcible {
            if let Some(t) = reference.get(stage) {
                feed.insert(focus_exporters::export::selection_input(stage), t.clone());
            }
        }
        Some(rt.run(&feed)?)
    };
    let run = forced.as_ref().map(|o| ForcedRun {
        outputs: o,
        stages: forcible,
    });
    Ok(CheckedInput {
        report: compare(name, &ours, reference, run, b),
        free: ours,
        forced,
    })
}

/// Every non-selection output of a run (`outputs`) against the reference at its budget. A tensor
/// after pipeline position `cut` (a divergence its inputs passed through) that is over budget
/// is explained, with `why`. Per-selected-token tensors are compared token by token: their rows
/// follow the selection order, which may differ among equal-set selections.
pub(super) fn judge_tensors(
    outputs: &TensorMap,
    reference: &TensorMap,
    cut: u32,
    why: &dyn Fn() -> String,
    b: &Budgets,
) -> Vec<TensorReport> {
    let mut v = Vec::new();
    for (k, a) in outputs {
        // Selections are judged as selections; `enc_oesm_subidx_l` are positions in a
        // selection's order, judged through `enc_oesm_token_idx_l`.
        if k == "images" || is_selection_output(k) {
            continue;
        }
        let Some(r) = reference.get(k) else { continue };
        let aligned = selection_layer(k).and_then(|l| {
            let idx = format!("enc_topk_idx_{l}");
            align_rows(a, outputs.get(&idx)?, reference.get(&idx)?)
        });
        let mut t = final_list_report(k, aligned.as_ref().unwrap_or(a), r, b);
        if position(k) > cut && t.status == Status::Fail {
            t.status = Status::Explained;
            t.note = Some(why());
        }
        v.push(t);
    }
    v.sort_by_key(|t| (position(&t.name), t.name.clone()));
    v
}

/// Judges a forced run against the reference: the forced selections must be the reference's
/// exactly, and every other output is held to its full budget. Only where the free run diverged
/// at a stage the model could not be forced to (an export with fewer selection inputs) are the
/// tensors after it downstream, and explained.
pub(super) fn judge_forced(
    run: ForcedRun<'_>,
    reference: &TensorMap,
    free: &[SelectionReport],
    b: &Budgets,
) -> (Vec<TensorReport>, Option<DetectionReport>) {
    let unforced = free
        .iter()
        .filter(|s| s.status != Status::Pass && !run.stages.contains(&s.stage))
        .min_by_key(|s| position(&s.stage));
    let cut = unforced.map_or(u32::MAX, |s| position(&s.stage));
    let why = unforced.map_or_else(String::new, |s| {
        format!(
            "downstream of the free-running divergence at {}, which this model cannot be forced to (export with --debug --selection-inputs)",
            s.stage
        )
    });
    let mut v = Vec::new();
    for stage in run.stages {
        if let (Some(a), Some(r)) = (run.outputs.get(stage), reference.get(stage)) {
            let mut t = tensor_report(stage, a, r, b);
            if t.status == Status::Fail {
                t.note = Some("the model did not use the forced selection".into());
            }
            v.push(t);
        }
    }
    v.extend(judge_tensors(
        run.outputs,
        reference,
        cut,
        &|| why.clone(),
        b,
    ));
    v.sort_by_key(|t| (position(&t.name), t.name.clone()));
    let judged = cut == u32::MAX;
    let detections = detection_report_at(
        run.outputs,
        reference,
        judged,
        (!judged).then_some(why),
        b.min_matched_forced,
        b,
    );
    (v, detections)
}
