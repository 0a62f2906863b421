//! `predict`: one photo through the torch reference or an exported model (ONNX Runtime,
//! tract), its detections printed and drawn; and the steps `explain` shares (choosing the
//! runtime, preparing the photo as the official test pipeline does, running it).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use image::RgbImage;

use focus_export::explain::{self, class_name};
use focus_export::images;
use focus_export::pictures;
use focus_export::tensors::TensorMap;

use focus_export::runtimes::{RuntimeKind, TorchOptions};

use super::args::RuntimeArgs;

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

/// The runtime asked for, or the one the given files imply.
pub(super) fn chosen_runtime(
    explicit: Option<RuntimeKind>,
    rt: &RuntimeArgs,
) -> Result<RuntimeKind> {
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
pub(super) struct Prepared {
    /// The photo, original size and orientation.
    pub picture: RgbImage,
    /// The model inputs (`images`).
    pub inputs: TensorMap,
    /// The input's height and width after resizing.
    pub input_hw: (usize, usize),
    /// The file it came from.
    pub source: PathBuf,
}

pub(super) fn prepare_photo(path: &Path, cfg: &focus_models::FocusDetrConfig) -> Result<Prepared> {
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

pub(super) fn prepare_tensor(path: &Path, cfg: &focus_models::FocusDetrConfig) -> Result<Prepared> {
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
pub(super) fn run_one(
    kind: RuntimeKind,
    rt_args: &RuntimeArgs,
    image: &Prepared,
    debug: bool,
) -> Result<(String, TensorMap)> {
    let flags = TorchOptions {
        debug,
        ..Default::default()
    };
    let mut rt = rt_args.open(kind, flags)?;
    let out = rt
        .run(&image.inputs)
        .with_context(|| format!("running {} on {}", rt.name(), image.source.display()))?;
    for (name, n) in focus_export::tensors::non_finite(&out) {
        eprintln!("warning: {}: output `{name}` holds {n}", rt.name());
    }
    Ok((rt.name(), out))
}

/// Runs `predict`.
pub fn run(args: &PredictArgs) -> Result<ExitCode> {
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
    let id = explain::category_id;
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
