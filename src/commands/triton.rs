//! `triton`: a Triton Inference Server model repository from the weights (the export with
//! `orig_sizes`, post-processing on, in the target's forms; see `focus_export::triton`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use focus_export::triton::{self, Backend, RepositoryOptions};
use focus_exporters::Target;
use focus_models::model::selections::Forcible;
use focus_models::{WeightSchema, Weights};

use super::args::{ConfigArg, WeightOptionsArg};

/// Arguments of `triton`.
#[derive(Args)]
pub struct TritonArgs {
    /// Weights: .safetensors with the official checkpoint names, or a PyTorch checkpoint.
    #[arg(long)]
    pub weights: PathBuf,
    #[command(flatten)]
    pub weight_options: WeightOptionsArg,
    #[command(flatten)]
    pub config: ConfigArg,
    /// The repository folder to write (must not exist unless --force).
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// Replace an existing repository.
    #[arg(long)]
    pub force: bool,
    /// Where the detector runs: ort-cpu (our deformable-attention kernel; libfocus_ops.so is
    /// copied into the repository), ort-cuda (standard ops, GPU instances) or tensorrt (the
    /// TensorRT accelerator, the plugin form).
    #[arg(
        long,
        default_value = "ort-cpu",
        value_name = "ort-cpu|ort-cuda|tensorrt"
    )]
    pub target: Target,
    /// fp32, or fp16 (the float16 export with float32 islands; TensorRT builds in FP16).
    #[arg(long, default_value = "fp32", value_name = "fp32|fp16")]
    pub precision: focus_exporters::precision::Precision,
    /// The detector's backend: Triton's ONNX Runtime backend, or the Python backend running
    /// the same model.onnx on Python onnxruntime (what the nvidia-pytriton server serves).
    #[arg(long, value_enum, default_value = "onnxruntime")]
    pub backend: Backend,
    /// `max_batch_size` of every model.
    #[arg(long, default_value_t = 4)]
    pub max_batch: u32,
    /// Instances of each model.
    #[arg(long, default_value_t = 1)]
    pub instances: u32,
    /// Dynamic batching's queue delay (microseconds).
    #[arg(long, default_value_t = 2000)]
    pub queue_delay_us: u64,
    /// No dynamic batching (each request runs alone).
    #[arg(long)]
    pub no_dynamic_batching: bool,
    /// ONNX Runtime intra-op threads per detector instance (default: the runtime's).
    #[arg(long)]
    pub threads: Option<u32>,
    /// The postprocessing drops detections scoring less.
    #[arg(long, default_value_t = 0.0)]
    pub score_threshold: f32,
    /// The absolute path the repository will be served from, if not where it is written (a
    /// container's mount point): the ops library is named by it.
    #[arg(long)]
    pub serve_path: Option<PathBuf>,
    /// ONNX opset (16 to 20).
    #[arg(long, default_value_t = focus_exporters::export::DEFAULT_OPSET)]
    pub opset: i64,
}

/// Writes the repository.
pub fn run(args: &TritonArgs) -> Result<ExitCode> {
    let start = Instant::now();
    if args.precision == focus_exporters::precision::Precision::Int8 {
        anyhow::bail!(
            "--precision int8 is not offered for Triton repositories yet: export the int8 model \
             with `focus-export --precision int8 --calibrate DIR` (fp32 and fp16 repositories \
             are written here)"
        );
    }
    let serve_path = match &args.serve_path {
        Some(p) => p.clone(),
        None => std::path::absolute(&args.output)
            .with_context(|| format!("-o {}", args.output.display()))?,
    };
    let opts = RepositoryOptions {
        backend: args.backend,
        target: args.target,
        fp16: args.precision == focus_exporters::precision::Precision::Fp16,
        max_batch: args.max_batch,
        instances: args.instances,
        queue_delay_us: (!args.no_dynamic_batching).then_some(args.queue_delay_us),
        threads: args.threads,
        score_threshold: args.score_threshold,
        serve_path,
    };
    // Before the slow export: bad options are told at once.
    opts.validate()?;
    triton::check_destination(&args.output, args.force)?;
    // The forms with our custom ops need the library in the repository: found before the export.
    let forms = args.target.forms();
    let custom = args.target != Target::TensorRt
        && (forms.msda == focus_exporters::MsdaForm::Custom
            || forms.topk == focus_exporters::TopkForm::Custom);
    let library = if custom {
        Some(
            focus_export::ops_library::find()
                .context("the ort-cpu detector needs libfocus_ops.so in the repository")?,
        )
    } else {
        None
    };
    let cfg = args.config.load()?;
    let schema = WeightSchema::new(&cfg);
    let w = Weights::load_with(
        &args.weights,
        &schema,
        &cfg.name,
        args.weight_options.options(),
    )?;
    let export = focus_exporters::ExportOptions {
        opset: args.opset,
        postprocess: true,
        debug: false,
        weights_sha256: super::export::sha256_file(&args.weights)?,
        selection_inputs: Forcible::None,
        orig_sizes: true,
        static_shape: None,
        forms,
        precision: args.precision,
    };
    let summary = focus_exporters::export(&cfg, &w, &export)?;
    if custom
        != summary
            .custom_ops
            .iter()
            .any(|(op, _)| op.starts_with(focus_ops::decl::DOMAIN))
    {
        anyhow::bail!(
            "internal: the export's custom ops ({:?}) are not what target {} implies",
            summary.custom_ops,
            args.target.as_str()
        );
    }
    let (inputs, outputs) = focus_exporters::io::graph_io(&summary.model);
    let report = triton::write_repository(
        &args.output,
        args.force,
        &cfg,
        (&inputs, &outputs),
        custom,
        library.as_deref(),
        &opts,
        |out| summary.write_to(&w, out).map_err(std::io::Error::other),
    )
    .with_context(|| format!("writing the Triton repository {}", args.output.display()))?;
    println!(
        "wrote the Triton repository {} in {:.1} s: call `{}` ({} backend, target {}{}, max batch {}, {} instance(s), dynamic batching {})",
        args.output.display(),
        start.elapsed().as_secs_f64(),
        triton::ENSEMBLE,
        match args.backend {
            Backend::Onnxruntime => "ONNX Runtime",
            Backend::Python => "Python",
        },
        args.target.as_str(),
        if opts.fp16 { ", fp16" } else { "" },
        opts.max_batch,
        opts.instances,
        if args.no_dynamic_batching { "off" } else { "on" },
    );
    for (f, n) in &report.files {
        println!("  {f:<44} {:>10.1} kB", *n as f64 / 1e3);
    }
    println!(
        "  start it: see {}",
        args.output.join("README.md").display()
    );
    Ok(ExitCode::SUCCESS)
}
