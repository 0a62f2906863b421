//! `ops-library`: where `libfocus_ops.so` is, for loading it into any ONNX Runtime.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use focus_export::ops_library;

/// Arguments of `ops-library`.
#[derive(Args)]
pub struct OpsLibraryArgs {
    /// Also print what the library says of itself (version, domain, ops, the ONNX Runtime it
    /// needs), by loading it.
    #[arg(long)]
    pub info: bool,
}

/// Prints the library's path (stdout, alone on its line, for `$(focus-export ops-library)`).
pub fn run(args: &OpsLibraryArgs) -> Result<ExitCode> {
    let path = ops_library::find()?;
    println!("{}", path.display());
    if args.info {
        println!("{}", ops_library::describe(&path)?);
    }
    Ok(ExitCode::SUCCESS)
}
