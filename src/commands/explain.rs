//! `explain`: pictures of what the model selects on one photo (foreground scores per level, the
//! tokens each encoder layer keeps, the object tokens, the proposals, the detections) and a
//! sheet of them all.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;

use focus_export::explain;
use focus_export::pictures;
use focus_export::runtimes::RuntimeKind;

use super::args::RuntimeArgs;
use super::predict::{chosen_runtime, prepare_photo, prepare_tensor, run_one};

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

/// Runs `explain`.
pub fn run(args: &ExplainArgs) -> Result<ExitCode> {
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
