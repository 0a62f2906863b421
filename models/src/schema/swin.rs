//! The keys of detectron2's `SwinTransformer` (`backbone.patch_embed`, `backbone.layers.i`,
//! `backbone.norm{i}`), and the value of its one int64 buffer, `relative_position_index`.

use super::layers::{Linear, Norm};
use super::tree::{visit_fields, EntryKind, Param, Path, SchemaEntry, Visit};
use crate::config::SwinConfig;

/// Window attention with relative position bias (`blocks.j.attn`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowAttention {
    /// Bias per relative offset and head [(2w−1)², heads].
    pub relative_position_bias_table: Param,
    /// int64 [w², w²]: the table row of each (query, key) pair of a window.
    pub relative_position_index: Param,
    /// Packed Q/K/V projection [3C, C].
    pub qkv: Linear,
    /// Output projection [C, C].
    pub proj: Linear,
    /// Attention heads.
    pub heads: usize,
}
visit_fields!(WindowAttention {
    relative_position_bias_table,
    relative_position_index,
    qkv,
    proj
});

/// One Swin block (`backbone.layers.i.blocks.j`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwinBlock {
    /// LayerNorm before attention.
    pub norm1: Norm,
    /// (Shifted-)window attention.
    pub attn: WindowAttention,
    /// LayerNorm before the MLP.
    pub norm2: Norm,
    /// `mlp.fc1`: C → hidden, then exact GELU.
    pub fc1: Linear,
    /// `mlp.fc2`: hidden → C.
    pub fc2: Linear,
    /// Cyclic shift of the windows (0 for even blocks).
    pub shift: usize,
}
visit_fields!(SwinBlock {
    norm1,
    attn,
    norm2,
    fc1,
    fc2
});

/// Patch merging at the end of a stage (`backbone.layers.i.downsample`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchMerging {
    /// Bias-free 4C → 2C projection [2C, 4C].
    pub reduction: Param,
    /// LayerNorm over the 4C concatenated channels.
    pub norm: Norm,
}
visit_fields!(PatchMerging { reduction, norm });

/// One stage (`backbone.layers.i`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwinStage {
    /// The blocks, alternating unshifted and shifted windows.
    pub blocks: Vec<SwinBlock>,
    /// Patch merging (every stage but the last).
    pub downsample: Option<PatchMerging>,
}

impl Visit for SwinStage {
    fn visit(&self, out: &mut Vec<SchemaEntry>) {
        self.blocks.visit(out);
        if let Some(d) = &self.downsample {
            d.visit(out);
        }
    }
}

/// detectron2 `SwinTransformer` (`backbone`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swin {
    /// `patch_embed.proj`: p×p stride-p convolution with bias [E, 3, p, p].
    pub patch_proj: Linear,
    /// `patch_embed.norm`.
    pub patch_norm: Norm,
    /// `layers.i`.
    pub stages: Vec<SwinStage>,
    /// `norm{i}` of each output stage i, with i.
    pub out_norms: Vec<(usize, Norm)>,
    /// Side of the attention windows.
    pub window: usize,
}

impl Visit for Swin {
    fn visit(&self, out: &mut Vec<SchemaEntry>) {
        self.patch_proj.visit(out);
        self.patch_norm.visit(out);
        self.stages.visit(out);
        for (_, n) in &self.out_norms {
            n.visit(out);
        }
    }
}

