//! `init-weights`: seeded synthetic weights (focus-synth-v1) with the official names and shapes.
//! Index buffers (Swin's `relative_position_index`) hold the values the model defines.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use focus_models::{synth, WeightSchema};

use super::args::ConfigArg;

/// Arguments of `init-weights`.
#[derive(Args)]
pub struct InitWeightsArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Seed of the generator.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output .safetensors file.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
}

/// Writes the seeded weights of the configuration.
pub fn run(args: &InitWeightsArgs) -> Result<ExitCode> {
    let (cfg, seed, output) = (&args.config.load()?, args.seed, &args.output);
    let start = Instant::now();
    let schema = WeightSchema::new(cfg);
    let generator = synth::generator_name(&schema);
    let meta = serde_json::json!({
        "generator": generator,
        "seed": seed,
        "config": cfg.name,
    });
    let tensors = synth::write(
        output,
        &schema,
        seed,
        Some(("focus_export".into(), meta.to_string())),
    )
    .with_context(|| format!("writing {}", output.display()))?;
    let index_buffers = synth::index_buffers(&schema).len();
    let values: usize = tensors.iter().map(|t| t.data.len()).sum();
    println!(
        "wrote {}: {} tensors, {} values ({generator} seed {seed}, config {}) in {:.2} s",
        output.display(),
        tensors.len() + index_buffers,
        values,
        cfg.name,
        start.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
