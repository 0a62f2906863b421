//! ONNX Runtime through `ort` (library loaded at run time, see `runtime_env`): CPU, CUDA and
//! TensorRT execution providers behind the [`Runtime`] interface.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::ep::ExecutionProvider as _;
use ort::session::Session;
use ort::value::{Tensor, TensorElementType, ValueType};

use super::{Runtime, RuntimeError};
use crate::runtime_env;
use crate::tensors::{HostData, HostTensor, TensorMap};

/// Which execution provider runs the model.
#[derive(Debug, Clone, PartialEq)]
pub enum Provider {
    /// The CPU provider.
    Cpu,
    /// CUDA on a device.
    Cuda {
        /// CUDA device index.
        device_id: i32,
    },
    /// TensorRT on a device.
    TensorRt {
        /// CUDA device index.
        device_id: i32,
        /// Build fp16 engines.
        fp16: bool,
        /// Cache built engines here.
        engine_cache: Option<PathBuf>,
        /// Optimisation profile `(min, opt, max)` in ORT's format, e.g. `images:1x3x800x1344`.
        profile: Option<(String, String, String)>,
    },
}

impl Provider {
    /// The provider `kind` on CUDA device `device_id`, with the TensorRT settings (`fp16`
    /// engines, an engine cache folder, a profile "MIN;OPT;MAX") that only TensorRT reads.
    pub fn from_kind(
        kind: super::ProviderKind,
        device_id: i32,
        fp16: bool,
        engine_cache: Option<&Path>,
        trt_profile: Option<&str>,
    ) -> Result<Provider, RuntimeError> {
        Ok(match kind {
            super::ProviderKind::Cpu => Provider::Cpu,
            super::ProviderKind::Cuda => Provider::Cuda { device_id },
            super::ProviderKind::Tensorrt => {
                let profile = match trt_profile {
                    None => None,
                    Some(p) => {
                        let parts: Vec<&str> = p.split(';').collect();
                        let [min, opt, max] = parts[..] else {
                            return Err(RuntimeError::Options(format!("--trt-profile {p}: expected MIN;OPT;MAX, e.g. images:1x3x480x640;images:1x3x800x1216;images:1x3x1344x1344")));
                        };
                        Some((min.to_string(), opt.to_string(), max.to_string()))
                    }
                };
                Provider::TensorRt {
                    device_id,
                    fp16,
                    engine_cache: engine_cache.map(Path::to_path_buf),
                    profile,
                }
            }
        })
    }
}

/// Options of an ONNX Runtime session.
#[derive(Debug, Clone)]
pub struct OrtOptions {
    /// The provider.
    pub provider: Provider,
    /// Intra-op threads (default: ORT's choice).
    pub threads: Option<usize>,
    /// Run TensorRT plugin nodes with focus-export's CPU emulation (`--emulate-trt-plugins`):
    /// checks the `--target tensorrt` export without TensorRT; it is not TensorRT.
    pub emulate_trt_plugins: bool,
    /// Record ONNX Runtime's per-node profile (`bench --profile`; read with `take_profile`).
    pub profile: bool,
}

/// Errors specific to ONNX Runtime.
#[derive(Debug, thiserror::Error)]
pub enum OrtError {
    /// The library could not be found or loaded.
    #[error("ONNX Runtime is not available: {0}")]
    Library(String),
    /// The provider is not part of this ONNX Runtime build or failed to initialise.
    #[error("the {provider} execution provider is not available in {library}: {message}; install the GPU runtimes with `{fix}`")]
    Provider {
        /// Provider name.
        provider: &'static str,
        /// Library path.
        library: String,
        /// Details.
        message: String,
        /// Fix command.
        fix: String,
    },
    /// Creating the session failed.
    #[error("{path}: cannot load the model in ONNX Runtime: {message}")]
    Session {
        /// Model file.
        path: String,
        /// What ORT said.
        message: String,
    },
    /// Running failed.
    #[error("ONNX Runtime run failed: {0}")]
    Run(String),
}

impl From<OrtError> for RuntimeError {
    fn from(e: OrtError) -> Self {
        RuntimeError::Backend(e.to_string())
    }
}

/// Held while a session with our custom-op domains is created (see `OrtRuntime::new`).
static SESSION_CREATION: Mutex<()> = Mutex::new(());

/// The process-wide ORT environment (ORT allows one), created on first use.
fn environment() -> Result<&'static (Environment, PathBuf), OrtError> {
    static ENV: OnceLock<Result<(Environment, PathBuf), String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let path = runtime_env::find_onnxruntime().map_err(|e| e.to_string())?;
        let env = ort::init_from(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .with_name("focus-export")
            .build()
            .map_err(|e| e.to_string())?;
        Ok((env, path))
    })
    .as_ref()
    .map_err(|e| OrtError::Library(e.clone()))
}

