//! The compute bodies of the library's ops: read the inputs through the C API, run the
//! `focus_ops` kernels (the same code focus-export's own ONNX Runtime and tract registrations
//! run, so results are bit-identical), write the outputs.

use ops::decl::{OpDecl, DYNAMIC_TOPK, MS_DEFORM_ATTN};
use ops::msda::{ms_deform_attn_into, MsdaDims, MsdaInputs};
use ops::topk::dynamic_topk;

use crate::api::{Context, Failure};

/// An op of the library: its declaration and its compute body.
pub trait LibraryOp: 'static {
    /// The op's declaration (name, inputs, outputs).
    const DECL: &'static OpDecl;
    /// One call: reads the inputs from `ctx` and writes the outputs.
    fn compute(ctx: &Context) -> Result<(), Failure>;
}

/// A failure of the host API, named after `op`.
fn host(op: &OpDecl) -> impl Fn(Failure) -> Failure + '_ {
    move |e| format!("{}: {e}", op.op_type)
}

/// `ai.focus_detr::MsDeformAttn`.
pub struct MsDeformAttn;

impl LibraryOp for MsDeformAttn {
    const DECL: &'static OpDecl = &MS_DEFORM_ATTN;

    fn compute(ctx: &Context) -> Result<(), Failure> {
        let op = Self::DECL;
        let name = |i: usize| op.inputs[i].name;
        let e = host(op);
        let (vs, value) = ctx.input::<f32>(0, name(0)).map_err(&e)?;
        let (sss, shapes) = ctx.input::<i64>(1, name(1)).map_err(&e)?;
        let (lss, starts) = ctx.input::<i64>(2, name(2)).map_err(&e)?;
        let (sls, loc) = ctx.input::<f32>(3, name(3)).map_err(&e)?;
        let (aws, weights) = ctx.input::<f32>(4, name(4)).map_err(&e)?;
        let d = MsdaDims::from_shapes(&vs, &sss, &lss, &sls, &aws).map_err(|e| e.to_string())?;
        // [N, Lq, M·D]
        let out = ctx.output::<f32>(0, &[d.n, d.q, d.m * d.d]).map_err(&e)?;
        // The work runs on the session's intra-op pool, as in focus-export's own registration.
        let failed = std::sync::Mutex::new(None);
        let par = |units: usize, body: &(dyn Fn(usize) + Sync)| {
            if let Err(err) = ctx.parallel_for(units, body) {
                *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(err);
            }
        };
        let inputs = MsdaInputs {
            value,
            spatial_shapes: shapes,
            level_start_index: starts,
            sampling_locations: loc,
            attention_weights: weights,
        };
        ms_deform_attn_into(out, inputs, d, &par).map_err(|e| e.to_string())?;
        match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(err) => Err(e(err)),
            None => Ok(()),
        }
    }
}

/// `ai.focus_detr::DynamicTopK`.
pub struct DynamicTopK;

impl LibraryOp for DynamicTopK {
    const DECL: &'static OpDecl = &DYNAMIC_TOPK;

    fn compute(ctx: &Context) -> Result<(), Failure> {
        let op = Self::DECL;
        let e = host(op);
        let (sh, scores) = ctx.input::<f32>(0, op.inputs[0].name).map_err(&e)?;
        let (_, kv) = ctx.input::<i64>(1, op.inputs[1].name).map_err(&e)?;
        let [rows, n] = sh[..] else {
            return Err(e(format!(
                "input `{}` has shape {sh:?}, expected [B, N]",
                op.inputs[0].name
            )));
        };
        let &k = kv
            .first()
            .ok_or_else(|| e(format!("input `{}` is empty", op.inputs[1].name)))?;
        // Checked (k within 0..=N) before any output is allocated.
        let (vals, idx) = dynamic_topk(scores, rows, n, k).map_err(|e| e.to_string())?;
        // k is within 0..=N here (checked by the kernel).
        let shape = [rows, k as usize];
        ctx.output::<f32>(0, &shape)
            .map_err(&e)?
            .copy_from_slice(&vals);
        ctx.output::<i64>(1, &shape)
            .map_err(&e)?
            .copy_from_slice(&idx);
        Ok(())
    }
}
