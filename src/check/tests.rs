//! Unit tests of the comparisons, on small hand-made tensors.

use super::budgets::*;
use super::detections::*;
use super::passes::*;
use super::render::*;
use super::report::*;
use crate::tensors::{HostTensor, TensorMap};

fn i(shape: Vec<usize>, v: Vec<i64>) -> HostTensor {
    HostTensor::i64(shape, v)
}
fn f(shape: Vec<usize>, v: Vec<f32>) -> HostTensor {
    HostTensor::f32(shape, v)
}

#[test]
fn set_differences_are_explained_only_at_near_ties() {
    let mut reference = TensorMap::new();
    reference.insert(
        "fg_logits".into(),
        f(vec![1, 4], vec![0.9, 0.5, 0.5 - 5e-7, 0.1]),
    );
    reference.insert("enc_topk_idx_0".into(), i(vec![1, 2], vec![0, 1]));
    // Token 2 ties with the cut-off (token 1): explained.
    let mut ours = TensorMap::new();
    ours.insert("enc_topk_idx_0".into(), i(vec![1, 2], vec![0, 2]));
    let rep = compare("t", &ours, &reference, None, &FP32);
    assert_eq!(
        rep.selections[0].status,
        Status::Explained,
        "{:?}",
        rep.selections
    );
    assert_eq!(rep.status, Status::Explained);
    // Token 3 is far below the cut-off: a failure.
    ours.insert("enc_topk_idx_0".into(), i(vec![1, 2], vec![0, 3]));
    let rep = compare("t", &ours, &reference, None, &FP32);
    assert_eq!(rep.selections[0].status, Status::Fail);
    assert_eq!(rep.status, Status::Fail);
    assert!(
        rep.failures()[0].contains("NOT a near-tie"),
        "{:?}",
        rep.failures()
    );
}

#[test]
fn proposal_order_allows_adjacent_near_tie_swaps_only() {
    let mut reference = TensorMap::new();
    reference.insert("topk_proposals".into(), i(vec![1, 4], vec![7, 3, 5, 1]));
    reference.insert(
        "topk_proposal_scores".into(),
        f(vec![1, 4], vec![0.9, 0.6, 0.6 - 4e-7, 0.2]),
    );
    reference.insert("pred_logits".into(), f(vec![1, 1], vec![1.0]));
    let mut ours = TensorMap::new();
    ours.insert("topk_proposals".into(), i(vec![1, 4], vec![7, 5, 3, 1]));
    // Downstream of the explained swap: a large logit difference is explained.
    ours.insert("pred_logits".into(), f(vec![1, 1], vec![1.01]));
    let rep = compare("t", &ours, &reference, None, &FP32);
    assert_eq!(rep.status, Status::Explained, "{:?}", rep.failures());
    assert_eq!(rep.tensors[0].status, Status::Explained);
    // A swap of non-adjacent ranks is not explained.
    ours.insert("topk_proposals".into(), i(vec![1, 4], vec![1, 3, 5, 7]));
    let rep = compare("t", &ours, &reference, None, &FP32);
    assert_eq!(rep.status, Status::Fail);
}

#[test]
fn a_forced_run_is_judged_at_full_budget_whatever_the_free_run_did() {
    let mut reference = TensorMap::new();
    reference.insert("fg_logits".into(), f(vec![1, 3], vec![0.5, 0.5, 0.1]));
    reference.insert("enc_topk_idx_0".into(), i(vec![1, 1], vec![0]));
    reference.insert("pred_logits".into(), f(vec![1, 1], vec![1.0]));
    let mut ours = TensorMap::new();
    ours.insert("enc_topk_idx_0".into(), i(vec![1, 1], vec![1])); // the tied token
    let mut forced = TensorMap::new();
    forced.insert("enc_topk_idx_0".into(), i(vec![1, 1], vec![0]));
    forced.insert("pred_logits".into(), f(vec![1, 1], vec![1.0 + 5e-5]));
    let all = ["enc_topk_idx_0".to_string(), "topk_proposals".to_string()];
    let run = |o: &TensorMap, stages: &[String]| {
        compare(
            "t",
            &ours,
            &reference,
            Some(ForcedRun { outputs: o, stages }),
            &FP32,
        )
    };
    // Free run diverged at a near-tie; forced run within budget.
    let rep = run(&forced, &all);
    assert_eq!(rep.status, Status::Explained, "{:?}", rep.failures());
    assert_eq!(rep.forced_within_budget, Some(true));
    assert_eq!(rep.first_divergence.as_deref(), Some("enc_topk_idx_0"));
    assert!(lead_line(&rep).contains("forced ok"), "{}", lead_line(&rep));
    assert!(
        lead_line(&rep).contains("diverged at enc_topk_idx_0 (near-tie, gap 0.0e0)"),
        "{}",
        lead_line(&rep)
    );
    // Over budget in the forced run: a failure, not explained by the free run's tie.
    forced.insert("pred_logits".into(), f(vec![1, 1], vec![2.0]));
    let rep = run(&forced, &all);
    assert_eq!(rep.status, Status::Fail);
    assert_eq!(rep.forced_within_budget, Some(false));
    assert!(
        lead_line(&rep).contains("forced FAIL"),
        "{}",
        lead_line(&rep)
    );
    // A forced selection the model did not use fails.
    forced.insert("pred_logits".into(), f(vec![1, 1], vec![1.0]));
    forced.insert("enc_topk_idx_0".into(), i(vec![1, 1], vec![1]));
    assert_eq!(run(&forced, &all).status, Status::Fail);
    // A model that can only be forced to the proposals: downstream of the encoder
    // divergence, explained.
    forced.remove("enc_topk_idx_0");
    forced.insert("pred_logits".into(), f(vec![1, 1], vec![2.0]));
    let only = ["topk_proposals".to_string()];
    let rep = run(&forced, &only);
    assert_eq!(rep.status, Status::Explained, "{:?}", rep.failures());
}

