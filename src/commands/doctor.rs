//! `doctor`: the runtimes this binary can use, and how to install what is missing.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use focus_export::doctor;

/// Arguments of `doctor`.
#[derive(Args)]
pub struct DoctorArgs {
    /// Also require CUDA and the GPU providers of ONNX Runtime.
    #[arg(long)]
    pub gpu: bool,
}

/// Prints the report; exit 1 when something needed is missing.
pub fn run(args: &DoctorArgs) -> Result<ExitCode> {
    let report = doctor::diagnose(args.gpu);
    print!("{}", report.render());
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
