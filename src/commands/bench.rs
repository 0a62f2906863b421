//! `bench`: runtimes timed side by side on one input, each form in a process of its own, with
//! p50/p90, peak memory, sparse/dense ratios and per-op profiles.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;

use focus_export::runtimes::{RuntimeKind, TorchOptions};

use super::args::RuntimeArgs;

/// Arguments of `bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// Runtimes to time side by side (default: torch with --weights, ort and tract with --model).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub runtimes: Vec<RuntimeKind>,
    #[command(flatten)]
    pub rt: RuntimeArgs,
    /// Input tensors (.safetensors with `images` [B, 3, H, W] float32, normalised).
    #[arg(long)]
    pub input: PathBuf,
    /// Untimed runs first, per runtime.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Timed runs, per runtime.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Repeat the whole comparison this many times, the runtimes taking turns (each round a
    /// fresh process per runtime, with its warm-up and timed runs), and report each runtime
    /// over all its rounds' runs: slow drift of a shared machine then falls on every runtime
    /// alike instead of on whichever ran during it. `--profile` keeps the first round's profile.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// Also time every runtime in the dense baseline and print sparse/dense latency ratios: ort
    /// and tract run this model (exported with --dense), torch runs its weights with --dense.
    #[arg(long, value_name = "DENSE.onnx")]
    pub dense_model: Option<PathBuf>,
    /// tract times this model instead of --model (an export with --target tract, beside the
    /// ort-cpu export ort times as --model).
    #[arg(long, value_name = "TRACT.onnx")]
    pub tract_model: Option<PathBuf>,
    /// Profile the timed runs (ONNX Runtime's profiler; tract timed node by node) and print the
    /// time per op type and the slowest nodes (ort and tract; the warm-up runs are left out; the
    /// timings then include the profiler's own overhead).
    #[arg(long)]
    pub profile: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Internal: time only this form (`<runtime>` or `<runtime>:dense`) in this process and
    /// print its result as JSON (the parent `bench` runs one such child per form).
    #[arg(long, hide = true, value_name = "FORM")]
    pub child: Option<String>,
}

/// The runtimes `bench` times when none are named: those its arguments can build.
fn default_bench_runtimes(args: &RuntimeArgs, tract_model: bool) -> Vec<RuntimeKind> {
    let mut v = Vec::new();
    if args.weights.is_some() && cfg!(feature = "torch") {
        v.push(RuntimeKind::Torch);
    }
    if args.model.is_some() && cfg!(feature = "ort") {
        v.push(RuntimeKind::Ort);
    }
    if (args.model.is_some() || tract_model) && cfg!(feature = "tract") {
        v.push(RuntimeKind::Tract);
    }
    v
}

/// Times the runtimes side by side (each form in a child process of its own).
pub fn run(args: &BenchArgs) -> Result<ExitCode> {
    let inputs = focus_export::tensors::read_tensors(&args.input)?;
    let kinds = if args.runtimes.is_empty() {
        default_bench_runtimes(&args.rt, args.tract_model.is_some())
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
    let name = super::args::runtime_word(kind);
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
    let mut rt_args = rt_args.clone();
    if let (RuntimeKind::Tract, Some(m), false) = (kind, &args.tract_model, dense) {
        rt_args.model = Some(m.clone());
    }
    let rt_args = &rt_args;
    let make = || {
        let rt = rt_args.open(kind, TorchOptions::default())?;
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