/// A model loaded in ONNX Runtime.
pub struct OrtRuntime {
    session: Session,
    name: String,
    cfg: Option<focus_models::FocusDetrConfig>,
    precision: focus_exporters::precision::Precision,
    /// Profiling is on and not yet ended.
    profiling: bool,
}

impl OrtRuntime {
    /// Loads `model` with `opts`.
    pub fn new(model: &Path, opts: &OrtOptions) -> Result<Self, OrtError> {
        let (env, lib) = environment()?;
        let sess_err = |e: ort::Error| OrtError::Session {
            path: model.display().to_string(),
            message: e.to_string(),
        };
        let builder_err = |e: ort::Error<ort::session::builder::SessionBuilder>| {
            sess_err(ort::Error::<()>::from(e))
        };
        let mut b = Session::builder(env).map_err(sess_err)?;
        if let Some(t) = opts.threads {
            b = b.with_intra_threads(t).map_err(builder_err)?;
        }
        // No memory pattern: ORT plans one arena block per input shape from the first run, and
        // with this model's shapes (dynamic H, W and data-dependent token counts) that plan cost
        // ~550 MiB of peak memory at 800×1184 (1805 → 1250-1290 MiB) for no measurable speed
        // (bench, 2 threads, rocket 800×1184: 2.59 vs 2.50 s p50, within this machine's noise).
        // The CPU arena itself stays: without it runs were 10-35 % slower.
        b = b.with_memory_pattern(false).map_err(builder_err)?;
        if opts.profile {
            // ORT names the file <prefix>_<date>.json; end_profiling says which.
            let prefix = std::env::temp_dir()
                .join(format!("focus-export-ort-profile-{}", std::process::id()));
            b = b.with_profiling(prefix).map_err(builder_err)?;
        }
        let provider_err = |provider: &'static str, message: String| OrtError::Provider {
            provider,
            library: lib.display().to_string(),
            message,
            fix: runtime_env::setup_command(true),
        };
        let name = match &opts.provider {
            Provider::Cpu if opts.emulate_trt_plugins => "ort-cpu+trt-plugin-emulation".to_string(),
            Provider::Cpu => "ort-cpu".to_string(),
            Provider::Cuda { device_id } => {
                if !ort::ep::CUDA::is_available().unwrap_or(false) {
                    return Err(provider_err(
                        "CUDA",
                        "this ONNX Runtime build has no CUDA provider".into(),
                    ));
                }
                let ep = ort::ep::CUDA::default()
                    .with_device_id(*device_id)
                    .build()
                    .error_on_failure();
                b = b
                    .with_execution_providers([ep])
                    .map_err(|e| provider_err("CUDA", ort::Error::<()>::from(e).to_string()))?;
                format!("ort-cuda:{device_id}")
            }
            Provider::TensorRt {
                device_id,
                fp16,
                engine_cache,
                profile,
            } => {
                if !ort::ep::TensorRT::is_available().unwrap_or(false) {
                    return Err(provider_err(
                        "TensorRT",
                        "this ONNX Runtime build has no TensorRT provider".into(),
                    ));
                }
                let mut ep = ort::ep::TensorRT::default()
                    .with_device_id(*device_id)
                    .with_fp16(*fp16);
                if let Some(dir) = engine_cache {
                    ep = ep
                        .with_engine_cache(true)
                        .with_engine_cache_path(dir.display());
                }
                if let Some((min, opt, max)) = profile {
                    ep = ep
                        .with_profile_min_shapes(min)
                        .with_profile_opt_shapes(opt)
                        .with_profile_max_shapes(max);
                }
                b = b
                    .with_execution_providers([ep.build().error_on_failure()])
                    .map_err(|e| provider_err("TensorRT", ort::Error::<()>::from(e).to_string()))?;
                format!(
                    "ort-tensorrt:{device_id}{}",
                    if *fp16 { "-fp16" } else { "" }
                )
            }
        };
        // One session at a time from here to its creation: ORT enters a custom-op domain in a
        // process-wide table when a session first uses it, and two sessions created at once on
        // different threads could both try ("the domain is already exist", onnxruntime#22663).
        let _one_at_a_time = SESSION_CREATION
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Our custom ops (ai.focus_detr) run on every session, on the CPU provider.
        let ops = super::ort_ops::domain().map_err(sess_err)?;
        b = b.with_operators(ops).map_err(builder_err)?;
        if opts.emulate_trt_plugins {
            let trt = super::ort_ops::trt_plugin_emulation_domain().map_err(sess_err)?;
            b = b.with_operators(trt).map_err(builder_err)?;
        }
        let is_trt = matches!(opts.provider, Provider::TensorRt { .. });
        // Loading frees much of what it allocates (see `heap`): let glibc give it back.
        let session = crate::heap::while_loading(|| b.commit_from_file(model)).map_err(|e| {
            let msg = e.to_string();
            if !is_trt && !opts.emulate_trt_plugins && msg.contains(focus_ops::decl::TRT_MS_DEFORM_ATTN.op_type) {
                OrtError::Session {
                    path: model.display().to_string(),
                    message: format!(
                        "{msg}\nThis model holds TensorRT plugin nodes ({}), which only TensorRT runs: \
                         use --provider tensorrt, or export for this runtime with --target ort-cpu \
                         (or --msda decomposed|custom); to check this model on the CPU, run it \
                         with --emulate-trt-plugins (focus-export's emulation of the plugin)",
                        focus_ops::decl::TRT_MS_DEFORM_ATTN.op_type
                    ),
                }
            } else {
                sess_err(e)
            }
        })?;
        let (cfg, precision) = {
            let meta = session.metadata().ok();
            let custom = |key: &str| meta.as_ref().and_then(|m| m.custom(key));
            (
                super::config_from_metadata(custom(super::CONFIG_METADATA_KEY).as_deref()),
                super::precision_from_metadata(
                    custom(focus_exporters::export::PRECISION_METADATA_KEY).as_deref(),
                ),
            )
        };
        Ok(OrtRuntime {
            session,
            name,
            cfg,
            precision,
            profiling: opts.profile,
        })
    }

    /// The names of the model's outputs.
    pub fn output_names(&self) -> Vec<String> {
        self.session
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect()
    }
}

