//! `FocusDetrConfig`: every inference hyper-parameter of Focus-DETR, its presets, JSON loading
//! and validation. Values the official code hard-codes (ρ, the cascade, the 300 object tokens,
//! eps values, ...) live here too, so that nothing else in the project spells them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

mod backbone;
mod presets;
mod tokens;

pub use backbone::{BackboneConfig, ResNetConfig, SwinConfig, BACKBONE_LEVELS};
pub use presets::{preset_source, DEFAULT_PRESET, PRESETS};
pub use tokens::{exact_ratio, scale_f32, RATIO_CHECKED_UP_TO};

/// Errors from reading or validating a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--config` named neither a preset nor an existing file.
    #[error("unknown config `{name}`: not a preset ({available}) and no such file")]
    UnknownPreset {
        /// What the user passed.
        name: String,
        /// Comma-separated preset names.
        available: String,
    },
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The JSON is malformed or a field has the wrong type or name.
    #[error("{origin}: field `{field}`: {message}")]
    Parse {
        /// File name or preset name the JSON came from.
        origin: String,
        /// Dotted path of the offending field (`.` for the document itself).
        field: String,
        /// What serde reported.
        message: String,
    },
    /// A value is out of its allowed range or inconsistent with another field.
    #[error("{origin}: field `{field}`: {message}")]
    Invalid {
        /// File name or preset name.
        origin: String,
        /// Dotted path of the offending field.
        field: String,
        /// What is wrong and what is expected.
        message: String,
    },
}

/// The whole configuration of a Focus-DETR detector at inference time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FocusDetrConfig {
    /// A label for the configuration (the preset name for presets).
    pub name: String,
    /// The backbone (ResNet or Swin) and its hyper-parameters.
    pub backbone: BackboneConfig,
    /// ChannelMapper neck.
    pub neck: NeckConfig,
    /// Sine position embedding of the encoder tokens.
    pub position_embedding: PositionEmbeddingConfig,
    /// Transformer sizes shared by encoder and decoder.
    pub transformer: TransformerConfig,
    /// Foreground token selection, the encoder cascade and the dual attention.
    pub focus: FocusConfig,
    /// Decoder details that are not plain sizes.
    pub decoder: DecoderConfig,
    /// Queries, classes and post-processing.
    pub heads: HeadsConfig,
    /// Image resizing and pixel normalisation.
    pub preprocess: PreprocessConfig,
}

/// detrex ChannelMapper: 1×1 conv + GroupNorm per backbone level, plus extra stride-2 levels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeckConfig {
    /// Number of GroupNorm groups.
    pub group_norm_groups: usize,
    /// GroupNorm eps.
    pub group_norm_eps: f64,
}

/// `PositionEmbeddingSine` (normalised), per feature level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PositionEmbeddingConfig {
    /// Features per axis; twice this is the embedding width.
    pub num_pos_feats: usize,
    /// Frequency base T (20 for the 24/36-epoch R50/R101 models, 10000 otherwise).
    pub temperature: f64,
    /// Added to the 1-based cumulative coordinate before normalising (0 or −0.5).
    pub offset: f64,
    /// Scale of the normalised coordinate (2π).
    pub scale: f64,
    /// Added to the map size in the normalisation.
    pub eps: f64,
}

/// Transformer widths and depths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerConfig {
    /// Token width.
    pub embed_dim: usize,
    /// Attention heads (MHA and deformable attention).
    pub num_heads: usize,
    /// FFN hidden width.
    pub ffn_dim: usize,
    /// Encoder layers.
    pub num_encoder_layers: usize,
    /// Decoder layers.
    pub num_decoder_layers: usize,
    /// Feature levels (P3..P6); the official code is hard-wired to 4.
    pub num_feature_levels: usize,
    /// Deformable-attention sampling points per head and level.
    pub num_points: usize,
    /// LayerNorm eps everywhere in the transformer.
    pub layer_norm_eps: f64,
}

