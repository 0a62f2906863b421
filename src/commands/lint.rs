//! `lint`: an ONNX model checked against the TensorRT 10 ONNX parser's rules.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

/// Targets `lint` knows the rules of.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LintTarget {
    /// TensorRT 10 (directly, or through ONNX Runtime's TensorRT provider).
    Tensorrt,
}

/// Arguments of `lint`.
#[derive(Args)]
pub struct LintArgs {
    /// The deployment target whose rules apply.
    #[arg(long, value_enum, default_value = "tensorrt")]
    pub target: LintTarget,
    /// The model (.onnx).
    #[arg(required_unless_present = "rules")]
    pub model: Option<PathBuf>,
    /// Print the rules table (each rule with its source) instead of linting.
    #[arg(long)]
    pub rules: bool,
    /// Also list the checks the lint could not decide (types or shapes it cannot infer).
    #[arg(long)]
    pub verbose: bool,
}

/// Lints the model (or prints the rules); exit 1 on a violation.
pub fn run(args: &LintArgs) -> Result<ExitCode> {
    let LintTarget::Tensorrt = args.target;
    let (rules, verbose) = (args.rules, args.verbose);
    if rules {
        print!("{}", focus_exporters::lint::rules_table());
        return Ok(ExitCode::SUCCESS);
    }
    let model = args
        .model
        .as_ref()
        .context("lint: a model file is required")?;
    let report = focus_exporters::lint::lint_tensorrt_file(model)?;
    Ok(print_lint(&model.display().to_string(), &report, verbose))
}

/// Prints a TensorRT lint report; exit 1 on a violation.
pub(crate) fn print_lint(
    what: &str,
    report: &focus_exporters::lint::LintReport,
    verbose: bool,
) -> ExitCode {
    for v in &report.violations {
        println!("  violation  {v}");
    }
    if verbose {
        for u in &report.undecided {
            println!("  undecided  {u}");
        }
    }
    let undecided = if report.undecided.is_empty() {
        String::new()
    } else {
        format!(
            "; {} check(s) undecided (types or shapes not inferable{})",
            report.undecided.len(),
            if verbose {
                ""
            } else {
                ", --verbose lists them"
            }
        )
    };
    if report.ok() {
        println!(
            "TensorRT lint: {what}: {} nodes, no violation of the TensorRT 10 ONNX parser's rules{undecided}",
            report.nodes
        );
        ExitCode::SUCCESS
    } else {
        println!(
            "TensorRT lint: {what}: {} violation(s) of rule(s) {} in {} nodes{undecided}; `focus-export lint --rules` lists the rules and their sources",
            report.violations.len(),
            report.rules_broken().join(", "),
            report.nodes
        );
        ExitCode::FAILURE
    }
}
