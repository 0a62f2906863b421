//! Our custom ops (`ai.focus_detr`, declared in `focus_ops::decl`) as ONNX Runtime CPU kernels,
//! through `ort`'s operator API. Every session gets them, so models exported with `--msda custom`
//! or `--topk custom` run on ONNX Runtime through focus-export.
//!
//! `trt.plugins::MultiscaleDeformableAttnPlugin_TRT` gets a CPU emulation with the plugin's
//! contract (int32 level tables, output [N, Lq, M, D]), registered only on request
//! ([`trt_plugin_emulation_domain`], `--emulate-trt-plugins`), so the `--target tensorrt` export
//! can be executed and checked where TensorRT is absent. It is our kernel, not TensorRT's.
//!
//! A panic inside a kernel would abort the process (ORT calls it through C): every input is
//! checked by the `focus_ops` kernels, which return errors instead.

use ort::operator::{
    ComputeContext, Kernel, KernelContext, Operator, OperatorDomain, OperatorInput, OperatorOutput,
};
use ort::value::{TensorElementType, ValueRef};

use focus_ops::decl::{
    DType, OpDecl, DOMAIN, DYNAMIC_TOPK, MS_DEFORM_ATTN, TRT_MS_DEFORM_ATTN, TRT_PLUGIN_DOMAIN,
};
use focus_ops::msda::{ms_deform_attn_into, MsdaDims, MsdaInputs};
use focus_ops::topk::dynamic_topk;

fn elem(d: DType) -> TensorElementType {
    match d {
        DType::F32 => TensorElementType::Float32,
        DType::I64 => TensorElementType::Int64,
        DType::I32 => TensorElementType::Int32,
    }
}

fn inputs_of(op: &OpDecl) -> Vec<OperatorInput> {
    op.inputs
        .iter()
        .map(|t| OperatorInput::required(elem(t.dtype)))
        .collect()
}

fn outputs_of(op: &OpDecl) -> Vec<OperatorOutput> {
    op.outputs
        .iter()
        .map(|t| OperatorOutput::required(elem(t.dtype)))
        .collect()
}

fn input<'a>(ctx: &'a ComputeContext, op: &OpDecl, i: usize) -> ort::Result<ValueRef<'a>> {
    ctx.input(i)?.ok_or_else(|| {
        ort::Error::new(format!(
            "{}: input `{}` missing",
            op.op_type, op.inputs[i].name
        ))
    })
}

fn dims(shape: &[i64]) -> Vec<usize> {
    shape.iter().map(|&d| d.max(0) as usize).collect()
}

fn op_err(e: focus_ops::OpError) -> ort::Error {
    ort::Error::new(e.to_string())
}

/// `ai.focus_detr::MsDeformAttn`.
struct MsDeformAttnOp;

/// Its kernel (stateless).
struct MsDeformAttnKernel;

impl Operator for MsDeformAttnOp {
    type Kernel<'attr> = MsDeformAttnKernel;
    fn name(&self) -> &str {
        MS_DEFORM_ATTN.op_type
    }
    fn inputs(&self) -> impl IntoIterator<Item = OperatorInput> {
        inputs_of(&MS_DEFORM_ATTN)
    }
    fn outputs(&self) -> impl IntoIterator<Item = OperatorOutput> {
        outputs_of(&MS_DEFORM_ATTN)
    }
    fn create_kernel<'attr>(&self, _: &KernelContext<'attr>) -> ort::Result<MsDeformAttnKernel> {
        Ok(MsDeformAttnKernel)
    }
}

impl Kernel for MsDeformAttnKernel {
    fn compute(&mut self, ctx: &ComputeContext) -> ort::Result<()> {
        let op = &MS_DEFORM_ATTN;
        let ss = input(ctx, op, 1)?;
        let (sss, shapes) = ss.try_extract_tensor::<i64>()?;
        let ls = input(ctx, op, 2)?;
        let (lss, starts) = ls.try_extract_tensor::<i64>()?;
        let (sss, lss) = (dims(sss), dims(lss));
        msda_compute(ctx, op, (&sss, shapes), (&lss, starts), |d| {
            vec![d.n as i64, d.q as i64, (d.m * d.d) as i64]
        })
    }
}

