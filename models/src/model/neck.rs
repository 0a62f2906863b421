//! `neck`: detrex ChannelMapper. 1×1 conv + GroupNorm on res3..res5, and 3×3 stride-2 conv +
//! GroupNorm on the raw res5 for the extra level.

use crate::backend::{Backend, Result};
use crate::config::FocusDetrConfig;
use crate::schema::{ConvGn, Neck};

fn conv_gn<B: Backend>(
    b: &B,
    x: &B::Tensor,
    c: &ConvGn,
    cfg: &FocusDetrConfig,
) -> Result<B::Tensor> {
    let k = c.conv.weight.shape[2];
    let y = b.conv2d(
        x,
        &b.param(&c.conv.weight)?,
        Some(&b.param(&c.conv.bias)?),
        c.stride,
        k / 2,
    )?;
    let n = &cfg.neck;
    b.group_norm(
        &y,
        n.group_norm_groups,
        &b.param(&c.norm.weight)?,
        &b.param(&c.norm.bias)?,
        n.group_norm_eps,
    )
}

/// Maps [res3, res4, res5] to the feature levels P3..P6, each [B, D, H_l, W_l].
pub fn forward<B: Backend>(
    b: &B,
    cfg: &FocusDetrConfig,
    k: &Neck,
    feats: &[B::Tensor],
) -> Result<Vec<B::Tensor>> {
    b.scope("neck");
    let mut outs = k
        .convs
        .iter()
        .zip(feats)
        .map(|(c, f)| conv_gn(b, f, c, cfg))
        .collect::<Result<Vec<_>>>()?;
    let mut last = feats.last().cloned();
    for c in &k.extra_convs {
        if let Some(src) = last {
            let y = conv_gn(b, &src, c, cfg)?;
            outs.push(y.clone());
            last = Some(y);
        }
    }
    b.end_scope();
    Ok(outs)
}
