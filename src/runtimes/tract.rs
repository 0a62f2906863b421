//! tract, the pure-Rust ONNX runtime, behind the [`Runtime`] interface. Nothing to install.
//!
//! The exported model is dynamic in batch, height and width, but tract's symbolic shape algebra
//! cannot prove that two spellings of the same token count are equal (e.g. `4·(1+N/2)/5` and
//! `(4+4·(N/2))/5`, both the k of a cascade layer). So the parsed model is specialised to the
//! concrete input shapes of each run and optimised then; the plan is cached per shape, so a
//! second run at the same size costs only the run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tract_onnx::prelude::{
    DatumType, Framework, InferenceFact, InferenceModel, InferenceModelExt, IntoTValue, TValue,
    TVec, TractError, TypedRunnableModel,
};

use tract_linalg::multithread::{multithread_tract_scope, Executor};

use super::{Runtime, RuntimeError};
use crate::profile::NodeTimes;
use crate::tensors::{HostData, HostTensor, TensorMap};

/// How tract runs.
#[derive(Debug, Clone, Default)]
pub struct TractOptions {
    /// Threads of tract's matrix products, element-wise kernels and our custom ops (default:
    /// every core, as ONNX Runtime's default).
    pub threads: Option<usize>,
    /// Time every node of every run (`bench --profile`; read with `take_profile`).
    pub profile: bool,
}

/// A model parsed by tract, with one optimised plan per input shape seen so far.
pub struct TractRuntime {
    path: PathBuf,
    model: InferenceModel,
    inputs: Vec<String>,
    cfg: Option<focus_models::FocusDetrConfig>,
    precision: focus_exporters::precision::Precision,
    plans: HashMap<Vec<Vec<usize>>, Arc<TypedRunnableModel>>,
    /// One pool for tract's kernels and ours (a single thread runs inline).
    executor: Executor,
    /// Per-run node times while profiling.
    profile: Option<Vec<NodeTimes>>,
}

/// The tract knob that edits the instruction sets its kernels may use (`-avx512f`, `+fma`, ...).
pub const ISA_KNOB: &str = "TRACT_CPU_ISA";

// focus-export leaves tract's kernel choice to tract (and to a user's `TRACT_CPU_ISA`). It used
// to hide AVX-512 on AMD Zen 4 for a ≈ 6 % speed-up of tract's 256-bit FMA kernels, but those
// are about 10× less accurate on the Swin backbone: against the official Swin-B golden at
// 386×389, neck_2 deviated by 1.38e-4 (over the 1e-4 feature budget) with them and by 1.24e-5
// with the AVX-512 kernels tract chooses itself (README, "tract").

/// Whether this binary's Rust code (tract's included) is VEX-encoded: built with AVX
/// (`-C target-feature=+avx`, which the repository's `.cargo/config.toml` sets for x86-64), or
/// not an x86-64 build at all.
///
/// Why it matters: tract's AVX-512 and FMA kernels return without `vzeroupper`, and on Intel the
/// legacy-SSE code run after them pays the AVX–SSE transition penalty (measured on an Intel Xeon
/// with AMX: tract's Sin 19× slower after one of its matrix products; the whole model 17–25 %
/// slower). AMD's cores have no such penalty.
pub fn vex_encoded() -> bool {
    !cfg!(target_arch = "x86_64") || cfg!(target_feature = "avx")
}

/// How tract's kernels are chosen in this process, in words (for `doctor`).
pub fn kernel_choice() -> String {
    match std::env::var(ISA_KNOB) {
        Ok(edit) => format!("{ISA_KNOB}={edit} (from the environment)"),
        Err(_) => "tract's own choice for this CPU".into(),
    }
}

/// tract's executor for `threads` (None: every core).
fn executor(threads: Option<usize>) -> Executor {
    let n = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if n > 1 {
        Executor::multithread_with_name(n, "focus-tract")
    } else {
        Executor::SingleThread
    }
}

