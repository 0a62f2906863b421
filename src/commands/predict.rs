//! `focus-export predict` and `focus-export explain`: one photo through the torch reference or an
//! exported model (ONNX Runtime, tract), then its detections printed and drawn (`predict`), or
//! every picture of what the model selected on the way (`explain`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use image::RgbImage;

use focus_export::explain::{self, class_name};
use focus_export::images;
use focus_export::pictures;
use focus_export::tensors::TensorMap;
use focus_models::postprocess::COCO_IDS;

use crate::{make_runtime, ModelFlags, RuntimeArgs, RuntimeKind};

/// Arguments of `predict`.
#[derive(Args)]
pub struct PredictArgs {
    /// The runtime: torch (the reference, on --weights), or ort / tract (the exported model,
    /// --model). Default: torch with --weights, ort with --model.
    #[arg(long, value_enum)]
    runtime: Option<RuntimeKind>,
    #[command(flatten)]
    rt: RuntimeArgs,
    /// The photo (JPEG, PNG or WebP; its EXIF orientation is applied).
    #[arg(long)]
    image: PathBuf,
    /// Write the photo with the detections drawn and labelled (PNG or JPEG by extension).
    #[arg(long)]
    draw: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Show detections with at least this score.
    #[arg(long, default_value_t = 0.3)]
    score_threshold: f32,
    /// Show at most this many detections.
    #[arg(long, default_value_t = 100)]
    top: usize,
}

/// Arguments of `explain`.
#[derive(Args)]
pub struct ExplainArgs {
    /// The runtime: torch (the reference, on --weights), or ort / tract (a `--debug` export,
    /// --model). Default: torch with --weights, ort with --model.
    #[arg(long, value_enum)]
    runtime: Option<RuntimeKind>,
    #[command(flatten)]
    rt: RuntimeArgs,
    /// The photo (JPEG, PNG or WebP; its EXIF orientation is applied).
    #[arg(long, required_unless_present = "input", conflicts_with = "input")]
    image: Option<PathBuf>,
    /// Or a tensor file holding `images` [1, 3, H, W] (e.g. a golden case): the pictures are
    /// drawn over that input.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Folder for the pictures (created if missing).
    #[arg(short = 'o', long)]
    out: PathBuf,
    /// Show detections with at least this score.
    #[arg(long, default_value_t = 0.3)]
    score_threshold: f32,
    /// Show at most this many detections.
    #[arg(long, default_value_t = 100)]
    top: usize,
}

/// The runtime asked for, or the one the given files imply.
fn chosen_runtime(explicit: Option<RuntimeKind>, rt: &RuntimeArgs) -> Result<RuntimeKind> {
    match (explicit, &rt.model, &rt.weights) {
        (Some(k), _, _) => Ok(k),
        (None, Some(_), _) => Ok(RuntimeKind::Ort),
        (None, None, Some(_)) => Ok(RuntimeKind::Torch),
        (None, None, None) => {
            bail!("give --weights W (the torch reference) or --model M (an exported model)")
        }
    }
}

/// One image ready to run: the picture to draw on (original size and orientation), and the
/// model inputs resized and normalised from it.
struct Prepared {
    picture: RgbImage,
    inputs: TensorMap,
    input_hw: (usize, usize),
    source: PathBuf,
}

fn prepare_photo(path: &Path, cfg: &focus_models::FocusDetrConfig) -> Result<Prepared> {
    let picture = images::load_rgb(path)?;
    let (_, input) = images::preprocess(&picture, &cfg.preprocess);
    let input_hw = (input.shape[2], input.shape[3]);
    let mut inputs = TensorMap::new();
    inputs.insert("images".into(), input);
    Ok(Prepared {
        picture,
        inputs,
        input_hw,
        source: path.to_path_buf(),
    })
}

fn prepare_tensor(path: &Path, cfg: &focus_models::FocusDetrConfig) -> Result<Prepared> {
    let mut inputs = focus_export::tensors::read_tensors(path)?;
    let t = inputs
        .get("images")
        .with_context(|| format!("{}: no `images` tensor", path.display()))?;
    if t.shape.len() != 4 || t.shape[0] != 1 || t.shape[1] != 3 || t.as_f32().is_none() {
        bail!(
            "{}: `images` is {:?}: expected float32 [1, 3, H, W] (one image)",
            path.display(),
            t.shape
        );
    }
    let input_hw = (t.shape[2], t.shape[3]);
    let picture = images::denormalise(t, &cfg.preprocess, 0).with_context(|| {
        format!(
            "{}: `images` cannot be turned back into pixels",
            path.display()
        )
    })?;
    // Only the input: a golden file's own selections must not force anything.
    inputs.retain(|k, _| k == "images");
    Ok(Prepared {
        picture,
        inputs,
        input_hw,
        source: path.to_path_buf(),
    })
}

