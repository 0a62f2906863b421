//! `matrix`: every runtime × precision × export target of one set of weights, measured side by
//! side. The torch reference runs once on the images (its outputs kept on disk); then per
//! combination: the deployable export and a `--debug --selection-inputs` twin, both passes of
//! `check` on the twin against the reference (AP, ΔAP, agreement AP, the forced pass's worst
//! tensor), and `bench` on the deployable file in a process of its own (p50/p90, peak memory).
//! The report (`focus_export::matrix`) is printed and written as JSON, Markdown and HTML.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;

use focus_cocoeval::{Detection, GroundTruth};
use focus_export::accuracy::{self, AccuracyBudgets};
use focus_export::bench::BenchResult;
use focus_export::inputs::{self, CocoImage, InputItem};
use focus_export::matrix::{ForcedSummary, Latency, MatrixReport, Row, RowStatus, Setup};
use focus_export::runtimes::{ProviderKind, RuntimeKind, TorchOptions};
use focus_export::tensors::{read_tensors, write_tensors, TensorMap};
use focus_exporters::precision::Precision;
use focus_exporters::Target;
use focus_models::weights::write_atomically;

use super::args::{runtime_word, ConfigArg, Int8Args, RuntimeArgs, WeightOptionsArg};

/// Arguments of `matrix`.
#[derive(Args)]
pub struct MatrixArgs {
    /// Weights (.safetensors with the official names, or a PyTorch checkpoint).
    #[arg(long)]
    weights: PathBuf,
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    weight_options: WeightOptionsArg,
    /// COCO annotation file of the images (with --coco-images): adds AP and ΔAP.
    #[arg(long, requires = "coco_images", conflicts_with = "images")]
    coco_ann: Option<PathBuf>,
    /// Image folder of the COCO subset.
    #[arg(long, requires = "coco_ann")]
    coco_images: Option<PathBuf>,
    /// A folder of photos without annotations: agreement with the reference only.
    #[arg(long)]
    images: Option<PathBuf>,
    /// At most this many images.
    #[arg(long)]
    limit: Option<usize>,
    /// Runtimes of the exported models (default with --precisions unset: ort in fp32, fp16
    /// and int8, and tract in fp32; naming either list measures every pair of the two).
    #[arg(long, value_enum, value_delimiter = ',')]
    runtimes: Vec<RuntimeKind>,
    /// Precisions (fp32, fp16, int8).
    #[arg(long, value_delimiter = ',')]
    precisions: Vec<Precision>,
    /// Export targets of the ort models: ort-cpu (our deformable-attention kernel) and/or
    /// standard (standard ops only, any ONNX Runtime). tract models use --target tract.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ort-cpu",
        value_name = "ort-cpu|standard"
    )]
    targets: Vec<String>,
    /// Reference detections with at least this score are the agreement AP's ground truth.
    #[arg(long, default_value_t = accuracy::DEFAULT_AGREEMENT_MIN_SCORE)]
    agreement_min_score: f64,
    #[command(flatten)]
    int8: Int8Args,
    /// The input latencies are measured on (.safetensors with `images`; default: the first
    /// image, as the official pipeline resizes it).
    #[arg(long)]
    bench_input: Option<PathBuf>,
    /// Untimed runs first, per model.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Timed runs, per model and round.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Rounds of timing per model (`bench --rounds`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// CPU threads of every runtime (default: each runtime's own choice).
    #[arg(long)]
    threads: Option<usize>,
    /// Output folder: matrix.json, matrix.md, matrix.html and the models (models/).
    #[arg(short = 'o', long, default_value = "matrix")]
    out: PathBuf,
    /// Keep work/: the reference's outputs and the `--debug --selection-inputs` twins the
    /// checks ran on (removed at the end otherwise).
    #[arg(long)]
    keep_work: bool,
}

/// One combination to measure.
#[derive(Clone, Debug)]
struct Cell {
    runtime: RuntimeKind,
    precision: Precision,
    /// None: standard ops only.
    target: Option<Target>,
}

