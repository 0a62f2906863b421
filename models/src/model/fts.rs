//! The foreground token selector (`transformer.enc_mask_predictor`, `transformer.alpha`): scores
//! every token from the coarsest level down, each level modulated by the upsampled scores of the
//! level above, then picks the per-layer token sets of the encoder cascade.

use super::layers::{layer_norm, linear};
use super::levels::{project_tokens, Levels};
use crate::backend::{Backend, Result};
use crate::config::FocusDetrConfig;
use crate::schema::{MaskPredictor, Transformer};

/// The MaskPredictor: LN → Linear → GELU, half the channels replaced by their mean over the
/// level's tokens, then Linear → GELU → Linear → GELU → Linear → one raw logit per token.
fn mask_predictor<B: Backend>(
    b: &B,
    cfg: &FocusDetrConfig,
    m: &MaskPredictor,
    x: &B::Tensor,
) -> Result<B::Tensor> {
    let z = layer_norm(b, x, &m.norm, cfg.transformer.layer_norm_eps)?;
    let z = b.gelu(&linear(b, &z, &m.fc)?)?;
    let half = b.dim_const((cfg.focus.mask_predictor_hidden / 2) as i64);
    let local = b.slice(&z, 2, &b.dim_const(0), Some(&half))?;
    let global = b.mean_keepdim(&b.slice(&z, 2, &half, None)?, 1)?;
    let global = b.expand(&global, &[None, Some(b.dim(&local, 1)?), None])?;
    let mut z = b.concat(&[local, global], 2)?;
    for (i, l) in m.score.iter().enumerate() {
        z = linear(b, &z, l)?;
        if i + 1 < m.score.len() {
            z = b.gelu(&z)?;
        }
    }
    Ok(z)
}

/// Foreground logits [B, N] (after top-down modulation), in token order.
pub fn foreground_logits<B: Backend>(
    b: &B,
    cfg: &FocusDetrConfig,
    t: &Transformer,
    levels: &Levels<B>,
) -> Result<B::Tensor> {
    b.scope("transformer.enc_mask_predictor");
    let u = project_tokens(b, cfg, t, levels, &b.add(&levels.feat, &levels.pos)?)?;
    let bs = b.dim(&u, 0)?;
    let ch = b.dim(&u, 2)?;
    let alpha = b.param(&t.alpha)?;
    let n_levels = levels.shapes.len();
    let one = Some(b.dim_const(1));
    let mut scores: Vec<Option<B::Tensor>> = vec![None; n_levels];
    let mut prev: Option<B::Tensor> = None; // [B, 1, H, W] of the level above
    for l in (0..n_levels).rev() {
        let (h, w) = &levels.shapes[l];
        let end = (l + 1 < n_levels).then(|| &levels.starts[l + 1]);
        let mut ul = b.slice(&u, 1, &levels.starts[l], end)?;
        if let Some(p) = &prev {
            let up = b.resize_bilinear_align_corners(p, h, w)?;
            let re = b.reshape(
                &ul,
                &[
                    Some(bs.clone()),
                    Some(h.clone()),
                    Some(w.clone()),
                    Some(ch.clone()),
                ],
            )?;
            let re = b.permute(&re, &[0, 3, 1, 2])?;
            let i = n_levels - 1 - l; // alpha[i − 1] for the i-th level from the top
            let a = b.slice(
                &alpha,
                0,
                &b.dim_const(i as i64 - 1),
                Some(&b.dim_const(i as i64)),
            )?;
            let m = b.mul(&b.mul(&re, &up)?, &a)?;
            let m = b.reshape(
                &b.permute(&m, &[0, 2, 3, 1])?,
                &[Some(bs.clone()), None, Some(ch.clone())],
            )?;
            ul = b.add(&ul, &m)?;
        }
        let s = mask_predictor(b, cfg, &t.enc_mask_predictor, &ul)?;
        let s = b.reshape(
            &s,
            &[
                Some(bs.clone()),
                one.clone(),
                Some(h.clone()),
                Some(w.clone()),
            ],
        )?;
        scores[l] = Some(b.reshape(&s, &[Some(bs.clone()), None])?);
        prev = Some(s);
    }
    let scores: Vec<B::Tensor> = scores.into_iter().flatten().collect();
    let fg = b.concat(&scores, 1)?;
    b.end_scope();
    Ok(fg)
}

/// The token budget K and per-layer counts k_l for N tokens.
pub fn budgets<B: Backend>(
    b: &B,
    cfg: &FocusDetrConfig,
    n: &B::Dim,
) -> Result<(B::Dim, Vec<B::Dim>)> {
    if cfg.focus.dense {
        // The dense baseline: every layer keeps all N tokens.
        let ks = vec![n.clone(); cfg.focus.cascade.len()];
        return Ok((n.clone(), ks));
    }
    let k = b.dim_add(&b.dim_scale(n, cfg.focus.rho)?, &b.dim_const(1))?;
    let ks = cfg
        .focus
        .cascade
        .iter()
        .map(|c| b.dim_scale(&k, *c))
        .collect::<Result<Vec<_>>>()?;
    Ok((k, ks))
}
