//! `config`: the resolved configuration as JSON (a file `--config` accepts back).

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use focus_models::config::{preset_source, PRESETS};
use focus_models::FocusDetrConfig;

use super::args::ConfigArg;

/// Arguments of `config`.
#[derive(Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// List the presets instead: name, backbone, position embedding and the official config
    /// file each reproduces.
    #[arg(long)]
    pub list: bool,
}

/// Prints the configuration (or the preset list).
pub fn run(args: &ConfigArgs) -> Result<ExitCode> {
    if args.list {
        for name in PRESETS {
            let Some(cfg) = FocusDetrConfig::preset(name) else {
                continue;
            };
            let pe = &cfg.position_embedding;
            println!(
                "{name:<31} {:<44} T = {}, offset {}  {}",
                cfg.backbone.describe(),
                pe.temperature,
                pe.offset,
                preset_source(name).unwrap_or_default()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", args.config.load()?.to_json_pretty());
    Ok(ExitCode::SUCCESS)
}
