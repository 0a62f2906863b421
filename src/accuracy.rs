//! COCO accuracy in a check: each side's detections as a COCO results file, the AP of the
//! reference and of the exported model on the subset's ground truth, their differences (ΔAP),
//! and the agreement AP (the exported model's detections evaluated against the reference's
//! confident detections taken as ground truth), judged against the budgets.

use focus_cocoeval::{evaluate, Annotation, Detection, GroundTruth, Stats, STAT_NAMES};
use focus_models::postprocess::{clip_and_drop, COCO_IDS};
use serde::Serialize;

use crate::inputs::{CocoImage, InputItem};
use crate::tensors::TensorMap;

/// Default budget on |ΔAP| for each of the six AP numbers (AP, AP50, AP75, APs, APm, APl).
/// An export that computes what the reference computes changes AP by a few detections' worth
/// at most: on trained detectors, runtime ports are accepted at 0.1–0.2 AP points (mmdeploy's
/// published tables); we allow 0.5 points (0.005), which a wrong export (other weights, a
/// wrong layer) exceeds by far.
pub const DEFAULT_MAX_DELTA_AP: f64 = 0.005;

/// Default lower bound of the agreement AP. 1.0 when both sides give the same detections; a
/// near-tie that swaps a few selected tokens moves some boxes by a fraction of a pixel and
/// reorders close scores, which costs little AP at IoU ≥ 0.5:0.95.
pub const DEFAULT_MIN_AGREEMENT_AP: f64 = 0.9;

/// Reference detections with at least this score are the agreement AP's ground truth:
/// detectron2's demo threshold for "confident" boxes of DETR-family models.
pub const DEFAULT_AGREEMENT_MIN_SCORE: f64 = 0.3;

/// Errors while turning outputs into detections.
#[derive(Debug, thiserror::Error)]
pub enum AccuracyError {
    /// An output is missing or has the wrong type or shape.
    #[error("output `{name}`: {message}")]
    Output {
        /// The output.
        name: String,
        /// What was expected.
        message: String,
    },
}

fn output<'a, T>(
    outputs: &'a TensorMap,
    name: &str,
    get: impl Fn(&'a crate::tensors::HostTensor) -> Option<&'a [T]>,
    per: usize,
) -> Result<&'a [T], AccuracyError> {
    let bad = |message: String| AccuracyError::Output {
        name: name.into(),
        message,
    };
    let t = outputs
        .get(name)
        .ok_or_else(|| bad("missing: export with the post-processed outputs".into()))?;
    let data = get(t).ok_or_else(|| bad("has the wrong element type".into()))?;
    let first = t.shape.first().copied().unwrap_or(0);
    if first != 1 || data.len() % per != 0 {
        return Err(bad(format!(
            "shape {:?}: expected a batch of one image",
            t.shape
        )));
    }
    Ok(data)
}

