//! The `focus-export` command line. Exporting is the default action
//! (`focus-export --weights W`); everything else is a subcommand.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

mod commands;

use focus_export::doctor;
// A build without any runtime feature (export only) uses neither.
#[cfg_attr(
    not(any(feature = "torch", feature = "ort", feature = "tract")),
    allow(unused_imports)
)]
use focus_export::runtimes::{Runtime, RuntimeError};
use focus_models::model::selections::Forcible;
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
    /// The dense baseline, not the official model: every encoder layer keeps every token
    /// (focus.dense), to measure what the token sparsity saves.
    #[arg(long)]
    dense: bool,
}

impl ConfigArg {
    fn load(&self) -> Result<FocusDetrConfig> {
        let mut cfg = FocusDetrConfig::resolve(&self.config)
            .with_context(|| format!("--config {}", self.config))?;
        cfg.focus.dense |= self.dense;
        Ok(cfg)
    }
}

/// Arguments of the default action, exporting ONNX.
#[derive(Args)]
struct ExportArgs {
    /// Weights: .safetensors with the official checkpoint names, or a PyTorch checkpoint
    /// (.pth, or a .zip release archive holding one).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Export the EMA weights of a PyTorch checkpoint (`ema_state`) instead of the trained ones.
    #[arg(long)]
    ema: bool,
    #[command(flatten)]
    config: ConfigArg,
    /// Output ONNX file.
    #[arg(short = 'o', long, default_value = "focus_detr.onnx")]
    output: PathBuf,
    /// ONNX opset (16 to 20).
    #[arg(long, default_value_t = focus_exporters::export::DEFAULT_OPSET)]
    opset: i64,
    /// Leave out the post-processed outputs (scores, labels, boxes_xyxy).
    #[arg(long)]
    no_postprocess: bool,
    /// Add the intermediate tensors as outputs (names as in the goldens).
    #[arg(long)]
    debug: bool,
    /// Debugging: add an input `topk_proposals_in` that replaces the two-stage selection (a
    /// subset of --selection-inputs).
    #[arg(long)]
    proposals_input: bool,
    /// Debugging: add an input `<name>_in` for each of the 13 selections (enc_topk_idx_l,
    /// enc_oesm_token_idx_l, topk_proposals; int64 token indices, rows of −1 keep the model's
    /// own) so that `run --force-selections` and `check` can force them.
    #[arg(long)]
    selection_inputs: bool,
    /// Add an input `orig_sizes` (int64 [batch, 2], height and width) that `boxes_xyxy` are
    /// scaled to.
    #[arg(long)]
    orig_sizes: bool,
    /// Fix the input size (HxW, or BxHxW to fix the batch too): the token counts and every
    /// top-k k become constants.
    #[arg(long, value_name = "HxW")]
    static_shape: Option<focus_exporters::export::StaticShape>,
    /// Where the model will run: picks the forms below (none given: standard ops only, for any
    /// ONNX Runtime; ort-cpu: our deformable-attention kernel, run by focus-export's ORT; ort-cuda:
    /// standard ops; tensorrt: the deformable-attention plugin and the threshold selection;
    /// tract: our custom ops).
    #[arg(long, value_name = "ort-cpu|ort-cuda|tensorrt|tract")]
    target: Option<focus_exporters::Target>,
    /// Deformable attention as standard ops (GridSample), our custom op (ai.focus_detr, run by
    /// focus-export's ORT and tract runtimes), or TensorRT's plugin.
    #[arg(long, value_name = "decomposed|custom|trt-plugin")]
    msda: Option<focus_exporters::MsdaForm>,
    /// Computation precision: fp32, or fp16 (float16 weights and computation with float32
    /// islands where float16 breaks the model; float32 inputs and outputs).
    #[arg(long, default_value = "fp32", value_name = "fp32|fp16")]
    precision: focus_exporters::fp16::Precision,
    /// Top-k as ONNX TopK, our DynamicTopK op, or (encoder selections) an exact TopK-free
    /// threshold selection for TensorRT.
    #[arg(long, value_name = "onnx|custom|threshold")]
    topk: Option<focus_exporters::TopkForm>,
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
    /// Run the model on input tensors (`images` [B, 3, H, W], normalised) and write its outputs.
    Run(RunArgs),
    /// Time runtimes side by side on one input: warm-up, timed runs, p50/p90, peak memory.
    Bench(BenchArgs),
    /// Time the forms of the special ops side by side on ONNX Runtime CPU (and tract): the
    /// encoder's deformable attention and top-k at an input size (default 800×1216).
    BenchOps {
        /// Input height and width whose encoder problem is timed.
        #[arg(long, default_value = "800x1216")]
        size: focus_exporters::export::StaticShape,
        /// Untimed runs first.
        #[arg(long, default_value_t = 1)]
        warmup: usize,
        /// Timed runs.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// CPU threads of the runtimes.
        #[arg(long)]
        threads: Option<usize>,
        /// Also time tract.
        #[arg(long)]
        tract: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
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
    Explain(commands::predict::ExplainArgs),
    /// Check an ONNX model against TensorRT 10's ONNX parser restrictions (onnx-tensorrt's
    /// documented rules for the ops focus-export emits); exits 1 on a violation.
    Lint {
        /// The deployment target whose rules apply.
        #[arg(long, value_enum, default_value = "tensorrt")]
        target: LintTarget,
        /// The model (.onnx).
        #[arg(required_unless_present = "rules")]
        model: Option<PathBuf>,
        /// Print the rules table (each rule with its source) instead of linting.
        #[arg(long)]
        rules: bool,
        /// Also list the checks the lint could not decide (types or shapes it cannot infer).
        #[arg(long)]
        verbose: bool,
    },
    /// Report the runtimes this binary can use, and how to install what is missing.
    Doctor {
        /// Also require CUDA and the GPU providers of ONNX Runtime.
        #[arg(long)]
        gpu: bool,
    },
}

/// Targets `lint` knows the rules of.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LintTarget {
    /// TensorRT 10 (directly, or through ONNX Runtime's TensorRT provider).
    Tensorrt,
}