fn err(path: &Path) -> impl Fn(TractError) -> RuntimeError + '_ {
    move |e| RuntimeError::Backend(format!("{}: tract: {e:#}", path.display()))
}

impl TractRuntime {
    /// Parses `model` (the graph is optimised at the first run of each input shape).
    pub fn new(model: &Path, opts: &TractOptions) -> Result<Self, RuntimeError> {
        let e = err(model);
        let mut onnx = tract_onnx::onnx();
        super::tract_ops::register(&mut onnx);
        let m = onnx.model_for_path(model).map_err(&e)?;
        // Ops tract does not know are parsed as placeholders and fail only at the first run:
        // refuse TensorRT plugin nodes now, with advice.
        let plugin = focus_ops::decl::TRT_MS_DEFORM_ATTN.op_type;
        if m.nodes().iter().any(|n| n.op.name().contains(plugin)) {
            return Err(RuntimeError::Backend(format!(
                "{}: this model holds TensorRT plugin nodes ({plugin}), which only TensorRT runs: \
                 export for tract with --target tract (or --msda decomposed|custom)",
                model.display()
            )));
        }
        let inputs = m
            .input_outlets()
            .map_err(&e)?
            .iter()
            .map(|o| m.node(o.node).name.clone())
            .collect();
        let property = |key: &str| {
            let key = format!("onnx.metadata_props.{key}");
            m.properties.get(&key).and_then(|t| {
                t.to_plain_array_view::<String>()
                    .ok()
                    .and_then(|v| v.iter().next().cloned())
            })
        };
        let cfg = super::config_from_metadata(property(super::CONFIG_METADATA_KEY).as_deref());
        let precision = super::precision_from_metadata(
            property(focus_exporters::export::PRECISION_METADATA_KEY).as_deref(),
        );
        Ok(TractRuntime {
            cfg,
            precision,
            path: model.to_path_buf(),
            model: m,
            inputs,
            plans: HashMap::new(),
            executor: executor(opts.threads),
            profile: opts.profile.then(Vec::new),
        })
    }

    /// The optimised plan for these input shapes, built on first use.
    fn plan(&mut self, feed: &[TValue]) -> Result<Arc<TypedRunnableModel>, RuntimeError> {
        let key: Vec<Vec<usize>> = feed.iter().map(|v| v.shape().to_vec()).collect();
        if let Some(p) = self.plans.get(&key) {
            return Ok(p.clone());
        }
        let e = err(&self.path);
        let mut m = self.model.clone();
        for (i, v) in feed.iter().enumerate() {
            m.set_input_fact(i, InferenceFact::dt_shape(v.datum_type(), v.shape()))
                .map_err(&e)?;
        }
        let typed = m.into_optimized().map_err(&e)?;
        let plan = tract_onnx::prelude::IntoRunnable::into_runnable(typed).map_err(&e)?;
        self.plans.insert(key, plan.clone());
        Ok(plan)
    }
}

fn to_tvalue(name: &str, t: &HostTensor) -> Result<TValue, RuntimeError> {
    let bad = |e: TractError| RuntimeError::Input {
        name: name.to_string(),
        message: e.to_string(),
    };
    let tensor = match &t.data {
        HostData::F32(v) => tract_onnx::prelude::Tensor::from_shape(&t.shape, v),
        HostData::I64(v) => tract_onnx::prelude::Tensor::from_shape(&t.shape, v),
        HostData::U8(v) => tract_onnx::prelude::Tensor::from_shape(&t.shape, v),
    }
    .map_err(bad)?;
    Ok(tensor.into_tvalue())
}