/// The detections of one image's outputs (`scores`, `labels`, `boxes_xyxy` at the model's
/// input size `input_hw`) as COCO results: rescaled to the original image, clipped, empty boxes
/// dropped (detectron2's `detector_postprocess`), [x, y, w, h] computed in float32 as
/// detectron2's `BoxMode.convert`, COCO category ids.
pub fn coco_detections(
    outputs: &TensorMap,
    image: &CocoImage,
    input_hw: (usize, usize),
) -> Result<Vec<Detection>, AccuracyError> {
    let scores = output(outputs, "scores", |t| t.as_f32(), 1)?;
    let labels = output(outputs, "labels", |t| t.as_i64(), 1)?;
    let boxes = output(outputs, "boxes_xyxy", |t| t.as_f32(), 4)?;
    let boxes: Vec<[f32; 4]> = boxes
        .chunks_exact(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect();
    if labels.len() != scores.len() || boxes.len() != scores.len() {
        return Err(AccuracyError::Output {
            name: "labels".into(),
            message: format!(
                "{} scores, {} labels and {} boxes: expected one of each per detection",
                scores.len(),
                labels.len(),
                boxes.len()
            ),
        });
    }
    let kept = clip_and_drop(
        scores,
        labels,
        &boxes,
        (input_hw.0 as f32, input_hw.1 as f32),
        (image.height as f32, image.width as f32),
    );
    (0..kept.scores.len())
        .map(|i| {
            let [x1, y1, x2, y2] = kept.boxes[i];
            let label = kept.labels[i];
            let category = usize::try_from(label)
                .ok()
                .and_then(|l| COCO_IDS.get(l))
                .ok_or_else(|| AccuracyError::Output {
                    name: "labels".into(),
                    message: format!("label {label} is not one of the 80 COCO classes"),
                })?;
            Ok(Detection {
                image_id: image.id,
                category_id: i64::from(*category),
                bbox: [
                    f64::from(x1),
                    f64::from(y1),
                    f64::from(x2 - x1),
                    f64::from(y2 - y1),
                ],
                score: f64::from(kept.scores[i]),
            })
        })
        .collect()
}

/// [`coco_detections`] of one input's outputs, at the size of its `images` tensor; None for an
/// input without a COCO image record.
pub fn item_detections(
    item: &InputItem,
    outputs: &TensorMap,
) -> Option<Result<Vec<Detection>, AccuracyError>> {
    let image = item.coco.as_ref()?;
    let shape = &item.tensors.get("images")?.shape;
    Some(coco_detections(outputs, image, (shape[2], shape[3])))
}

/// The reference's detections with score ≥ `min_score` as ground truth over `images` and the
/// 80 COCO categories (each a regular box, area w·h).
pub fn agreement_truth(reference: &[Detection], images: &[i64], min_score: f64) -> GroundTruth {
    let annotations = reference
        .iter()
        .filter(|d| d.score >= min_score)
        .enumerate()
        .map(|(n, d)| Annotation {
            id: n as i64 + 1,
            image_id: d.image_id,
            category_id: d.category_id,
            bbox: d.bbox,
            area: d.bbox[2] * d.bbox[3],
            iscrowd: false,
        })
        .collect();
    GroundTruth {
        image_ids: images.to_vec(),
        category_ids: COCO_IDS.iter().map(|&c| i64::from(c)).collect(),
        annotations,
    }
}

/// Budgets of the accuracy gate.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct AccuracyBudgets {
    /// Largest |ΔAP| allowed on each of the six AP numbers.
    pub max_delta_ap: f64,
    /// Smallest agreement AP allowed.
    pub min_agreement_ap: f64,
    /// Reference detections at least this confident are the agreement's ground truth.
    pub agreement_min_score: f64,
}

impl Default for AccuracyBudgets {
    fn default() -> Self {
        AccuracyBudgets {
            max_delta_ap: DEFAULT_MAX_DELTA_AP,
            min_agreement_ap: DEFAULT_MIN_AGREEMENT_AP,
            agreement_min_score: DEFAULT_AGREEMENT_MIN_SCORE,
        }
    }
}

/// Which pass of the exported model the accuracy gate judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pass {
    /// Free running: what a deployment computes.
    Free,
    /// Forced to the reference's selections (needs a `--debug --selection-inputs` export).
    Forced,
}

/// One pass of the exported model against the reference.
#[derive(Debug, Clone, Serialize)]
pub struct PassAccuracy {
    /// The exported model's twelve numbers.
    pub exported: Stats,
    /// exported − reference, per number.
    pub delta: Stats,
    /// The AP number with the largest |Δ| and that |Δ|.
    pub worst_delta: (String, f64),
    /// AP@[.5:.95] of the exported model against the reference's confident detections; None
    /// when the reference has none (nothing to agree on).
    pub agreement_ap: Option<f64>,
}