impl Cell {
    fn target_word(&self) -> &'static str {
        self.target.map_or("standard", Target::as_str)
    }

    /// `ort-cpu fp32`, `ort standard fp16`, `tract fp32`.
    fn label(&self) -> String {
        match (self.runtime, self.target) {
            (RuntimeKind::Ort, Some(Target::OrtCpu)) => format!("ort-cpu {}", self.precision),
            (RuntimeKind::Tract, Some(Target::Tract)) => format!("tract {}", self.precision),
            _ => format!(
                "{} {} {}",
                runtime_word(self.runtime),
                self.target_word(),
                self.precision
            ),
        }
    }

    /// The file name stem of its models.
    fn slug(&self) -> String {
        self.label().replace(' ', "_")
    }

    /// Its row with nothing measured in it yet.
    fn row(&self, status: RowStatus, note: Option<String>) -> Row {
        Row::new(
            self.label(),
            &runtime_word(self.runtime),
            &self.precision.to_string(),
            self.target_word(),
            status,
            note,
        )
    }

    /// Why this combination is not attempted, where it is known not to work.
    fn unsupported(&self) -> Option<&'static str> {
        match (self.runtime, self.precision) {
            // Measured with tract 0.23 (2026-12): analysis of the float16 graph stops at the
            // input's Cast ("Impossible to unify Sym(batch) with Val(1)").
            (RuntimeKind::Tract, Precision::Fp16) => Some(
                "tract cannot analyse the float16 export (shape inference fails at the input's Cast)",
            ),
            _ => None,
        }
    }
}

/// The combinations the arguments ask for, in order.
fn cells(args: &MatrixArgs) -> Result<Vec<Cell>> {
    let mut ort_targets = Vec::new();
    for t in &args.targets {
        ort_targets.push(match t.as_str() {
            "ort-cpu" => Some(Target::OrtCpu),
            "standard" => None,
            other => bail!(
                "--targets {other}: the matrix runs on the CPU; ort takes ort-cpu (our kernel) \
                 or standard (standard ops only), tract always uses --target tract"
            ),
        });
    }
    let pairs: Vec<(RuntimeKind, Precision)> =
        if args.runtimes.is_empty() && args.precisions.is_empty() {
            vec![
                (RuntimeKind::Ort, Precision::Fp32),
                (RuntimeKind::Ort, Precision::Fp16),
                (RuntimeKind::Ort, Precision::Int8),
                (RuntimeKind::Tract, Precision::Fp32),
            ]
        } else {
            let runtimes = if args.runtimes.is_empty() {
                vec![RuntimeKind::Ort, RuntimeKind::Tract]
            } else {
                args.runtimes.clone()
            };
            let precisions = if args.precisions.is_empty() {
                Precision::ALL.to_vec()
            } else {
                args.precisions.clone()
            };
            runtimes
                .iter()
                .flat_map(|&r| precisions.iter().map(move |&p| (r, p)))
                .collect()
        };
    let mut v = Vec::new();
    for (runtime, precision) in pairs {
        match runtime {
            RuntimeKind::Torch => bail!(
                "--runtimes torch: the torch reference is always measured (the first row); name the runtimes of the exported models (ort, tract)"
            ),
            RuntimeKind::Ort => v.extend(ort_targets.iter().map(|&target| Cell {
                runtime,
                precision,
                target,
            })),
            RuntimeKind::Tract => v.push(Cell {
                runtime,
                precision,
                target: Some(Target::Tract),
            }),
        }
    }
    Ok(v)
}

