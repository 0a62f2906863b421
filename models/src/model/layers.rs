//! Building blocks shared by encoder and decoder: linear layers and MLPs by their checkpoint
//! keys, multi-head attention as `torch.nn.MultiheadAttention` computes it, deformable attention
//! as detrex's `MultiScaleDeformableAttention` computes it, and the FFN.

use crate::backend::{Backend, Result};
use crate::schema::{Ffn, Linear, Mlp, MsDeformAttn, MultiheadAttention, Norm};

/// `nn.Linear` by its keys.
pub fn linear<B: Backend>(b: &B, x: &B::Tensor, l: &Linear) -> Result<B::Tensor> {
    b.linear(x, &b.param(&l.weight)?, Some(&b.param(&l.bias)?))
}

/// LayerNorm over the last axis by its keys.
pub fn layer_norm<B: Backend>(b: &B, x: &B::Tensor, n: &Norm, eps: f64) -> Result<B::Tensor> {
    b.layer_norm(x, &b.param(&n.weight)?, &b.param(&n.bias)?, eps)
}

/// detrex MLP: ReLU between layers, none after the last.
pub fn mlp<B: Backend>(b: &B, x: &B::Tensor, m: &Mlp) -> Result<B::Tensor> {
    let mut x = x.clone();
    for (i, l) in m.layers.iter().enumerate() {
        x = linear(b, &x, l)?;
        if i + 1 < m.layers.len() {
            x = b.relu(&x)?;
        }
    }
    Ok(x)
}

/// detrex FFN with identity: `x + fc2(relu(fc1(x)))`.
pub fn ffn<B: Backend>(b: &B, x: &B::Tensor, f: &Ffn) -> Result<B::Tensor> {
    let h = b.relu(&linear(b, x, &f.fc1)?)?;
    b.add(x, &linear(b, &h, &f.fc2)?)
}

/// detrex `MultiheadAttention` wrapper around `nn.MultiheadAttention` (batch-first, no masks):
/// query = key = `x + pos`, value = `x`, returns `x + attention`. Q, K and V are projected
/// separately (rows 0–D, D–2D, 2D–3D of `in_proj_weight`), scores are `(q·√(1/d))·kᵀ`.
pub fn self_attention<B: Backend>(
    b: &B,
    x: &B::Tensor,
    pos: &B::Tensor,
    a: &MultiheadAttention,
    num_heads: usize,
) -> Result<B::Tensor> {
    let e = a.in_proj_weight.shape[1];
    let hd = e / num_heads;
    let w = b.param(&a.in_proj_weight)?;
    let bias = b.param(&a.in_proj_bias)?;
    let part = |t: &B::Tensor, i: usize| {
        let (s, e0) = (
            b.dim_const((i * e) as i64),
            b.dim_const(((i + 1) * e) as i64),
        );
        b.slice(t, 0, &s, Some(&e0))
    };
    let qk_in = b.add(x, pos)?;
    // [B, L, E] → [B·M, L, hd]
    let heads = |t: &B::Tensor| -> Result<B::Tensor> {
        let bs = b.dim(t, 0)?;
        let l = b.dim(t, 1)?;
        let t = b.reshape(
            t,
            &[
                Some(bs.clone()),
                Some(l.clone()),
                Some(b.dim_const(num_heads as i64)),
                Some(b.dim_const(hd as i64)),
            ],
        )?;
        let t = b.permute(&t, &[0, 2, 1, 3])?;
        b.reshape(&t, &[None, Some(l), Some(b.dim_const(hd as i64))])
    };
    let q = heads(&b.linear(&qk_in, &part(&w, 0)?, Some(&part(&bias, 0)?))?)?;
    // Key input is recomputed like the wrapper does (`key + key_pos`): same values.
    let k = heads(&b.linear(&qk_in, &part(&w, 1)?, Some(&part(&bias, 1)?))?)?;
    let v = heads(&b.linear(x, &part(&w, 2)?, Some(&part(&bias, 2)?))?)?;
    let q = b.mul_scalar(&q, (1.0 / hd as f64).sqrt())?;
    let kt = b.permute(&k, &[0, 2, 1])?;
    let attn = b.softmax(&b.bmm(&q, &kt)?, 2)?;
    let o = b.bmm(&attn, &v)?; // [B·M, L, hd]
    let bs = b.dim(x, 0)?;
    let l = b.dim(x, 1)?;
    let o = b.reshape(
        &o,
        &[
            Some(bs.clone()),
            Some(b.dim_const(num_heads as i64)),
            Some(l.clone()),
            Some(b.dim_const(hd as i64)),
        ],
    )?;
    let o = b.permute(&o, &[0, 2, 1, 3])?;
    let o = b.reshape(&o, &[Some(bs), Some(l), Some(b.dim_const(e as i64))])?;
    b.add(x, &linear(b, &o, &a.out_proj)?)
}

/// Reference points of deformable attention.
pub enum Reference<'a, T> {
    /// Points (x, y) per level: [B, Q, L, 2]; offsets are in level pixels.
    Points(&'a T),
    /// Boxes (cx, cy, w, h) per level: [B, Q, L, 4]; offsets scale with half the box size.
    Boxes(&'a T),
}

/// Geometry of deformable attention.
pub struct DeformGeometry<'a, D> {
    /// (H, W) per level.
    pub shapes: &'a [(D, D)],
    /// Heads.
    pub num_heads: usize,
    /// Sampling points per head and level.
    pub num_points: usize,
}