/// The shared body of both deformable-attention kernels: `shapes` and `starts` are the level
/// tables (shape, int64 values) and `out_shape` the form's output shape.
fn msda_compute(
    ctx: &ComputeContext,
    op: &OpDecl,
    (sss, shapes): (&[usize], &[i64]),
    (lss, starts): (&[usize], &[i64]),
    out_shape: impl Fn(&MsdaDims) -> Vec<i64>,
) -> ort::Result<()> {
    let v = input(ctx, op, 0)?;
    let (vs, value) = v.try_extract_tensor::<f32>()?;
    let sl = input(ctx, op, 3)?;
    let (sls, loc) = sl.try_extract_tensor::<f32>()?;
    let aw = input(ctx, op, 4)?;
    let (aws, weights) = aw.try_extract_tensor::<f32>()?;
    let d = MsdaDims::from_shapes(&dims(vs), sss, lss, &dims(sls), &dims(aws)).map_err(op_err)?;
    let mut o = ctx
        .output(0, out_shape(&d))?
        .ok_or_else(|| ort::Error::new(format!("{}: output not allocated", op.op_type)))?;
    let (_, dst) = o.try_extract_tensor_mut::<f32>()?;
    // The work runs on the session's intra-op pool (ORT's, through the kernel context), so the
    // kernel does not start a second pool competing with ORT's threads for the same cores.
    let failed = std::sync::Mutex::new(None);
    let par = |units: usize, body: &(dyn Fn(usize) + Sync)| {
        if let Err(e) = ctx.par_for(units, 0, body) {
            *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        }
    };
    let inputs = MsdaInputs {
        value,
        spatial_shapes: shapes,
        level_start_index: starts,
        sampling_locations: loc,
        attention_weights: weights,
    };
    ms_deform_attn_into(dst, inputs, d, &par).map_err(op_err)?;
    match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// CPU emulation of `trt.plugins::MultiscaleDeformableAttnPlugin_TRT`.
struct TrtMsdaEmulationOp;

impl Operator for TrtMsdaEmulationOp {
    type Kernel<'attr> = TrtMsdaEmulationKernel;
    fn name(&self) -> &str {
        TRT_MS_DEFORM_ATTN.op_type
    }
    fn inputs(&self) -> impl IntoIterator<Item = OperatorInput> {
        inputs_of(&TRT_MS_DEFORM_ATTN)
    }
    fn outputs(&self) -> impl IntoIterator<Item = OperatorOutput> {
        outputs_of(&TRT_MS_DEFORM_ATTN)
    }
    fn create_kernel<'attr>(
        &self,
        _: &KernelContext<'attr>,
    ) -> ort::Result<TrtMsdaEmulationKernel> {
        Ok(TrtMsdaEmulationKernel)
    }
}

/// Its kernel (stateless): the plugin's int32 tables widened, the [N, Lq, M, D] output.
struct TrtMsdaEmulationKernel;

impl Kernel for TrtMsdaEmulationKernel {
    fn compute(&mut self, ctx: &ComputeContext) -> ort::Result<()> {
        let op = &TRT_MS_DEFORM_ATTN;
        let ss = input(ctx, op, 1)?;
        let (sss, shapes) = ss.try_extract_tensor::<i32>()?;
        let ls = input(ctx, op, 2)?;
        let (lss, starts) = ls.try_extract_tensor::<i32>()?;
        let shapes: Vec<i64> = shapes.iter().map(|&x| i64::from(x)).collect();
        let starts: Vec<i64> = starts.iter().map(|&x| i64::from(x)).collect();
        let (sss, lss) = (dims(sss), dims(lss));
        msda_compute(ctx, op, (&sss, &shapes), (&lss, &starts), |d| {
            vec![d.n as i64, d.q as i64, d.m as i64, d.d as i64]
        })
    }
}

/// `ai.focus_detr::DynamicTopK`.
struct DynamicTopKOp;

/// Its kernel (stateless).
struct DynamicTopKKernel;

impl Operator for DynamicTopKOp {
    type Kernel<'attr> = DynamicTopKKernel;
    fn name(&self) -> &str {
        DYNAMIC_TOPK.op_type
    }
    fn inputs(&self) -> impl IntoIterator<Item = OperatorInput> {
        inputs_of(&DYNAMIC_TOPK)
    }
    fn outputs(&self) -> impl IntoIterator<Item = OperatorOutput> {
        outputs_of(&DYNAMIC_TOPK)
    }
    fn create_kernel<'attr>(&self, _: &KernelContext<'attr>) -> ort::Result<DynamicTopKKernel> {
        Ok(DynamicTopKKernel)
    }
}

impl Kernel for DynamicTopKKernel {
    fn compute(&mut self, ctx: &ComputeContext) -> ort::Result<()> {
        let op = &DYNAMIC_TOPK;
        let s = input(ctx, op, 0)?;
        let (sh, scores) = s.try_extract_tensor::<f32>()?;
        let kt = input(ctx, op, 1)?;
        let (_, kv) = kt.try_extract_tensor::<i64>()?;
        let [rows, n] = dims(sh)[..] else {
            return Err(ort::Error::new(format!(
                "DynamicTopK: input `scores` has shape {:?}, expected [B, N]",
                &sh[..]
            )));
        };
        let k = *kv
            .first()
            .ok_or_else(|| ort::Error::new("DynamicTopK: input `k` is empty"))?;
        let (vals, idx) = dynamic_topk(scores, rows, n, k).map_err(op_err)?;
        let shape = [rows as i64, k];
        let mut vo = ctx
            .output(0, shape)?
            .ok_or_else(|| ort::Error::new("DynamicTopK: output not allocated"))?;
        vo.try_extract_tensor_mut::<f32>()?.1.copy_from_slice(&vals);
        let mut io = ctx
            .output(1, shape)?
            .ok_or_else(|| ort::Error::new("DynamicTopK: output not allocated"))?;
        io.try_extract_tensor_mut::<i64>()?.1.copy_from_slice(&idx);
        Ok(())
    }
}

/// The `ai.focus_detr` domain with both ops, for `SessionBuilder::with_operators` (build one per
/// session: the domain is neither Send nor Sync).
pub fn domain() -> ort::Result<OperatorDomain> {
    OperatorDomain::new(DOMAIN)?
        .add(MsDeformAttnOp)?
        .add(DynamicTopKOp)
}

/// The `trt.plugins` domain with the CPU emulation of TensorRT's deformable-attention plugin:
/// only for sessions that ask for it (`--emulate-trt-plugins`).
pub fn trt_plugin_emulation_domain() -> ort::Result<OperatorDomain> {
    OperatorDomain::new(TRT_PLUGIN_DOMAIN)?.add(TrtMsdaEmulationOp)
}
