//! Our custom ops (`ai.focus_detr`, declared in `focus_ops::decl`) as tract ops: parsing rules
//! (an `Expansion`) that wire a typed op whose `eval` is the `focus_ops` kernel. tract keys ops by
//! op_type only, so the declarations' names are our registration keys.
//!
//! Sizes computed in the graph (k, the level table) reach tract as TDim or int64 tensors; both are
//! read through `cast_to::<i64>()`. Our runtime specialises the model to concrete input shapes, so
//! k is a constant when the typed op declares its outputs; a runtime symbol covers the rest.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;
use tract_onnx::Onnx;

use focus_ops::decl::{DYNAMIC_TOPK, MS_DEFORM_ATTN};
use focus_ops::msda::{ms_deform_attn, MsdaDims};
use focus_ops::topk::dynamic_topk;

/// Registers MsDeformAttn and DynamicTopK with a tract ONNX parser.
pub fn register(onnx: &mut Onnx) {
    onnx.op_register.insert(MS_DEFORM_ATTN.op_type, parse_msda);
    onnx.op_register.insert(DYNAMIC_TOPK.op_type, parse_topk);
}

fn parse_msda(
    _ctx: &ParsingContext,
    _node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    Ok((expand(MsDeformAttnHir), vec![]))
}

fn parse_topk(
    _ctx: &ParsingContext,
    _node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    Ok((expand(DynamicTopKHir), vec![]))
}

fn op_err(e: focus_ops::OpError) -> TractError {
    format_err!("{e}")
}

/// Parsing-time rules of MsDeformAttn.
#[derive(Debug, Clone)]
struct MsDeformAttnHir;

impl Expansion for MsDeformAttnHir {
    fn name(&self) -> StaticName {
        MS_DEFORM_ATTN.op_type.into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, MS_DEFORM_ATTN.inputs.len())?;
        check_output_arity(outputs, MS_DEFORM_ATTN.outputs.len())?;
        s.equals(&inputs[0].datum_type, f32::datum_type())?;
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        // [N, S, M, D], [N, Lq, M, L, P, 2], [N, Lq, M, L, P] → [N, Lq, M·D]
        s.equals(&inputs[0].rank, 4)?;
        s.equals(&inputs[3].rank, 6)?;
        s.equals(&inputs[4].rank, 5)?;
        s.equals(&outputs[0].rank, 3)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[0].shape[1], &inputs[3].shape[1])?;
        s.given_2(&inputs[0].shape[2], &inputs[0].shape[3], move |s, m, d| {
            s.equals(&outputs[0].shape[2], m * d)
        })
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, MsDeformAttnOp, inputs)
    }
}

/// The typed MsDeformAttn op.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MsDeformAttnOp;

impl Op for MsDeformAttnOp {
    fn name(&self) -> StaticName {
        MS_DEFORM_ATTN.op_type.into()
    }
    op_as_typed_op!();
}

impl EvalOp for MsDeformAttnOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (value, shapes, starts, loc, weights) = args_5!(inputs);
        let shapes = shapes.cast_to::<i64>()?;
        let starts = starts.cast_to::<i64>()?;
        let d = MsdaDims::from_shapes(
            value.shape(),
            shapes.shape(),
            starts.shape(),
            loc.shape(),
            weights.shape(),
        )
        .map_err(op_err)?;
        let out = ms_deform_attn(
            value.try_as_plain_ram()?.as_slice::<f32>()?,
            shapes.try_as_plain_ram()?.as_slice::<i64>()?,
            starts.try_as_plain_ram()?.as_slice::<i64>()?,
            loc.try_as_plain_ram()?.as_slice::<f32>()?,
            weights.try_as_plain_ram()?.as_slice::<f32>()?,
            d,
        )
        .map_err(op_err)?;
        Ok(tvec!(
            Tensor::from_shape(&[d.n, d.q, d.m * d.d], &out)?.into_tvalue()
        ))
    }
}

