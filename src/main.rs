//! The `focus-export` command line. Exporting is the default action
//! (`focus-export --weights W`); everything else is a subcommand.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use focus_export::doctor;
use focus_models::schema::shape_to_string;
use focus_models::{synth, weights, FocusDetrConfig, WeightSchema, Weights};

/// Turn Focus-DETR weights (detrex checkpoints as safetensors) into a verified ONNX model.
#[derive(Parser)]
#[command(name = "focus-export", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    export: ExportArgs,
}

/// Model configuration: a preset name or a JSON file.
#[derive(Args, Clone)]
struct ConfigArg {
    /// Preset (r50_4scale_36ep, r50_4scale_12ep, r101_4scale_36ep) or a JSON config file.
    #[arg(long, default_value = focus_models::config::DEFAULT_PRESET)]
    config: String,
}

impl ConfigArg {
    fn load(&self) -> Result<FocusDetrConfig> {
        FocusDetrConfig::resolve(&self.config).with_context(|| format!("--config {}", self.config))
    }
}

/// Arguments of the default action, exporting ONNX.
#[derive(Args)]
struct ExportArgs {
    /// Weights (.safetensors with the official checkpoint names).
    #[arg(long)]
    weights: Option<PathBuf>,
    #[command(flatten)]
    config: ConfigArg,
    /// Output ONNX file.
    #[arg(short = 'o', long, default_value = "focus_detr.onnx")]
    output: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Write seeded synthetic weights (focus-synth-v1) with the official names and shapes.
    InitWeights {
        #[command(flatten)]
        config: ConfigArg,
        /// Seed of the generator.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output .safetensors file.
        #[arg(short = 'o', long)]
        output: PathBuf,
    },
    /// List the checkpoint keys of a config, or check a weight file against them.
    Names {
        #[command(flatten)]
        config: ConfigArg,
        /// Check this .safetensors file instead of listing.
        #[arg(long)]
        check: Option<PathBuf>,
        /// List the alias keys (`alias<TAB>canonical`) instead of the canonical keys.
        #[arg(long, conflicts_with = "all")]
        aliases: bool,
        /// List every key in state_dict order with its kind.
        #[arg(long)]
        all: bool,
    },
    /// Print the resolved configuration as JSON (a file `--config` accepts back).
    Config {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Report the runtimes this binary can use, and how to install what is missing.
    Doctor {
        /// Also require CUDA and the GPU providers of ONNX Runtime.
        #[arg(long)]
        gpu: bool,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        None => export(cli.export),
        Some(Command::InitWeights {
            config,
            seed,
            output,
        }) => init_weights(&config.load()?, seed, &output),
        Some(Command::Names {
            config,
            check,
            aliases,
            all,
        }) => names(&config.load()?, check.as_deref(), aliases, all),
        Some(Command::Config { config }) => {
            println!("{}", config.load()?.to_json_pretty());
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Doctor { gpu }) => {
            let report = doctor::diagnose(gpu);
            print!("{}", report.render());
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn export(args: ExportArgs) -> Result<ExitCode> {
    let Some(weights) = args.weights else {
        bail!("nothing to do: pass --weights W to export, or a subcommand (see --help)");
    };
    let cfg = args.config.load()?;
    let schema = WeightSchema::new(&cfg);
    Weights::load(&weights, &schema, &cfg.name)?;
    bail!(
        "the weights in {} are valid for {}, but ONNX export is not implemented yet \
         (tracked by the export issue); nothing was written to {}",
        weights.display(),
        cfg.name,
        args.output.display()
    )
}

fn init_weights(cfg: &FocusDetrConfig, seed: u64, output: &Path) -> Result<ExitCode> {
    let start = Instant::now();
    let schema = WeightSchema::new(cfg);
    let tensors = synth::synthesize(&schema, seed)?;
    let meta = serde_json::json!({
        "generator": synth::GENERATOR,
        "seed": seed,
        "config": cfg.name,
    });
    weights::write_f32_safetensors(
        output,
        tensors
            .iter()
            .map(|t| (t.key.as_str(), t.shape.as_slice(), t.data.as_slice())),
        Some(("focus_export".into(), meta.to_string())),
    )
    .with_context(|| format!("writing {}", output.display()))?;
    let values: usize = tensors.iter().map(|t| t.data.len()).sum();
    println!(
        "wrote {}: {} tensors, {} values ({} seed {seed}, config {}) in {:.2} s",
        output.display(),
        tensors.len(),
        values,
        synth::GENERATOR,
        cfg.name,
        start.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

fn names(
    cfg: &FocusDetrConfig,
    check: Option<&Path>,
    aliases: bool,
    all: bool,
) -> Result<ExitCode> {
    let schema = WeightSchema::new(cfg);
    if let Some(path) = check {
        Weights::load(path, &schema, &cfg.name)?;
        println!(
            "{}: ok, every one of the {} tensors of {} is present with the right shape",
            path.display(),
            schema.canonical().count(),
            cfg.name
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::new();
    if aliases {
        for (a, c) in schema.aliases() {
            out.push_str(&format!("{a}\t{c}\n"));
        }
    } else if all {
        for e in schema.entries() {
            let kind = match &e.kind {
                focus_models::schema::EntryKind::Parameter => "parameter".to_string(),
                focus_models::schema::EntryKind::Buffer => "buffer".to_string(),
                focus_models::schema::EntryKind::Alias { canonical } => {
                    format!("alias of {canonical}")
                }
            };
            out.push_str(&format!(
                "{}\t{}\t{kind}\n",
                e.key,
                shape_to_string(&e.shape)
            ));
        }
    } else {
        for e in schema.canonical() {
            out.push_str(&format!("{}\t{}\n", e.key, shape_to_string(&e.shape)));
        }
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}
