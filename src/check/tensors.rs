//! Tensors compared numerically against their budget, and where each sits in the pipeline.

use super::budgets::Budgets;
use super::report::{Status, TensorReport};
use crate::tensors::HostTensor;

/// Where a tensor sits in the pipeline: a divergence at position p makes every tensor with a
/// larger position downstream.
pub(super) fn position(name: &str) -> u32 {
    let layer = |prefix: &str| {
        name.strip_prefix(prefix)
            .and_then(|l| l.parse::<u32>().ok())
    };
    if let Some(l) = layer("enc_topk_idx_") {
        10 + 10 * l
    } else if let Some(l) = layer("enc_oesm_score_") {
        10 + 10 * l + 1
    } else if let Some(l) = layer("enc_oesm_token_idx_").or_else(|| layer("enc_oesm_subidx_")) {
        10 + 10 * l + 2
    } else if let Some(l) = layer("enc_layer_out_") {
        10 + 10 * l + 3
    } else if name == "memory" || name == "topk_proposal_scores" {
        1000
    } else if name == "topk_proposals" {
        1001
    } else if name.starts_with("neck_")
        || matches!(
            name,
            "fg_logits" | "query_pos" | "spatial_shapes" | "level_start_index"
        )
        || name == "focus_token_num"
        || name == "enc_k_per_layer"
    {
        0
    } else {
        // Decoder and heads: init_reference, dec_*, pred_*, scores, labels, boxes_xyxy.
        1002
    }
}

/// The encoder layer whose selection orders tensor `name` (per-selected-token outputs).
pub(super) fn selection_layer(name: &str) -> Option<&str> {
    name.strip_prefix("enc_oesm_score_")
        .or_else(|| name.strip_prefix("enc_layer_out_"))
}

/// `t` ([B, k, ...], rows in the order of selection `ours` [B, k]) reordered into the order of
/// selection `reference`; `None` when the two selections are not the same sets.
pub(super) fn align_rows(
    t: &HostTensor,
    ours: &HostTensor,
    reference: &HostTensor,
) -> Option<HostTensor> {
    let (a, r) = (rows(ours), rows(reference));
    let (b, k) = (*t.shape.first()?, *t.shape.get(1)?);
    if a.len() != b || r.len() != b || a.iter().any(|x| x.len() != k) {
        return None;
    }
    let inner: usize = t.shape[2..].iter().product();
    let mut order = Vec::with_capacity(b * k);
    for (x, y) in a.iter().zip(&r) {
        let pos: std::collections::HashMap<i64, usize> =
            x.iter().enumerate().map(|(i, &tok)| (tok, i)).collect();
        for tok in y {
            order.push(*pos.get(tok)?);
        }
    }
    let src = t.as_f32()?;
    let mut out = Vec::with_capacity(src.len());
    for (row, &i) in order.iter().enumerate() {
        let base = (row / k) * k * inner + i * inner;
        out.extend_from_slice(&src[base..base + inner]);
    }
    Some(HostTensor::f32(t.shape.clone(), out))
}

/// Budget of a float output (`None`: integers, compared exactly).
pub(super) fn tolerance(name: &str, t: &HostTensor, b: &Budgets) -> Option<f64> {
    t.as_f32()?;
    Some(match name {
        "boxes_xyxy" => b.pixels,
        "pred_boxes" | "init_reference" | "dec_references" | "scores" => b.boxes,
        "fg_logits" => b.fg_logits,
        _ => b.features,
    })
}

/// The values as f64.
pub fn f64s(t: &HostTensor) -> Vec<f64> {
    match (t.as_f32(), t.as_i64()) {
        (Some(v), _) => v.iter().map(|&x| f64::from(x)).collect(),
        (_, Some(v)) => v.iter().map(|&x| x as f64).collect(),
        _ => Vec::new(),
    }
}

/// Shapes equal up to leading size-1 axes (a golden's [300] vs a runtime's [1, 300]).
pub(super) fn same_shape(a: &[usize], b: &[usize]) -> bool {
    let strip = |s: &[usize]| {
        s.iter()
            .copied()
            .skip_while(|&d| d == 1)
            .collect::<Vec<_>>()
    };
    strip(a) == strip(b)
}

/// Error statistics of `a` against reference `r`.
pub fn tensor_report(name: &str, a: &HostTensor, r: &HostTensor, b: &Budgets) -> TensorReport {
    let tol = tolerance(name, r, b);
    if !same_shape(&a.shape, &r.shape) {
        return TensorReport {
            name: name.into(),
            max_abs: f64::INFINITY,
            mean_abs: f64::INFINITY,
            max_rel: f64::INFINITY,
            mean_rel: f64::INFINITY,
            tolerance: tol,
            status: Status::Fail,
            note: Some(format!("shape {:?}, reference {:?}", a.shape, r.shape)),
        };
    }
    let (av, rv) = (f64s(a), f64s(r));
    let n = av.len().max(1) as f64;
    let (mut max_abs, mut sum_abs, mut max_rel, mut sum_rel) = (0f64, 0f64, 0f64, 0f64);
    // NaN and ±Inf are not numbers to subtract: the statistics cover the pairs where both
    // values are finite, and any non-finite value on either side fails the tensor by name.
    for (x, y) in av
        .iter()
        .zip(&rv)
        .filter(|(x, y)| x.is_finite() && y.is_finite())
    {
        let d = (x - y).abs();
        let rel = d / y.abs().max(1e-6);
        max_abs = max_abs.max(d);
        sum_abs += d;
        max_rel = max_rel.max(rel);
        sum_rel += rel;
    }
    let (ours, reference) = (a.non_finite(), r.non_finite());
    let note = (ours.is_some() || reference.is_some()).then(|| {
        let side = |n: &Option<focus_models::finite::NonFinite>| {
            n.as_ref()
                .map_or_else(|| "finite".to_string(), ToString::to_string)
        };
        format!(
            "non-finite values: here {}; reference {}",
            side(&ours),
            side(&reference)
        )
    });
    let within = note.is_none() && tol.map_or(max_abs == 0.0, |t| max_abs <= t);
    TensorReport {
        name: name.into(),
        max_abs,
        mean_abs: sum_abs / n,
        max_rel,
        mean_rel: sum_rel / n,
        tolerance: tol,
        status: if within { Status::Pass } else { Status::Fail },
        note,
    }
}

/// The post-processed top-300 list (`scores`, `labels`, `boxes_xyxy`) is itself a top-k over
/// queries × classes: near-equal scores may trade places, so its entries are judged by
/// detection matching, not position by position (a list holding NaN or ±Inf still fails).
/// Other tensors: [`tensor_report`].
pub fn final_list_report(name: &str, a: &HostTensor, r: &HostTensor, b: &Budgets) -> TensorReport {
    let mut t = tensor_report(name, a, r, b);
    if matches!(name, "scores" | "labels" | "boxes_xyxy")
        && t.status == Status::Fail
        && t.max_abs.is_finite()
        && t.note.is_none()
    {
        t.status = Status::Explained;
        t.note = Some("positions of the final list; judged by detection matching".into());
    }
    t
}

/// Per-row views of a [B, k] (or [k]) integer tensor.
pub(super) fn rows(t: &HostTensor) -> Vec<Vec<i64>> {
    let v: Vec<i64> = f64s(t).iter().map(|&x| x as i64).collect();
    let k = *t.shape.last().unwrap_or(&1);
    v.chunks(k.max(1)).map(<[i64]>::to_vec).collect()
}
