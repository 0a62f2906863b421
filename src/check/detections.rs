//! Final detection lists compared by matching (IoU, label), not by position.

use super::budgets::{Budgets, TOP_DETECTIONS};
use super::report::{DetectionReport, Status};
use super::tensors::f64s;
use crate::tensors::{HostTensor, TensorMap};

pub(super) fn boxes(t: &HostTensor) -> Vec<[f32; 4]> {
    t.as_f32()
        .unwrap_or(&[])
        .chunks_exact(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect()
}

/// Intersection over union of two xyxy boxes.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f64 {
    let (a, b) = (a.map(f64::from), b.map(f64::from));
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// How many of the reference's first `n` detections per image have a counterpart among ours
/// (same label, IoU ≥ [`MIN_IOU`], |Δscore| ≤ [`TOL_FEATURES`]); `None` without the outputs.
pub fn matched_detections(
    ours: &TensorMap,
    reference: &TensorMap,
    n: usize,
    b: &Budgets,
) -> Option<(usize, usize)> {
    /// Scores, labels, boxes and detections per image of one run.
    struct Dets {
        scores: Vec<f64>,
        labels: Vec<f64>,
        boxes: Vec<[f32; 4]>,
        per: usize,
    }
    let get = |m: &TensorMap| -> Option<Dets> {
        let s = m.get("scores")?;
        Some(Dets {
            per: *s.shape.last()?,
            scores: f64s(s),
            labels: f64s(m.get("labels")?),
            boxes: boxes(m.get("boxes_xyxy")?),
        })
    };
    let Dets {
        scores: os,
        labels: ol,
        boxes: ob,
        per,
    } = get(ours)?;
    let Dets {
        scores: rs,
        labels: rl,
        boxes: rb,
        per: rper,
    } = get(reference)?;
    if per != rper || os.len() != rs.len() {
        return Some((n, 0));
    }
    let (mut compared, mut matched) = (0, 0);
    for img in 0..rs.len() / per.max(1) {
        let base = img * per;
        let mut used = vec![false; per];
        for i in base..base + n.min(per) {
            compared += 1;
            let found = (0..per).find(|&j| {
                let j2 = base + j;
                !used[j]
                    && ol[j2] == rl[i]
                    && (os[j2] - rs[i]).abs() <= b.match_score
                    && iou(&ob[j2], &rb[i]) >= b.match_iou
            });
            if let Some(j) = found {
                used[j] = true;
                matched += 1;
            }
        }
    }
    Some((compared, matched))
}

pub(super) fn detection_report(
    ours: &TensorMap,
    reference: &TensorMap,
    judged: bool,
    why: Option<String>,
    b: &Budgets,
) -> Option<DetectionReport> {
    detection_report_at(ours, reference, judged, why, b.min_matched, b)
}

/// The detection report with `min_matched` as the budget.
pub(super) fn detection_report_at(
    ours: &TensorMap,
    reference: &TensorMap,
    judged: bool,
    why: Option<String>,
    min_matched: f64,
    b: &Budgets,
) -> Option<DetectionReport> {
    let (compared, matched) = matched_detections(ours, reference, TOP_DETECTIONS, b)?;
    let ok = matched as f64 >= min_matched * compared as f64;
    Some(DetectionReport {
        compared,
        matched,
        min_matched,
        status: match (judged, ok) {
            (_, true) => Status::Pass,
            (true, false) => Status::Fail,
            (false, false) => Status::Explained,
        },
        note: why,
    })
}
