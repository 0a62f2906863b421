//! ONNX models of a single special op, in any of its forms: the op-level tests run every form on
//! every runtime with them, and the benchmarks time the forms against each other.

use focus_models::backend::Backend;

use crate::export::ExportError;
use crate::graph::{DeclDim, Elem};
use crate::tracer::{Dim, OnnxTracer, OpForms, TV};

/// Named dynamic dims of the inputs.
fn named(names: &[&str], fixed: &[Option<i64>]) -> Vec<DeclDim> {
    names
        .iter()
        .zip(fixed)
        .map(|(n, f)| match f {
            Some(v) => DeclDim::Fixed(*v),
            None => DeclDim::Named((*n).to_string()),
        })
        .collect()
}

fn input(t: &OnnxTracer<'_>, name: &str, elem: Elem, names: &[&str], fixed: &[Option<i64>]) -> TV {
    t.g.borrow_mut().input(name, elem, &named(names, fixed));
    t.input(
        name,
        elem,
        fixed.iter().map(|f| f.map(Dim::Const)).collect(),
    )
}

fn finish(t: OnnxTracer<'_>, outputs: &[(&str, &TV)], opset: i64) -> Result<Vec<u8>, ExportError> {
    let mut g = t.g.into_inner();
    for (n, v) in outputs {
        let decl: Vec<DeclDim> = v
            .dims
            .iter()
            .map(|d| match d {
                Some(Dim::Const(c)) => DeclDim::Fixed(*c),
                _ => DeclDim::Unknown,
            })
            .collect();
        g.output(n, &v.name, v.elem, &decl);
    }
    let m = g.finish("focus_detr_op", opset, &[]);
    crate::graph::to_bytes(&m).map_err(|e| ExportError::Serialize(e.to_string()))
}

/// MsDeformAttn over fixed levels `levels` (H, W) with `heads` × `channels` values and `points`
/// points per level: inputs `value` [N, S, M, D], `sampling_locations` [N, Lq, M, L, P, 2],
/// `attention_weights` [N, Lq, M, L, P] (N and Lq dynamic), output `output` [N, Lq, M·D].
pub fn ms_deform_attn_model(
    levels: &[(usize, usize)],
    heads: usize,
    channels: usize,
    points: usize,
    forms: OpForms,
    opset: i64,
) -> Result<Vec<u8>, ExportError> {
    let t = OnnxTracer::new(None, opset, forms);
    let s: usize = levels.iter().map(|(h, w)| h * w).sum();
    let (m, d, l, p) = (
        heads as i64,
        channels as i64,
        levels.len() as i64,
        points as i64,
    );
    let value = input(
        &t,
        "value",
        Elem::F32,
        &["N", "S", "M", "D"],
        &[None, Some(s as i64), Some(m), Some(d)],
    );
    let loc = input(
        &t,
        "sampling_locations",
        Elem::F32,
        &["N", "Lq", "M", "L", "P", "2"],
        &[None, None, Some(m), Some(l), Some(p), Some(2)],
    );
    let aw = input(
        &t,
        "attention_weights",
        Elem::F32,
        &["N", "Lq", "M", "L", "P"],
        &[None, None, Some(m), Some(l), Some(p)],
    );
    let shapes: Vec<(Dim, Dim)> = levels
        .iter()
        .map(|&(h, w)| (Dim::Const(h as i64), Dim::Const(w as i64)))
        .collect();
    t.scope("ms_deform_attn");
    let out = t.ms_deform_attn(&value, &shapes, &loc, &aw)?;
    t.end_scope();
    finish(t, &[("output", &out)], opset)
}

/// Top-k of `scores` [B, N] with k the int64 [1] input `k`: outputs `indices` [B, k] (and, for
/// `set_only = false`, `values` [B, k]). `set_only` asks for a selection whose order does not
/// matter (the threshold form applies only there).
pub fn topk_model(forms: OpForms, set_only: bool, opset: i64) -> Result<Vec<u8>, ExportError> {
    let t = OnnxTracer::new(None, opset, forms);
    let scores = input(&t, "scores", Elem::F32, &["B", "N"], &[None, None]);
    t.g.borrow_mut().input("k", Elem::I64, &[DeclDim::Fixed(1)]);
    let k = Dim::Dyn("k".into());
    t.scope("topk");
    if set_only {
        let idx = t.topk_set(&scores, &k)?;
        t.end_scope();
        finish(t, &[("indices", &idx)], opset)
    } else {
        let (v, i) = t.topk(&scores, &k)?;
        t.end_scope();
        finish(t, &[("values", &v), ("indices", &i)], opset)
    }
}
