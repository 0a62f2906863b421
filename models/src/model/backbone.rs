//! `backbone`: detectron2 ResNet with FrozenBN (stride in the 3×3), returning res3, res4, res5,
//! or the Swin Transformer of [`super::swin`].

use crate::backend::{Backend, Result};
use crate::config::{BackboneConfig, FocusDetrConfig};
use crate::schema::{Backbone, Bottleneck, ConvBn, ResNet};

use super::Capture;

/// A bias-free convolution followed by FrozenBatchNorm2d, which detectron2 evaluates with the
/// fused `F.batch_norm(training=False)` when no gradient is needed.
fn conv_bn<B: Backend>(b: &B, x: &B::Tensor, c: &ConvBn, eps: f64) -> Result<B::Tensor> {
    let k = c.weight.shape[2];
    let y = b.conv2d(x, &b.param(&c.weight)?, None, c.stride, k / 2)?;
    let n = &c.norm;
    b.batch_norm(
        &y,
        &b.param(&n.weight)?,
        &b.param(&n.bias)?,
        &b.param(&n.running_mean)?,
        &b.param(&n.running_var)?,
        eps,
    )
}

fn bottleneck<B: Backend>(b: &B, x: &B::Tensor, blk: &Bottleneck, eps: f64) -> Result<B::Tensor> {
    let h = b.relu(&conv_bn(b, x, &blk.conv1, eps)?)?;
    let h = b.relu(&conv_bn(b, &h, &blk.conv2, eps)?)?;
    let h = conv_bn(b, &h, &blk.conv3, eps)?;
    let short = match &blk.shortcut {
        Some(s) => conv_bn(b, x, s, eps)?,
        None => x.clone(),
    };
    b.relu(&b.add(&h, &short)?)
}

/// Runs the backbone on normalised images [B, 3, H, W]; returns the three maps the neck takes
/// (strides 8, 16, 32), also captured as `backbone_0..2`.
pub fn forward<B: Backend>(
    b: &B,
    cfg: &FocusDetrConfig,
    k: &Backbone,
    x: &B::Tensor,
    cap: &mut Capture<B>,
) -> Result<Vec<B::Tensor>> {
    b.scope("backbone");
    let outs = match (&cfg.backbone, k) {
        (BackboneConfig::Swin(s), Backbone::Swin(keys)) => {
            super::swin::forward(b, s, keys, x, cap)?
        }
        (BackboneConfig::Resnet(r), Backbone::Resnet(keys)) => resnet(b, keys, x, r.frozen_bn_eps)?,
        _ => {
            return Err(crate::backend::ModelError::Input(
                "the checkpoint keys were built for another backbone than the config's".into(),
            ))
        }
    };
    b.end_scope();
    for (i, o) in outs.iter().enumerate() {
        cap.put(format!("backbone_{i}"), o);
    }
    Ok(outs)
}

/// The ResNet: stem, max-pool, res2..res5; returns [res3, res4, res5].
fn resnet<B: Backend>(b: &B, k: &ResNet, x: &B::Tensor, eps: f64) -> Result<Vec<B::Tensor>> {
    let mut x = b.relu(&conv_bn(b, x, &k.stem, eps)?)?;
    x = b.max_pool2d(&x, 3, 2, 1)?;
    let mut outs = Vec::new();
    for (s, stage) in k.stages.iter().enumerate() {
        b.scope(&format!("res{}", s + 2));
        for blk in stage {
            x = bottleneck(b, &x, blk, eps)?;
        }
        b.end_scope();
        if s >= 1 {
            outs.push(x.clone());
        }
    }
    Ok(outs)
}
