//! Evaluating 5,000 images × 100 detections (80 categories), ours and pycocotools side by side
//! in one run, from the same files: reading both files, matching, accumulating, summarising.
//! `cargo bench -p focus-cocoeval --bench vs_pycocotools [-- IMAGES DETS_PER_IMAGE]`
//! (goal: ours ≤ 0.25× pycocotools' time; both give the same twelve numbers).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use focus_cocoeval::{evaluate, read_ground_truth, read_results, Stats};

/// Timed runs of ours (the median is reported; pycocotools runs once: it takes long).
const RUNS: usize = 3;

fn main() {
    // `cargo bench` passes `--bench`; the numbers are our own arguments.
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let images = args.first().copied().unwrap_or(5000);
    let per_image = args.get(1).copied().unwrap_or(100);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (gt, dt) = support::large_case(images, per_image, 2026);
    let (g, d) = (dir.path().join("gt.json"), dir.path().join("dt.json"));
    std::fs::write(&g, gt.to_string()).expect("writing the ground truth");
    std::fs::write(&d, dt.to_string()).expect("writing the results");
    println!(
        "{images} images, {per_image} detections each, {} ground-truth boxes, 80 categories",
        gt["annotations"].as_array().map_or(0, Vec::len)
    );
    let mut times = Vec::new();
    let mut stats = None;
    for _ in 0..RUNS {
        let start = Instant::now();
        let truth = read_ground_truth(&g).expect("ground truth");
        let res = read_results(&d, &truth).expect("results");
        let s = Stats::of(&evaluate(&truth, &res.detections));
        times.push(start.elapsed().as_secs_f64());
        stats = Some(s);
    }
    times.sort_by(f64::total_cmp);
    let ours = times[RUNS / 2];
    let theirs = support::pycocotools(dir.path(), &[(g, d, false)]);
    let reference = &theirs[0];
    let stats = stats.expect("at least one run");
    let same = stats.0.iter().zip(&reference.stats).all(|(a, b)| a == b);
    println!(
        "focus-cocoeval {ours:.3} s (median of {RUNS}, {} threads), pycocotools {} {:.3} s: \
         ratio {:.3} (goal ≤ 0.25); stats {}",
        rayon::current_num_threads(),
        reference.version,
        reference.seconds,
        ours / reference.seconds,
        if same { "identical" } else { "DIFFER" }
    );
    for l in stats.lines() {
        println!("{l}");
    }
    if !same {
        std::process::exit(1);
    }
}
