//! `focus-export check`: runs an exported model and the torch reference on the same inputs,
//! judges every tensor and selection (free-running and forced passes), and on a COCO subset adds
//! accuracy: both sides' detections as COCO results files, AP of each, ΔAP and agreement AP.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;

use focus_cocoeval::Detection;
use focus_export::accuracy::{self, AccuracyBudgets};
use focus_export::check::Status;
use focus_export::inputs;
use focus_export::tensors::TensorMap;
use focus_models::weights::write_atomically;

use focus_export::runtimes::{RuntimeKind, TorchOptions};

use super::args::{runtime_word, RuntimeArgs};

/// Arguments of `check`.
#[derive(Args)]
pub struct CheckArgs {
    /// The runtime that runs the exported model (--model); the reference is torch (--weights).
    #[arg(long, value_enum, default_value = "ort")]
    runtime: RuntimeKind,
    #[command(flatten)]
    rt: RuntimeArgs,
    /// Input tensor files (.safetensors with `images`), repeatable.
    #[arg(long)]
    input: Vec<PathBuf>,
    /// A folder of photos (JPEG, PNG, WebP), resized and normalised as the official pipeline.
    #[arg(long)]
    images: Option<PathBuf>,
    /// COCO annotation file of a subset (with --coco-images): adds COCO accuracy.
    #[arg(long, requires = "coco_images")]
    coco_ann: Option<PathBuf>,
    /// Image folder of the COCO subset.
    #[arg(long, requires = "coco_ann")]
    coco_images: Option<PathBuf>,
    /// At most this many photos (--images, --coco-*).
    #[arg(long)]
    limit: Option<usize>,
    /// Write both sides' detections on the COCO subset as COCO results files here
    /// (reference.json and <runtime>.json; `focus-export eval` reads them).
    #[arg(long)]
    results_dir: Option<PathBuf>,
    /// Budget: largest |ΔAP| (exported − reference) allowed on each of AP, AP50, AP75, APs,
    /// APm, APl.
    #[arg(long, default_value_t = accuracy::DEFAULT_MAX_DELTA_AP)]
    max_delta_ap: f64,
    /// Budget: smallest agreement AP (the exported model's detections against the reference's
    /// confident ones as ground truth).
    #[arg(long, default_value_t = accuracy::DEFAULT_MIN_AGREEMENT_AP)]
    min_agreement_ap: f64,
    /// The exported model's pass the accuracy budgets judge: free running (what a deployment
    /// computes) or forced to the reference's selections (needs --debug --selection-inputs).
    #[arg(long, value_enum, default_value = "free")]
    accuracy_pass: AccuracyPass,
    /// Reference detections with at least this score are the agreement's ground truth.
    #[arg(long, default_value_t = accuracy::DEFAULT_AGREEMENT_MIN_SCORE)]
    agreement_min_score: f64,
    /// Write the full report as JSON.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write the report as one self-contained HTML file (pictures inlined): detections side by
    /// side, differing selections on the token map, tensor and AP tables.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Write the tensors of every input that fails here (the reference's outputs, and the
    /// model's free-running and forced ones, as .safetensors), to look into a failure the
    /// report's statistics do not explain.
    #[arg(long, value_name = "DIR")]
    dump_failures: Option<PathBuf>,
    /// Print every tensor and stage, not only the summary of each input.
    #[arg(long)]
    verbose: bool,
}

/// `--accuracy-pass`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum AccuracyPass {
    /// Free running.
    Free,
    /// Forced to the reference's selections.
    Forced,
}

