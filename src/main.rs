//! The `focus-export` command line: parsing, dispatch to `commands/<command>.rs`, and exit
//! codes. Exporting is the default action (`focus-export --weights W`); everything else is a
//! subcommand.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod commands;

/// Turn Focus-DETR weights (detrex checkpoints as safetensors) into a verified ONNX model.
#[derive(Parser)]
#[command(name = "focus-export", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    export: commands::export::ExportArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Write seeded synthetic weights (focus-synth-v1) with the official names and shapes.
    InitWeights(commands::init_weights::InitWeightsArgs),
    /// List the checkpoint keys of a config, or check a weight file against them.
    Names(commands::names::NamesArgs),
    /// Print the resolved configuration as JSON (a file `--config` accepts back).
    Config(commands::config::ConfigArgs),
    /// Run the model on input tensors (`images` [B, 3, H, W], normalised) and write its outputs.
    Run(commands::run::RunArgs),
    /// Time runtimes side by side on one input: warm-up, timed runs, p50/p90, peak memory.
    Bench(commands::bench::BenchArgs),
    /// Time the forms of the special ops side by side on ONNX Runtime CPU (and tract): the
    /// encoder's deformable attention and top-k at an input size (default 800×1216).
    BenchOps(commands::bench_ops::BenchOpsArgs),
    /// Run an exported model and the torch reference on the same inputs and report their
    /// agreement; exits non-zero on any unexplained difference.
    Check(commands::check::CheckArgs),
    /// Evaluate a COCO results file against an annotation file (pycocotools' bbox COCOeval,
    /// without Python) and print its twelve summary lines.
    Eval(commands::eval::EvalArgs),
    /// Convert a PyTorch checkpoint (.pth, or a .zip holding one) to safetensors with the
    /// canonical names, after the strict schema check; nothing in the file is executed.
    Convert(commands::convert::ConvertArgs),
    /// Detect objects in a photo: resize and normalise it as the official test pipeline does,
    /// run the model, and print (or draw) the detections in original-image pixels.
    Predict(commands::predict::PredictArgs),
    /// Pictures of what the model selects on one photo: foreground scores per feature level, the
    /// tokens each encoder layer keeps, the object tokens, the proposals and the detections,
    /// and a sheet of them all side by side.
    Explain(commands::explain::ExplainArgs),
    /// Measure every runtime × precision × export target of the weights side by side: COCO AP
    /// and ΔAP against the torch reference, agreement AP, the forced pass's worst tensor,
    /// p50/p90 latency, peak memory and file size; a table, JSON, Markdown and an HTML page.
    Matrix(commands::matrix::MatrixArgs),
    /// Check an ONNX model against TensorRT 10's ONNX parser restrictions (onnx-tensorrt's
    /// documented rules for the ops focus-export emits); exits 1 on a violation.
    Lint(commands::lint::LintArgs),
    /// Report the runtimes this binary can use, and how to install what is missing.
    Doctor(commands::doctor::DoctorArgs),
    /// Print the path of libfocus_ops.so, the custom-op library any ONNX Runtime (Python, C++,
    /// Triton) loads to run exports with our ops (`--target ort-cpu`).
    OpsLibrary(commands::ops_library::OpsLibraryArgs),
    /// Write a Triton Inference Server model repository: the detector (ONNX Runtime backend,
    /// or Python backend), preprocessing, postprocessing and the ensemble `focus_detr_image`
    /// that takes encoded image bytes and returns COCO-labelled boxes.
    Triton(commands::triton::TritonArgs),
}

fn main() -> ExitCode {
    restore_sigpipe();
    remove_partial_outputs_on_signals();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            // 2, as clap's usage errors: "could not run", apart from a check's verdict (1).
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, joined by ": ", leaving out a cause whose text the message
/// before it already holds (library errors name their file and include the OS error's text,
/// which is also their `source`).
fn error_chain(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}

/// Ends the process quietly when the reader of stdout goes away (`focus-export … | head`), as
/// Unix tools do: Rust starts with SIGPIPE ignored, and `println!` then panics on the broken
/// pipe. Files are written to a temporary name and renamed, so no partial output is left.
#[cfg(unix)]
fn restore_sigpipe() {
    // SAFETY: called first in main, before any other thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn restore_sigpipe() {}

/// On SIGINT, SIGTERM or SIGHUP, removes the temporary files and folders of the outputs being
/// written (focus_models::weights::pending) and exits with 128 + the signal's number, so an
/// interrupted export, conversion or report leaves neither a partial output nor a stray
/// temporary file; outputs already renamed into place are complete and stay.
#[cfg(unix)]
fn remove_partial_outputs_on_signals() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        // Without the handler the default dispositions apply (temporary files may stay).
        return;
    };
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            focus_models::weights::pending::remove_all();
            eprintln!("interrupted by signal {signal}: no partial output was left");
            // SAFETY: _exit ends the process at once. Unlike exit it runs no C++ static
            // destructors (libtorch, ONNX Runtime) under their still-running worker threads.
            unsafe { libc::_exit(128 + signal) }
        }
    });
}

#[cfg(not(unix))]
fn remove_partial_outputs_on_signals() {}

/// Runs the command line's action: its exit code (0 ok, 1 a check's or lint's verdict).
fn run(cli: Cli) -> Result<ExitCode> {
    use commands::*;
    match cli.command {
        None => export::run(cli.export),
        Some(Command::InitWeights(args)) => init_weights::run(&args),
        Some(Command::Names(args)) => names::run(&args),
        Some(Command::Config(args)) => config::run(&args),
        Some(Command::Run(args)) => run::run(&args),
        Some(Command::Bench(args)) => bench::run(&args),
        Some(Command::BenchOps(args)) => bench_ops::run(&args),
        Some(Command::Check(args)) => check::run(&args),
        Some(Command::Eval(args)) => eval::run(&args),
        Some(Command::Convert(args)) => convert::run(&args),
        Some(Command::Predict(args)) => predict::run(&args),
        Some(Command::Explain(args)) => explain::run(&args),
        Some(Command::Matrix(args)) => matrix::run(&args),
        Some(Command::Lint(args)) => lint::run(&args),
        Some(Command::Doctor(args)) => doctor::run(&args),
        Some(Command::OpsLibrary(args)) => ops_library::run(&args),
        Some(Command::Triton(args)) => triton::run(&args),
    }
}