/// Runs the chosen runtime on one prepared image; `debug` asks the torch reference for the
/// intermediates (an exported model returns what it was exported with).
fn run_one(
    kind: RuntimeKind,
    rt_args: &RuntimeArgs,
    image: &Prepared,
    debug: bool,
) -> Result<(String, TensorMap)> {
    let flags = ModelFlags {
        debug,
        ..Default::default()
    };
    let mut rt = make_runtime(kind, rt_args, flags)?;
    let out = rt
        .run(&image.inputs)
        .with_context(|| format!("running {} on {}", rt.name(), image.source.display()))?;
    Ok((rt.name(), out))
}

/// Runs `predict`.
pub fn predict(args: &PredictArgs) -> Result<ExitCode> {
    let cfg = args.rt.config.load()?;
    let kind = chosen_runtime(args.runtime, &args.rt)?;
    let image = prepare_photo(&args.image, &cfg)?;
    let (runtime, out) = run_one(kind, &args.rt, &image, false)?;
    let photo_hw = (
        image.picture.height() as usize,
        image.picture.width() as usize,
    );
    let shown = explain::photo_detections(
        &out,
        image.input_hw,
        photo_hw,
        args.score_threshold,
        args.top,
    )
    .with_context(|| format!("{runtime} on {}", args.image.display()))?;
    let id = |l: i64| {
        usize::try_from(l)
            .ok()
            .and_then(|l| COCO_IDS.get(l))
            .copied()
            .unwrap_or(0)
    };
    let (orig_h, orig_w) = photo_hw;
    let (in_h, in_w) = image.input_hw;
    if args.json {
        let dets: Vec<_> = (0..shown.scores.len())
            .map(|i| {
                serde_json::json!({
                    "score": shown.scores[i],
                    "label": shown.labels[i],
                    "category_id": id(shown.labels[i]),
                    "name": class_name(shown.labels[i]),
                    "bbox_xyxy": shown.boxes[i],
                })
            })
            .collect();
        let doc = serde_json::json!({
            "image": args.image.display().to_string(),
            "image_size": [orig_h, orig_w],
            "input_size": [in_h, in_w],
            "runtime": runtime,
            "detections": dets,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!(
            "{}: {orig_w}×{orig_h} (model input {in_w}×{in_h}) on {runtime}, {} detection(s) with score ≥ {}",
            args.image.display(),
            shown.scores.len(),
            args.score_threshold,
        );
        for i in 0..shown.scores.len() {
            let b = shown.boxes[i];
            println!(
                "  {:>6.3}  {:>2} {:<16} [{:.1}, {:.1}, {:.1}, {:.1}]",
                shown.scores[i],
                id(shown.labels[i]),
                class_name(shown.labels[i]),
                b[0],
                b[1],
                b[2],
                b[3]
            );
        }
    }
    if let Some(path) = &args.draw {
        pictures::save(&explain::detections_picture(&image.picture, &shown), path)?;
        if !args.json {
            println!(
                "drew {} labelled box(es) on {}",
                shown.scores.len(),
                path.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `explain`.
pub fn explain(args: &ExplainArgs) -> Result<ExitCode> {
    let cfg = args.rt.config.load()?;
    let kind = chosen_runtime(args.runtime, &args.rt)?;
    let image = match (&args.image, &args.input) {
        (Some(p), _) => prepare_photo(p, &cfg)?,
        (None, Some(t)) => prepare_tensor(t, &cfg)?,
        (None, None) => bail!("give --image photo.jpg or --input in.safetensors"),
    };
    let (runtime, out) = run_one(kind, &args.rt, &image, true)?;
    let ex = explain::explain(
        &image.picture,
        image.input_hw,
        &out,
        &cfg,
        args.score_threshold,
        args.top,
    )
    .with_context(|| {
        format!(
            "{runtime} on {}: the pictures need the model's diagnostic outputs",
            image.source.display()
        )
    })?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    for p in &ex.pictures {
        pictures::save(&p.image, &args.out.join(format!("{}.png", p.file)))?;
    }
    let sheet = args.out.join("sheet.png");
    pictures::save(&ex.sheet, &sheet)?;
    println!(
        "{} on {}: {} pictures ({}×{}) and {} in {}",
        runtime,
        image.source.display(),
        ex.pictures.len(),
        image.picture.width(),
        image.picture.height(),
        sheet
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        args.out.display()
    );
    for p in &ex.pictures {
        println!("  {}.png  {}", p.file, p.title);
    }
    Ok(ExitCode::SUCCESS)
}