/// detrex `MultiScaleDeformableAttention`: returns `x + output_proj(msda(...))`, where the query is
/// `x + pos` and the values are `value_proj(value)`.
pub fn deformable_attention<B: Backend>(
    b: &B,
    x: &B::Tensor,
    pos: &B::Tensor,
    value: &B::Tensor,
    reference: Reference<'_, B::Tensor>,
    g: &DeformGeometry<'_, B::Dim>,
    m: &MsDeformAttn,
) -> Result<B::Tensor> {
    let d = |v: usize| Some(b.dim_const(v as i64));
    let (nh, nl, np) = (g.num_heads, g.shapes.len(), g.num_points);
    let query = b.add(x, pos)?;
    let bs = b.dim(x, 0)?;
    let nq = b.dim(x, 1)?;
    let nv = b.dim(value, 1)?;
    let e = m.value_proj.weight.shape[0];
    let v = linear(b, value, &m.value_proj)?;
    let v = b.reshape(&v, &[Some(bs.clone()), Some(nv), d(nh), d(e / nh)])?;
    let off = linear(b, &query, &m.sampling_offsets)?; // [B, Q, M·L·P·2]
    let aw = linear(b, &query, &m.attention_weights)?;
    let aw = b.reshape(
        &aw,
        &[Some(bs.clone()), Some(nq.clone()), d(nh), d(nl * np)],
    )?;
    let aw = b.softmax(&aw, 3)?;
    let aw = b.reshape(
        &aw,
        &[Some(bs.clone()), Some(nq.clone()), d(nh), d(nl), d(np)],
    )?;
    // The location arithmetic runs on rows of L·P·2 numbers: offsets as [B·Q, M, L·P·2] and
    // per-level terms repeated over the points, [B·Q, 1, L·P·2] or [1, L·P·2]. These are the
    // same element-wise operations as on the 6-d shapes, but broadcasts of rank ≤ 3 (tract ran
    // the 6-d ones at ~50 M elements/s: 0.13 s per run at 480×640).
    let row = d(nl * np * 2);
    let off = b.reshape(&off, &[None, d(nh), row.clone()])?; // [B·Q, M, L·P·2]

    // [B, Q, L, 2] → [B·Q, 1, L·P·2]
    let per_point = |t: &B::Tensor| -> Result<B::Tensor> {
        let t = b.expand(&b.unsqueeze(t, 3)?, &[None, None, None, d(np), None])?;
        b.reshape(&t, &[None, d(1), row.clone()])
    };
    let loc = match reference {
        Reference::Points(r) => {
            // Offsets divided by (W_l, H_l) of each level.
            let norm: Vec<B::Tensor> = g
                .shapes
                .iter()
                .map(|(h, w)| b.stack(&[b.dim_to_f32(w)?, b.dim_to_f32(h)?], 0))
                .collect::<Result<_>>()?;
            let norm = b.stack(&norm, 0)?; // [L, 2]
            let norm = b.expand(&b.unsqueeze(&norm, 1)?, &[None, d(np), None])?;
            let norm = b.reshape(&norm, &[d(1), row.clone()])?; // [1, L·P·2]
            b.add(&per_point(r)?, &b.div(&off, &norm)?)?
        }
        Reference::Boxes(r) => {
            let two = Some(b.dim_const(2));
            let xy = b.slice(r, 3, &b.dim_const(0), two.as_ref())?;
            let wh = b.slice(r, 3, &b.dim_const(2), None)?;
            let scaled = b.mul_scalar(
                &b.mul(&b.div_scalar(&off, np as f64)?, &per_point(&wh)?)?,
                0.5,
            )?;
            b.add(&per_point(&xy)?, &scaled)?
        }
    };
    let loc = b.reshape(&loc, &[Some(bs), Some(nq), d(nh), d(nl), d(np), d(2)])?;
    let out = b.ms_deform_attn(&v, g.shapes, &loc, &aw)?;
    b.add(x, &linear(b, &out, &m.output_proj)?)
}

/// detrex `inverse_sigmoid` with eps: log(max(x, eps) / max(1 − x, eps)) after clamping to [0, 1].
pub fn inverse_sigmoid<B: Backend>(b: &B, x: &B::Tensor, eps: f64) -> Result<B::Tensor> {
    let x = b.clamp(x, Some(0.0), Some(1.0))?;
    let x1 = b.clamp(&x, Some(eps), None)?;
    let x2 = b.clamp(&b.rsub_scalar(&x, 1.0)?, Some(eps), None)?;
    b.log(&b.div(&x1, &x2)?)
}

/// Interleaved sine embedding of `a` [..., n] over its last axis: element j is sin(a_j) for even j
/// and cos(a_j) for odd j (the layout of detrex's sine embeddings).
pub fn interleave_sin_cos<B: Backend>(b: &B, a: &B::Tensor, last: usize) -> Result<B::Tensor> {
    let s = b.sin(&b.slice_step(a, last, 0, 2)?)?;
    let c = b.cos(&b.slice_step(a, last, 1, 2)?)?;
    let st = b.stack(&[s, c], last + 1)?;
    // Merge the last two axes.
    let mut shape: Vec<Option<B::Dim>> = (0..last)
        .map(|i| b.dim(a, i).map(Some))
        .collect::<Result<_>>()?;
    shape.push(None);
    b.reshape(&st, &shape)
}

/// `temperature ^ (2·⌊j/2⌋ / n)` for j < n, computed in float32 like detrex.
pub fn sine_frequencies<B: Backend>(b: &B, n: usize, temperature: f64) -> Result<B::Tensor> {
    let exps: Vec<f32> = (0..n).map(|i| (2 * (i / 2)) as f32).collect();
    let e = b.const_f32(&exps, &[n])?;
    b.scalar_pow(temperature, &b.div_scalar(&e, n as f64)?)
}
