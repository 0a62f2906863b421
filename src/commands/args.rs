//! Argument groups several commands share: the model configuration, and how to build a runtime
//! (what it loads and its execution options).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

// A build without any runtime feature (export only) builds no runtime.
#[cfg_attr(
    not(any(feature = "torch", feature = "ort", feature = "tract")),
    allow(unused_imports)
)]
use anyhow::Context;
use focus_export::runtimes::{ProviderKind, Runtime, RuntimeKind, TorchOptions};
use focus_models::FocusDetrConfig;

/// A runtime's name as the command line spells it (`torch`, `ort`, `tract`).
pub fn runtime_word(kind: RuntimeKind) -> String {
    clap::ValueEnum::to_possible_value(&kind).map_or_else(
        || format!("{kind:?}").to_lowercase(),
        |v| v.get_name().to_string(),
    )
}

/// Model configuration: a preset name or a JSON file.
#[derive(Args, Clone)]
pub struct ConfigArg {
    /// Preset (`focus-export config --list` shows them: every official ResNet and Swin config)
    /// or a JSON config file.
    #[arg(long, default_value = focus_models::config::DEFAULT_PRESET)]
    pub config: String,
    /// The dense baseline, not the official model: every encoder layer keeps every token
    /// (focus.dense), to measure what the token sparsity saves.
    #[arg(long)]
    pub dense: bool,
}

impl ConfigArg {
    /// The resolved configuration (`--dense` applied).
    pub fn load(&self) -> Result<FocusDetrConfig> {
        let mut cfg = FocusDetrConfig::resolve(&self.config)
            .with_context(|| format!("--config {}", self.config))?;
        cfg.focus.dense |= self.dense;
        Ok(cfg)
    }
}

/// How a weight file is read and what it may hold (every command that loads weights).
#[derive(Args, Clone, Copy, Default)]
pub struct WeightOptionsArg {
    /// Take the EMA weights of a PyTorch checkpoint (`ema_state`) instead of the trained ones.
    #[arg(long)]
    pub ema: bool,
    /// Load weights that hold NaN or infinite values (refused by default, naming each tensor:
    /// every output of a model built from them is NaN).
    #[arg(long)]
    pub allow_nonfinite: bool,
}

impl WeightOptionsArg {
    /// The loader's options.
    pub fn options(&self) -> focus_models::LoadOptions {
        focus_models::LoadOptions {
            checkpoint: focus_models::checkpoint::CheckpointOptions { ema: self.ema },
            allow_nonfinite: self.allow_nonfinite,
        }
    }
}

/// How to build a runtime: what it loads and its execution options (shared by `run`, `bench`,
/// `check` and `predict`).
#[derive(Args, Clone)]
pub struct RuntimeArgs {
    /// Weights (.safetensors) for the torch runtime.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Exported model (.onnx) for the ort and tract runtimes.
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub weight_options: WeightOptionsArg,
    /// ONNX Runtime execution provider.
    #[arg(long, value_enum, default_value = "cpu")]
    pub provider: ProviderKind,
    /// TensorRT: build fp16 engines.
    #[arg(long)]
    pub fp16: bool,
    /// TensorRT: engine cache folder.
    #[arg(long)]
    pub engine_cache: Option<PathBuf>,
    /// TensorRT: optimisation profile "MIN;OPT;MAX", each like images:1x3x800x1344.
    #[arg(long)]
    pub trt_profile: Option<String>,
    /// Device for the torch runtime and the GPU providers: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// CPU threads of the runtime (default: the runtime's own choice).
    #[arg(long)]
    pub threads: Option<usize>,
    /// ONNX Runtime: run TensorRT plugin nodes (the `--target tensorrt` export) with
    /// focus-export's CPU emulation of the plugin, to check that model without TensorRT. This
    /// is not TensorRT: it proves the graph around the plugin, not TensorRT's kernels.
    #[arg(long)]
    pub emulate_trt_plugins: bool,
    /// ONNX Runtime and tract: record their per-node profile (set by `bench --profile`).
    #[arg(skip)]
    pub profile: bool,
}