/// Which runtime executes the model.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum RuntimeKind {
    /// The libtorch reference (needs the `torch` feature and --weights).
    Torch,
    /// ONNX Runtime on an exported model (--model).
    Ort,
    /// tract (pure Rust) on an exported model (--model).
    Tract,
}

/// ONNX Runtime execution provider.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ProviderKind {
    /// CPU.
    Cpu,
    /// CUDA.
    Cuda,
    /// TensorRT.
    Tensorrt,
}

/// How to build a runtime: what it loads and its execution options (shared by `run`, `bench`,
/// `check` and `predict`).
#[derive(Args, Clone)]
struct RuntimeArgs {
    /// Weights (.safetensors) for the torch runtime.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Exported model (.onnx) for the ort and tract runtimes.
    #[arg(long)]
    model: Option<PathBuf>,
    #[command(flatten)]
    config: ConfigArg,
    /// ONNX Runtime execution provider.
    #[arg(long, value_enum, default_value = "cpu")]
    provider: ProviderKind,
    /// TensorRT: build fp16 engines.
    #[arg(long)]
    fp16: bool,
    /// TensorRT: engine cache folder.
    #[arg(long)]
    engine_cache: Option<PathBuf>,
    /// TensorRT: optimisation profile "MIN;OPT;MAX", each like images:1x3x800x1344.
    #[arg(long)]
    trt_profile: Option<String>,
    /// Device for the torch runtime and the GPU providers: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// CPU threads of the runtime (default: the runtime's own choice).
    #[arg(long)]
    threads: Option<usize>,
    /// ONNX Runtime: run TensorRT plugin nodes (the `--target tensorrt` export) with
    /// focus-export's CPU emulation of the plugin, to check that model without TensorRT. This
    /// is not TensorRT: it proves the graph around the plugin, not TensorRT's kernels.
    #[arg(long)]
    emulate_trt_plugins: bool,
    /// ONNX Runtime and tract: record their per-node profile (set by `bench --profile`).
    #[arg(skip)]
    profile: bool,
}

/// What the torch reference computes besides the outputs (unread in a build without it).
#[derive(Clone, Copy, Default)]
#[cfg_attr(not(feature = "torch"), allow(dead_code))]
struct ModelFlags {
    debug: bool,
    force: Forcible,
    clamp_object_tokens: bool,
}

/// Arguments of `run`.
#[derive(Args)]
struct RunArgs {
    /// The runtime.
    #[arg(long, value_enum, default_value = "torch")]
    runtime: RuntimeKind,
    #[command(flatten)]
    rt: RuntimeArgs,
    /// Input tensors (.safetensors with `images` [B, 3, H, W] float32, normalised).
    #[arg(long)]
    input: PathBuf,
    /// Output tensors (.safetensors).
    #[arg(long)]
    output: PathBuf,
    /// Also write the intermediate tensors (torch; exported models have them when exported
    /// with --debug).
    #[arg(long)]
    debug: bool,
    /// Use `topk_proposals` from the input file in place of the two-stage selection (debugging;
    /// torch only, a subset of --force-selections).
    #[arg(long)]
    override_proposals: bool,
    /// Force the selections this file holds (a golden case or a `--debug` output:
    /// enc_topk_idx_l, enc_oesm_token_idx_l, topk_proposals) instead of the model's own; an
    /// exported model needs `--debug --selection-inputs`.
    #[arg(long, value_name = "F.safetensors")]
    force_selections: Option<PathBuf>,
    /// Deviation from the official model: run inputs with too few tokens for 300 object tokens
    /// per encoder layer, using fewer object tokens.
    #[arg(long)]
    clamp_object_tokens: bool,
}

