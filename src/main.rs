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
    /// ONNX opset (16 to 20).
    #[arg(long, default_value_t = focus_exporters::export::DEFAULT_OPSET)]
    opset: i64,
    /// Leave out the post-processed outputs (scores, labels, boxes_xyxy).
    #[arg(long)]
    no_postprocess: bool,
    /// Add the intermediate tensors as outputs (names as in the goldens).
    #[arg(long)]
    debug: bool,
    /// Debugging: add an input `topk_proposals_in` that replaces the two-stage selection.
    #[arg(long)]
    proposals_input: bool,
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
    /// Time a runtime on an input: warm-up, then repeated runs; prints each run and the median.
    Bench {
        #[command(flatten)]
        run: RunArgs,
        /// Untimed runs first.
        #[arg(long, default_value_t = 1)]
        warmup: usize,
        /// Timed runs.
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Detect objects in a photo: resize and normalise it as the official test pipeline does,
    /// run the model, and print (or draw) the detections in original-image pixels.
    Predict {
        #[command(flatten)]
        run: PredictArgs,
    },
    /// Report the runtimes this binary can use, and how to install what is missing.
    Doctor {
        /// Also require CUDA and the GPU providers of ONNX Runtime.
        #[arg(long)]
        gpu: bool,
    },
}

/// Which runtime executes the model.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum RuntimeKind {
    /// The libtorch reference (needs the `torch` feature and --weights).
    Torch,
    /// ONNX Runtime on an exported model (--model).
    Ort,
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

