//! The data-dependent selections of a forward pass, named as in the goldens, and forcing them.
//!
//! Focus-DETR selects tokens 13 times per image: each encoder layer's foreground tokens
//! (`enc_topk_idx_l`), each layer's object tokens (`enc_oesm_token_idx_l`, token indices) and the
//! two-stage proposals (`topk_proposals`, in query order). Downstream of a selection the model is
//! chaotic, so every one of them can be forced: the model then uses the given indices instead of
//! its own. A forced row of −1 keeps the model's own selection for that image.

use crate::config::FocusDetrConfig;

/// The two-stage proposals: token indices [B, num_queries], in query order.
pub const PROPOSALS: &str = "topk_proposals";

/// Encoder layer `l`'s foreground selection: token indices [B, k_l] (a set).
pub fn encoder_tokens(l: usize) -> String {
    format!("enc_topk_idx_{l}")
}

/// Encoder layer `l`'s object tokens: token indices [B, object_tokens], in score order. Forced
/// object tokens must lie inside that layer's (forced or own) foreground selection.
pub fn object_tokens(l: usize) -> String {
    format!("enc_oesm_token_idx_{l}")
}

/// Which selections a run (or a diagnostic export) lets the caller force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Forcible {
    /// None: the model always makes its own.
    #[default]
    None,
    /// The two-stage proposals only (the older `--proposals-input` / `--override-proposals`).
    Proposals,
    /// All of them.
    All,
}

impl Forcible {
    /// Whether selection `name` may be forced.
    pub fn includes(self, name: &str) -> bool {
        match self {
            Forcible::None => false,
            Forcible::Proposals => name == PROPOSALS,
            Forcible::All => true,
        }
    }
}

/// What a selection chooses from and how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectionSpec {
    /// The name (goldens' and debug outputs').
    pub name: String,
    /// Indices per image, for an image of `n_tokens` tokens.
    pub len: usize,
    /// Whether `len` follows the image size (the encoder's selections) or is fixed by the
    /// config (object tokens, proposals).
    pub follows_image_size: bool,
}

/// The names of every forcible selection of `cfg`, in model order.
pub fn names(cfg: &FocusDetrConfig) -> Vec<String> {
    (0..cfg.focus.cascade.len())
        .flat_map(|l| [encoder_tokens(l), object_tokens(l)])
        .chain([PROPOSALS.to_string()])
        .collect()
}

/// Every forcible selection of `cfg` in model order, with its row length for `n_tokens` tokens.
pub fn specs(cfg: &FocusDetrConfig, n_tokens: usize) -> Vec<SelectionSpec> {
    let ks = cfg
        .focus
        .layer_token_counts(cfg.focus.token_budget(n_tokens));
    let lens = ks
        .iter()
        .flat_map(|&k| [(k, true), (cfg.focus.object_tokens, false)])
        .chain([(cfg.heads.num_queries, false)]);
    names(cfg)
        .into_iter()
        .zip(lens)
        .map(|(name, (len, follows_image_size))| SelectionSpec {
            name,
            len,
            follows_image_size,
        })
        .collect()
}

/// Whether `name` is one of `cfg`'s forcible selections.
pub fn is_selection(cfg: &FocusDetrConfig, name: &str) -> bool {
    names(cfg).iter().any(|n| n == name)
}

/// Whether `name` has the form of a selection's name (of any config).
pub fn is_selection_name(name: &str) -> bool {
    let layer = |prefix: &str| {
        name.strip_prefix(prefix)
            .is_some_and(|l| !l.is_empty() && l.bytes().all(|c| c.is_ascii_digit()))
    };
    name == PROPOSALS || layer("enc_topk_idx_") || layer("enc_oesm_token_idx_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirteen_selections_with_the_goldens_lengths() {
        let cfg = FocusDetrConfig::default();
        // rocket_800x1184: N = 19672, k = 9837, 7869, 5902, 5902, 3934, 1967.
        let s = specs(&cfg, 19672);
        assert_eq!(s.len(), 13);
        let enc: Vec<usize> = (0..6).map(|l| s[2 * l].len).collect();
        assert_eq!(enc, [9837, 7869, 5902, 5902, 3934, 1967]);
        assert_eq!(s[1].name, "enc_oesm_token_idx_0");
        assert_eq!(s[1].len, 300);
        assert_eq!(s[12].name, "topk_proposals");
        assert_eq!(s[12].len, 900);
        assert!(s[0].follows_image_size && !s[1].follows_image_size && !s[12].follows_image_size);
        assert_eq!(
            names(&cfg),
            s.iter().map(|s| s.name.clone()).collect::<Vec<_>>()
        );
        assert!(is_selection(&cfg, "enc_topk_idx_5"));
        assert!(!is_selection(&cfg, "enc_topk_idx_6"));
        assert!(is_selection_name("enc_topk_idx_6"));
        assert!(!is_selection_name("enc_topk_idx_"));
        assert!(!is_selection_name("enc_oesm_subidx_0"));
    }
}
