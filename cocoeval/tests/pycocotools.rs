//! The evaluator against pycocotools 2.0.11 on seeded random cases: every summary number, every
//! recall cell and (on part of the cases) every precision cell, and the printed lines.

mod support;

use focus_cocoeval::{evaluate, parse_ground_truth, parse_results, Stats};

/// Cases compared (the issue asks for at least 200).
const CASES: u64 = 240;
/// Cases whose full precision array [T, R, K, A, M] is compared too (the rest: stats, recall).
const FULL_PRECISION_CASES: u64 = 60;
/// Agreement asked of every number: the arithmetic is the same, so in practice it is exact; the
/// margin only allows summation order differences that numpy might make on another build.
const TOLERANCE: f64 = 1e-12;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= TOLERANCE
}

#[test]
fn every_number_equals_pycocotools_on_seeded_random_cases() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut texts = Vec::new();
    for seed in 0..CASES {
        let (gt, dt) = support::random_case(seed);
        let (g, d) = (
            dir.path().join(format!("gt_{seed}.json")),
            dir.path().join(format!("dt_{seed}.json")),
        );
        let (gt_text, dt_text) = (gt.to_string(), dt.to_string());
        std::fs::write(&g, &gt_text).unwrap();
        std::fs::write(&d, &dt_text).unwrap();
        files.push((g, d, seed < FULL_PRECISION_CASES));
        texts.push((gt_text, dt_text));
    }
    let refs = support::pycocotools(dir.path(), &files);
    assert_eq!(refs.len(), texts.len());
    let (mut exact, mut worst) = (0, 0.0f64);
    let mut seen = [false; 14];
    for (seed, ((gt_text, dt_text), r)) in texts.iter().zip(&refs).enumerate() {
        let gt = parse_ground_truth(gt_text, "gt").unwrap();
        let res = parse_results(dt_text, "dt", &gt).unwrap();
        let e = evaluate(&gt, &res.detections);
        let stats = Stats::of(&e);
        for (i, (&ours, &theirs)) in stats.0.iter().zip(&r.stats).enumerate() {
            assert!(
                close(ours, theirs),
                "case {seed}: stat {} ours {ours:e}, pycocotools {theirs:e}",
                focus_cocoeval::STAT_NAMES[i]
            );
            worst = worst.max((ours - theirs).abs());
            exact += usize::from(ours == theirs);
        }
        assert_eq!(stats.lines(), r.lines, "case {seed}: printed summary");
        assert_eq!(e.recall.len(), r.recall.len(), "case {seed}: recall cells");
        for (c, (&a, &b)) in e.recall.iter().zip(&r.recall).enumerate() {
            assert!(
                close(a, b),
                "case {seed}: recall cell {c}: ours {a}, pycocotools {b}"
            );
        }
        if let Some(p) = &r.precision {
            assert_eq!(e.precision.len(), p.len(), "case {seed}: precision cells");
            for (c, (&a, &b)) in e.precision.iter().zip(p).enumerate() {
                assert!(
                    close(a, b),
                    "case {seed}: precision cell {c}: ours {a}, pycocotools {b}"
                );
            }
        }
        // The corners the cases reach: −1 stats, AP strictly between 0 and 1, crowds, unlisted
        // categories, annotation id 0, images without boxes or without detections, more than
        // 100 detections of one image and category, duplicates, tied scores.
        seen[0] |= stats.0.contains(&-1.0);
        seen[1] |= stats.0[0] > 0.0 && stats.0[0] < 1.0;
        seen[2] |= gt.annotations.iter().any(|a| a.iscrowd);
        seen[3] |= res.unknown_category > 0;
        seen[4] |= gt.annotations.iter().any(|a| a.id == 0);
        let dets = &res.detections;
        let has_gt = |i: i64| gt.annotations.iter().any(|a| a.image_id == i);
        let has_dets = |i: i64| dets.iter().any(|d| d.image_id == i);
        seen[5] |= gt.image_ids.iter().any(|&i| !has_gt(i) && has_dets(i));
        seen[6] |= gt.image_ids.iter().any(|&i| has_gt(i) && !has_dets(i));
        seen[7] |= gt.image_ids.iter().any(|&i| {
            gt.category_ids.iter().any(|&c| {
                dets.iter()
                    .filter(|d| d.image_id == i && d.category_id == c)
                    .count()
                    > 100
            })
        });
        // Tied scores and exact duplicates (same image, category, box and score).
        seen[8] |= dets
            .iter()
            .enumerate()
            .any(|(n, d)| dets[..n].iter().any(|e| e == d));
        // Ground truth in every area range and at the ranges' boundaries (32², 96²).
        let area = |f: &dyn Fn(f64) -> bool| gt.annotations.iter().any(|a| f(a.area));
        seen[10] |= area(&|a| a < 1024.0);
        seen[11] |= area(&|a| a > 1024.0 && a < 9216.0);
        seen[12] |= area(&|a| a > 9216.0);
        seen[13] |= area(&|a| a == 1024.0 || a == 9216.0);
        seen[9] |= dets.iter().enumerate().any(|(n, d)| {
            dets[..n]
                .iter()
                .any(|e| e.score == d.score && e.image_id == d.image_id && e.bbox != d.bbox)
        });
    }
    assert!(
        seen.iter().all(|&s| s),
        "the cases missed a corner: {seen:?}"
    );
    println!(
        "{} cases, {} numbers: {exact} bit-identical, largest difference {worst:e}",
        refs.len(),
        refs.len() * 12
    );
}
