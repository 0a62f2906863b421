//! `focus-export convert`: a PyTorch checkpoint (`.pth`, or a `.zip` release archive holding
//! one) to a safetensors file with the canonical checkpoint names, after the same strict schema
//! check as every other entry point. Tensors are read and written one at a time.

use std::borrow::Cow;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use safetensors::tensor::{Dtype, View};

use focus_models::schema::Param;
use focus_models::weights::WeightFile;
use focus_models::{WeightSchema, Weights};

use super::args::{ConfigArg, WeightOptionsArg};
use super::export::sha256_file;

/// The metadata entry that names the source of a converted file.
pub const SOURCE_METADATA_KEY: &str = "focus_export.source";

/// Arguments of `convert`.
#[derive(Args)]
pub struct ConvertArgs {
    /// The checkpoint: a `.pth` written by torch.save (detectron2's checkpointer, a bare state
    /// dict, {"state_dict": …}), or a `.zip` release archive holding one.
    input: PathBuf,
    /// Output .safetensors file (written to a temporary file, then renamed).
    #[arg(short = 'o', long)]
    output: PathBuf,
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    weight_options: WeightOptionsArg,
}

/// One canonical tensor, read from the checkpoint when the writer asks for its bytes.
struct LazyTensor<'a> {
    weights: &'a Weights,
    param: Param,
    len: usize,
    /// An index buffer's bytes (int64): the defined value, which loading checked the file holds.
    fixed: Option<Vec<u8>>,
    /// The first read error; the writer's interface cannot carry it.
    error: &'a RefCell<Option<String>>,
}

impl View for LazyTensor<'_> {
    fn dtype(&self) -> Dtype {
        if self.fixed.is_some() {
            Dtype::I64
        } else {
            Dtype::F32
        }
    }
    fn shape(&self) -> &[usize] {
        &self.param.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        if let Some(b) = &self.fixed {
            return Cow::Borrowed(b);
        }
        match self.weights.get(&self.param) {
            Ok(v) if v.len() * 4 == self.len => Cow::Owned(bytemuck::cast_slice(&v).to_vec()),
            Ok(v) => {
                self.error.borrow_mut().get_or_insert(format!(
                    "`{}`: read {} values, expected {}",
                    self.param.key,
                    v.len(),
                    self.len / 4
                ));
                Cow::Owned(vec![0; self.len])
            }
            Err(e) => {
                self.error.borrow_mut().get_or_insert(e.to_string());
                Cow::Owned(vec![0; self.len])
            }
        }
    }
    fn data_len(&self) -> usize {
        self.len
    }
}

/// Runs `convert`.
pub fn run(args: &ConvertArgs) -> Result<ExitCode> {
    let start = Instant::now();
    let cfg = args.config.load()?;
    let schema = WeightSchema::new(&cfg);
    let weights = Weights::load_with(
        &args.input,
        &schema,
        &cfg.name,
        args.weight_options.options(),
    )?;
    let WeightFile::Pytorch(checkpoint) = weights.file() else {
        bail!(
            "{} is a safetensors file already: convert reads PyTorch checkpoints (.pth, .pt, or a .zip holding one)",
            args.input.display()
        );
    };
    let layout = checkpoint.layout().to_string();
    let unread_ema = checkpoint.has_unread_ema();
    let sha = sha256_file(&args.input)?;
    let source = format!(
        "{} sha256:{sha}{}",
        args.input
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        if args.weight_options.ema { " ema" } else { "" }
    );
    let error = RefCell::new(None);
    let tensors: Vec<(String, LazyTensor)> = schema
        .canonical()
        .map(|p| {
            let fixed = p
                .fixed_value()
                .map(|v| bytemuck::cast_slice::<i64, u8>(&v).to_vec());
            let len = fixed
                .as_ref()
                .map_or(p.shape.iter().product::<usize>() * 4, Vec::len);
            (
                p.key.clone(),
                LazyTensor {
                    weights: &weights,
                    param: Param::float(&p.key, &p.shape),
                    len,
                    fixed,
                    error: &error,
                },
            )
        })
        .collect();
    let count = tensors.len();
    // The library writes to a temporary file and renames it; it is staged beside the output
    // under a temporary name so that a read error never leaves a file at the output path.
    let staged = staging_path(&args.output)?;
    let _pending = focus_models::weights::pending::track(&staged);
    let meta = std::collections::HashMap::from([(SOURCE_METADATA_KEY.to_string(), source)]);
    // One step (pending::step): an interrupt waits for the write, then removes the file.
    let written = focus_models::weights::pending::step(|| {
        safetensors::serialize_to_file(tensors, Some(meta), &staged)
    });
    let failed = error.borrow_mut().take();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&staged);
        bail!("writing {}: {e}", args.output.display());
    }
    if let Some(e) = failed {
        let _ = std::fs::remove_file(&staged);
        bail!("{}: {e}", args.input.display());
    }
    focus_models::weights::pending::step(|| std::fs::rename(&staged, &args.output))
        .with_context(|| format!("writing {}", args.output.display()))?;
    println!(
        "wrote {}: {count} tensors (f32, canonical names of {}) from {} in {:.2} s",
        args.output.display(),
        cfg.name,
        args.input.display(),
        start.elapsed().as_secs_f64()
    );
    println!("  read     {layout}");
    if unread_ema {
        println!(
            "  note     the checkpoint also holds EMA weights (`ema_state`); --ema converts those"
        );
    }
    println!("  source   sha256 {sha} (in the file's metadata, {SOURCE_METADATA_KEY})");
    Ok(ExitCode::SUCCESS)
}

/// A temporary name beside `output` (same folder, so the final rename is atomic).
fn staging_path(output: &Path) -> Result<PathBuf> {
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = focus_models::weights::output_tempfile_builder(".focus-export-convert-")
        .tempfile_in(&dir)
        .with_context(|| {
            format!(
                "writing {}: creating a temporary file in {}",
                output.display(),
                dir.display()
            )
        })?;
    tmp.into_temp_path()
        .keep()
        .context("keeping the staging file")
}