impl TypedOp for MsDeformAttnOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == MS_DEFORM_ATTN.inputs.len());
        ensure!(inputs[0].rank() == 4 && inputs[3].rank() == 6 && inputs[4].rank() == 5);
        let v = &inputs[0].shape;
        Ok(tvec!(f32::fact([
            v[0].clone(),
            inputs[3].shape[1].clone(),
            v[2].clone() * &v[3],
        ])))
    }
    as_op!();
}

/// Parsing-time rules of DynamicTopK.
#[derive(Debug, Clone)]
struct DynamicTopKHir;

impl Expansion for DynamicTopKHir {
    fn name(&self) -> StaticName {
        DYNAMIC_TOPK.op_type.into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(DYNAMIC_TOPK.outputs.len())
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, DYNAMIC_TOPK.inputs.len())?;
        check_output_arity(outputs, DYNAMIC_TOPK.outputs.len())?;
        s.equals(&inputs[0].datum_type, f32::datum_type())?;
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&outputs[1].datum_type, i64::datum_type())?;
        s.equals(&inputs[0].rank, 2)?;
        s.equals(&outputs[0].rank, 2)?;
        s.equals(&outputs[1].rank, 2)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[1].shape[0], &inputs[0].shape[0])?;
        s.given(&inputs[1].value, move |s, k| {
            let k = k.cast_to_scalar::<i64>()?;
            s.equals(&outputs[0].shape[1], TDim::from(k))?;
            s.equals(&outputs[1].shape[1], TDim::from(k))
        })
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let fallback_k: TDim = model.symbols.new_with_prefix("k").into();
        model.wire_node(prefix, DynamicTopKOp { fallback_k }, inputs)
    }
}

/// The typed DynamicTopK op; `fallback_k` names k when it is not a constant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicTopKOp {
    fallback_k: TDim,
}

impl Op for DynamicTopKOp {
    fn name(&self) -> StaticName {
        DYNAMIC_TOPK.op_type.into()
    }
    fn mints_runtime_symbols(&self) -> bool {
        true
    }
    op_as_typed_op!();
}

impl EvalOp for DynamicTopKOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (scores, k) = args_2!(inputs);
        let k = k.cast_to_scalar::<i64>()?;
        let &[rows, n] = scores.shape() else {
            bail!(
                "DynamicTopK: input `scores` has shape {:?}, expected [B, N]",
                scores.shape()
            );
        };
        let (vals, idx) = dynamic_topk(scores.try_as_plain_ram()?.as_slice::<f32>()?, rows, n, k)
            .map_err(op_err)?;
        let k = k as usize;
        Ok(tvec!(
            Tensor::from_shape(&[rows, k], &vals)?.into_tvalue(),
            Tensor::from_shape(&[rows, k], &idx)?.into_tvalue()
        ))
    }
}

impl TypedOp for DynamicTopKOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].rank() == 2 && inputs[0].datum_type == f32::datum_type());
        let k: TDim = match &inputs[1].konst {
            Some(k) => TDim::from(k.cast_to_scalar::<i64>()?),
            None => self.fallback_k.clone(),
        };
        let b = inputs[0].shape[0].clone();
        Ok(tvec!(f32::fact([b.clone(), k.clone()]), i64::fact([b, k])))
    }

    fn set_symbols(
        &self,
        _source: &TypedModel,
        node: &TypedNode,
        target: &mut TypedModel,
        mapping: &HashMap<OutletId, OutletId>,
        subs: &HashMap<Symbol, TDim>,
    ) -> TractResult<TVec<OutletId>> {
        let op = DynamicTopKOp {
            fallback_k: self.fallback_k.substitute_all(subs)?,
        };
        let inputs = node.inputs.iter().map(|i| mapping[i]).collect::<TVec<_>>();
        target.wire_node(&node.name, op, &inputs)
    }
    as_op!();
}