/// Focus-DETR's foreground token selector, cascade and object-token enhancement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FocusConfig {
    /// Keep ratio ρ: K = int(ρ·N) + 1, computed in float32 (so ρ < 1: ρ = 1 would ask for N + 1
    /// of N tokens).
    pub rho: f32,
    /// Per-encoder-layer fraction of K: k_l = int(cascade[l]·K), computed in float32.
    pub cascade: Vec<f32>,
    /// Object tokens enhanced by self-attention in each encoder layer (`topk_sa`).
    pub object_tokens: usize,
    /// Hidden width of the mask predictor (split half local, half mean-pooled).
    pub mask_predictor_hidden: usize,
    /// Proposal validity bound: every proposal number must be strictly above this.
    pub proposal_valid_min: f64,
    /// Proposal validity bound: every proposal number must be strictly below this.
    pub proposal_valid_max: f64,
    /// Proposal size at level 0; doubles per level.
    pub proposal_base_size: f64,
    /// The dense baseline (not the official model): every encoder layer keeps every token,
    /// K = N and every k_l = N, ignoring ρ and the cascade. For measuring what the sparsity saves.
    #[serde(default)]
    pub dense: bool,
}

/// Decoder constants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecoderConfig {
    /// Temperature of the sine embedding of reference boxes (10000 in every model).
    pub box_sine_temperature: f64,
    /// eps of `inverse_sigmoid` in box refinement.
    pub inverse_sigmoid_eps: f64,
}

/// Queries, classes and post-processing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadsConfig {
    /// Object classes (sigmoid, no background).
    pub num_classes: usize,
    /// Decoder queries = two-stage proposals.
    pub num_queries: usize,
    /// Detections kept by post-processing (top-k over queries × classes).
    pub num_select: usize,
}

/// Test-time resizing and pixel normalisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreprocessConfig {
    /// Target shortest edge.
    pub min_size: usize,
    /// Upper bound of the longest edge.
    pub max_size: usize,
    /// Per-channel mean, RGB, 0–255 scale.
    pub pixel_mean: [f32; 3],
    /// Per-channel standard deviation, RGB, 0–255 scale.
    pub pixel_std: [f32; 3],
}

impl FocusDetrConfig {
    /// A built-in preset by name.
    pub fn preset(name: &str) -> Option<Self> {
        presets::preset(name)
    }

    /// Resolves `--config`: a preset name, or a JSON file. A JSON file may hold a full config, or
    /// `{"base": "<preset>", ...}` with only the fields that differ from that preset.
    pub fn resolve(spec: &str) -> Result<Self, ConfigError> {
        if let Some(cfg) = Self::preset(spec) {
            return Ok(cfg);
        }
        let path = Path::new(spec);
        if !path.is_file() {
            return Err(ConfigError::UnknownPreset {
                name: spec.to_string(),
                available: PRESETS.join(", "),
            });
        }
        Self::from_json_file(path)
    }

