//! The built-in presets: one per official detrex config in `projects/focus_detr/configs/`
//! (detrex e244e6c), named after its file without the `focus_detr_` prefix, plus the two Swin
//! model files no training config uses. Every preset starts from the model of
//! `configs/models/focus_detr_r50.py` and applies exactly what its files change.

use super::backbone::{BackboneConfig, ResNetConfig, SwinConfig};
use super::{
    DecoderConfig, FocusConfig, FocusDetrConfig, HeadsConfig, NeckConfig, PositionEmbeddingConfig,
    PreprocessConfig, TransformerConfig,
};

/// Names of the built-in presets; the first is the default.
pub const PRESETS: [&str; 16] = [
    "r50_4scale_36ep",
    "r50_4scale_12ep",
    "r50_4scale_24ep",
    "r101_4scale_12ep",
    "r101_4scale_24ep",
    "r101_4scale_36ep",
    "swin_tiny_224_4scale_12ep",
    "swin_tiny_224_4scale_24ep",
    "swin_tiny_224_4scale_36ep",
    "swin_tiny_224_4scale_22k_12ep",
    "swin_tiny_224_4scale_22k_36ep",
    "swin_small_224_4scale",
    "swin_base_224_4scale_36ep",
    "swin_base_384_4scale_36ep",
    "swin_large_224_4scale",
    "swin_large_384_4scale_36ep",
];

/// The name of the default preset.
pub const DEFAULT_PRESET: &str = PRESETS[0];

/// Position embedding of `focus_detr_r50.py` (T = 10000, offset −0.5), which the 12-epoch
/// ResNet configs and every Swin config keep.
const POS_12EP: (f64, f64) = (10000.0, -0.5);
/// The 24- and 36-epoch ResNet configs set T = 20, offset 0 ("the original implementation of
/// dab-detr position embedding").
const POS_24EP: (f64, f64) = (20.0, 0.0);

/// One of the `configs/models/focus_detr_swin_*.py` backbones.
fn swin(
    pretrain: usize,
    embed: usize,
    depths: [usize; 4],
    heads: [usize; 4],
    window: usize,
) -> BackboneConfig {
    BackboneConfig::Swin(SwinConfig {
        pretrain_img_size: pretrain,
        patch_size: 4,
        embed_dim: embed,
        depths: depths.to_vec(),
        num_heads: heads.to_vec(),
        window_size: window,
        mlp_ratio: 4.0,
        out_indices: vec![1, 2, 3],
        layer_norm_eps: 1e-5,
    })
}

fn resnet(depth: u32) -> BackboneConfig {
    BackboneConfig::Resnet(ResNetConfig {
        depth,
        stem_channels: 64,
        res2_channels: 256,
        frozen_bn_eps: 1e-5,
    })
}

/// (backbone, position embedding (T, offset)) of a preset.
fn preset_parts(name: &str) -> Option<(BackboneConfig, (f64, f64))> {
    let tiny = || swin(224, 96, [2, 2, 6, 2], [3, 6, 12, 24], 7);
    let base_384 = || swin(384, 128, [2, 2, 18, 2], [4, 8, 16, 32], 12);
    Some(match name {
        "r50_4scale_12ep" => (resnet(50), POS_12EP),
        "r50_4scale_24ep" | "r50_4scale_36ep" => (resnet(50), POS_24EP),
        "r101_4scale_12ep" => (resnet(101), POS_12EP),
        // The published r101 36ep file inherits the R50 12ep file and never sets depth = 101
        // (a copy of the R50 36ep file); the preset follows its name, as its checkpoint must.
        "r101_4scale_24ep" | "r101_4scale_36ep" => (resnet(101), POS_24EP),
        "swin_tiny_224_4scale_12ep"
        | "swin_tiny_224_4scale_24ep"
        | "swin_tiny_224_4scale_36ep"
        | "swin_tiny_224_4scale_22k_12ep"
        | "swin_tiny_224_4scale_22k_36ep" => (tiny(), POS_12EP),
        "swin_small_224_4scale" => (swin(224, 96, [2, 2, 18, 2], [3, 6, 12, 24], 7), POS_12EP),
        // The base 224 config imports the base 384 model file (window 12).
        "swin_base_224_4scale_36ep" | "swin_base_384_4scale_36ep" => (base_384(), POS_12EP),
        "swin_large_224_4scale" => (swin(224, 192, [2, 2, 18, 2], [6, 12, 24, 48], 7), POS_12EP),
        "swin_large_384_4scale_36ep" => {
            (swin(384, 192, [2, 2, 18, 2], [6, 12, 24, 48], 12), POS_12EP)
        }
        _ => return None,
    })
}

/// The official file a preset reproduces (below detrex's `projects/focus_detr/configs/`).
pub fn preset_source(name: &str) -> Option<String> {
    preset_parts(name)?;
    Some(match name {
        "swin_small_224_4scale" | "swin_large_224_4scale" => format!(
            "models/focus_detr_{}.py (a model file no training config uses)",
            name.trim_end_matches("_4scale")
        ),
        n if n.starts_with("swin") => format!("focus_detr_swin/focus_detr_{n}.py"),
        n => format!("focus_detr_resnet/focus_detr_{n}.py"),
    })
}

/// A built-in preset by name.
pub(super) fn preset(name: &str) -> Option<FocusDetrConfig> {
    let (backbone, (temperature, offset)) = preset_parts(name)?;
    Some(FocusDetrConfig {
        name: name.to_string(),
        backbone,
        neck: NeckConfig {
            group_norm_groups: 32,
            group_norm_eps: 1e-5,
        },
        position_embedding: PositionEmbeddingConfig {
            num_pos_feats: 128,
            temperature,
            offset,
            scale: 2.0 * std::f64::consts::PI,
            eps: 1e-6,
        },
        transformer: TransformerConfig {
            embed_dim: 256,
            num_heads: 8,
            ffn_dim: 2048,
            num_encoder_layers: 6,
            num_decoder_layers: 6,
            num_feature_levels: 4,
            num_points: 4,
            layer_norm_eps: 1e-5,
        },
        focus: FocusConfig {
            rho: 0.5,
            cascade: vec![1.0, 0.8, 0.6, 0.6, 0.4, 0.2],
            object_tokens: 300,
            mask_predictor_hidden: 256,
            proposal_valid_min: 0.01,
            proposal_valid_max: 0.99,
            proposal_base_size: 0.05,
            dense: false,
        },
        decoder: DecoderConfig {
            box_sine_temperature: 10000.0,
            inverse_sigmoid_eps: 1e-3,
        },
        heads: HeadsConfig {
            num_classes: 80,
            num_queries: 900,
            num_select: 300,
        },
        preprocess: PreprocessConfig {
            min_size: 800,
            max_size: 1333,
            pixel_mean: [123.675, 116.28, 103.53],
            pixel_std: [58.395, 57.12, 57.375],
        },
    })
}