/// Arguments of `predict`.
#[derive(Args)]
struct PredictArgs {
    /// Weights (.safetensors).
    #[arg(long)]
    weights: PathBuf,
    #[command(flatten)]
    config: ConfigArg,
    /// The photo (JPEG, PNG or WebP).
    #[arg(long)]
    image: PathBuf,
    /// Write the photo with the detections drawn on it (PNG or JPEG by extension).
    #[arg(long)]
    draw: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Show detections with at least this score.
    #[arg(long, default_value_t = 0.3)]
    score_threshold: f32,
    /// Show at most this many detections.
    #[arg(long, default_value_t = 100)]
    top: usize,
    /// Device for the torch runtime: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// Arguments shared by `run` and `bench`.
#[derive(Args)]
struct RunArgs {
    /// The runtime.
    #[arg(long, value_enum, default_value = "torch")]
    runtime: RuntimeKind,
    /// Weights (.safetensors) for the torch runtime.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Exported model (.onnx) for the ort runtime.
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
    /// Input tensors (.safetensors with `images` [B, 3, H, W] float32, normalised).
    #[arg(long)]
    input: PathBuf,
    /// Output tensors (.safetensors).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Also write the intermediate tensors (names as in the goldens).
    #[arg(long)]
    debug: bool,
    /// Device for the torch runtime: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Use `topk_proposals` from the input file in place of the two-stage selection (debugging).
    #[arg(long)]
    override_proposals: bool,
    /// Deviation from the official model: run inputs with too few tokens for 300 object tokens
    /// per encoder layer, using fewer object tokens.
    #[arg(long)]
    clamp_object_tokens: bool,
    /// CPU threads of the runtime (default: the runtime's own choice).
    #[arg(long)]
    threads: Option<usize>,
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
        Some(Command::Run(args)) => {
            let output = args.output.clone().context("--output is required")?;
            let inputs = focus_export::tensors::read_tensors(&args.input)?;
            let mut rt = make_runtime(&args)?;
            let start = Instant::now();
            let out = rt
                .run(&inputs)
                .with_context(|| format!("running {} on {}", rt.name(), args.input.display()))?;
            let secs = start.elapsed().as_secs_f64();
            focus_export::tensors::write_tensors(&output, &out)?;
            println!(
                "{}: {} → {} ({} tensors) in {secs:.2} s",
                rt.name(),
                args.input.display(),
                output.display(),
                out.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Bench { run, warmup, runs }) => {
            let inputs = focus_export::tensors::read_tensors(&run.input)?;
            let mut rt = make_runtime(&run)?;
            for _ in 0..warmup {
                rt.run(&inputs)?;
            }
            let mut times = Vec::with_capacity(runs);
            for _ in 0..runs.max(1) {
                let start = Instant::now();
                rt.run(&inputs)?;
                times.push(start.elapsed().as_secs_f64());
            }
            let list = times
                .iter()
                .map(|t| format!("{t:.3}"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut sorted = times.clone();
            sorted.sort_by(f64::total_cmp);
            println!(
                "{} on {}: runs (s) {list}; median {:.3} s",
                rt.name(),
                run.input.display(),
                sorted[sorted.len() / 2]
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Predict { run }) => predict(&run),
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

fn predict(args: &PredictArgs) -> Result<ExitCode> {
    use focus_export::images;
    use focus_models::postprocess::{clip_and_drop, COCO_IDS, COCO_NAMES};
    let cfg = args.config.load()?;
    let img = images::load_rgb(&args.image)?;
    let (orig_h, orig_w) = (img.height() as f32, img.width() as f32);
    let (_, input) = images::preprocess(&img, &cfg.preprocess);
    let (in_h, in_w) = (input.shape[2] as f32, input.shape[3] as f32);
    let run = RunArgs {
        runtime: RuntimeKind::Torch,
        weights: Some(args.weights.clone()),
        model: None,
        provider: ProviderKind::Cpu,
        fp16: false,
        engine_cache: None,
        trt_profile: None,
        config: args.config.clone(),
        input: args.image.clone(),
        output: None,
        debug: false,
        device: args.device.clone(),
        override_proposals: false,
        clamp_object_tokens: false,
        threads: None,
    };
    let mut rt = make_runtime(&run)?;
    let mut inputs = focus_export::tensors::TensorMap::new();
    inputs.insert("images".into(), input);
    let out = rt
        .run(&inputs)
        .with_context(|| format!("running {} on {}", rt.name(), args.image.display()))?;
    let get = |k: &str| {
        out.get(k)
            .with_context(|| format!("the runtime returned no `{k}`"))
    };
    let scores = get("scores")?
        .as_f32()
        .context("`scores` is not float")?
        .to_vec();
    let labels = get("labels")?
        .as_i64()
        .context("`labels` is not int64")?
        .to_vec();
    let boxes: Vec<[f32; 4]> = get("boxes_xyxy")?
        .as_f32()
        .context("`boxes_xyxy` is not float")?
        .chunks_exact(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect();
    let all = clip_and_drop(&scores, &labels, &boxes, (in_h, in_w), (orig_h, orig_w));
    let keep: Vec<usize> = (0..all.scores.len())
        .filter(|&i| all.scores[i] >= args.score_threshold)
        .take(args.top)
        .collect();
    let shown = focus_models::postprocess::Detections {
        scores: keep.iter().map(|&i| all.scores[i]).collect(),
        labels: keep.iter().map(|&i| all.labels[i]).collect(),
        boxes: keep.iter().map(|&i| all.boxes[i]).collect(),
    };
    let name = |l: i64| COCO_NAMES.get(l as usize).copied().unwrap_or("?");
    let id = |l: i64| COCO_IDS.get(l as usize).copied().unwrap_or(0);
    if args.json {
        let dets: Vec<_> = (0..shown.scores.len())
            .map(|i| {
                serde_json::json!({
                    "score": shown.scores[i],
                    "label": shown.labels[i],
                    "category_id": id(shown.labels[i]),
                    "name": name(shown.labels[i]),
                    "bbox_xyxy": shown.boxes[i],
                })
            })
            .collect();
        let doc = serde_json::json!({
            "image": args.image.display().to_string(),
            "image_size": [orig_h as u32, orig_w as u32],
            "input_size": [in_h as u32, in_w as u32],
            "runtime": rt.name(),
            "detections": dets,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!(
            "{}: {}×{} (model input {}×{}), {} detection(s) with score ≥ {} (of {})",
            args.image.display(),
            orig_w,
            orig_h,
            in_w,
            in_h,
            shown.scores.len(),
            args.score_threshold,
            all.scores.len()
        );
        for i in 0..shown.scores.len() {
            let b = shown.boxes[i];
            println!(
                "  {:>6.3}  {:>2} {:<16} [{:.1}, {:.1}, {:.1}, {:.1}]",
                shown.scores[i],
                id(shown.labels[i]),
                name(shown.labels[i]),
                b[0],
                b[1],
                b[2],
                b[3]
            );
        }
    }
    if let Some(path) = &args.draw {
        images::draw(&img, &shown, path)?;
        if !args.json {
            println!("drew {} box(es) on {}", shown.scores.len(), path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Builds the runtime `args` ask for.
fn make_runtime(args: &RunArgs) -> Result<Box<dyn focus_export::runtimes::Runtime>> {
    match args.runtime {
        RuntimeKind::Torch => torch_runtime(args),
        RuntimeKind::Ort => ort_runtime(args),
    }
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
fn ort_runtime(args: &RunArgs) -> Result<Box<dyn focus_export::runtimes::Runtime>> {
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
    let opts = OrtOptions {
        provider,
        threads: args.threads,
    };
    Ok(Box::new(OrtRuntime::new(model, &opts)?))
}

#[cfg(not(feature = "ort"))]
fn ort_runtime(_args: &RunArgs) -> Result<Box<dyn focus_export::runtimes::Runtime>> {
    bail!("this binary was built without the `ort` feature; rebuild with `cargo build --release --features ort`")
}

#[cfg(feature = "torch")]
fn torch_runtime(args: &RunArgs) -> Result<Box<dyn focus_export::runtimes::Runtime>> {
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
        debug: args.debug,
        override_proposals: args.override_proposals,
        clamp_object_tokens: args.clamp_object_tokens,
    };
    Ok(Box::new(TorchRuntime::new(cfg, &w, device, opts)?))
}

#[cfg(not(feature = "torch"))]
fn torch_runtime(_args: &RunArgs) -> Result<Box<dyn focus_export::runtimes::Runtime>> {
    bail!("this binary was built without the `torch` feature; rebuild with `cargo build --release --features torch` (after scripts/setup-env.sh)")
}

fn export(args: ExportArgs) -> Result<ExitCode> {
    let Some(weights) = args.weights else {
        bail!("nothing to do: pass --weights W to export, or a subcommand (see --help)");
    };
    let start = Instant::now();
    let cfg = args.config.load()?;
    let schema = WeightSchema::new(&cfg);
    let w = Weights::load(&weights, &schema, &cfg.name)?;
    let sha = sha256_file(&weights)?;
    let opts = focus_exporters::ExportOptions {
        opset: args.opset,
        postprocess: !args.no_postprocess,
        debug: args.debug,
        weights_sha256: sha,
        proposals_input: args.proposals_input,
    };
    let summary = focus_exporters::export(&cfg, &w, &opts)?;
    weights::write_atomically(&args.output, &summary.bytes)
        .with_context(|| format!("writing {}", args.output.display()))?;
    println!(
        "wrote {} ({:.1} MB), opset {}, {} nodes, in {:.1} s",
        args.output.display(),
        summary.bytes.len() as f64 / 1e6,
        summary.opset,
        summary.nodes,
        start.elapsed().as_secs_f64()
    );
    println!("  config   {} (weights {})", cfg.name, weights.display());
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
    println!("  custom   none (deformable attention as GridSample, top-k as TopK)");
    Ok(ExitCode::SUCCESS)
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