/// Arguments of `bench`.
#[derive(Args)]
struct BenchArgs {
    /// Runtimes to time side by side (default: torch with --weights, ort and tract with --model).
    #[arg(long, value_enum, value_delimiter = ',')]
    runtimes: Vec<RuntimeKind>,
    #[command(flatten)]
    rt: RuntimeArgs,
    /// Input tensors (.safetensors with `images` [B, 3, H, W] float32, normalised).
    #[arg(long)]
    input: PathBuf,
    /// Untimed runs first, per runtime.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Timed runs, per runtime.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Repeat the whole comparison this many times, the runtimes taking turns (each round a
    /// fresh process per runtime, with its warm-up and timed runs), and report each runtime
    /// over all its rounds' runs: slow drift of a shared machine then falls on every runtime
    /// alike instead of on whichever ran during it. `--profile` keeps the first round's profile.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Also time every runtime in the dense baseline and print sparse/dense latency ratios: ort
    /// and tract run this model (exported with --dense), torch runs its weights with --dense.
    #[arg(long, value_name = "DENSE.onnx")]
    dense_model: Option<PathBuf>,
    /// Profile the timed runs (ONNX Runtime's profiler; tract timed node by node) and print the
    /// time per op type and the slowest nodes (ort and tract; the warm-up runs are left out; the
    /// timings then include the profiler's own overhead).
    #[arg(long)]
    profile: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Internal: time only this form (`<runtime>` or `<runtime>:dense`) in this process and
    /// print its result as JSON (the parent `bench` runs one such child per form).
    #[arg(long, hide = true, value_name = "FORM")]
    child: Option<String>,
}