/// The images, their ground truth (empty without annotations) and where they came from.
fn gather(
    args: &MatrixArgs,
    cfg: &focus_models::FocusDetrConfig,
) -> Result<(Vec<InputItem>, GroundTruth, String, PathBuf)> {
    if let (Some(ann), Some(dir)) = (&args.coco_ann, &args.coco_images) {
        let (items, truth) = inputs::from_coco(ann, dir, args.limit, &cfg.preprocess)?;
        let source = format!(
            "COCO annotations {}, images {}",
            ann.display(),
            dir.display()
        );
        return Ok((items, truth, source, dir.clone()));
    }
    let Some(dir) = &args.images else {
        bail!("nothing to measure on: pass --coco-ann A --coco-images D, or --images DIR");
    };
    let mut items = inputs::from_image_dir(dir, args.limit, &cfg.preprocess)?;
    // Without annotations each photo is its own record, in the model's input frame: agreement
    // with the reference needs ids and sizes, AP needs boxes and is left out.
    for (i, item) in items.iter_mut().enumerate() {
        let shape = &item.tensors["images"].shape;
        item.coco = Some(CocoImage {
            id: i as i64 + 1,
            file_name: item.name.clone(),
            width: shape[3] as u32,
            height: shape[2] as u32,
        });
    }
    let ids: Vec<i64> = (1..=items.len() as i64).collect();
    let truth = accuracy::agreement_truth(&[], &ids, 1.0);
    Ok((
        items,
        truth,
        format!("photos {}", dir.display()),
        dir.clone(),
    ))
}

/// What every combination is measured against.
struct Matrix<'a> {
    args: &'a MatrixArgs,
    cfg: focus_models::FocusDetrConfig,
    items: Vec<InputItem>,
    truth: GroundTruth,
    /// The reference's debug outputs of image i, on disk.
    reference_files: Vec<PathBuf>,
    reference_dets: Vec<Detection>,
    /// Ground-truth boxes over the evaluated images (from the reference's accuracy report).
    ground_truth_boxes: usize,
    bench_input: PathBuf,
    int8: Int8Args,
    models: PathBuf,
    work: PathBuf,
}

impl Matrix<'_> {
    /// Whether the images come with ground truth (AP is measured).
    fn has_truth(&self) -> bool {
        !self.truth.annotations.is_empty()
    }
}

/// The COCO detections of `out` on `item` (every matrix input has its image record).
fn detections(item: &InputItem, out: &TensorMap, who: &str) -> Result<Vec<Detection>> {
    let found = accuracy::item_detections(item, out).context("a COCO image record")?;
    found.with_context(|| {
        format!(
            "COCO detections need {who}'s post-processed outputs on {}",
            item.name
        )
    })
}