/// Writes a COCO results file (to a temporary file, then renamed).
fn write_results(path: &Path, detections: &[Detection]) -> Result<()> {
    write_atomically(path, focus_cocoeval::results_json(detections).as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Runs `check`.
pub fn run(args: &CheckArgs) -> Result<ExitCode> {
    let cfg = args.rt.config.load()?;
    let mut items = inputs::from_tensor_files(&args.input)?;
    if let Some(dir) = &args.images {
        items.extend(inputs::from_image_dir(dir, args.limit, &cfg.preprocess)?);
    }
    let mut truth = None;
    if let (Some(ann), Some(dir)) = (&args.coco_ann, &args.coco_images) {
        let (coco_items, t) = inputs::from_coco(ann, dir, args.limit, &cfg.preprocess)?;
        items.extend(coco_items);
        truth = Some(t);
    }
    if items.is_empty() {
        bail!("nothing to check: pass --input F.safetensors, --images DIR, or --coco-ann F --coco-images DIR");
    }
    if matches!(args.runtime, RuntimeKind::Torch) {
        bail!("--runtime torch is the reference; choose the runtime of the exported model (ort or tract)");
    }
    if args.results_dir.is_some() && truth.is_none() {
        bail!("--results-dir needs a COCO subset (--coco-ann and --coco-images)");
    }
    let budgets = AccuracyBudgets {
        max_delta_ap: args.max_delta_ap,
        min_agreement_ap: args.min_agreement_ap,
        agreement_min_score: args.agreement_min_score,
    };
    args.rt
        .weights
        .as_ref()
        .context("--weights is required: the torch reference runs on them")?;
    let model = args
        .rt
        .model
        .as_ref()
        .context("--model is required: the exported model to check")?;
    let reference_flags = TorchOptions {
        debug: true,
        ..Default::default()
    };
    let mut reference = args.rt.open(RuntimeKind::Torch, reference_flags)?;
    let mut rt = args.rt.open(args.runtime, TorchOptions::default())?;
    // The selections the model can be forced to (a `--debug --selection-inputs` export: all).
    let forcible = focus_export::check::forcible_selections(&rt.inputs());
    // A float16 export, or TensorRT building float16 engines, is judged by the float16 budgets
    // (declared beside the float32 ones).
    let tensor_budgets = if args.rt.fp16 {
        &focus_export::check::FP16
    } else {
        focus_export::check::budgets_for(rt.precision())
    };
    if tensor_budgets.name != focus_export::check::FP32.name {
        println!(
            "{} computes in {}: judged by the {} budgets (focus_export::check::{})",
            rt.name(),
            tensor_budgets.name,
            tensor_budgets.name,
            tensor_budgets.name.to_uppercase()
        );
    }
    let fully_forced = focus_models::model::selections::names(&cfg)
        .iter()
        .all(|n| forcible.contains(n));
    let bar = indicatif::ProgressBar::new(items.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    if items.len() == 1 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut reports = Vec::new();
    if matches!(args.accuracy_pass, AccuracyPass::Forced) && !fully_forced {
        bail!(
            "--accuracy-pass forced needs a model that takes every selection: export it with \
             --debug --selection-inputs"
        );
    }
    let (mut reference_dets, mut exported_dets) = (Vec::new(), Vec::new());
    let mut forced_dets = fully_forced.then(Vec::new);
    let mut sections = Vec::new();
    for item in &items {
        bar.set_message(item.name.clone());
        let ctx = |who: &str| format!("running {who} on {}", item.source.display());
        let want = reference
            .run(&item.tensors)
            .with_context(|| ctx(&reference.name()))?;
        let checked = focus_export::check::check_input(
            &item.name,
            rt.as_mut(),
            &item.tensors,
            &want,
            &forcible,
            tensor_budgets,
        )
        .with_context(|| ctx(&rt.name()))?;
        let mut rep = checked.report;
        if item.coco.is_some() {
            // Free-running detections: what a deployment computes.
            let dets = |who: &str, out| -> Result<Vec<Detection>> {
                let found = accuracy::item_detections(item, out).context("a COCO image record")?;
                found.with_context(|| {
                    format!(
                        "COCO accuracy needs {who}'s post-processed outputs on {}",
                        item.name
                    )
                })
            };
            reference_dets.extend(dets("the reference", &want)?);
            exported_dets.extend(dets("the exported model", &checked.free)?);
            if let (Some(all), Some(out)) = (forced_dets.as_mut(), &checked.forced) {
                all.extend(dets("the exported model (forced)", out)?);
            }
        }
        rep.name = format!("{} ({} annotation(s))", item.name, item.annotations);
        if item.annotations == 0 {
            rep.name = item.name.clone();
        }
        bar.suspend(|| print!("{}", focus_export::check::render(&rep, args.verbose)));
        if args.html.is_some() {
            let picture = item
                .tensors
                .get("images")
                .and_then(|t| focus_export::images::denormalise(t, &cfg.preprocess, 0));
            sections.push(
                focus_export::check::html::case_section(
                    &rep,
                    picture.as_ref(),
                    &want,
                    &checked.free,
                )
                .with_context(|| format!("the HTML report's pictures of {}", item.name))?,
            );
        }
        if let (Some(dir), Status::Fail) = (&args.dump_failures, rep.status) {
            let sides = (&want, &checked.free, checked.forced.as_ref());
            dump_failure(dir, &item.name, &rt.name(), sides)?;
        }
        reports.push(rep);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let count = |s: Status| reports.iter().filter(|r| r.status == s).count();
    let (pass, explained, fail) = (
        count(Status::Pass),
        count(Status::Explained),
        count(Status::Fail),
    );
    let forced_ok = reports
        .iter()
        .filter(|r| r.forced_within_budget == Some(true))
        .count();
    let free_identical = reports
        .iter()
        .filter(|r| r.first_divergence.is_none())
        .count();
    let runtime_name = rt.name();
    let gated = match args.accuracy_pass {
        AccuracyPass::Free => accuracy::Pass::Free,
        AccuracyPass::Forced => accuracy::Pass::Forced,
    };
    let accuracy = truth.as_ref().map(|t| {
        accuracy::accuracy(
            t,
            &reference_dets,
            &exported_dets,
            forced_dets.as_deref(),
            gated,
            budgets,
        )
    });
    let mut results_files = None;
    if let Some(dir) = &args.results_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let (r, e) = (
            dir.join("reference.json"),
            dir.join(format!("{}.json", runtime_word(args.runtime))),
        );
        write_results(&r, &reference_dets)?;
        write_results(&e, &exported_dets)?;
        let f = match &forced_dets {
            Some(dets) => {
                let f = dir.join(format!("{}_forced.json", runtime_word(args.runtime)));
                write_results(&f, dets)?;
                Some(f)
            }
            None => None,
        };
        results_files = Some((r, e, f));
    }
    if let Some(a) = &accuracy {
        print!("{}", a.render(&reference.name(), &runtime_name));
        if let Some((r, e, f)) = &results_files {
            println!(
                "  results files: {} ({} detections), {} ({} detections){}",
                r.display(),
                reference_dets.len(),
                e.display(),
                exported_dets.len(),
                f.as_ref()
                    .map_or_else(String::new, |f| format!(", {}", f.display()))
            );
        }
    }
    let accuracy_ok = accuracy.as_ref().is_none_or(|a| a.passed);
    let summary = format!(
        "{} vs {} on {} input(s): {pass} identical within tolerance, {explained} with explained \
         near-tie divergences, {fail} failed; forced ok {forced_ok}/{n}, free-running identical \
         {free_identical}/{n}{}{}",
        runtime_name,
        reference.name(),
        reports.len(),
        match &accuracy {
            Some(a) => format!(
                "; accuracy {} (|Δ{}| {:.4}, agreement AP {})",
                if a.passed { "ok" } else { "FAIL" },
                a.gated_pass().worst_delta.0,
                a.gated_pass().worst_delta.1,
                a.gated_pass()
                    .agreement_ap
                    .map_or_else(|| "n/a".into(), |v| format!("{v:.4}"))
            ),
            None => String::new(),
        },
        if fully_forced {
            ""
        } else {
            " (export with --debug --selection-inputs to force every selection)"
        },
        n = reports.len(),
    );
    println!("{summary}");
    let passed = fail == 0 && accuracy_ok;
    if let Some(path) = &args.html {
        let title = format!(
            "focus-export check: {} on {} vs {}: {}",
            model.display(),
            runtime_name,
            reference.name(),
            if passed { "passed" } else { "FAILED" }
        );
        let reference_name = reference.name();
        let doc = focus_export::check::html::document(
            &title,
            passed,
            std::slice::from_ref(&summary),
            accuracy
                .as_ref()
                .map(|a| (a, reference_name.as_str(), runtime_name.as_str())),
            &sections,
        );
        write_atomically(path, doc.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        println!("HTML report: {}", path.display());
    }
    if let Some(path) = &args.report {
        let doc = focus_export::check::json::document(&focus_export::check::json::RunReport {
            model: model.display().to_string(),
            runtime: &runtime_name,
            reference: &reference.name(),
            budgets: tensor_budgets,
            passed,
            tensors_passed: fail == 0,
            forced_ok,
            free_identical,
            accuracy: accuracy.as_ref(),
            results_files: results_files.as_ref(),
            cases: &reports,
        });
        write_atomically(path, serde_json::to_string_pretty(&doc)?.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        println!("report: {}", path.display());
    }
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Writes the tensors of a failing input into `dir` (`--dump-failures`).
fn dump_failure(
    dir: &Path,
    item: &str,
    runtime: &str,
    (reference, free, forced): (&TensorMap, &TensorMap, Option<&TensorMap>),
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let stem: String = item
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let sides = [
        ("reference", Some(reference)),
        ("free", Some(free)),
        ("forced", forced),
    ];
    for (side, tensors) in sides {
        if let Some(t) = tensors {
            let name = if side == "reference" {
                format!("{stem}.reference.safetensors")
            } else {
                format!("{stem}.{runtime}.{side}.safetensors")
            };
            focus_export::tensors::write_tensors(&dir.join(name), t)?;
        }
    }
    Ok(())
}