fn to_host(name: &str, v: &TValue) -> Result<HostTensor, RuntimeError> {
    let fail = |e: TractError| RuntimeError::Backend(format!("tract output `{name}`: {e}"));
    let shape = v.shape().to_vec();
    Ok(match v.datum_type() {
        DatumType::F32 => HostTensor::f32(
            shape,
            v.to_plain_array_view::<f32>()
                .map_err(fail)?
                .iter()
                .copied()
                .collect(),
        ),
        DatumType::I64 => HostTensor::i64(
            shape,
            v.to_plain_array_view::<i64>()
                .map_err(fail)?
                .iter()
                .copied()
                .collect(),
        ),
        DatumType::Bool => HostTensor::i64(
            shape,
            v.to_plain_array_view::<bool>()
                .map_err(fail)?
                .iter()
                .map(|&b| i64::from(b))
                .collect(),
        ),
        // Sizes computed from shapes stay symbolic-capable TDim values in tract.
        DatumType::TDim => {
            let t = v.cast_to::<i64>().map_err(fail)?;
            HostTensor::i64(
                shape,
                t.to_plain_array_view::<i64>()
                    .map_err(fail)?
                    .iter()
                    .copied()
                    .collect(),
            )
        }
        other => {
            return Err(RuntimeError::Backend(format!(
                "tract output `{name}` has type {other:?}"
            )))
        }
    })
}

impl Runtime for TractRuntime {
    fn name(&self) -> String {
        "tract".into()
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
        let per_run = self.profile.take()?;
        let mut sum = NodeTimes::default();
        for t in per_run.iter().rev().take(runs) {
            sum.merge(t);
        }
        Some(sum.summary(runs.min(per_run.len())).ok_or_else(|| {
            RuntimeError::Backend("tract profile: no timed run was recorded".into())
        }))
    }

    fn inputs(&self) -> Vec<String> {
        self.inputs.clone()
    }

    fn run(&mut self, inputs: &TensorMap) -> Result<TensorMap, RuntimeError> {
        super::check_model_input(self.cfg.as_ref(), &self.inputs, inputs)?;
        let mut feed: TVec<TValue> = TVec::new();
        for name in &self.inputs {
            let t = super::model_input(inputs, name, self.cfg.as_ref())?;
            feed.push(to_tvalue(name, &t)?);
        }
        let plan = self.plan(&feed)?;
        let fail = |e: TractError| RuntimeError::Backend(format!("tract run failed: {e:#}"));
        let profiling = self.profile.is_some();
        let run = || -> Result<(TVec<TValue>, NodeTimes), RuntimeError> {
            if !profiling {
                return Ok((plan.run(feed).map_err(fail)?, NodeTimes::default()));
            }
            let mut times = NodeTimes::default();
            let mut state = plan.spawn().map_err(fail)?;
            let out = state
                .run_plan_with_eval(feed, |ctx, st, node, input| {
                    let t = std::time::Instant::now();
                    let r = tract_onnx::tract_core::plan::eval(ctx, st, node, input);
                    times.add(&node.name, &node.op.name(), t.elapsed().as_secs_f64());
                    r
                })
                .map_err(fail)?;
            Ok((out, times))
        };
        // Inside the pool, so that our kernels' rayon work runs on tract's threads: one pool.
        let (out, times) = match &self.executor {
            Executor::MultiThread(pool) => {
                let exec = self.executor.clone();
                pool.install(|| multithread_tract_scope(exec, run))?
            }
            _ => run()?,
        };
        if let Some(p) = &mut self.profile {
            p.push(times);
        }
        let model = plan.model();
        let mut map = TensorMap::new();
        for (o, v) in model.outputs.iter().zip(out.iter()) {
            let name = model
                .outlet_label(*o)
                .map_or_else(|| model.node(o.node).name.clone(), str::to_string);
            map.insert(name.clone(), to_host(&name, v)?);
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tract_sees_the_environment_s_kernel_choice_and_no_other() {
        let seen = tract_linalg::knobs::TRACT_CPU_ISA.get();
        assert_eq!(seen, std::env::var(ISA_KNOB).ok(), "{}", kernel_choice());
    }
}