/// Runs `matrix`.
pub fn run(args: &MatrixArgs) -> Result<ExitCode> {
    let cfg = args.config.load()?;
    // The weights are checked before anything is written (every cell reads them later).
    let schema = focus_models::WeightSchema::new(&cfg);
    let options = args.weight_options.options();
    focus_models::Weights::load_with(&args.weights, &schema, &cfg.name, options)?;
    let cells = cells(args)?;
    let (items, truth, images_source, image_dir) = gather(args, &cfg)?;
    if items.is_empty() {
        bail!("nothing to measure on: --limit 0 leaves no image");
    }
    let (models, work) = (args.out.join("models"), args.out.join("work"));
    for d in [&models, &work] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let bench_input = match &args.bench_input {
        Some(p) => p.clone(),
        None => {
            let p = work.join("bench_input.safetensors");
            let mut t = TensorMap::new();
            t.insert("images".into(), items[0].tensors["images"].clone());
            write_tensors(&p, &t).with_context(|| format!("writing {}", p.display()))?;
            p
        }
    };
    let bench_shape = read_tensors(&bench_input)?
        .get("images")
        .map(|t| t.shape.clone())
        .with_context(|| format!("{}: no `images` tensor", bench_input.display()))?;
    let mut int8 = args.int8.clone();
    let calibration = cells
        .iter()
        .any(|c| c.precision == Precision::Int8)
        .then(|| {
            let dir = int8
                .calibrate
                .get_or_insert_with(|| image_dir.clone())
                .clone();
            format!(
                "{} (at most {} images), {}{}",
                dir.display(),
                int8.calibrate_limit,
                int8.calibration.name(),
                if dir == image_dir {
                    "; the evaluated images themselves (pass --calibrate for a separate set)"
                } else {
                    ""
                }
            )
        });
    let mut ctx = Matrix {
        args,
        cfg,
        items,
        truth,
        reference_files: Vec::new(),
        ground_truth_boxes: 0,
        reference_dets: Vec::new(),
        bench_input,
        int8,
        models,
        work,
    };
    let n = cells.len() + 1;
    eprintln!("[1/{n}] torch reference on {} image(s)…", ctx.items.len());
    let mut rows = vec![reference_row(&mut ctx)?];
    for (i, cell) in cells.iter().enumerate() {
        eprintln!("[{}/{n}] {}…", i + 2, cell.label());
        let row = match cell.unsupported() {
            Some(why) => cell.row(RowStatus::Skipped, Some(why.into())),
            None => measure(&ctx, cell).unwrap_or_else(|e| {
                eprintln!("  {}: {e:#}", cell.label());
                cell.row(RowStatus::Failed, Some(format!("{e:#}")))
            }),
        };
        rows.push(row);
    }
    if !args.keep_work {
        for f in ctx
            .reference_files
            .iter()
            .chain(args.bench_input.is_none().then_some(&ctx.bench_input))
        {
            let _ = std::fs::remove_file(f);
        }
        // Only if nothing else is left there.
        let _ = std::fs::remove_dir(&ctx.work);
    }
    let report = MatrixReport {
        setup: Setup {
            weights: args.weights.display().to_string(),
            config: ctx.cfg.name.clone(),
            images_source,
            images: ctx.items.len(),
            ground_truth_boxes: ctx.ground_truth_boxes,
            bench_input: match &args.bench_input {
                Some(p) => p.display().to_string(),
                None => format!("{} (the first image)", ctx.items[0].name),
            },
            bench_shape,
            threads: args.threads,
            warmup: args.warmup,
            runs: args.runs,
            rounds: args.rounds,
            calibration,
            cpu: focus_export::matrix::cpu_name(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        complete: rows.iter().all(|r| r.status != RowStatus::Failed),
        rows,
    };
    print!("{}", report.table());
    for (name, text) in [
        ("matrix.json", serde_json::to_string_pretty(&report)?),
        ("matrix.md", report.markdown()),
        ("matrix.html", focus_export::matrix::html::document(&report)),
    ] {
        let p = args.out.join(name);
        write_atomically(&p, text.as_bytes())
            .with_context(|| format!("writing {}", p.display()))?;
        println!("wrote {}", p.display());
    }
    Ok(if report.complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runtime arguments for `model` (or the weights, for torch) with the matrix's threads.
fn runtime_args(ctx: &Matrix, model: Option<&Path>) -> RuntimeArgs {
    RuntimeArgs {
        weights: Some(ctx.args.weights.clone()),
        model: model.map(Path::to_path_buf),
        config: ctx.args.config.clone(),
        weight_options: ctx.args.weight_options,
        provider: ProviderKind::Cpu,
        fp16: false,
        engine_cache: None,
        trt_profile: None,
        device: "cpu".into(),
        threads: ctx.args.threads,
        emulate_trt_plugins: false,
        profile: false,
    }
}

/// Runs the torch reference on every image (outputs to disk), and times it.
fn reference_row(ctx: &mut Matrix) -> Result<Row> {
    let flags = TorchOptions {
        debug: true,
        ..Default::default()
    };
    let mut torch = runtime_args(ctx, None).open(RuntimeKind::Torch, flags)?;
    for (i, item) in ctx.items.iter().enumerate() {
        let out = torch
            .run(&item.tensors)
            .with_context(|| format!("running the torch reference on {}", item.name))?;
        ctx.reference_dets
            .extend(detections(item, &out, "the reference")?);
        let f = ctx.work.join(format!("reference_{i}.safetensors"));
        write_tensors(&f, &out).with_context(|| format!("writing {}", f.display()))?;
        ctx.reference_files.push(f);
    }
    drop(torch);
    // The reference against itself: AP is its own, agreement the evaluator's ceiling.
    let a = accuracy::accuracy(
        &ctx.truth,
        &ctx.reference_dets,
        &ctx.reference_dets,
        None,
        accuracy::Pass::Free,
        accuracy_budgets(ctx.args),
    );
    let latency = bench(ctx, RuntimeKind::Torch, None)?;
    ctx.ground_truth_boxes = a.ground_truth_boxes;
    let has_truth = ctx.has_truth();
    Ok(Row {
        file: Some(ctx.args.weights.display().to_string()),
        file_mb: file_mb(&ctx.args.weights),
        ap: has_truth.then_some(a.reference.0[0]),
        delta_ap: has_truth.then_some(0.0),
        agreement_ap: a.free.agreement_ap,
        latency: Some(Latency::from(&latency)),
        ..Row::new(
            "torch fp32 (reference)".into(),
            "torch",
            &Precision::Fp32.to_string(),
            "-",
            RowStatus::Measured,
            None,
        )
    })
}

/// The accuracy budgets (only the agreement's score threshold matters: the matrix reports, it
/// does not judge).
fn accuracy_budgets(args: &MatrixArgs) -> AccuracyBudgets {
    AccuracyBudgets {
        agreement_min_score: args.agreement_min_score,
        ..AccuracyBudgets::default()
    }
}

fn file_mb(p: &Path) -> Option<f64> {
    std::fs::metadata(p).ok().map(|m| m.len() as f64 / 1e6)
}

/// Exports `cell` to `output`: the deployable file, or its `--debug --selection-inputs` twin.
fn export(ctx: &Matrix, cell: &Cell, output: &Path, debug: bool) -> Result<()> {
    let args = super::export::ExportArgs {
        weights: Some(ctx.args.weights.clone()),
        weight_options: ctx.args.weight_options,
        config: ctx.args.config.clone(),
        output: output.to_path_buf(),
        opset: focus_exporters::export::DEFAULT_OPSET,
        no_postprocess: false,
        debug,
        proposals_input: false,
        selection_inputs: debug,
        orig_sizes: false,
        static_shape: None,
        target: cell.target,
        msda: None,
        precision: cell.precision,
        int8: if cell.precision == Precision::Int8 {
            ctx.int8.clone()
        } else {
            Int8Args::default()
        },
        topk: None,
        quiet: true,
    };
    super::export::run(args).with_context(|| format!("exporting {}", output.display()))?;
    Ok(())
}

/// Exports, checks and times one combination.
fn measure(ctx: &Matrix, cell: &Cell) -> Result<Row> {
    let deploy = ctx.models.join(format!("{}.onnx", cell.slug()));
    let twin = ctx.work.join(format!("{}.debug.onnx", cell.slug()));
    export(ctx, cell, &deploy, false)?;
    export(ctx, cell, &twin, true)?;
    let (accuracy, forced) = check(ctx, cell, &twin)?;
    if !ctx.args.keep_work {
        let _ = std::fs::remove_file(&twin);
    }
    let latency = bench(ctx, cell.runtime, Some(&deploy))?;
    let has_truth = ctx.has_truth();
    Ok(Row {
        file: Some(deploy.display().to_string()),
        file_mb: file_mb(&deploy),
        ap: has_truth.then_some(accuracy.free.exported.0[0]),
        delta_ap: has_truth.then_some(accuracy.free.delta.0[0]),
        worst_delta: has_truth.then(|| accuracy.free.worst_delta.clone()),
        agreement_ap: accuracy.free.agreement_ap,
        forced_agreement_ap: accuracy.forced.as_ref().and_then(|f| f.agreement_ap),
        forced: Some(forced),
        latency: Some(Latency::from(&latency)),
        accuracy: Some(accuracy),
        ..cell.row(RowStatus::Measured, None)
    })
}

/// Both passes of `check` of the debug twin on every image against the reference.
fn check(
    ctx: &Matrix,
    cell: &Cell,
    twin: &Path,
) -> Result<(accuracy::AccuracyReport, ForcedSummary)> {
    let mut rt = runtime_args(ctx, Some(twin)).open(cell.runtime, TorchOptions::default())?;
    let forcible = focus_export::check::forcible_selections(&rt.inputs());
    let budgets = focus_export::check::budgets_for(rt.precision());
    let (mut free, mut forced_dets) = (Vec::new(), Vec::new());
    let mut forced = ForcedSummary {
        budgets: budgets.name.into(),
        worst_tensor: "-".into(),
        worst_share: 0.0,
        within_budget: 0,
        images: ctx.items.len(),
        min_matched: None,
    };
    for (item, file) in ctx.items.iter().zip(&ctx.reference_files) {
        let reference = read_tensors(file)?;
        let checked = focus_export::check::check_input(
            &item.name,
            rt.as_mut(),
            &item.tensors,
            &reference,
            &forcible,
            budgets,
        )
        .with_context(|| format!("running {} on {}", rt.name(), item.name))?;
        free.extend(detections(item, &checked.free, "the exported model")?);
        let out = checked
            .forced
            .as_ref()
            .context("the debug twin takes no selections")?;
        forced_dets.extend(detections(item, out, "the forced pass")?);
        let r = &checked.report;
        forced.within_budget += usize::from(r.forced_within_budget == Some(true));
        // The same tensor `check` names as closest to its budget; integer tensors are judged
        // exactly, and a miss there shows in `within_budget`.
        let worst = r
            .forced
            .as_deref()
            .and_then(focus_export::check::closest_to_budget);
        if let Some((t, share)) = worst {
            if share > forced.worst_share || forced.worst_tensor == "-" {
                forced.worst_share = share;
                forced.worst_tensor = t.name.clone();
            }
        }
        if let Some(d) = &r.forced_detections {
            let m = d.matched as f64 / d.compared.max(1) as f64;
            forced.min_matched = Some(forced.min_matched.map_or(m, |x: f64| x.min(m)));
        }
    }
    let a = accuracy::accuracy(
        &ctx.truth,
        &ctx.reference_dets,
        &free,
        Some(&forced_dets),
        accuracy::Pass::Free,
        accuracy_budgets(ctx.args),
    );
    Ok((a, forced))
}

/// Times a model (or the torch reference on the weights) with `focus-export bench`, which runs
/// it in a process of its own.
fn bench(ctx: &Matrix, kind: RuntimeKind, model: Option<&Path>) -> Result<BenchResult> {
    let exe = std::env::current_exe().context("finding this program to run `bench`")?;
    let mut cmd = std::process::Command::new(&exe);
    cmd.arg("bench")
        .args(["--runtimes", &runtime_word(kind), "--json", "--input"])
        .arg(&ctx.bench_input)
        .args(["--warmup", &ctx.args.warmup.to_string()])
        .args(["--runs", &ctx.args.runs.to_string()])
        .args(["--rounds", &ctx.args.rounds.to_string()])
        .args(["--config", &ctx.args.config.config]);
    if ctx.args.config.dense {
        cmd.arg("--dense");
    }
    match model {
        Some(m) => cmd.arg("--model").arg(m),
        None => cmd.arg("--weights").arg(&ctx.args.weights),
    };
    if let Some(t) = ctx.args.threads {
        cmd.args(["--threads", &t.to_string()]);
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("starting {}", exe.display()))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        let why = why.trim();
        bail!("bench: {}", why.strip_prefix("error: ").unwrap_or(why));
    }
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("reading bench's JSON")?;
    serde_json::from_value(doc["results"][0].clone()).context("reading bench's result")
}
