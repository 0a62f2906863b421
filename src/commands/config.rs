//! `config`: the resolved configuration as JSON (a file `--config` accepts back).

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::args::ConfigArg;

/// Arguments of `config`.
#[derive(Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub config: ConfigArg,
}

/// Prints the configuration.
pub fn run(args: &ConfigArgs) -> Result<ExitCode> {
    println!("{}", args.config.load()?.to_json_pretty());
    Ok(ExitCode::SUCCESS)
}
