//! `bench-ops`: the forms of the special ops (deformable attention, top-k) timed side by side
//! on ONNX Runtime CPU (and tract) at the encoder's problem size.

use std::process::ExitCode;

#[cfg(not(feature = "ort"))]
use anyhow::bail;
#[cfg(feature = "ort")]
use anyhow::Context;
use anyhow::Result;
use clap::Args;

#[cfg(feature = "ort")]
use focus_export::runtimes::{Runtime, RuntimeError};
#[cfg(feature = "ort")]
use focus_models::FocusDetrConfig;

/// Arguments of `bench-ops`.
#[derive(Args)]
pub struct BenchOpsArgs {
    /// Input height and width whose encoder problem is timed.
    #[arg(long, default_value = "800x1216")]
    pub size: focus_exporters::export::StaticShape,
    /// Untimed runs first.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Timed runs.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// CPU threads of the runtimes.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Also time tract.
    #[arg(long)]
    pub tract: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Builds a runtime for a benchmark.
#[cfg(feature = "ort")]
type MakeRuntime<'a> = Box<dyn Fn() -> Result<Box<dyn Runtime>, RuntimeError> + 'a>;

/// One op problem timed in every form on the chosen runtimes.
#[cfg(feature = "ort")]
pub fn run(args: &BenchOpsArgs) -> Result<ExitCode> {
    let (size, warmup, runs, threads, with_tract, json) = (
        args.size,
        args.warmup,
        args.runs,
        args.threads,
        args.tract,
        args.json,
    );
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

    // The op models, in a temporary folder removed on every exit (an error, or a signal).
    let scratch = tempfile::Builder::new()
        .prefix("focus-export-bench-ops-")
        .tempdir()
        .context("creating a temporary folder for the op models")?;
    let dir = scratch.path().to_path_buf();
    let _pending = focus_models::weights::pending::track(&dir);
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
    drop(scratch);
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
pub fn run(_args: &BenchOpsArgs) -> Result<ExitCode> {
    bail!("bench-ops needs the `ort` feature")
}
