//! `transformer.encoder`: the Focus-DETR encoder. Each layer updates only its selected tokens:
//! the 300 most object-like of them attend to each other (dual attention, `attentions.0` +
//! `norm2`), then all selected tokens run deformable attention over the original neck features
//! (`attentions.1`), LayerNorm, FFN, LayerNorm, and are scattered back into the memory.

use super::layers::{
    deformable_attention, ffn, layer_norm, linear, self_attention, DeformGeometry, Reference,
};
use super::levels::Levels;
use super::Capture;
use crate::backend::{Backend, Result};
use crate::config::FocusDetrConfig;
use crate::schema::FocusDetrKeys;

/// The encoder's selections.
pub struct Selections<'a, B: Backend> {
    /// Layer l's foreground tokens [B, k_l] (token indices).
    pub tokens: &'a [B::Tensor],
    /// Layer l's forced object tokens [B, object_tokens] (token indices inside `tokens[l]`;
    /// rows of −1 keep the layer's own choice), where forced.
    pub forced_objects: &'a [Option<&'a B::Tensor>],
}

/// Runs the encoder over the per-layer selections.
pub fn forward<B: Backend>(
    b: &B,
    cfg: &FocusDetrConfig,
    keys: &FocusDetrKeys,
    levels: &Levels<B>,
    fg: &B::Tensor,
    sel: &Selections<'_, B>,
    cap: &mut Capture<B>,
) -> Result<B::Tensor> {
    let t = &cfg.transformer;
    let eps = t.layer_norm_eps;
    let bs = b.dim(&levels.feat, 0)?;
    let n = levels.num_tokens().clone();
    let nl = levels.shapes.len();
    // Reference points [B, N, L·2]: each token's centre, repeated for every level.
    let refs = b.expand(
        &b.unsqueeze(&levels.centers, 2)?,
        &[Some(bs.clone()), None, Some(b.dim_const(nl as i64)), None],
    )?;
    let refs = b.reshape(
        &refs,
        &[Some(bs.clone()), Some(n), Some(b.dim_const(2 * nl as i64))],
    )?;
    let geom = DeformGeometry {
        shapes: &levels.shapes,
        num_heads: t.num_heads,
        num_points: t.num_points,
    };
    let head = keys.encoder_class_head();
    let object_tokens = b.dim_const(cfg.focus.object_tokens as i64);
    let mut memory = levels.feat.clone();
    for (l, (layer, idx)) in keys
        .transformer
        .encoder_layers
        .iter()
        .zip(sel.tokens)
        .enumerate()
    {
        b.scope(&format!("transformer.encoder.layers.{l}"));
        let q = b.gather_rows(&memory, idx)?;
        let p = b.gather_rows(&levels.pos, idx)?;
        let f = b.gather(fg, 1, idx)?;
        let k = b.dim(idx, 1)?;
        let r = b.gather_rows(&refs, idx)?;
        let r = b.reshape(
            &r,
            &[
                Some(bs.clone()),
                Some(k),
                Some(b.dim_const(nl as i64)),
                Some(b.dim_const(2)),
            ],
        )?;

        // Multi-category score: max raw class logit × raw foreground logit; top 300.
        let score = b.mul(&b.max(&linear(b, &q, head)?, 2)?, &f)?;
        let (_, sub) = b.topk(&score, &object_tokens)?;
        // Forced object tokens are token indices: their positions in this layer's selection.
        let sub = match sel.forced_objects.get(l).copied().flatten() {
            Some(f) => b.select_nonneg(&b.index_positions(idx, f)?, &sub)?,
            None => sub,
        };
        let obj = b.gather_rows(&q, &sub)?;
        let obj_pos = b.gather_rows(&p, &sub)?;
        let obj = self_attention(b, &obj, &obj_pos, &layer.object_attn, t.num_heads)?;
        let obj = layer_norm(b, &obj, &layer.object_norm, eps)?;
        let q = b.scatter_rows(&q, &sub, &obj)?;

        let q = deformable_attention(
            b,
            &q,
            &p,
            &levels.feat,
            Reference::Points(&r),
            &geom,
            &layer.deform_attn,
        )?;
        let q = layer_norm(b, &q, &layer.norms[0], eps)?;
        let q = layer_norm(b, &ffn(b, &q, &layer.ffn)?, &layer.norms[1], eps)?;
        cap.put(format!("enc_oesm_score_{l}"), &score);
        cap.put(format!("enc_oesm_subidx_{l}"), &sub);
        cap.put_with(super::selections::object_tokens(l), || {
            b.gather(idx, 1, &sub)
        })?;
        cap.put(format!("enc_layer_out_{l}"), &q);
        memory = b.scatter_rows(&memory, idx, &q)?;
        b.end_scope();
    }
    Ok(memory)
}
