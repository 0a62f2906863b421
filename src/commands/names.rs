//! `names`: the checkpoint keys of a configuration, or a weight file checked against them.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use focus_models::schema::shape_to_string;
use focus_models::{WeightSchema, Weights};

use super::args::{ConfigArg, WeightOptionsArg};

/// Arguments of `names`.
#[derive(Args)]
pub struct NamesArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Check this weight file (.safetensors or a PyTorch checkpoint) instead of listing:
    /// names, shapes, dtypes and finite values.
    #[arg(long)]
    pub check: Option<PathBuf>,
    #[command(flatten)]
    pub weight_options: WeightOptionsArg,
    /// List the alias keys (`alias<TAB>canonical`) instead of the canonical keys.
    #[arg(long, conflicts_with = "all")]
    pub aliases: bool,
    /// List every key in state_dict order with its kind.
    #[arg(long)]
    pub all: bool,
}

/// Lists the keys, or checks `--check`'s file against them.
pub fn run(args: &NamesArgs) -> Result<ExitCode> {
    let cfg = &args.config.load()?;
    let (check, aliases, all) = (args.check.as_deref(), args.aliases, args.all);
    let schema = WeightSchema::new(cfg);
    if let Some(path) = check {
        let w = Weights::load_with(path, &schema, &cfg.name, args.weight_options.options())?;
        // Without --allow-nonfinite the load has refused any NaN/Inf already; with it the file
        // loads unscanned, so say here what it holds.
        let non_finite = if args.weight_options.allow_nonfinite {
            w.non_finite(&schema)?
        } else {
            Vec::new()
        };
        println!(
            "{}: ok, every one of the {} tensors of {} is present with the right shape{}",
            path.display(),
            schema.canonical().count(),
            cfg.name,
            if non_finite.is_empty() {
                " and finite values"
            } else {
                ""
            }
        );
        for (key, n) in &non_finite {
            println!("  warning  `{key}` holds {n} (accepted: --allow-nonfinite)");
        }
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
                focus_models::schema::EntryKind::IndexBuffer => {
                    "index buffer (int64, value defined by the model)".to_string()
                }
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
