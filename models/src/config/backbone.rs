//! The backbone half of the configuration: detectron2's ResNet (FrozenBN) or its Swin
//! Transformer, as the official configs instantiate them, with their validation.

use serde::{Deserialize, Serialize};

/// Which backbone feeds the neck, with its hyper-parameters. In JSON the variant is the field
/// `kind` (`"resnet"` or `"swin"`); a backbone without `kind` is a ResNet (configs written
/// before Swin existed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BackboneConfig {
    /// detectron2 ResNet (bottleneck blocks, stride in the 3×3, FrozenBN everywhere).
    Resnet(ResNetConfig),
    /// detectron2 `SwinTransformer` (patch embedding, shifted-window attention, patch merging).
    Swin(SwinConfig),
}

/// detectron2 ResNet (bottleneck blocks, stride in the 3×3, FrozenBN everywhere).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResNetConfig {
    /// 50, 101 or 152.
    pub depth: u32,
    /// Output channels of the stem (64).
    pub stem_channels: usize,
    /// Output channels of res2 (256); each later stage doubles them.
    pub res2_channels: usize,
    /// FrozenBatchNorm2d eps.
    pub frozen_bn_eps: f64,
}

/// detectron2 `SwinTransformer` as the Focus-DETR configs build it (no absolute position
/// embedding, patch norm on, qkv bias on, default qk scale head_dim^-½).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwinConfig {
    /// Image size the backbone was pre-trained at (224 or 384). Recorded for the preset's
    /// provenance; without absolute position embedding it changes nothing at inference.
    pub pretrain_img_size: usize,
    /// Side of the square patches of the patch embedding (4).
    pub patch_size: usize,
    /// Channels of stage 0; stage i has embed_dim·2^i.
    pub embed_dim: usize,
    /// Blocks per stage.
    pub depths: Vec<usize>,
    /// Attention heads per stage.
    pub num_heads: Vec<usize>,
    /// Side of the square attention windows (7 or 12); odd blocks shift by half of it.
    pub window_size: usize,
    /// MLP hidden width as a multiple of the stage width: hidden = int(dim·ratio).
    pub mlp_ratio: f64,
    /// The stages whose (normed) outputs feed the neck, in order.
    pub out_indices: Vec<usize>,
    /// LayerNorm eps everywhere in the backbone (`nn.LayerNorm`'s default).
    pub layer_norm_eps: f64,
}

/// Feature maps the neck takes from the backbone (the official ChannelMapper gets three).
pub const BACKBONE_LEVELS: usize = 3;

impl BackboneConfig {
    /// Channels of the backbone outputs the neck maps, finest first.
    pub fn out_channels(&self) -> Vec<usize> {
        match self {
            BackboneConfig::Resnet(r) => (1..4).map(|s| r.stage_channels(s)).collect(),
            BackboneConfig::Swin(s) => s.out_indices.iter().map(|&i| s.stage_dim(i)).collect(),
        }
    }

    /// Side of the stride-4 map (res2, or Swin's patch grid) for an input side of `n` pixels.
    pub fn stride4_size(&self, n: usize) -> usize {
        match self {
            BackboneConfig::Resnet(_) => {
                // Stem: 7×7 stride-2 conv (padding 3), then 3×3 stride-2 max-pool (padding 1).
                let down = |n: usize, k: usize, p: usize| (n + 2 * p).saturating_sub(k) / 2 + 1;
                down(down(n, 7, 3), 3, 1)
            }
            // The input is zero-padded to a multiple of the patch size.
            BackboneConfig::Swin(s) => n.div_ceil(s.patch_size),
        }
    }

    /// The ResNet settings, if this is a ResNet.
    pub fn resnet(&self) -> Option<&ResNetConfig> {
        match self {
            BackboneConfig::Resnet(r) => Some(r),
            BackboneConfig::Swin(_) => None,
        }
    }

    /// A short human name (`ResNet-50`, `Swin (embed 96, depths 2-2-6-2, window 7)`).
    pub fn describe(&self) -> String {
        match self {
            BackboneConfig::Resnet(r) => format!("ResNet-{}", r.depth),
            BackboneConfig::Swin(s) => format!(
                "Swin (embed {}, depths {}, window {})",
                s.embed_dim,
                s.depths
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("-"),
                s.window_size
            ),
        }
    }