#[test]
fn tensors_are_judged_by_named_tolerances() {
    let mut reference = TensorMap::new();
    reference.insert("pred_logits".into(), f(vec![2], vec![1.0, 2.0]));
    reference.insert("pred_boxes".into(), f(vec![1], vec![0.5]));
    let mut ours = TensorMap::new();
    ours.insert("pred_logits".into(), f(vec![1, 2], vec![1.0 + 5e-5, 2.0]));
    ours.insert("pred_boxes".into(), f(vec![1], vec![0.5 + 1e-4]));
    let rep = compare("t", &ours, &reference, None, &FP32);
    let by = |n: &str| rep.tensors.iter().find(|t| t.name == n).unwrap().status;
    assert_eq!(by("pred_logits"), Status::Pass);
    assert_eq!(by("pred_boxes"), Status::Fail);
    assert_eq!(rep.status, Status::Fail);
}

#[test]
fn non_finite_outputs_fail_by_name_instead_of_being_compared() {
    let mut reference = TensorMap::new();
    reference.insert("pred_logits".into(), f(vec![3], vec![1.0, 2.0, 3.0]));
    reference.insert("scores".into(), f(vec![2], vec![0.5, f32::NAN]));
    reference.insert("pred_boxes".into(), f(vec![2], vec![f32::NAN, 0.5]));
    let mut ours = TensorMap::new();
    ours.insert(
        "pred_logits".into(),
        f(vec![3], vec![1.0, f32::INFINITY, 3.0]),
    );
    // The final list: a position swap there is explained, a NaN is not.
    ours.insert("scores".into(), f(vec![2], vec![0.5, f32::NAN]));
    // NaN on both sides at the same place is still not a pass.
    ours.insert("pred_boxes".into(), f(vec![2], vec![f32::NAN, 0.5]));
    let rep = compare("t", &ours, &reference, None, &FP32);
    let by = |n: &str| rep.tensors.iter().find(|t| t.name == n).unwrap();
    let logits = by("pred_logits");
    assert_eq!(logits.status, Status::Fail);
    assert_eq!(logits.max_abs, 0.0, "statistics over the finite pairs only");
    let note = logits.note.as_deref().unwrap();
    assert!(
        note.contains("here 1 +Inf, the first at [1]") && note.contains("reference finite"),
        "{note}"
    );
    assert_eq!(by("scores").status, Status::Fail);
    assert_eq!(by("pred_boxes").status, Status::Fail);
    let note = by("pred_boxes").note.as_deref().unwrap();
    assert!(note.contains("reference 1 NaN, the first at [0]"), "{note}");
    assert_eq!(rep.status, Status::Fail);
}

#[test]
fn per_token_tensors_are_compared_token_by_token() {
    let mut reference = TensorMap::new();
    reference.insert("fg_logits".into(), f(vec![1, 3], vec![0.5, 0.5, 0.1]));
    reference.insert("enc_topk_idx_0".into(), i(vec![1, 2], vec![0, 1]));
    reference.insert(
        "enc_layer_out_0".into(),
        f(vec![1, 2, 2], vec![1., 2., 3., 4.]),
    );
    let mut ours = TensorMap::new();
    // Same set, other order (a tie): rows follow the selection order.
    ours.insert("enc_topk_idx_0".into(), i(vec![1, 2], vec![1, 0]));
    ours.insert(
        "enc_layer_out_0".into(),
        f(vec![1, 2, 2], vec![3., 4., 1., 2.]),
    );
    let rep = compare("t", &ours, &reference, None, &FP32);
    assert_eq!(rep.status, Status::Pass, "{:?}", rep.failures());
    assert_eq!(rep.tensors[0].max_abs, 0.0);
}

#[test]
fn detections_match_by_label_iou_and_score() {
    let mut m = TensorMap::new();
    m.insert("scores".into(), f(vec![1, 2], vec![0.9, 0.8]));
    m.insert("labels".into(), i(vec![1, 2], vec![3, 4]));
    m.insert(
        "boxes_xyxy".into(),
        f(vec![1, 2, 4], vec![0., 0., 10., 10., 5., 5., 20., 20.]),
    );
    assert_eq!(matched_detections(&m, &m, 2, &FP32), Some((2, 2)));
    let mut other = m.clone();
    other.insert("labels".into(), i(vec![1, 2], vec![3, 5]));
    assert_eq!(matched_detections(&other, &m, 2, &FP32), Some((2, 1)));
}