impl RuntimeArgs {
    /// Builds the runtime of `kind` these arguments ask for (`model` applies to the torch
    /// reference only: exported models fix theirs at export time).
    /// An exported model must take the `images` input: any other ONNX file is refused here,
    /// naming it, instead of failing later on an input the tensor file lacks.
    pub fn open(&self, kind: RuntimeKind, model: TorchOptions) -> Result<Box<dyn Runtime>> {
        let rt = match kind {
            RuntimeKind::Torch => return self.torch(model),
            RuntimeKind::Ort => self.ort()?,
            RuntimeKind::Tract => self.tract()?,
        };
        let inputs = rt.inputs();
        if !inputs.iter().any(|i| i == "images") {
            let path = self
                .model
                .as_deref()
                .unwrap_or(std::path::Path::new("--model"));
            bail!(
                "{}: not a Focus-DETR export: the model has no input `images` (its inputs: {})",
                path.display(),
                inputs.join(", ")
            );
        }
        Ok(rt)
    }

    #[cfg(feature = "tract")]
    fn tract(&self) -> Result<Box<dyn Runtime>> {
        use focus_export::runtimes::tract::{TractOptions, TractRuntime};
        let model = self
            .model
            .as_ref()
            .context("--model is required for --runtime tract")?;
        let opts = TractOptions {
            threads: self.threads,
            profile: self.profile,
        };
        Ok(Box::new(TractRuntime::new(model, &opts)?))
    }

    #[cfg(not(feature = "tract"))]
    fn tract(&self) -> Result<Box<dyn Runtime>> {
        bail!("this binary was built without the `tract` feature; rebuild with `cargo build --release --features tract`")
    }

    #[cfg(feature = "ort")]
    fn ort(&self) -> Result<Box<dyn Runtime>> {
        use focus_export::runtimes::cuda_index;
        use focus_export::runtimes::ort::{OrtOptions, OrtRuntime, Provider};
        let model = self
            .model
            .as_ref()
            .context("--model is required for --runtime ort")?;
        let provider = Provider::from_kind(
            self.provider,
            cuda_index(&self.device)?,
            self.fp16,
            self.engine_cache.as_deref(),
            self.trt_profile.as_deref(),
        )?;
        if self.emulate_trt_plugins && matches!(provider, Provider::TensorRt { .. }) {
            bail!("--emulate-trt-plugins is for the CPU and CUDA providers: with --provider tensorrt, TensorRT runs its own plugin");
        }
        let opts = OrtOptions {
            provider,
            threads: self.threads,
            emulate_trt_plugins: self.emulate_trt_plugins,
            profile: self.profile,
        };
        Ok(Box::new(OrtRuntime::new(model, &opts)?))
    }

    #[cfg(not(feature = "ort"))]
    fn ort(&self) -> Result<Box<dyn Runtime>> {
        bail!("this binary was built without the `ort` feature; rebuild with `cargo build --release --features ort`")
    }

    #[cfg(feature = "torch")]
    fn torch(&self, model: TorchOptions) -> Result<Box<dyn Runtime>> {
        use focus_export::runtimes::torch::TorchRuntime;
        let weights = self
            .weights
            .as_ref()
            .context("--weights is required for --runtime torch")?;
        let cfg = self.config.load()?;
        Ok(Box::new(TorchRuntime::open(
            cfg,
            weights,
            self.weight_options.options(),
            &self.device,
            self.threads,
            model,
        )?))
    }

    #[cfg(not(feature = "torch"))]
    fn torch(&self, _model: TorchOptions) -> Result<Box<dyn Runtime>> {
        bail!("this binary was built without the `torch` feature; rebuild with `cargo build --release --features torch` (after scripts/setup-env.sh)")
    }
}

