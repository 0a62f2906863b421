//! Multi-level token geometry: flattening the neck levels into tokens, the sine position
//! embedding plus level embedding, token centres (encoder reference points) and the two-stage
//! proposal grid with its validity mask.

use super::layers::{interleave_sin_cos, sine_frequencies};
use crate::backend::{Backend, Result};
use crate::config::FocusDetrConfig;
use crate::schema::Transformer;

/// Everything the transformer needs to know about the token layout.
pub struct Levels<B: Backend> {
    /// (H_l, W_l) per level.
    pub shapes: Vec<(B::Dim, B::Dim)>,
    /// First token index of each level, and the total N at the end.
    pub starts: Vec<B::Dim>,
    /// Flattened neck features [B, N, D].
    pub feat: B::Tensor,
    /// Sine position embedding + level embedding [B, N, D].
    pub pos: B::Tensor,
    /// Token centres (x, y) normalised to [0, 1], [1, N, 2].
    pub centers: B::Tensor,
    /// Proposals (cx, cy, w, h) in logit space, +∞ for invalid tokens, [1, N, 4].
    pub proposals_logit: B::Tensor,
    /// True for tokens whose proposal is strictly inside the valid range, [1, N, 1].
    pub valid: B::Tensor,
}

impl<B: Backend> Levels<B> {
    /// Number of tokens N.
    pub fn num_tokens(&self) -> &B::Dim {
        &self.starts[self.starts.len() - 1]
    }
}

/// Builds the token layout from the neck outputs.
pub fn build<B: Backend>(
    b: &B,
    cfg: &FocusDetrConfig,
    t: &Transformer,
    neck: &[B::Tensor],
) -> Result<Levels<B>> {
    let pe = &cfg.position_embedding;
    let fc = &cfg.focus;
    let d = |v: i64| Some(b.dim_const(v));
    let bs = b.dim(&neck[0], 0)?;
    let ch = b.dim(&neck[0], 1)?;
    let dim_t = sine_frequencies(b, pe.num_pos_feats, pe.temperature)?; // [F]
    let level_embeds = b.param(&t.level_embeds)?;
    let mut shapes = Vec::new();
    let mut starts = vec![b.dim_const(0)];
    let (mut feats, mut poss, mut centers, mut props) = (vec![], vec![], vec![], vec![]);
    for (l, x) in neck.iter().enumerate() {
        let h = b.dim(x, 2)?;
        let w = b.dim(x, 3)?;
        let hw = b.dim_mul(&h, &w)?;
        // [B, D, H, W] → [B, HW, D]
        let f = b.reshape(x, &[Some(bs.clone()), Some(ch.clone()), Some(hw.clone())])?;
        feats.push(b.permute(&f, &[0, 2, 1])?);

        // Sine embedding of the 1-based row/column, normalised to (v + offset)/(n + eps)·scale.
        let axis_embed = |n: &B::Dim| -> Result<B::Tensor> {
            let v = b.add_scalar(&b.arange_f32(n)?, 1.0)?;
            let v = b.add_scalar(&v, pe.offset)?;
            let v = b.div(&v, &b.add_scalar(&b.dim_to_f32(n)?, pe.eps)?)?;
            let v = b.mul_scalar(&v, pe.scale)?;
            let a = b.div(&b.unsqueeze(&v, 1)?, &b.unsqueeze(&dim_t, 0)?)?; // [n, F]
            interleave_sin_cos(b, &a, 1)
        };
        let f2 = Some(b.dim_const(pe.num_pos_feats as i64));
        let py = b.reshape(&axis_embed(&h)?, &[Some(h.clone()), d(1), f2.clone()])?;
        let px = b.reshape(&axis_embed(&w)?, &[d(1), Some(w.clone()), f2.clone()])?;
        let py = b.expand(&py, &[None, Some(w.clone()), None])?;
        let px = b.expand(&px, &[Some(h.clone()), None, None])?;
        let pos = b.concat(&[py, px], 2)?; // [H, W, D], y half first
        let pos = b.reshape(&pos, &[d(1), Some(hw.clone()), Some(ch.clone())])?;
        let lvl = b.slice(
            &level_embeds,
            0,
            &b.dim_const(l as i64),
            Some(&b.dim_const(l as i64 + 1)),
        )?;
        let pos = b.add(&pos, &b.unsqueeze(&lvl, 0)?)?;
        poss.push(b.expand(&pos, &[Some(bs.clone()), None, None])?);

        // Token centres ((j + 0.5)/W, (i + 0.5)/H) and proposal sizes base·2^l.
        let cx = b.div(&b.add_scalar(&b.arange_f32(&w)?, 0.5)?, &b.dim_to_f32(&w)?)?;
        let cy = b.div(&b.add_scalar(&b.arange_f32(&h)?, 0.5)?, &b.dim_to_f32(&h)?)?;
        let cx = b.expand(
            &b.reshape(&cx, &[d(1), Some(w.clone()), d(1)])?,
            &[Some(h.clone()), None, None],
        )?;
        let cy = b.expand(
            &b.reshape(&cy, &[Some(h.clone()), d(1), d(1)])?,
            &[None, Some(w.clone()), None],
        )?;
        let c = b.concat(&[cx, cy], 2)?; // [H, W, 2]
        let size = (fc.proposal_base_size as f32) * 2f32.powi(l as i32);
        let wh = b.expand(
            &b.const_f32(&[size, size], &[1, 1, 2])?,
            &[Some(h.clone()), Some(w.clone()), None],
        )?;
        let p = b.concat(&[c.clone(), wh], 2)?;
        centers.push(b.reshape(&c, &[d(1), Some(hw.clone()), d(2)])?);
        props.push(b.reshape(&p, &[d(1), Some(hw.clone()), d(4)])?);

        shapes.push((h, w));
        let next = b.dim_add(&starts[l], &hw)?;
        starts.push(next);
    }
    let proposals = b.concat(&props, 1)?;
    let inside = b.and(
        &b.gt_scalar(&proposals, fc.proposal_valid_min)?,
        &b.lt_scalar(&proposals, fc.proposal_valid_max)?,
    )?;
    let valid = b.all_keepdim(&inside, 2)?;
    let logit = b.log(&b.div(&proposals, &b.rsub_scalar(&proposals, 1.0)?)?)?;
    let proposals_logit = b.masked_fill(&logit, &b.not(&valid)?, f64::INFINITY)?;
    Ok(Levels {
        shapes,
        starts,
        feat: b.concat(&feats, 1)?,
        pos: b.concat(&poss, 1)?,
        centers: b.concat(&centers, 1)?,
        proposals_logit,
        valid,
    })
}

/// `enc_output_norm(enc_output(x))` with the rows of invalid tokens zeroed first: the projection
/// shared by the foreground selector (on features + position) and the two-stage head (on memory).
pub fn project_tokens<B: Backend>(
    b: &B,
    cfg: &FocusDetrConfig,
    t: &Transformer,
    levels: &Levels<B>,
    x: &B::Tensor,
) -> Result<B::Tensor> {
    let x = b.masked_fill(x, &b.not(&levels.valid)?, 0.0)?;
    let y = super::layers::linear(b, &x, &t.enc_output)?;
    super::layers::layer_norm(b, &y, &t.enc_output_norm, cfg.transformer.layer_norm_eps)
}
