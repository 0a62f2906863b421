//! `run`: the model on input tensors, its outputs written as safetensors.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use focus_export::runtimes::{RuntimeKind, TorchOptions};
use focus_models::model::selections::Forcible;

use super::args::RuntimeArgs;

/// Arguments of `run`.
#[derive(Args)]
pub struct RunArgs {
    /// The runtime.
    #[arg(long, value_enum, default_value = "torch")]
    pub runtime: RuntimeKind,
    #[command(flatten)]
    pub rt: RuntimeArgs,
    /// Input tensors (.safetensors with `images` [B, 3, H, W] float32, normalised).
    #[arg(long)]
    pub input: PathBuf,
    /// Output tensors (.safetensors).
    #[arg(long)]
    pub output: PathBuf,
    /// Also write the intermediate tensors (torch; exported models have them when exported
    /// with --debug).
    #[arg(long)]
    pub debug: bool,
    /// Use `topk_proposals` from the input file in place of the two-stage selection (debugging;
    /// torch only, a subset of --force-selections).
    #[arg(long)]
    pub override_proposals: bool,
    /// Force the selections this file holds (a golden case or a `--debug` output:
    /// enc_topk_idx_l, enc_oesm_token_idx_l, topk_proposals) instead of the model's own; an
    /// exported model needs `--debug --selection-inputs`.
    #[arg(long, value_name = "F.safetensors")]
    pub force_selections: Option<PathBuf>,
    /// Deviation from the official model: run inputs with too few tokens for 300 object tokens
    /// per encoder layer, using fewer object tokens.
    #[arg(long)]
    pub clamp_object_tokens: bool,
}

/// Runs the model on `--input` and writes `--output`.
pub fn run(args: &RunArgs) -> Result<ExitCode> {
    let mut inputs = focus_export::tensors::read_tensors(&args.input)?;
    let force = match (&args.force_selections, args.override_proposals) {
        (Some(_), _) => Forcible::All,
        (None, true) => Forcible::Proposals,
        (None, false) => Forcible::None,
    };
    let flags = TorchOptions {
        debug: args.debug,
        force,
        clamp_object_tokens: args.clamp_object_tokens,
    };
    let mut rt = args.rt.open(args.runtime, flags)?;
    if let Some(f) = &args.force_selections {
        let forced = focus_export::tensors::read_tensors(f)?;
        let model_inputs = rt.inputs();
        let takes = |name: &str| {
            matches!(args.runtime, RuntimeKind::Torch)
                || model_inputs.contains(&focus_exporters::export::selection_input(name))
        };
        let names = focus_export::runtimes::add_forced_selections(&mut inputs, &forced, &takes)
            .map_err(|e| anyhow::anyhow!("--force-selections {}: {e}", f.display()))?;
        println!("forcing {} selection(s): {}", names.len(), names.join(", "));
    }
    let start = Instant::now();
    let out = rt
        .run(&inputs)
        .with_context(|| format!("running {} on {}", rt.name(), args.input.display()))?;
    let secs = start.elapsed().as_secs_f64();
    focus_export::tensors::write_tensors(&args.output, &out)?;
    println!(
        "{}: {} → {} ({} tensors) in {secs:.2} s",
        rt.name(),
        args.input.display(),
        args.output.display(),
        out.len()
    );
    // Written as computed, but said by name: NaN outputs are not numbers to use.
    for (name, n) in focus_export::tensors::non_finite(&out) {
        eprintln!("warning: output `{name}` holds {n}");
    }
    Ok(ExitCode::SUCCESS)
}
