//! Token arithmetic of a configuration: feature-level sizes, token counts and budgets, computed
//! exactly as the official code does (float32 products, truncated), and the integer ratios that
//! let exported graphs compute the same budgets.

use super::{FocusConfig, FocusDetrConfig};

impl FocusConfig {
    /// Token budget K = int(float32(ρ)·N) + 1 for N valid tokens (float32 product, truncated);
    /// N when dense.
    pub fn token_budget(&self, n_tokens: usize) -> usize {
        if self.dense {
            return n_tokens;
        }
        (self.rho * n_tokens as f32) as usize + 1
    }

    /// Tokens selected per encoder layer, k_l = int(float32(c_l)·K); K in every layer when dense.
    pub fn layer_token_counts(&self, budget: usize) -> Vec<usize> {
        self.cascade
            .iter()
            .map(|c| {
                if self.dense {
                    budget
                } else {
                    (c * budget as f32) as usize
                }
            })
            .collect()
    }
}

impl FocusDetrConfig {
    /// (H, W) of each feature level P3..P6 for an H×W input (the backbone's arithmetic).
    pub fn level_sizes(&self, h: usize, w: usize) -> Vec<(usize, usize)> {
        // Every later level halves, rounding up: a 3×3 stride-2 conv with padding 1
        // (ResNet, the neck's extra level) and Swin's patch merging (padded to even) agree.
        let half = |n: usize| n.div_ceil(2);
        let bb = &self.backbone;
        let mut size = (bb.stride4_size(h), bb.stride4_size(w));
        let mut out = Vec::new();
        for _ in 0..self.transformer.num_feature_levels {
            size = (half(size.0), half(size.1));
            out.push(size);
        }
        out
    }

    /// Tokens of an H×W input.
    pub fn token_count(&self, h: usize, w: usize) -> usize {
        self.level_sizes(h, w).iter().map(|(a, b)| a * b).sum()
    }

    /// Whether N tokens leave every encoder layer at least `object_tokens` tokens.
    pub fn tokens_suffice(&self, n: usize) -> bool {
        let k = self.focus.token_budget(n);
        self.focus
            .layer_token_counts(k)
            .iter()
            .all(|&kl| kl >= self.focus.object_tokens)
    }

    /// The fewest tokens the official model accepts (every layer keeps ≥ `object_tokens`).
    pub fn min_tokens(&self) -> usize {
        // k_l grows with N, so the first N that suffices is the minimum.
        (1..=1 << 26)
            .find(|&n| self.tokens_suffice(n))
            .unwrap_or(usize::MAX)
    }

    /// A clear error when N tokens are too few for the official model (the last encoder layer
    /// keeps fewer than `object_tokens`), naming the minimum input size.
    pub fn check_token_count(&self, n: usize) -> Result<(), String> {
        if self.tokens_suffice(n) {
            return Ok(());
        }
        let k = self.focus.token_budget(n);
        let last = self
            .focus
            .layer_token_counts(k)
            .into_iter()
            .min()
            .unwrap_or(0);
        Err(format!(
            "the input is too small for this model: it gives {n} tokens, and the last encoder \
             layer keeps only {last} of them, fewer than the {} object tokens every layer needs \
             (the official implementation fails on such inputs). The model needs at least {} \
             tokens, e.g. an input of {side}×{side} pixels or larger; the torch reference can \
             run anyway with --clamp-object-tokens (fewer object tokens, a deviation from the \
             official model)",
            self.focus.object_tokens,
            self.min_tokens(),
            side = self.min_square_side()
        ))
    }

    /// The smallest square input side with enough tokens.
    pub fn min_square_side(&self) -> usize {
        (1..=1 << 16)
            .find(|&s| self.tokens_suffice(self.token_count(s, s)))
            .unwrap_or(usize::MAX)
    }
}

/// Largest token count for which [`exact_ratio`] proves its integer form: 2^21 tokens, an image of
/// about 10 000 × 10 000 pixels (for c = 0.6 the integer form first differs at 3 495 258 tokens).
pub const RATIO_CHECKED_UP_TO: u64 = 1 << 21;

/// The float32 product truncated toward zero, `int(float32(c) · float32(n))`, as the official
/// code computes token budgets.
pub fn scale_f32(n: u64, c: f32) -> u64 {
    (c * n as f32) as u64
}

/// A fraction p/q with `floor(n·p/q) == int(float32(c)·float32(n))` for every n up to
/// [`RATIO_CHECKED_UP_TO`] (checked exhaustively), so that exported graphs can compute token
/// budgets with integer arithmetic that shape-inferring runtimes (tract) can follow. `None` when
/// no fraction with a denominator up to 1000 agrees everywhere.
pub fn exact_ratio(c: f32) -> Option<(u64, u64)> {
    if !(c.is_finite() && c > 0.0) {
        return None;
    }
    (1..=1000u64).find_map(|q| {
        let p = (f64::from(c) * q as f64).round() as u64;
        (1..=RATIO_CHECKED_UP_TO)
            .all(|n| n * p / q == scale_f32(n, c))
            .then_some((p, q))
    })
}