    /// Reads a JSON config file (full, or `base` + overrides) and validates it.
    pub fn from_json_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json_str(&text, &path.display().to_string())
    }

    /// Parses and validates JSON text; `origin` names the source in errors.
    pub fn from_json_str(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let parse_err = |field: String, message: String| ConfigError::Parse {
            origin: origin.to_string(),
            field,
            message,
        };
        let mut value: Value =
            serde_json::from_str(text).map_err(|e| parse_err(".".into(), e.to_string()))?;
        if let Some(base) = value.as_object_mut().and_then(|o| o.remove("base")) {
            let base_name = base.as_str().ok_or_else(|| {
                parse_err("base".into(), "expected a preset name (a string)".into())
            })?;
            let preset = Self::preset(base_name).ok_or_else(|| {
                parse_err(
                    "base".into(),
                    format!(
                        "unknown preset `{base_name}` (presets: {})",
                        PRESETS.join(", ")
                    ),
                )
            })?;
            let mut merged =
                serde_json::to_value(preset).map_err(|e| parse_err(".".into(), e.to_string()))?;
            // A backbone of another kind replaces the preset's instead of merging into it.
            let kind = |v: &Value| v.pointer("/backbone/kind").cloned();
            if kind(&value).is_some_and(|k| Some(k) != kind(&merged)) {
                if let Some(o) = merged.as_object_mut() {
                    o.remove("backbone");
                }
            }
            merge_json(&mut merged, value);
            value = merged;
        }
        // Configs written before the Swin backbone existed have a ResNet without `kind`.
        if let Some(bb) = value.get_mut("backbone").and_then(Value::as_object_mut) {
            bb.entry("kind").or_insert_with(|| Value::from("resnet"));
        }
        let cfg: Self = serde_path_to_error::deserialize(value).map_err(|e| {
            let field = e.path().to_string();
            parse_err(field, e.into_inner().to_string())
        })?;
        cfg.validate_as(origin)?;
        Ok(cfg)
    }

    /// Checks ranges and consistency; errors name the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_as(&self.name)
    }

    fn validate_as(&self, origin: &str) -> Result<(), ConfigError> {
        let fail = |field: &str, message: String| {
            Err(ConfigError::Invalid {
                origin: origin.to_string(),
                field: field.to_string(),
                message,
            })
        };
        let t = &self.transformer;
        let f = &self.focus;
        if let Err((field, message)) = self.backbone.check() {
            return fail(&field, message);
        }
        for (field, v) in [
            ("transformer.ffn_dim", t.ffn_dim),
            ("transformer.num_encoder_layers", t.num_encoder_layers),
            ("transformer.num_decoder_layers", t.num_decoder_layers),
            ("transformer.num_points", t.num_points),
            ("heads.num_classes", self.heads.num_classes),
            ("heads.num_queries", self.heads.num_queries),
            ("heads.num_select", self.heads.num_select),
            ("focus.object_tokens", f.object_tokens),
            ("preprocess.min_size", self.preprocess.min_size),
        ] {
            if v == 0 {
                return fail(field, "must be at least 1".into());
            }
        }
        if t.embed_dim == 0 || t.num_heads == 0 || !t.embed_dim.is_multiple_of(t.num_heads) {
            return fail(
                "transformer.num_heads",
                format!(
                    "must be ≥ 1 and divide transformer.embed_dim ({})",
                    t.embed_dim
                ),
            );
        }
        if t.num_feature_levels != 4 {
            return fail(
                "transformer.num_feature_levels",
                format!(
                    "{} is not supported: Focus-DETR's top-down score modulation is defined for exactly 4 levels",
                    t.num_feature_levels
                ),
            );
        }
        if 2 * self.position_embedding.num_pos_feats != t.embed_dim {
            return fail(
                "position_embedding.num_pos_feats",
                format!("must be half of transformer.embed_dim ({})", t.embed_dim),
            );
        }
        let groups = self.neck.group_norm_groups;
        if groups == 0 || !t.embed_dim.is_multiple_of(groups) {
            return fail(
                "neck.group_norm_groups",
                format!(
                    "must be ≥ 1 and divide transformer.embed_dim ({})",
                    t.embed_dim
                ),
            );
        }
        for (field, v) in [
            ("neck.group_norm_eps", self.neck.group_norm_eps),
            (
                "position_embedding.temperature",
                self.position_embedding.temperature,
            ),
            ("position_embedding.scale", self.position_embedding.scale),
            ("position_embedding.eps", self.position_embedding.eps),
            ("transformer.layer_norm_eps", t.layer_norm_eps),
            (
                "decoder.box_sine_temperature",
                self.decoder.box_sine_temperature,
            ),
            (
                "decoder.inverse_sigmoid_eps",
                self.decoder.inverse_sigmoid_eps,
            ),
            ("focus.proposal_base_size", f.proposal_base_size),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return fail(field, format!("{v} must be a finite number > 0"));
            }
        }
        if !self.position_embedding.offset.is_finite() {
            return fail("position_embedding.offset", "must be finite".into());
        }
        if !(f.rho > 0.0 && f.rho < 1.0) {
            return fail(
                "focus.rho",
                format!(
                    "{} must be in (0, 1): the budget K = int(ρ·N) + 1 must not exceed the N \
                     tokens (the official code fails the same way at ρ = 1); to keep every \
                     token, set focus.dense (--dense) instead",
                    f.rho
                ),
            );
        }
        if f.cascade.len() != t.num_encoder_layers {
            return fail(
                "focus.cascade",
                format!(
                    "has {} entries, expected one per encoder layer ({})",
                    f.cascade.len(),
                    t.num_encoder_layers
                ),
            );
        }
        if let Some((i, c)) = f
            .cascade
            .iter()
            .enumerate()
            .find(|(_, c)| !(**c > 0.0 && **c <= 1.0))
        {
            return fail(
                &format!("focus.cascade[{i}]"),
                format!("{c} must be in (0, 1]"),
            );
        }
        if f.mask_predictor_hidden < 4 || !f.mask_predictor_hidden.is_multiple_of(4) {
            return fail(
                "focus.mask_predictor_hidden",
                "must be a positive multiple of 4 (the score MLP halves it twice)".into(),
            );
        }
        if !(0.0..0.5).contains(&f.proposal_valid_min)
            || !(0.5..=1.0).contains(&f.proposal_valid_max)
        {
            return fail(
                "focus.proposal_valid_min",
                "valid range must satisfy 0 ≤ proposal_valid_min < 0.5 ≤ proposal_valid_max ≤ 1"
                    .into(),
            );
        }
        if self.heads.num_select > self.heads.num_queries * self.heads.num_classes {
            return fail(
                "heads.num_select",
                format!(
                    "{} exceeds num_queries × num_classes ({})",
                    self.heads.num_select,
                    self.heads.num_queries * self.heads.num_classes
                ),
            );
        }
        if self.preprocess.max_size < self.preprocess.min_size {
            return fail(
                "preprocess.max_size",
                "must be at least preprocess.min_size".into(),
            );
        }
        if let Some(i) = self
            .preprocess
            .pixel_std
            .iter()
            .position(|s| !(s.is_finite() && *s > 0.0))
        {
            return fail(
                &format!("preprocess.pixel_std[{i}]"),
                "must be a finite number > 0".into(),
            );
        }
        Ok(())
    }

    /// Pretty JSON of the config (what `--config` accepts back).
    pub fn to_json_pretty(&self) -> String {
        // Serialising plain structs of numbers and strings cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// All presets by name.
    pub fn presets() -> BTreeMap<&'static str, Self> {
        PRESETS
            .iter()
            .filter_map(|n| Self::preset(n).map(|c| (*n, c)))
            .collect()
    }
}