/// The accuracy part of a check's report.
#[derive(Debug, Clone, Serialize)]
pub struct AccuracyReport {
    /// Images evaluated.
    pub images: usize,
    /// Ground-truth boxes over them.
    pub ground_truth_boxes: usize,
    /// The reference's twelve numbers.
    pub reference: Stats,
    /// The free-running pass.
    pub free: PassAccuracy,
    /// The forced pass, when the model takes the selections.
    pub forced: Option<PassAccuracy>,
    /// How many reference detections served as the agreement's ground truth.
    pub agreement_boxes: usize,
    /// The pass the budgets apply to.
    pub gated: Pass,
    /// The budgets applied.
    pub budgets: AccuracyBudgets,
    /// Whether the budgets hold.
    pub passed: bool,
}

impl AccuracyReport {
    /// The gated pass (the free one if the forced one is missing).
    pub fn gated_pass(&self) -> &PassAccuracy {
        match (self.gated, &self.forced) {
            (Pass::Forced, Some(f)) => f,
            _ => &self.free,
        }
    }

    /// What broke the budgets, one line each.
    pub fn failures(&self) -> Vec<String> {
        let mut v = Vec::new();
        let p = self.gated_pass();
        let (name, d) = &p.worst_delta;
        if *d > self.budgets.max_delta_ap {
            v.push(format!(
                "|Δ{name}| = {d:.4} > {} (--max-delta-ap)",
                self.budgets.max_delta_ap
            ));
        }
        if let Some(a) = p.agreement_ap {
            if a < self.budgets.min_agreement_ap {
                v.push(format!(
                    "agreement AP {a:.4} < {} (--min-agreement-ap)",
                    self.budgets.min_agreement_ap
                ));
            }
        }
        v
    }

    /// The summary table: each number for the reference and each pass of the exported model,
    /// with their Δ; then the agreement APs and the verdict.
    pub fn render(&self, reference: &str, exported: &str) -> String {
        let mut s = format!(
            "COCO accuracy on {} image(s), {} ground-truth box(es) (−1: no ground truth in range)\n",
            self.images, self.ground_truth_boxes
        );
        let passes: Vec<(&str, &PassAccuracy)> = std::iter::once(("free", &self.free))
            .chain(self.forced.as_ref().map(|f| ("forced", f)))
            .collect();
        s += &format!("  {:<6} {:>10}", "", reference);
        for (label, _) in &passes {
            s += &format!(" {:>16} {:>8}", format!("{exported} {label}"), "Δ");
        }
        s += "\n";
        for (i, name) in STAT_NAMES.iter().enumerate() {
            s += &format!("  {:<6} {:>10.4}", name, self.reference.0[i]);
            for (_, p) in &passes {
                s += &format!(" {:>16.4} {:>+8.4}", p.exported.0[i], p.delta.0[i]);
            }
            s += "\n";
        }
        for (label, p) in &passes {
            s += &match p.agreement_ap {
                Some(a) => format!(
                    "  agreement AP ({label}) {a:.4}: {} reference detection(s) with score ≥ {} as ground truth\n",
                    self.agreement_boxes, self.budgets.agreement_min_score
                ),
                None => format!(
                    "  agreement AP ({label}) n/a: no reference detection has score ≥ {}\n",
                    self.budgets.agreement_min_score
                ),
            };
        }
        let gated = match self.gated {
            Pass::Free => "free",
            Pass::Forced => "forced",
        };
        let failures = self.failures();
        s += &if failures.is_empty() {
            format!(
                "  accuracy ok ({gated} pass): |ΔAP| ≤ {} (largest: {} {:.4}), agreement AP ≥ {}\n",
                self.budgets.max_delta_ap,
                self.gated_pass().worst_delta.0,
                self.gated_pass().worst_delta.1,
                self.budgets.min_agreement_ap
            )
        } else {
            format!("  accuracy FAIL ({gated} pass): {}\n", failures.join("; "))
        };
        s
    }
}

