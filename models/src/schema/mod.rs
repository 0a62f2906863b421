//! The weight schema: every checkpoint key of the official detrex model with its shape, generated
//! from a [`FocusDetrConfig`]. This is the only place checkpoint names are spelled. The model reads
//! its tensors through the typed tree ([`FocusDetrKeys`]); the flat list in state_dict order,
//! aliases included, is derived from the same tree.

mod keys;
mod layers;
mod swin;
mod tree;

pub use keys::{Backbone, FocusDetrKeys};
pub use layers::{
    Bottleneck, ConvBn, ConvGn, DecoderLayer, EncoderLayer, Ffn, FrozenBn, Linear, MaskPredictor,
    Mlp, MsDeformAttn, MultiheadAttention, Neck, Norm, ResNet, Transformer,
};
pub use swin::{
    relative_position_index, PatchMerging, Swin, SwinBlock, SwinStage, WindowAttention,
};
pub use tree::{EntryKind, Param, SchemaEntry};

use crate::config::FocusDetrConfig;

/// The flat schema: every key in state_dict order, with lookups.
#[derive(Debug, Clone)]
pub struct WeightSchema {
    entries: Vec<SchemaEntry>,
    index: std::collections::HashMap<String, usize>,
}

impl WeightSchema {
    /// The schema of `cfg`.
    pub fn new(cfg: &FocusDetrConfig) -> Self {
        Self::from_keys(&FocusDetrKeys::new(cfg))
    }

    /// The schema of an already built key tree.
    pub fn from_keys(keys: &FocusDetrKeys) -> Self {
        let entries = keys.state_dict_entries();
        let index = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.key.clone(), i))
            .collect();
        WeightSchema { entries, index }
    }

    /// All entries in state_dict order (canonical and alias).
    pub fn entries(&self) -> &[SchemaEntry] {
        &self.entries
    }

    /// Canonical entries (parameters and buffers) in state_dict order.
    pub fn canonical(&self) -> impl Iterator<Item = &SchemaEntry> {
        self.entries
            .iter()
            .filter(|e| !matches!(e.kind, EntryKind::Alias { .. }))
    }

    /// (alias, canonical) pairs in state_dict order.
    pub fn aliases(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().filter_map(|e| match &e.kind {
            EntryKind::Alias { canonical } => Some((e.key.as_str(), canonical.as_str())),
            _ => None,
        })
    }

    /// Looks a key up (canonical or alias).
    pub fn get(&self, key: &str) -> Option<&SchemaEntry> {
        self.index.get(key).map(|&i| &self.entries[i])
    }

    /// The canonical key a key stands for (itself when it is canonical).
    pub fn canonical_of<'a>(&'a self, key: &'a str) -> Option<&'a str> {
        self.get(key).map(|e| match &e.kind {
            EntryKind::Alias { canonical } => canonical.as_str(),
            _ => e.key.as_str(),
        })
    }

    /// Canonical float entries (what a backend loads; index buffers are left out).
    pub fn float_entries(&self) -> impl Iterator<Item = &SchemaEntry> {
        self.canonical().filter(|e| e.is_float())
    }

    /// Total number of elements over canonical entries.
    pub fn canonical_elements(&self) -> usize {
        self.canonical()
            .map(|e| e.shape.iter().product::<usize>())
            .sum()
    }
}

/// Formats a shape as the goldens do: `64,3,7,7`.
pub fn shape_to_string(shape: &[usize]) -> String {
    shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r50_counts() {
        let s = WeightSchema::new(&FocusDetrConfig::default());
        assert_eq!(s.entries().len(), 705);
        assert_eq!(s.canonical().count(), 625);
        assert_eq!(s.aliases().count(), 80);
        let params: usize = s
            .canonical()
            .filter(|e| e.kind == EntryKind::Parameter)
            .map(|e| e.shape.iter().product::<usize>())
            .sum();
        assert_eq!(params, 49_339_920);
        assert_eq!(s.canonical_elements() - params, 106_240);
    }

    #[test]
    fn swin_counts() {
        // The official state_dicts (tests/data/golden_swin/*_keys.txt): canonical keys include
        // one int64 relative_position_index per block.
        for (preset, canonical, blocks) in [
            ("swin_tiny_224_4scale_36ep", 547, 12),
            ("swin_base_384_4scale_36ep", 715, 24),
        ] {
            let s = WeightSchema::new(&FocusDetrConfig::preset(preset).unwrap());
            assert_eq!(s.canonical().count(), canonical, "{preset}");
            assert_eq!(s.aliases().count(), 80, "{preset}");
            let index = s.canonical().filter(|e| !e.is_float()).count();
            assert_eq!(index, blocks, "{preset}");
            assert_eq!(s.float_entries().count(), canonical - blocks, "{preset}");
        }
    }

    #[test]
    fn r101_counts() {
        let s = WeightSchema::new(&FocusDetrConfig::preset("r101_4scale_36ep").unwrap());
        assert_eq!(s.entries().len(), 960);
        assert_eq!(s.canonical().count(), 880);
        let params: usize = s
            .canonical()
            .filter(|e| e.kind == EntryKind::Parameter)
            .map(|e| e.shape.iter().product::<usize>())
            .sum();
        assert_eq!(params, 68_279_824);
    }
}
