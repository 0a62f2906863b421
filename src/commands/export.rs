//! The default action: the weights written as an ONNX model in the forms the target takes,
//! with a summary of what was written (and the TensorRT lint of a TensorRT export).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;

use focus_models::model::selections::Forcible;
use focus_models::{weights, WeightSchema, Weights};

use super::args::{ConfigArg, WeightOptionsArg};

/// Arguments of the default action, exporting ONNX.
#[derive(Args)]
pub struct ExportArgs {
    /// Weights: .safetensors with the official checkpoint names, or a PyTorch checkpoint
    /// (.pth, or a .zip release archive holding one).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    #[command(flatten)]
    pub weight_options: WeightOptionsArg,
    #[command(flatten)]
    pub config: ConfigArg,
    /// Output ONNX file.
    #[arg(short = 'o', long, default_value = "focus_detr.onnx")]
    pub output: PathBuf,
    /// ONNX opset (16 to 20).
    #[arg(long, default_value_t = focus_exporters::export::DEFAULT_OPSET)]
    pub opset: i64,
    /// Leave out the post-processed outputs (scores, labels, boxes_xyxy).
    #[arg(long)]
    pub no_postprocess: bool,
    /// Add the intermediate tensors as outputs (names as in the goldens).
    #[arg(long)]
    pub debug: bool,
    /// Debugging: add an input `topk_proposals_in` that replaces the two-stage selection (a
    /// subset of --selection-inputs).
    #[arg(long)]
    pub proposals_input: bool,
    /// Debugging: add an input `<name>_in` for each of the 13 selections (enc_topk_idx_l,
    /// enc_oesm_token_idx_l, topk_proposals; int64 token indices, rows of −1 keep the model's
    /// own) so that `run --force-selections` and `check` can force them.
    #[arg(long)]
    pub selection_inputs: bool,
    /// Add an input `orig_sizes` (int64 [batch, 2], height and width) that `boxes_xyxy` are
    /// scaled to.
    #[arg(long)]
    pub orig_sizes: bool,
    /// Fix the input size (HxW, or BxHxW to fix the batch too): the token counts and every
    /// top-k k become constants.
    #[arg(long, value_name = "HxW")]
    pub static_shape: Option<focus_exporters::export::StaticShape>,
    /// Where the model will run: picks the forms below (none given: standard ops only, for any
    /// ONNX Runtime; ort-cpu: our deformable-attention kernel, run by focus-export's ORT or by
    /// any ONNX Runtime with libfocus_ops.so, see `ops-library`; ort-cuda: standard ops;
    /// tensorrt: the deformable-attention plugin and the threshold selection; tract: our
    /// custom ops).
    #[arg(long, value_name = "ort-cpu|ort-cuda|tensorrt|tract")]
    pub target: Option<focus_exporters::Target>,
    /// Deformable attention as standard ops (GridSample), our custom op (ai.focus_detr, run by
    /// focus-export's ORT and tract runtimes), or TensorRT's plugin.
    #[arg(long, value_name = "decomposed|custom|trt-plugin")]
    pub msda: Option<focus_exporters::MsdaForm>,
    /// Computation precision: fp32; fp16 (float16 weights and computation with float32
    /// islands where float16 breaks the model; float32 inputs and outputs); int8 (int8
    /// convolutions and matrix products as QuantizeLinear/DequantizeLinear, calibrated on the
    /// photos of --calibrate, with float32 where int8 breaks the model; CPU targets).
    #[arg(long, default_value = "fp32", value_name = "fp32|fp16|int8")]
    pub precision: focus_exporters::precision::Precision,
    #[command(flatten)]
    pub int8: super::args::Int8Args,
    /// Top-k as ONNX TopK, our DynamicTopK op, or (encoder selections) an exact TopK-free
    /// threshold selection for TensorRT.
    #[arg(long, value_name = "onnx|custom|threshold")]
    pub topk: Option<focus_exporters::TopkForm>,
    /// Write the file without the progress spinner or the summary (`matrix` exports its cells
    /// this way and reports on them itself).
    #[arg(skip)]
    pub quiet: bool,
}

/// Exports the weights as ONNX (the default action).
pub fn run(args: ExportArgs) -> Result<ExitCode> {
    let Some(weights) = args.weights else {
        bail!("nothing to do: pass --weights W to export, or a subcommand (see --help)");
    };
    let start = Instant::now();
    let spinner = indicatif::ProgressBar::new_spinner();
    if args.quiet {
        spinner.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    } else {
        spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    }
    let step = |msg: &str| spinner.set_message(msg.to_string());
    step("reading the configuration");
    let cfg = args.config.load()?;
    let schema = WeightSchema::new(&cfg);
    step("loading the weights");
    let w = Weights::load_with(&weights, &schema, &cfg.name, args.weight_options.options())?;
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
    args.int8.check(args.precision, args.target)?;
    step("tracing the model into ONNX");
    let mut summary = focus_exporters::export(&cfg, &w, &opts)?;
    args.int8.finish(&mut summary, &cfg, &step)?;
    step("writing the file");
    let written = weights::write_atomically_with(&args.output, |out| {
        summary.write_to(&w, out).map_err(std::io::Error::other)
    })
    .with_context(|| format!("writing {}", args.output.display()))?;
    spinner.finish_and_clear();
    if args.quiet {
        return Ok(ExitCode::SUCCESS);
    }
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
    if let Some(q) = &summary.int8 {
        println!(
            "  precision int8: {} convolutions and {} matrix products in int8 ({} tensors quantised, {} batch norms folded), calibrated on {} images ({}); float32 inputs and outputs",
            q.conv, q.matmul, q.sites, q.folded_norms, q.images, q.method
        );
        let mut kept: std::collections::BTreeMap<&str, usize> = Default::default();
        for (_, why) in &q.kept {
            *kept
                .entry(why.split(':').next().unwrap_or(why))
                .or_default() += 1;
        }
        let kept: Vec<String> = kept.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!(
            "  float32  {} layers kept (exporters/src/int8/plan.rs KEEP_FP32, --int8-keep): {}",
            q.kept.len(),
            kept.join(", ")
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
        return Ok(super::lint::print_lint(
            &args.output.display().to_string(),
            &report,
            false,
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// Hex sha256 of a file, streamed.
pub(crate) fn sha256_file(path: &Path) -> Result<String> {
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