impl Swin {
    /// The keys of `cfg` under `backbone`.
    pub(super) fn new(p: &Path, cfg: &SwinConfig) -> Self {
        let (e, ps, w) = (cfg.embed_dim, cfg.patch_size, cfg.window_size);
        let pe = p.child("patch_embed");
        let layers = p.child("layers");
        let stages = cfg
            .depths
            .iter()
            .enumerate()
            .map(|(i, &depth)| {
                let c = cfg.stage_dim(i);
                let heads = cfg.num_heads[i];
                let lp = layers.child(i);
                let blocks = (0..depth)
                    .map(|j| {
                        let bp = lp.child("blocks").child(j);
                        let ap = bp.child("attn");
                        let mlp = bp.child("mlp");
                        SwinBlock {
                            norm1: Norm::new(&bp.child("norm1"), c),
                            attn: WindowAttention {
                                relative_position_bias_table: ap.param(
                                    "relative_position_bias_table",
                                    &[(2 * w - 1) * (2 * w - 1), heads],
                                ),
                                relative_position_index: ap
                                    .index_buffer("relative_position_index", &[w * w, w * w]),
                                qkv: Linear::new(&ap.child("qkv"), 3 * c, c),
                                proj: Linear::new(&ap.child("proj"), c, c),
                                heads,
                            },
                            norm2: Norm::new(&bp.child("norm2"), c),
                            fc1: Linear::new(&mlp.child("fc1"), cfg.mlp_hidden(i), c),
                            fc2: Linear::new(&mlp.child("fc2"), c, cfg.mlp_hidden(i)),
                            shift: if j % 2 == 0 { 0 } else { cfg.shift_size() },
                        }
                    })
                    .collect();
                let downsample = (i + 1 < cfg.depths.len()).then(|| {
                    let dp = lp.child("downsample");
                    PatchMerging {
                        reduction: dp.child("reduction").param("weight", &[2 * c, 4 * c]),
                        norm: Norm::new(&dp.child("norm"), 4 * c),
                    }
                });
                SwinStage { blocks, downsample }
            })
            .collect();
        Swin {
            patch_proj: Linear {
                weight: pe.child("proj").param("weight", &[e, 3, ps, ps]),
                bias: pe.child("proj").param("bias", &[e]),
            },
            patch_norm: Norm::new(&pe.child("norm"), e),
            stages,
            out_norms: cfg
                .out_indices
                .iter()
                .map(|&i| (i, Norm::new(&p.child(format!("norm{i}")), cfg.stage_dim(i))))
                .collect(),
            window: w,
        }
    }
}

/// `relative_position_index` of a w×w window, row-major [w², w²]: for query (y₁, x₁) and key
/// (y₂, x₂), (y₁ − y₂ + w − 1)·(2w − 1) + (x₁ − x₂ + w − 1), as the official `__init__` builds it.
pub fn relative_position_index(w: usize) -> Vec<i64> {
    let w = w as i64;
    let mut out = Vec::with_capacity((w * w * w * w) as usize);
    for q in 0..w * w {
        for k in 0..w * w {
            let (dy, dx) = (q / w - k / w + w - 1, q % w - k % w + w - 1);
            out.push(dy * (2 * w - 1) + dx);
        }
    }
    out
}

impl SchemaEntry {
    /// The value an [`EntryKind::IndexBuffer`] must hold (row-major), `None` for other kinds.
    pub fn fixed_value(&self) -> Option<Vec<i64>> {
        let n = match (&self.kind, self.shape.as_slice()) {
            (EntryKind::IndexBuffer, [a, b]) if a == b => *a,
            _ => return None,
        };
        let w = n.isqrt();
        (self.key.ends_with(".relative_position_index") && w * w == n)
            .then(|| relative_position_index(w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_of_a_2x2_window() {
        // Worked by hand from the official construction: offsets (dy, dx) ∈ {−1, 0, 1}², table
        // row (dy + 1)·3 + (dx + 1).
        assert_eq!(
            relative_position_index(2),
            vec![4, 3, 1, 0, 5, 4, 2, 1, 7, 6, 4, 3, 8, 7, 5, 4]
        );
        let i7 = relative_position_index(7);
        assert_eq!(i7.len(), 49 * 49);
        assert_eq!(*i7.iter().max().unwrap(), 13 * 13 - 1);
        // The diagonal (zero offset) is the table's centre row.
        assert!((0..49).all(|q| i7[q * 49 + q] == 6 * 13 + 6));
    }
}