impl Default for FocusDetrConfig {
    fn default() -> Self {
        Self::preset(DEFAULT_PRESET).expect("the default preset exists")
    }
}

/// JSON merge: objects merge key by key, anything else replaces.
fn merge_json(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge_json(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_round_trip() {
        for (name, cfg) in FocusDetrConfig::presets() {
            cfg.validate().unwrap();
            let back = FocusDetrConfig::from_json_str(&cfg.to_json_pretty(), name).unwrap();
            assert_eq!(back, cfg);
        }
    }

    #[test]
    fn every_official_config_has_a_preset() {
        assert_eq!(PRESETS.len(), 16);
        let r101 = FocusDetrConfig::preset("r101_4scale_24ep").unwrap();
        assert_eq!(r101.backbone.resnet().map(|r| r.depth), Some(101));
        assert_eq!(r101.position_embedding.temperature, 20.0);
        let t = FocusDetrConfig::preset("swin_tiny_224_4scale_22k_36ep").unwrap();
        assert_eq!(t.backbone.out_channels(), vec![192, 384, 768]);
        // Swin configs keep focus_detr_r50.py's position embedding.
        assert_eq!(t.position_embedding.temperature, 10000.0);
        assert_eq!(t.position_embedding.offset, -0.5);
        let b = FocusDetrConfig::preset("swin_base_224_4scale_36ep").unwrap();
        let BackboneConfig::Swin(s) = &b.backbone else {
            panic!("Swin-B is a Swin")
        };
        // The base 224 config imports the 384 model file.
        assert_eq!((s.window_size, s.pretrain_img_size), (12, 384));
        let l = FocusDetrConfig::preset("swin_large_384_4scale_36ep").unwrap();
        assert_eq!(l.backbone.out_channels(), vec![384, 768, 1536]);
        for name in PRESETS {
            assert!(preset_source(name).is_some(), "{name}");
        }
    }

    #[test]
    fn swin_level_sizes_follow_the_padding() {
        // Patch embedding pads to a multiple of 4, patch merging to even sides.
        let cfg = FocusDetrConfig::preset("swin_tiny_224_4scale_36ep").unwrap();
        assert_eq!(
            cfg.level_sizes(386, 401),
            vec![(49, 51), (25, 26), (13, 13), (7, 7)]
        );
        // Same arithmetic as the ResNet at these sizes.
        let r = FocusDetrConfig::default();
        assert_eq!(cfg.token_count(448, 640), r.token_count(448, 640));
    }

    #[test]
    fn backbone_kind_defaults_to_resnet_and_can_be_switched() {
        // A full config written before Swin existed has no `kind`.
        let mut v: Value = serde_json::to_value(FocusDetrConfig::default()).unwrap();
        v["backbone"].as_object_mut().unwrap().remove("kind");
        let cfg = FocusDetrConfig::from_json_str(&v.to_string(), "old.json").unwrap();
        assert_eq!(cfg, FocusDetrConfig::default());
        // A base of one kind with a whole backbone of the other replaces it.
        let swin = serde_json::to_value(
            FocusDetrConfig::preset("swin_tiny_224_4scale_36ep")
                .unwrap()
                .backbone,
        )
        .unwrap();
        let json = serde_json::json!({"base": "r50_4scale_36ep", "backbone": swin});
        let cfg = FocusDetrConfig::from_json_str(&json.to_string(), "t.json").unwrap();
        assert!(matches!(cfg.backbone, BackboneConfig::Swin(_)));
        assert_eq!(cfg.position_embedding.temperature, 20.0);
        // Overriding one Swin field merges.
        let cfg = FocusDetrConfig::from_json_str(
            r#"{"base": "swin_tiny_224_4scale_36ep", "backbone": {"window_size": 12}}"#,
            "t.json",
        )
        .unwrap();
        let BackboneConfig::Swin(s) = &cfg.backbone else {
            panic!("still a Swin")
        };
        assert_eq!((s.window_size, s.embed_dim), (12, 96));
    }

    #[test]
    fn swin_errors_name_the_field() {
        for (overrides, field) in [
            (
                r#""backbone": {"num_heads": [3, 6, 12]}"#,
                "backbone.num_heads",
            ),
            (
                r#""backbone": {"num_heads": [3, 5, 12, 24]}"#,
                "backbone.num_heads[1]",
            ),
            (
                r#""backbone": {"out_indices": [0, 1, 2]}"#,
                "backbone.out_indices",
            ),
            (
                r#""backbone": {"out_indices": [1, 2]}"#,
                "backbone.out_indices",
            ),
            (r#""backbone": {"window_size": 0}"#, "backbone.window_size"),
            (r#""backbone": {"depth": 50}"#, "depth"),
        ] {
            let json = format!(r#"{{"base": "swin_tiny_224_4scale_36ep", {overrides}}}"#);
            let e = FocusDetrConfig::from_json_str(&json, "t.json")
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(field) && e.contains("t.json"),
                "{overrides}: {e}"
            );
        }
    }

    #[test]
    fn budgets_match_the_goldens() {
        // focus_token_num and enc_k_per_layer of the golden cases (golden README §3).
        let f = FocusDetrConfig::default().focus;
        for (n, k, ks) in [
            (3060, 1531, [1531, 1224, 918, 918, 612, 306]),
            (19672, 9837, [9837, 7869, 5902, 5902, 3934, 1967]),
            (22223, 11112, [11112, 8889, 6667, 6667, 4444, 2222]),
        ] {
            assert_eq!(f.token_budget(n), k);
            assert_eq!(f.layer_token_counts(k), ks);
        }
    }

    #[test]
    fn token_counts_and_minimum_size() {
        // Golden README §3 and §6: token counts per input size and the size limit.
        let cfg = FocusDetrConfig::default();
        assert_eq!(cfg.token_count(384, 384), 3060);
        assert_eq!(cfg.token_count(448, 640), 5950);
        assert_eq!(cfg.token_count(800, 1184), 19672);
        assert_eq!(
            cfg.level_sizes(800, 1333),
            vec![(100, 167), (50, 84), (25, 42), (13, 21)]
        );
        assert_eq!(cfg.token_count(376, 376), 2965);
        assert!(!cfg.tokens_suffice(2965));
        assert!(cfg.tokens_suffice(3060));
        assert_eq!(cfg.min_tokens(), 2998);
        assert_eq!(cfg.min_square_side(), 377);
    }

    #[test]
    fn token_budgets_have_exact_integer_forms() {
        // ρ and the cascade of every preset.
        assert_eq!(exact_ratio(0.5), Some((1, 2)));
        assert_eq!(exact_ratio(1.0), Some((1, 1)));
        assert_eq!(exact_ratio(0.8), Some((4, 5)));
        assert_eq!(exact_ratio(0.6), Some((3, 5)));
        assert_eq!(exact_ratio(0.4), Some((2, 5)));
        assert_eq!(exact_ratio(0.2), Some((1, 5)));
        assert_eq!(exact_ratio(0.7), Some((7, 10)));
        // A value whose float32 products no small fraction reproduces.
        assert_eq!(exact_ratio(0.123456), None);
        // Beyond the checked range the float32 rounding can differ (documented bound).
        assert_ne!(3_495_258 * 3 / 5, scale_f32(3_495_258, 0.6));
    }

    #[test]
    fn base_plus_override() {
        let cfg = FocusDetrConfig::from_json_str(
            r#"{"base": "r50_4scale_36ep", "name": "mine", "heads": {"num_select": 100}}"#,
            "t.json",
        )
        .unwrap();
        assert_eq!(cfg.heads.num_select, 100);
        assert_eq!(cfg.heads.num_queries, 900);
        assert_eq!(cfg.position_embedding.temperature, 20.0);
    }

    #[test]
    fn rho_one_is_refused_and_dense_keeps_every_token() {
        // K = int(1.0·N) + 1 = N + 1 > N: refused by name, pointing at the dense switch.
        let e = FocusDetrConfig::from_json_str(
            r#"{"base": "r50_4scale_36ep", "focus": {"rho": 1.0}}"#,
            "t.json",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("focus.rho") && e.contains("dense"), "{e}");
        let cfg = FocusDetrConfig::from_json_str(
            r#"{"base": "r50_4scale_36ep", "focus": {"dense": true}}"#,
            "t.json",
        )
        .unwrap();
        let f = &cfg.focus;
        assert_eq!(f.token_budget(3060), 3060);
        assert_eq!(f.layer_token_counts(3060), [3060; 6]);
        assert_eq!(cfg.min_tokens(), f.object_tokens);
        assert!(!FocusDetrConfig::default().focus.dense);
    }

    #[test]
    fn errors_name_the_field() {
        for (overrides, field) in [
            (r#""focus": {"cascade": [1.0, 0.5]}"#, "focus.cascade"),
            (r#""focus": {"rho": "half"}"#, "focus.rho"),
            (
                r#""transformer": {"num_heads": 7}"#,
                "transformer.num_heads",
            ),
            (r#""neck": {"groups": 32}"#, "groups"),
            (r#""backbone": {"depth": 34}"#, "backbone.depth"),
        ] {
            let json = format!(r#"{{"base": "r50_4scale_36ep", {overrides}}}"#);
            let e = FocusDetrConfig::from_json_str(&json, "t.json")
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(field) && e.contains("t.json"),
                "{overrides}: {e}"
            );
        }
    }
}