/// `--precision int8`: its calibration and what stays float32 (shared by the export and
/// `triton`).
#[derive(Args, Clone, Default)]
pub struct Int8Args {
    /// int8: a folder of photos to calibrate the activation ranges on (a COCO images folder
    /// works); taken in name order, at most --calibrate-limit of them.
    #[arg(long, value_name = "DIR")]
    pub calibrate: Option<PathBuf>,
    /// int8: how many calibration photos to use.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub calibrate_limit: usize,
    /// int8: how a range is chosen from the values seen: minmax, percentile (99.99 at each
    /// end; percentile:P for another) or entropy (KL divergence, TensorRT's method).
    #[arg(
        long,
        default_value = "percentile",
        value_name = "minmax|percentile[:P]|entropy"
    )]
    pub calibration: focus_exporters::int8::CalibrationMethod,
    /// int8: also keep these layers in float32, by module path (repeatable; a run of path
    /// components such as backbone.res2 or ffns).
    #[arg(long, value_name = "MODULE")]
    pub int8_keep: Vec<String>,
    /// int8: intra-op threads of the calibration runs (default: ONNX Runtime's choice).
    #[arg(long, value_name = "N")]
    pub calibrate_threads: Option<usize>,
}

impl Int8Args {
    /// Refuses int8 options without `--precision int8`, and int8 without what it needs.
    pub fn check(
        &self,
        precision: focus_exporters::precision::Precision,
        target: Option<focus_exporters::Target>,
    ) -> Result<()> {
        use focus_exporters::precision::Precision;
        if precision != Precision::Int8 {
            if self.calibrate.is_some() || !self.int8_keep.is_empty() {
                bail!("--calibrate and --int8-keep apply to --precision int8 only");
            }
            return Ok(());
        }
        if matches!(
            target,
            Some(focus_exporters::Target::TensorRt | focus_exporters::Target::OrtCuda)
        ) {
            bail!(
                "--precision int8 is for the CPU targets (none, ort-cpu, tract): TensorRT takes \
                 symmetric int8 activations only and the GPU forms are not calibrated here yet; \
                 use --precision fp16 for a GPU"
            );
        }
        let Some(dir) = &self.calibrate else {
            bail!("--precision int8 needs --calibrate DIR: a folder of photos like the ones the model will see (16 are used by default)");
        };
        if !dir.is_dir() {
            bail!("--calibrate {}: not a folder of photos", dir.display());
        }
        if self.calibrate_limit == 0 {
            bail!("--calibrate-limit must be at least 1");
        }
        Ok(())
    }

    /// `--precision int8`: plans the rewrite, calibrates on the photos and writes the QDQ
    /// model into `summary` (nothing for other precisions).
    #[cfg(feature = "ort")]
    pub fn finish(
        &self,
        summary: &mut focus_exporters::ExportSummary,
        cfg: &FocusDetrConfig,
        step: &dyn Fn(&str),
    ) -> Result<()> {
        if summary.precision != focus_exporters::precision::Precision::Int8 {
            return Ok(());
        }
        let dir = self
            .calibrate
            .as_ref()
            .context("--precision int8 needs --calibrate DIR")?;
        let opts = focus_exporters::int8::Int8Options {
            keep: self.int8_keep.clone(),
        };
        step("int8: folding batch norms and planning the quantised layers");
        let plan = summary.int8_plan(&opts)?;
        let items =
            focus_export::inputs::from_image_dir(dir, Some(self.calibrate_limit), &cfg.preprocess)
                .with_context(|| format!("--calibrate {}", dir.display()))?;
        let n = items.len();
        let cal = focus_export::calibrate::calibrate(
            &plan,
            &items,
            self.calibration,
            self.calibrate_threads,
            |k| {
                step(&format!(
                    "int8: calibrating on ONNX Runtime, image {k} of {n}"
                ))
            },
        )?;
        for (t, count) in &cal.non_finite {
            eprintln!("warning: int8 calibration: {count} non-finite values of `{t}` were left out of its range");
        }
        step("int8: writing the quantised model");
        summary.finish_int8(plan, &cal.ranges, self.calibration, cal.images)?;
        Ok(())
    }

    /// Without ONNX Runtime there is nothing to calibrate on.
    #[cfg(not(feature = "ort"))]
    pub fn finish(
        &self,
        summary: &mut focus_exporters::ExportSummary,
        _cfg: &FocusDetrConfig,
        _step: &dyn Fn(&str),
    ) -> Result<()> {
        if summary.precision == focus_exporters::precision::Precision::Int8 {
            bail!("--precision int8 calibrates on ONNX Runtime: build focus-export with the `ort` feature");
        }
        Ok(())
    }
}
