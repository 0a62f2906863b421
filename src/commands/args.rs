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

/// Model configuration: a preset name or a JSON file.
#[derive(Args, Clone)]
pub struct ConfigArg {
    /// Preset (r50_4scale_36ep, r50_4scale_12ep, r101_4scale_36ep) or a JSON config file.
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
    pub fn open(&self, kind: RuntimeKind, model: TorchOptions) -> Result<Box<dyn Runtime>> {
        match kind {
            RuntimeKind::Torch => self.torch(model),
            RuntimeKind::Ort => self.ort(),
            RuntimeKind::Tract => self.tract(),
        }
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
