//! `focus-export eval`: evaluates a COCO results file against an annotation file, as
//! pycocotools' `COCOeval(iouType="bbox")` does, and prints its twelve summary lines.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use focus_cocoeval::{evaluate, read_ground_truth, read_results, Stats};
use focus_models::weights::write_atomically;

/// Arguments of `eval`.
#[derive(Args)]
pub struct EvalArgs {
    /// COCO annotation file (ground truth).
    #[arg(long)]
    coco_ann: PathBuf,
    /// COCO results file: a list of {image_id, category_id, bbox: [x, y, w, h], score}.
    #[arg(long)]
    results: PathBuf,
    /// Also write the twelve numbers as JSON ({"AP": …, "AR100": …}, full precision).
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Runs `eval`.
pub fn run(args: &EvalArgs) -> Result<ExitCode> {
    let truth = read_ground_truth(&args.coco_ann)?;
    let results = read_results(&args.results, &truth)?;
    if results.unknown_category > 0 {
        eprintln!(
            "note: {} detection(s) of {} name a category that {} does not list; they are not \
             evaluated (as in pycocotools)",
            results.unknown_category,
            args.results.display(),
            args.coco_ann.display()
        );
    }
    let stats = Stats::of(&evaluate(&truth, &results.detections));
    for line in stats.lines() {
        println!("{line}");
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&stats)?;
        write_atomically(path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