fn main() -> ExitCode {
    restore_sigpipe();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            // 2, as clap's usage errors: "could not run", apart from a check's verdict (1).
            ExitCode::from(2)
        }
    }
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
        Some(Command::Run(args)) => {
            let mut inputs = focus_export::tensors::read_tensors(&args.input)?;
            let force = match (&args.force_selections, args.override_proposals) {
                (Some(_), _) => Forcible::All,
                (None, true) => Forcible::Proposals,
                (None, false) => Forcible::None,
            };
            let flags = ModelFlags {
                debug: args.debug,
                force,
                clamp_object_tokens: args.clamp_object_tokens,
            };
            let mut rt = make_runtime(args.runtime, &args.rt, flags)?;
            if let Some(f) = &args.force_selections {
                let forced = focus_export::tensors::read_tensors(f)?;
                let model_inputs = rt.inputs();
                let takes = |name: &str| {
                    matches!(args.runtime, RuntimeKind::Torch)
                        || model_inputs.contains(&focus_exporters::export::selection_input(name))
                };
                let names =
                    focus_export::runtimes::add_forced_selections(&mut inputs, &forced, &takes)
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
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Bench(args)) => bench(&args),
        Some(Command::BenchOps {
            size,
            warmup,
            runs,
            threads,
            tract,
            json,
        }) => bench_ops(size, warmup, runs, threads, tract, json),
        Some(Command::Check(args)) => commands::check::run(&args),
        Some(Command::Eval(args)) => commands::eval::run(&args),
        Some(Command::Convert(args)) => commands::convert::run(&args),
        Some(Command::Predict(args)) => commands::predict::predict(&args),
        Some(Command::Explain(args)) => commands::predict::explain(&args),
        Some(Command::Lint {
            target: LintTarget::Tensorrt,
            model,
            rules,
            verbose,
        }) => {
            if rules {
                print!("{}", focus_exporters::lint::rules_table());
                return Ok(ExitCode::SUCCESS);
            }
            let model = model.context("lint: a model file is required")?;
            let report = focus_exporters::lint::lint_tensorrt_file(&model)?;
            Ok(print_lint(&model.display().to_string(), &report, verbose))
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

/// Builds the runtime of `kind` that `args` ask for (`flags` apply to the torch reference).
fn make_runtime(
    kind: RuntimeKind,
    args: &RuntimeArgs,
    flags: ModelFlags,
) -> Result<Box<dyn focus_export::runtimes::Runtime>> {
    match kind {
        RuntimeKind::Torch => torch_runtime(args, flags),
        RuntimeKind::Ort => ort_runtime(args),
        RuntimeKind::Tract => tract_runtime(args),
    }
}

#[cfg(feature = "tract")]
fn tract_runtime(args: &RuntimeArgs) -> Result<Box<dyn focus_export::runtimes::Runtime>> {
    let model = args
        .model
        .as_ref()
        .context("--model is required for --runtime tract")?;
    let opts = focus_export::runtimes::tract::TractOptions {
        threads: args.threads,
        profile: args.profile,
    };
    Ok(Box::new(focus_export::runtimes::tract::TractRuntime::new(
        model, &opts,
    )?))
}

#[cfg(not(feature = "tract"))]
fn tract_runtime(_args: &RuntimeArgs) -> Result<Box<dyn focus_export::runtimes::Runtime>> {
    bail!("this binary was built without the `tract` feature; rebuild with `cargo build --release --features tract`")
}

/// CUDA device index from --device (cpu → 0).
#[cfg(any(feature = "ort", feature = "torch"))]
fn cuda_index(device: &str) -> Result<i32> {
    match device {
        "cpu" | "cuda" => Ok(0),
        d => d
            .strip_prefix("cuda:")
            .and_then(|i| i.parse().ok())
            .with_context(|| format!("--device {d}: expected cpu, cuda or cuda:N")),
    }
}

#[cfg(feature = "ort")]
fn ort_runtime(args: &RuntimeArgs) -> Result<Box<dyn focus_export::runtimes::Runtime>> {
    use focus_export::runtimes::ort::{OrtOptions, OrtRuntime, Provider};
    let model = args
        .model
        .as_ref()
        .context("--model is required for --runtime ort")?;
    let device_id = cuda_index(&args.device)?;
    let provider = match args.provider {
        ProviderKind::Cpu => Provider::Cpu,
        ProviderKind::Cuda => Provider::Cuda { device_id },
        ProviderKind::Tensorrt => {
            let profile = match &args.trt_profile {
                None => None,
                Some(p) => {
                    let parts: Vec<&str> = p.split(';').collect();
                    let [min, opt, max] = parts[..] else {
                        bail!("--trt-profile {p}: expected MIN;OPT;MAX, e.g. images:1x3x480x640;images:1x3x800x1216;images:1x3x1344x1344");
                    };
                    Some((min.to_string(), opt.to_string(), max.to_string()))
                }
            };
            Provider::TensorRt {
                device_id,
                fp16: args.fp16,
                engine_cache: args.engine_cache.clone(),
                profile,
            }
        }
    };
    if args.emulate_trt_plugins && matches!(provider, Provider::TensorRt { .. }) {
        bail!("--emulate-trt-plugins is for the CPU and CUDA providers: with --provider tensorrt, TensorRT runs its own plugin");
    }
    let opts = OrtOptions {
        provider,
        threads: args.threads,
        emulate_trt_plugins: args.emulate_trt_plugins,
        profile: args.profile,
    };
    Ok(Box::new(OrtRuntime::new(model, &opts)?))
}

#[cfg(not(feature = "ort"))]
fn ort_runtime(_args: &RuntimeArgs) -> Result<Box<dyn focus_export::runtimes::Runtime>> {
    bail!("this binary was built without the `ort` feature; rebuild with `cargo build --release --features ort`")
}

#[cfg(feature = "torch")]
fn torch_runtime(
    args: &RuntimeArgs,
    flags: ModelFlags,
) -> Result<Box<dyn focus_export::runtimes::Runtime>> {
    use focus_export::runtimes::torch::{TorchOptions, TorchRuntime};
    let weights = args
        .weights
        .as_ref()
        .context("--weights is required for --runtime torch")?;
    let cfg = args.config.load()?;
    let schema = WeightSchema::new(&cfg);
    let w = Weights::load(weights, &schema, &cfg.name)?;
    let device = match args.device.as_str() {
        "cpu" => tch::Device::Cpu,
        d => tch::Device::Cuda(cuda_index(d)? as usize),
    };
    if let tch::Device::Cuda(i) = device {
        let n = tch::Cuda::device_count();
        if i as i64 >= n {
            bail!("--device {}: CUDA device {i} is not available ({n} CUDA device(s) visible to libtorch)", args.device);
        }
    }
    if let Some(t) = args.threads {
        tch::set_num_threads(t as i32);
    }
    let opts = TorchOptions {
        debug: flags.debug,
        force: flags.force,
        clamp_object_tokens: flags.clamp_object_tokens,
    };
    Ok(Box::new(TorchRuntime::new(cfg, &w, device, opts)?))
}

#[cfg(not(feature = "torch"))]
fn torch_runtime(
    _args: &RuntimeArgs,
    _flags: ModelFlags,
) -> Result<Box<dyn focus_export::runtimes::Runtime>> {
    bail!("this binary was built without the `torch` feature; rebuild with `cargo build --release --features torch` (after scripts/setup-env.sh)")
}

fn export(args: ExportArgs) -> Result<ExitCode> {
    let Some(weights) = args.weights else {
        bail!("nothing to do: pass --weights W to export, or a subcommand (see --help)");
    };
    let start = Instant::now();
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let step = |msg: &str| spinner.set_message(msg.to_string());
    step("reading the configuration");
    let cfg = args.config.load()?;
    let schema = WeightSchema::new(&cfg);
    step("loading the weights");
    let options = focus_models::checkpoint::CheckpointOptions { ema: args.ema };
    let w = Weights::load_with(&weights, &schema, &cfg.name, options)?;
    step("hashing the weights");
    let sha = sha256_file(&weights)?;
    let opts = focus_exporters::ExportOptions {
        opset: args.opset,
        postprocess: !args.no_postprocess,
        debug: args.debug,
        weights_sha256: sha,
        selection_inputs: match (args.selection_inputs, args.proposals_input) {
            (true, _) => Forcible::All,
            (false, true) => Forcible::Proposals,
            (false, false) => Forcible::None,
        },
        orig_sizes: args.orig_sizes,
        static_shape: args.static_shape,
        forms: {
            // No target: standard ops only, a file every ONNX Runtime loads.
            let base = args.target.map(|t| t.forms()).unwrap_or_default();
            focus_exporters::OpForms {
                msda: args.msda.unwrap_or(base.msda),
                topk: args.topk.unwrap_or(base.topk),
            }
        },
        precision: args.precision,
    };
    step("tracing the model into ONNX");
    let summary = focus_exporters::export(&cfg, &w, &opts)?;
    step("writing the file");
    let written = weights::write_atomically_with(&args.output, |out| {
        summary.write_to(&w, out).map_err(std::io::Error::other)
    })
    .with_context(|| format!("writing {}", args.output.display()))?;
    spinner.finish_and_clear();
    println!(
        "wrote {} ({:.1} MB), opset {}, {} nodes, in {:.1} s",
        args.output.display(),
        written as f64 / 1e6,
        summary.opset,
        summary.nodes,
        start.elapsed().as_secs_f64()
    );
    println!("  config   {} (weights {})", cfg.name, weights.display());
    if let focus_models::weights::WeightFile::Pytorch(c) = w.file() {
        println!("  read     {}", c.layout());
        if c.has_unread_ema() {
            println!("  note     the checkpoint also holds EMA weights (`ema_state`); --ema exports those");
        }
    }
    for (n, s) in &summary.inputs {
        println!("  input    {n} {s}");
    }
    for (n, s) in &summary.outputs {
        println!("  output   {n} {s}");
    }
    let ops: Vec<String> = summary
        .op_histogram
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!("  ops      {}", ops.join(", "));
    let used: Vec<String> = summary
        .custom_ops
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!(
        "  forms    deformable attention: {}, top-k: {}",
        summary.forms.msda.as_str(),
        summary.forms.topk.as_str()
    );
    if let Some(f) = &summary.fp16 {
        println!(
            "  precision fp16: {} nodes in float16, {} in float32 islands (exporters/src/fp16.rs), {} casts, {} weights stored as float16; float32 inputs and outputs",
            f.fp16_nodes, f.fp32_nodes, f.casts, f.fp16_weights
        );
    }
    println!(
        "  custom   {}",
        if used.is_empty() {
            "none (standard ONNX ops only)".to_string()
        } else {
            used.join(", ")
        }
    );
    if summary.forms.msda == focus_exporters::MsdaForm::TrtPlugin {
        println!("  note     the TensorRT plugin node runs only where TensorRT takes it (TensorRT, or ONNX Runtime's TensorRT provider); `--emulate-trt-plugins` runs it on the CPU for checks");
    }
    if let Some(s) = args.static_shape {
        println!(
            "  static   {}×{} input, batch {}",
            s.height,
            s.width,
            s.batch.map_or_else(|| "dynamic".into(), |b| b.to_string())
        );
    }
    if args.target == Some(focus_exporters::Target::TensorRt) {
        // Every TensorRT export is linted against the parser's rules (the model written; the
        // rules need the weights' types and shapes, not their data).
        let report = focus_exporters::lint::lint_tensorrt(&summary.model);
        return Ok(print_lint(
            &args.output.display().to_string(),
            &report,
            false,
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a TensorRT lint report; exit 1 on a violation.
fn print_lint(what: &str, report: &focus_exporters::lint::LintReport, verbose: bool) -> ExitCode {
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

/// Hex sha256 of a file, streamed.
fn sha256_file(path: &Path) -> Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
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

/// The runtimes `bench` times when none are named: those its arguments can build.
fn default_bench_runtimes(args: &RuntimeArgs) -> Vec<RuntimeKind> {
    let mut v = Vec::new();
    if args.weights.is_some() && cfg!(feature = "torch") {
        v.push(RuntimeKind::Torch);
    }
    if args.model.is_some() {
        if cfg!(feature = "ort") {
            v.push(RuntimeKind::Ort);
        }
        if cfg!(feature = "tract") {
            v.push(RuntimeKind::Tract);
        }
    }
    v
}

fn bench(args: &BenchArgs) -> Result<ExitCode> {
    let inputs = focus_export::tensors::read_tensors(&args.input)?;
    let kinds = if args.runtimes.is_empty() {
        default_bench_runtimes(&args.rt)
    } else {
        args.runtimes.clone()
    };
    if kinds.is_empty() {
        bail!("nothing to time: pass --weights (torch) and/or --model (ort, tract), or --runtimes");
    }
    let shape = inputs
        .get("images")
        .map(|t| format!("{:?}", t.shape))
        .unwrap_or_default();
    // Each runtime as asked, then (with --dense-model) in the dense baseline.
    let mut timed = args.rt.clone();
    timed.profile = args.profile;
    let mut forms = vec![(timed.clone(), false)];
    if let Some(dense) = &args.dense_model {
        let mut rt = timed;
        rt.model = Some(dense.clone());
        rt.config.dense = true;
        forms.push((rt, true));
    }
    // Every form in a process of its own (this binary again, with --child): one runtime's
    // libraries, caches, threads and freed memory must not count in the next one's time and
    // peak memory (measured: libtorch left ~100 MiB resident that ORT's peak then carried).
    let mut todo = Vec::new();
    for kind in kinds {
        for (rt_args, dense) in &forms {
            let form = bench_form_name(kind, *dense);
            match &args.child {
                Some(only) if *only != form => continue,
                Some(_) => {
                    let r = bench_in_process(args, kind, rt_args, *dense, &inputs)?;
                    println!("{}", serde_json::to_string(&r)?);
                    return Ok(ExitCode::SUCCESS);
                }
                None => todo.push(form),
            }
        }
    }
    let mut results: Vec<focus_export::bench::BenchResult> = Vec::new();
    for round in 0..args.rounds as usize {
        for (i, form) in todo.iter().enumerate() {
            if !args.json {
                let of = if args.rounds > 1 {
                    format!(", round {} of {}", round + 1, args.rounds)
                } else {
                    String::new()
                };
                eprintln!(
                    "timing {form} ({} warm-up, {} timed run(s){of})…",
                    args.warmup, args.runs
                );
            }
            let r = bench_in_child(form)
                .with_context(|| format!("timing {form} on {}", args.input.display()))?;
            match results.get_mut(i) {
                Some(earlier) => earlier.merge(r),
                None => results.push(r),
            }
        }
    }
    if let Some(only) = &args.child {
        bail!("--child {only}: not one of the forms this bench times");
    }
    let ratios = focus_export::bench::sparse_dense_ratios(&results);
    if args.json {
        let doc = serde_json::json!({
            "input": args.input.display().to_string(),
            "images_shape": inputs.get("images").map(|t| t.shape.clone()),
            "threads": args.rt.threads,
            "warmup": args.warmup,
            "runs": args.runs,
            "rounds": args.rounds,
            "results": results,
            "sparse_dense_p50": ratios.iter().map(|(rt, r)| serde_json::json!({"runtime": rt, "ratio": r})).collect::<Vec<_>>(),
            "paper_sparse_dense_latency": focus_export::bench::PAPER_SPARSE_DENSE_LATENCY,
            "paper_sparse_dense_gflops": focus_export::bench::PAPER_SPARSE_DENSE_GFLOPS,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    let base = results[0].p50_s;
    let rounds = if args.rounds > 1 {
        format!(" × {} rounds taking turns", args.rounds)
    } else {
        String::new()
    };
    println!(
        "{} images {shape}, {} warm-up + {} timed run(s) each{rounds}, threads {}",
        args.input.display(),
        args.warmup,
        args.runs,
        args.rt
            .threads
            .map_or_else(|| "default".to_string(), |t| t.to_string())
    );
    println!(
        "  {:<16} {:>8} {:>9} {:>9} {:>9} {:>10}  first run s",
        "runtime", "load s", "p50 s", "p90 s", "÷ first", "peak MiB"
    );
    for r in &results {
        println!(
            "  {:<16} {:>8.2} {:>9.3} {:>9.3} {:>9.2} {:>10} {}",
            r.label(),
            r.load_s,
            r.p50_s,
            r.p90_s,
            r.p50_s / base,
            r.peak_rss_mib
                .map_or_else(|| "?".into(), |m| format!("{m:.0}")),
            r.warmup_s
                .first()
                .map_or_else(|| "-".into(), |t| format!("{t:.2}"))
        );
    }
    if !ratios.is_empty() {
        let each: Vec<String> = ratios
            .iter()
            .map(|(rt, r)| format!("{rt} {r:.2}"))
            .collect();
        println!(
            "  sparse/dense p50: {} (the paper, V100: latency {:.2}, GFLOPs {:.2})",
            each.join(", "),
            focus_export::bench::PAPER_SPARSE_DENSE_LATENCY,
            focus_export::bench::PAPER_SPARSE_DENSE_GFLOPS
        );
    }
    for r in &results {
        if let Some(p) = &r.profile {
            print!("\n{}", p.table(&r.label()));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A timed form's name, as `--child` takes it and progress lines print it: `ort`, `ort:dense`.
fn bench_form_name(kind: RuntimeKind, dense: bool) -> String {
    let name = clap::ValueEnum::to_possible_value(&kind)
        .map(|v| v.get_name().to_string())
        .unwrap_or_else(|| format!("{kind:?}"));
    if dense {
        format!("{name}:dense")
    } else {
        name
    }
}

/// Times one form in this process.
fn bench_in_process(
    args: &BenchArgs,
    kind: RuntimeKind,
    rt_args: &RuntimeArgs,
    dense: bool,
    inputs: &focus_export::tensors::TensorMap,
) -> Result<focus_export::bench::BenchResult> {
    let make = || {
        let rt = make_runtime(kind, rt_args, ModelFlags::default())?;
        if args.dense_model.is_some() {
            ensure_density(kind, rt_args, rt.as_ref(), dense)?;
        }
        Ok(rt)
    };
    let r = focus_export::bench::bench(
        || {
            make().map_err(|e: anyhow::Error| {
                focus_export::runtimes::RuntimeError::Backend(format!("{e:#}"))
            })
        },
        inputs,
        args.warmup,
        args.runs,
    )?;
    Ok(r)
}

/// Times one form in a child process: this command line again with `--child FORM`.
fn bench_in_child(form: &str) -> Result<focus_export::bench::BenchResult> {
    let exe = std::env::current_exe()
        .context("finding this program to time each runtime in a process of its own")?;
    let out = std::process::Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .arg("--child")
        .arg(form)
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("starting {}", exe.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let why = stderr.trim();
        let why = why.strip_prefix("error: ").unwrap_or(why);
        bail!("{why}");
    }
    // The child's own notes (warnings from a runtime's library) still reach the user.
    eprint!("{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .with_context(|| format!("reading the timing child's result: {line:?}"))
}

/// With `--dense-model`, each timed model must be the form it is timed as: the sparse one as
/// `--model` (or torch's config), the dense one (exported with `--dense`) as `--dense-model`.
fn ensure_density(
    kind: RuntimeKind,
    args: &RuntimeArgs,
    rt: &dyn focus_export::runtimes::Runtime,
    dense: bool,
) -> Result<()> {
    let what = match (kind, &args.model) {
        (RuntimeKind::Torch, _) | (_, None) => {
            // The torch reference's form follows the flags alone: only --dense can misplace it.
            if !dense && args.config.dense {
                bail!(
                    "--dense with --dense-model: the torch reference would run dense twice; \
                     drop --dense (--dense-model times the dense form beside the sparse one)"
                );
            }
            return Ok(());
        }
        (_, Some(m)) => m.display().to_string(),
    };
    match rt.config().map(|c| c.focus.dense) {
        None => bail!(
            "{what}: no focus-export configuration in its metadata, so whether it is the dense \
             baseline is unknown; export it with focus-export"
        ),
        Some(false) if dense => {
            bail!("{what} (--dense-model) is not a dense export: export it with --dense")
        }
        Some(true) if !dense => bail!(
            "{what} is a dense export: pass the sparse model as --model and the dense one as \
             --dense-model"
        ),
        Some(_) => Ok(()),
    }
}

/// Builds a runtime for a benchmark.
#[cfg(feature = "ort")]
type MakeRuntime<'a> = Box<dyn Fn() -> Result<Box<dyn Runtime>, RuntimeError> + 'a>;

/// One op problem timed in every form on the chosen runtimes.
#[cfg(feature = "ort")]
fn bench_ops(
    size: focus_exporters::export::StaticShape,
    warmup: usize,
    runs: usize,
    threads: Option<usize>,
    with_tract: bool,
    json: bool,
) -> Result<ExitCode> {
    use focus_export::runtimes::ort::{OrtOptions, OrtRuntime, Provider};
    use focus_export::tensors::{HostTensor, TensorMap};
    use focus_exporters::opgraph::{ms_deform_attn_model, topk_model};
    use focus_exporters::{MsdaForm, OpForms, TopkForm};
    let cfg = FocusDetrConfig::default();
    let t = &cfg.transformer;
    let levels = cfg.level_sizes(size.height, size.width);
    let s: usize = levels.iter().map(|(h, w)| h * w).sum();
    let (m, d, p, l) = (
        t.num_heads,
        t.embed_dim / t.num_heads,
        t.num_points,
        levels.len(),
    );
    // Deterministic inputs; every token is a query (the encoder problem).
    let fill = |n: usize, lo: f32, hi: f32, seed: u32| -> Vec<f32> {
        (0..n)
            .map(|i| {
                let h = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8;
                lo + (hi - lo) * (h as f32 / (1u32 << 24) as f32)
            })
            .collect()
    };
    // The deformable-attention inputs for q queries over the s tokens.
    let msda_inputs = |q: usize| {
        let mut x = TensorMap::new();
        x.insert(
            "value".into(),
            HostTensor::f32(vec![1, s, m, d], fill(s * m * d, -1.0, 1.0, 1)),
        );
        x.insert(
            "sampling_locations".into(),
            HostTensor::f32(vec![1, q, m, l, p, 2], fill(q * m * l * p * 2, 0.0, 1.0, 2)),
        );
        x.insert(
            "attention_weights".into(),
            HostTensor::f32(vec![1, q, m, l, p], fill(q * m * l * p, 0.0, 0.1, 3)),
        );
        x
    };
    let k = cfg.focus.token_budget(s);
    // The real encoder problem: layer 0 (the largest k_l) attends from its selected tokens only.
    let k0 = cfg
        .focus
        .layer_token_counts(k)
        .first()
        .copied()
        .unwrap_or(k);
    let (msda_all, msda_layer0) = (msda_inputs(s), msda_inputs(k0));
    let mut topk_in = TensorMap::new();
    topk_in.insert(
        "scores".into(),
        HostTensor::f32(vec![1, s], fill(s, -5.0, 5.0, 4)),
    );
    topk_in.insert("k".into(), HostTensor::i64(vec![1], vec![k as i64]));

    let dir = std::env::temp_dir().join(format!("focus-export-bench-ops-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let decomposed = ms_deform_attn_model(&levels, m, d, p, OpForms::default(), 17)?;
    let native = ms_deform_attn_model(
        &levels,
        m,
        d,
        p,
        OpForms {
            msda: MsdaForm::Custom,
            ..Default::default()
        },
        17,
    )?;
    let every = format!("MsDeformAttn {s} queries × {l} levels × {m} heads × {p} points");
    let layer0 =
        format!("MsDeformAttn encoder layer 0: its {k0} selected of {s} tokens as queries");
    let mut problems: Vec<(String, String, Vec<u8>, &TensorMap)> = Vec::new();
    for (problem, inputs) in [(&every, &msda_all), (&layer0, &msda_layer0)] {
        problems.push((
            problem.clone(),
            "decomposed (GridSample)".into(),
            decomposed.clone(),
            inputs,
        ));
        problems.push((
            problem.clone(),
            "native (ai.focus_detr::MsDeformAttn)".into(),
            native.clone(),
            inputs,
        ));
    }
    problems.extend([
        (
            format!("top-k {k} of {s}"),
            "ONNX TopK".into(),
            topk_model(OpForms::default(), false, 17)?,
            &topk_in,
        ),
        (
            format!("top-k {k} of {s}"),
            "native (ai.focus_detr::DynamicTopK)".into(),
            topk_model(
                OpForms {
                    topk: TopkForm::Custom,
                    ..Default::default()
                },
                false,
                17,
            )?,
            &topk_in,
        ),
        (
            format!("top-k {k} of {s}"),
            "threshold selection (set only)".into(),
            topk_model(
                OpForms {
                    topk: TopkForm::Threshold,
                    ..Default::default()
                },
                true,
                17,
            )?,
            &topk_in,
        ),
    ]);
    let mut rows = Vec::new();
    for (i, (problem, form, bytes, inputs)) in problems.iter().enumerate() {
        let path = dir.join(format!("op{i}.onnx"));
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        let mut makers: Vec<(&str, MakeRuntime<'_>)> = vec![(
            "ort-cpu",
            Box::new(|| {
                OrtRuntime::new(
                    &path,
                    &OrtOptions {
                        provider: Provider::Cpu,
                        threads,
                        emulate_trt_plugins: false,
                        profile: false,
                    },
                )
                .map(|r| Box::new(r) as Box<dyn Runtime>)
                .map_err(|e| RuntimeError::Backend(e.to_string()))
            }),
        )];
        #[cfg(feature = "tract")]
        if with_tract && !form.starts_with("threshold") {
            makers.push((
                "tract",
                Box::new(|| {
                    let opts = focus_export::runtimes::tract::TractOptions {
                        threads,
                        profile: false,
                    };
                    focus_export::runtimes::tract::TractRuntime::new(&path, &opts)
                        .map(|r| Box::new(r) as Box<dyn Runtime>)
                }),
            ));
        }
        let _ = with_tract;
        for (rt, make) in &makers {
            if !json {
                eprintln!("timing {problem}, {form} on {rt}…");
            }
            let r = focus_export::bench::bench(make, inputs, warmup, runs)
                .with_context(|| format!("{problem}, {form} on {rt}"))?;
            rows.push((problem.clone(), form.clone(), r));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    if json {
        let doc: Vec<_> = rows
            .iter()
            .map(|(p, f, r)| serde_json::json!({"problem": p, "form": f, "result": r}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "special ops at {}×{} ({} warm-up + {} timed runs, threads {})",
        size.height,
        size.width,
        warmup,
        runs,
        threads.map_or_else(|| "default".into(), |t| t.to_string())
    );
    let mut last_problem = String::new();
    let mut base = 0.0;
    for (p, f, r) in &rows {
        if *p != last_problem {
            println!("  {p}");
            last_problem = p.clone();
            base = r.p50_s;
        }
        println!(
            "    {:<38} {:<8} p50 {:>9.4} s  p90 {:>9.4} s  ÷ first {:>6.3}",
            f,
            r.runtime,
            r.p50_s,
            r.p90_s,
            r.p50_s / base
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "ort"))]
fn bench_ops(
    _size: focus_exporters::export::StaticShape,
    _warmup: usize,
    _runs: usize,
    _threads: Option<usize>,
    _tract: bool,
    _json: bool,
) -> Result<ExitCode> {
    bail!("bench-ops needs the `ort` feature")
}