/// One pass's numbers against the reference's.
fn pass_accuracy(
    truth: &GroundTruth,
    reference: &Stats,
    agreement: &GroundTruth,
    exported: &[Detection],
) -> PassAccuracy {
    let e = Stats::of(&evaluate(truth, exported));
    let mut delta = [0.0; 12];
    for (i, d) in delta.iter_mut().enumerate() {
        *d = e.0[i] - reference.0[i];
    }
    // The six AP numbers (the first six of pycocotools' order) are the gated ones.
    let worst = (0..6)
        .map(|i| (STAT_NAMES[i].to_string(), delta[i].abs()))
        .fold(
            ("AP".to_string(), 0.0),
            |best, c| if c.1 > best.1 { c } else { best },
        );
    let agreement_ap =
        (!agreement.annotations.is_empty()).then(|| Stats::of(&evaluate(agreement, exported)).0[0]);
    PassAccuracy {
        exported: e,
        delta: Stats(delta),
        worst_delta: worst,
        agreement_ap,
    }
}

/// Evaluates the reference and both passes of the exported model on `truth` and judges the
/// `gated` pass (the free one when there is no forced pass) against `budgets`.
pub fn accuracy(
    truth: &GroundTruth,
    reference: &[Detection],
    free: &[Detection],
    forced: Option<&[Detection]>,
    gated: Pass,
    budgets: AccuracyBudgets,
) -> AccuracyReport {
    let r = Stats::of(&evaluate(truth, reference));
    let agreement = agreement_truth(reference, &truth.image_ids, budgets.agreement_min_score);
    let ground_truth_boxes = truth
        .annotations
        .iter()
        .filter(|a| truth.image_ids.binary_search(&a.image_id).is_ok())
        .count();
    let mut report = AccuracyReport {
        images: truth.image_ids.len(),
        ground_truth_boxes,
        free: pass_accuracy(truth, &r, &agreement, free),
        forced: forced.map(|f| pass_accuracy(truth, &r, &agreement, f)),
        reference: r,
        agreement_boxes: agreement.annotations.len(),
        gated: if forced.is_some() { gated } else { Pass::Free },
        budgets,
        passed: false,
    };
    report.passed = report.failures().is_empty();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(image_id: i64, category_id: i64, x: f64, score: f64) -> Detection {
        Detection {
            image_id,
            category_id,
            bbox: [x, 10.0, 50.0, 40.0],
            score,
        }
    }

    #[test]
    fn identical_detections_agree_fully_and_differ_by_nothing() {
        let reference = vec![
            det(1, 1, 0.0, 0.9),
            det(1, 3, 100.0, 0.6),
            det(2, 1, 5.0, 0.1),
        ];
        let truth = agreement_truth(&reference, &[1, 2], 0.3);
        assert_eq!(truth.annotations.len(), 2);
        let r = accuracy(
            &truth,
            &reference,
            &reference,
            None,
            Pass::Free,
            AccuracyBudgets::default(),
        );
        // pycocotools' precision is tp / (tp + fp + eps): a perfect run scores 1 − 2e-16.
        let agreement = r.free.agreement_ap.unwrap();
        assert!((agreement - 1.0).abs() < 1e-12, "{agreement}");
        assert!(
            r.free.delta.0.iter().all(|&d| d == 0.0) && r.passed,
            "{r:?}"
        );
    }

    #[test]
    fn moved_boxes_break_both_budgets() {
        let reference = vec![det(1, 1, 0.0, 0.9), det(1, 3, 100.0, 0.6)];
        let moved = vec![det(1, 1, 30.0, 0.9), det(1, 3, 100.0, 0.6)];
        let truth = agreement_truth(&reference, &[1], 0.3);
        let r = accuracy(
            &truth,
            &reference,
            &moved,
            Some(&reference),
            Pass::Free,
            AccuracyBudgets::default(),
        );
        assert!(!r.passed);
        assert_eq!(r.failures().len(), 2, "{:?}", r.failures());
        assert!(r
            .render("torch", "ort")
            .contains("accuracy FAIL (free pass)"));
        // The same detections judged on the forced pass (here: the reference's own) pass.
        let r = accuracy(
            &truth,
            &reference,
            &moved,
            Some(&reference),
            Pass::Forced,
            AccuracyBudgets::default(),
        );
        assert!(r.passed, "{:?}", r.failures());
    }
}
