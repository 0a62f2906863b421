//! Two-stage query selection and `transformer.decoder` (DINO style): proposals from the memory,
//! the top-scoring ones as initial reference boxes, then six layers of self-attention,
//! deformable cross-attention over the memory, FFN and iterative box refinement.

use super::layers::{
    deformable_attention, ffn, interleave_sin_cos, inverse_sigmoid, layer_norm, linear, mlp,
    self_attention, sine_frequencies, DeformGeometry, Reference,
};
use super::levels::{project_tokens, Levels};
use super::Capture;
use crate::backend::{Backend, Result};
use crate::config::FocusDetrConfig;
use crate::schema::FocusDetrKeys;

/// Output of the two-stage head.
pub struct Proposals<B: Backend> {
    /// Selected token indices [B, Q] in score order.
    pub indices: B::Tensor,
    /// Initial reference boxes (cx, cy, w, h), sigmoid space, [B, Q, 4].
    pub reference: B::Tensor,
}

/// Scores every memory token with the two-stage heads and keeps the top `num_queries`.
/// `override_indices` replaces the selection (a debug aid for comparing decoders exactly).
pub fn two_stage<B: Backend>(
    b: &B,
    cfg: &FocusDetrConfig,
    keys: &FocusDetrKeys,
    levels: &Levels<B>,
    memory: &B::Tensor,
    override_indices: Option<&B::Tensor>,
    cap: &mut Capture<B>,
) -> Result<Proposals<B>> {
    b.scope("transformer.two_stage");
    let out = project_tokens(b, cfg, &keys.transformer, levels, memory)?;
    let class = linear(b, &out, keys.encoder_class_head())?;
    let best = b.max(&class, 2)?;
    let (scores, indices) = b.topk(&best, &b.dim_const(cfg.heads.num_queries as i64))?;
    cap.put("topk_proposal_scores", &scores);
    // The override replaces the selection where its entries are ≥ 0 (−1 keeps the model's own).
    let indices = match override_indices {
        Some(i) => b.select_nonneg(i, &indices)?,
        None => indices,
    };
    // The box head on the selected rows only: the official code runs it on all N tokens and
    // then keeps these rows; each row's result is the same (≈ 2.6 GMACs less at 800×1184).
    // (The proposals are one [1, N, 4] grid for the whole batch.)
    let proposals = b.expand(
        &levels.proposals_logit,
        &[Some(b.dim(memory, 0)?), None, None],
    )?;
    let coord = b.add(
        &mlp(b, &b.gather_rows(&out, &indices)?, keys.encoder_box_head())?,
        &b.gather_rows(&proposals, &indices)?,
    )?; // [B, Q, 4]
    let reference = b.sigmoid(&coord)?;
    b.end_scope();
    Ok(Proposals { indices, reference })
}

/// Sine embedding of reference boxes [B, Q, 4] → [B, Q, 4·F], coordinates in the order
/// (cy, cx, w, h), temperature from the config (10000).
fn box_sine<B: Backend>(b: &B, cfg: &FocusDetrConfig, r: &B::Tensor) -> Result<B::Tensor> {
    let f = cfg.transformer.embed_dim / 2;
    let dim_t = sine_frequencies(b, f, cfg.decoder.box_sine_temperature)?;
    let coord = |i: i64| -> Result<B::Tensor> {
        let c = b.slice(r, 2, &b.dim_const(i), Some(&b.dim_const(i + 1)))?; // [B, Q, 1]
        let a = b.div(&b.mul_scalar(&c, 2.0 * std::f64::consts::PI)?, &dim_t)?;
        interleave_sin_cos(b, &a, 2)
    };
    b.concat(&[coord(1)?, coord(0)?, coord(2)?, coord(3)?], 2)
}

/// Decoder output.
pub struct Decoded<B: Backend> {
    /// Final class logits [B, Q, classes].
    pub logits: B::Tensor,
    /// Final boxes (cx, cy, w, h), normalised, [B, Q, 4].
    pub boxes: B::Tensor,
}

/// Runs the decoder from the initial reference boxes.
pub fn forward<B: Backend>(
    b: &B,
    cfg: &FocusDetrConfig,
    keys: &FocusDetrKeys,
    levels: &Levels<B>,
    memory: &B::Tensor,
    init_reference: &B::Tensor,
    cap: &mut Capture<B>,
) -> Result<Decoded<B>> {
    let t = &cfg.transformer;
    let eps = t.layer_norm_eps;
    let ise = cfg.decoder.inverse_sigmoid_eps;
    let tr = &keys.transformer;
    let bs = b.dim(memory, 0)?;
    let nl = b.dim_const(levels.shapes.len() as i64);
    let geom = DeformGeometry {
        shapes: &levels.shapes,
        num_heads: t.num_heads,
        num_points: t.num_points,
    };
    let mut out = b.expand(
        &b.unsqueeze(&b.param(&tr.tgt_embed)?, 0)?,
        &[Some(bs), None, None],
    )?;
    let mut reference = init_reference.clone();
    let mut refs = Vec::new();
    let mut last = None;
    let n_layers = tr.decoder_layers.len();
    for (l, layer) in tr.decoder_layers.iter().enumerate() {
        b.scope(&format!("transformer.decoder.layers.{l}"));
        let qpos = mlp(b, &box_sine(b, cfg, &reference)?, &tr.ref_point_head)?;
        out = layer_norm(
            b,
            &self_attention(b, &out, &qpos, &layer.self_attn, t.num_heads)?,
            &layer.norms[0],
            eps,
        )?;
        let r4 = b.expand(
            &b.unsqueeze(&reference, 2)?,
            &[None, None, Some(nl.clone()), None],
        )?;
        out = deformable_attention(
            b,
            &out,
            &qpos,
            memory,
            Reference::Boxes(&r4),
            &geom,
            &layer.cross_attn,
        )?;
        out = layer_norm(b, &out, &layer.norms[1], eps)?;
        out = layer_norm(b, &ffn(b, &out, &layer.ffn)?, &layer.norms[2], eps)?;
        // Refinement uses the un-normalised output; the heads use the normalised one.
        let inv = inverse_sigmoid(b, &reference, ise)?;
        let next = b.sigmoid(&b.add(&mlp(b, &out, &keys.bbox_embed[l])?, &inv)?)?;
        if l + 1 == n_layers {
            let h = layer_norm(b, &out, &tr.decoder_norm, eps)?;
            let logits = linear(b, &h, &keys.class_embed[l])?;
            let boxes = b.sigmoid(&b.add(&mlp(b, &h, &keys.bbox_embed[l])?, &inv)?)?;
            last = Some(Decoded { logits, boxes });
        }
        refs.push(next.clone());
        reference = next;
        b.end_scope();
    }
    cap.put_with("dec_references", || b.stack(&refs, 0))?;
    last.ok_or_else(|| crate::backend::ModelError::Input("the config has no decoder layers".into()))
}