impl Runtime for OrtRuntime {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn precision(&self) -> focus_exporters::precision::Precision {
        self.precision
    }

    fn config(&self) -> Option<&focus_models::FocusDetrConfig> {
        self.cfg.as_ref()
    }

    fn take_profile(
        &mut self,
        runs: usize,
    ) -> Option<Result<crate::profile::OpProfile, RuntimeError>> {
        if !std::mem::take(&mut self.profiling) {
            return None;
        }
        let fail = |m: String| RuntimeError::Backend(format!("ONNX Runtime profile: {m}"));
        let path = match self.session.end_profiling() {
            Ok(p) => p,
            Err(e) => return Some(Err(fail(e.to_string()))),
        };
        let json = std::fs::read_to_string(&path).map_err(|e| fail(format!("{path}: {e}")));
        let _ = std::fs::remove_file(&path);
        Some(json.and_then(|j| {
            crate::profile::parse_ort(&j, &path, runs).map_err(|e| fail(e.to_string()))
        }))
    }

    fn inputs(&self) -> Vec<String> {
        self.session
            .inputs()
            .iter()
            .map(|i| i.name().to_string())
            .collect()
    }

    fn run(&mut self, inputs: &TensorMap) -> Result<TensorMap, RuntimeError> {
        let wanted = self.inputs();
        super::check_model_input(self.cfg.as_ref(), &wanted, inputs)?;
        let mut feed = Vec::new();
        for name in &wanted {
            let t = super::model_input(inputs, name, self.cfg.as_ref())?;
            let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
            let v: ort::value::DynValue = match &t.data {
                HostData::F32(v) => Tensor::from_array((shape, v.clone())).map(|t| t.into_dyn()),
                HostData::I64(v) => Tensor::from_array((shape, v.clone())).map(|t| t.into_dyn()),
                HostData::U8(v) => Tensor::from_array((shape, v.clone())).map(|t| t.into_dyn()),
            }
            .map_err(|e| RuntimeError::Input {
                name: name.clone(),
                message: e.to_string(),
            })?;
            feed.push((name.clone(), v));
        }
        let outputs = self
            .session
            .run(feed)
            .map_err(|e| OrtError::Run(e.to_string()))?;
        let mut map = TensorMap::new();
        for (name, v) in outputs.iter() {
            let ty = match v.dtype() {
                ValueType::Tensor { ty, .. } => *ty,
                other => {
                    return Err(OrtError::Run(format!(
                        "output `{name}` is not a tensor: {other:?}"
                    ))
                    .into())
                }
            };
            let host = match ty {
                TensorElementType::Float32 => {
                    let (s, d) = v
                        .try_extract_tensor::<f32>()
                        .map_err(|e| OrtError::Run(e.to_string()))?;
                    HostTensor::f32(s.iter().map(|&x| x as usize).collect(), d.to_vec())
                }
                TensorElementType::Int64 => {
                    let (s, d) = v
                        .try_extract_tensor::<i64>()
                        .map_err(|e| OrtError::Run(e.to_string()))?;
                    HostTensor::i64(s.iter().map(|&x| x as usize).collect(), d.to_vec())
                }
                other => {
                    return Err(OrtError::Run(format!(
                        "output `{name}` has element type {other:?}"
                    ))
                    .into())
                }
            };
            map.insert(name.to_string(), host);
        }
        Ok(map)
    }
}