    /// Checks ranges and consistency; `Err((field, message))` names the field below `backbone`.
    pub(super) fn check(&self) -> Result<(), (String, String)> {
        let fail = |field: &str, message: String| Err((format!("backbone.{field}"), message));
        match self {
            BackboneConfig::Resnet(r) => {
                if r.stage_blocks().is_none() {
                    return fail("depth", format!("{} is not one of 50, 101, 152", r.depth));
                }
                for (field, v) in [
                    ("stem_channels", r.stem_channels),
                    ("res2_channels", r.res2_channels),
                ] {
                    if v == 0 {
                        return fail(field, "must be at least 1".into());
                    }
                }
                if !r.res2_channels.is_multiple_of(4) {
                    return fail(
                        "res2_channels",
                        "must be a multiple of 4 (bottleneck width = out/4)".into(),
                    );
                }
                if !(r.frozen_bn_eps.is_finite() && r.frozen_bn_eps > 0.0) {
                    return fail("frozen_bn_eps", "must be a finite number > 0".into());
                }
            }
            BackboneConfig::Swin(s) => {
                for (field, v) in [
                    ("patch_size", s.patch_size),
                    ("embed_dim", s.embed_dim),
                    ("window_size", s.window_size),
                ] {
                    if v == 0 {
                        return fail(field, "must be at least 1".into());
                    }
                }
                if s.depths.is_empty() || s.depths.contains(&0) {
                    return fail("depths", "needs at least one stage of ≥ 1 block".into());
                }
                if s.num_heads.len() != s.depths.len() {
                    return fail(
                        "num_heads",
                        format!(
                            "has {} entries, expected one per stage ({})",
                            s.num_heads.len(),
                            s.depths.len()
                        ),
                    );
                }
                for (i, &h) in s.num_heads.iter().enumerate() {
                    if h == 0 || !s.stage_dim(i).is_multiple_of(h) {
                        return fail(
                            &format!("num_heads[{i}]"),
                            format!("must be ≥ 1 and divide the stage width {}", s.stage_dim(i)),
                        );
                    }
                }
                let increasing = s.out_indices.windows(2).all(|w| w[0] < w[1]);
                if s.out_indices.len() != BACKBONE_LEVELS
                    || !increasing
                    || s.out_indices.iter().any(|&i| i >= s.depths.len())
                {
                    return fail(
                        "out_indices",
                        format!(
                            "{:?} must name {BACKBONE_LEVELS} increasing stages below {} (the \
                             neck maps three backbone levels at strides 8, 16, 32)",
                            s.out_indices,
                            s.depths.len()
                        ),
                    );
                }
                // Stage i has stride patch·2^i; the levels must be the neck's strides 8, 16, 32.
                if s.out_indices
                    .iter()
                    .enumerate()
                    .any(|(l, &i)| s.patch_size << i != 8 << l)
                {
                    return fail(
                        "out_indices",
                        format!(
                            "with patch_size {} the stages {:?} are not at strides 8, 16, 32",
                            s.patch_size, s.out_indices
                        ),
                    );
                }
                if !(s.mlp_ratio.is_finite() && s.mlp_ratio > 0.0) {
                    return fail("mlp_ratio", "must be a finite number > 0".into());
                }
                if !(s.layer_norm_eps.is_finite() && s.layer_norm_eps > 0.0) {
                    return fail("layer_norm_eps", "must be a finite number > 0".into());
                }
            }
        }
        Ok(())
    }
}

impl ResNetConfig {
    /// Bottleneck blocks per stage res2..res5, or `None` for an unsupported depth.
    pub fn stage_blocks(&self) -> Option<[usize; 4]> {
        match self.depth {
            50 => Some([3, 4, 6, 3]),
            101 => Some([3, 4, 23, 3]),
            152 => Some([3, 8, 36, 3]),
            _ => None,
        }
    }

    /// Output channels of stage `s` (0 = res2 … 3 = res5).
    pub fn stage_channels(&self, s: usize) -> usize {
        self.res2_channels << s
    }
}

impl SwinConfig {
    /// Channels of stage `i`: embed_dim·2^i.
    pub fn stage_dim(&self, i: usize) -> usize {
        self.embed_dim << i
    }

    /// MLP hidden width of stage `i`: `int(dim * mlp_ratio)` as the official code computes it.
    pub fn mlp_hidden(&self, i: usize) -> usize {
        (self.stage_dim(i) as f64 * self.mlp_ratio) as usize
    }

    /// Shift of the odd blocks' windows: window_size // 2.
    pub fn shift_size(&self) -> usize {
        self.window_size / 2
    }
}
