//! The weight schema: every checkpoint key of the official detrex model with its shape, generated
//! from a [`FocusDetrConfig`]. This is the only place checkpoint names are spelled. The model reads
//! its tensors through the typed tree ([`FocusDetrKeys`]); the flat list in state_dict order,
//! aliases included, is derived from the same tree.

use crate::config::FocusDetrConfig;

/// Whether a tensor is a trainable parameter, a buffer, or a second name of another tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// An `nn.Parameter`.
    Parameter,
    /// A registered buffer (FrozenBN statistics and affine terms).
    Buffer,
    /// The same tensor as `canonical`, registered under a second module path.
    Alias {
        /// The canonical key.
        canonical: String,
    },
}

/// One checkpoint tensor: its key and shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Checkpoint key, e.g. `backbone.res2.0.conv1.weight`.
    pub key: String,
    /// Shape in elements.
    pub shape: Vec<usize>,
    /// Parameter or buffer.
    pub buffer: bool,
}

/// One row of the flat schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaEntry {
    /// Checkpoint key.
    pub key: String,
    /// Shape in elements.
    pub shape: Vec<usize>,
    /// Parameter, buffer or alias.
    pub kind: EntryKind,
}

/// Builds keys from module paths.
#[derive(Clone)]
struct Path(String);

impl Path {
    fn root(name: &str) -> Self {
        Path(name.to_string())
    }
    fn child(&self, name: impl std::fmt::Display) -> Self {
        if self.0.is_empty() {
            Path(name.to_string())
        } else {
            Path(format!("{}.{name}", self.0))
        }
    }
    fn param(&self, name: &str, shape: &[usize]) -> Param {
        Param {
            key: self.child(name).0,
            shape: shape.to_vec(),
            buffer: false,
        }
    }
    fn buffer(&self, name: &str, shape: &[usize]) -> Param {
        Param {
            buffer: true,
            ..self.param(name, shape)
        }
    }
}

/// Receives tensors in state_dict order.
trait Visit {
    fn visit(&self, out: &mut Vec<SchemaEntry>);
}

impl Visit for Param {
    fn visit(&self, out: &mut Vec<SchemaEntry>) {
        out.push(SchemaEntry {
            key: self.key.clone(),
            shape: self.shape.clone(),
            kind: if self.buffer {
                EntryKind::Buffer
            } else {
                EntryKind::Parameter
            },
        });
    }
}

impl<T: Visit> Visit for [T] {
    fn visit(&self, out: &mut Vec<SchemaEntry>) {
        self.iter().for_each(|t| t.visit(out));
    }
}

macro_rules! visit_fields {
    ($ty:ty { $($field:ident),* $(,)? }) => {
        impl Visit for $ty {
            fn visit(&self, out: &mut Vec<SchemaEntry>) {
                $( self.$field.visit(out); )*
            }
        }
    };
}

/// `nn.Linear` (also used for biased convolutions: weight + bias).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linear {
    /// [out, in] (or [out, in, kh, kw] for a convolution).
    pub weight: Param,
    /// [out].
    pub bias: Param,
}
visit_fields!(Linear { weight, bias });

impl Linear {
    fn new(p: &Path, out: usize, inp: usize) -> Self {
        Self::with_weight_shape(p, &[out, inp])
    }
    fn with_weight_shape(p: &Path, shape: &[usize]) -> Self {
        Linear {
            weight: p.param("weight", shape),
            bias: p.param("bias", &shape[..1]),
        }
    }
    /// The same tensors under another module path (for alias keys).
    fn renamed(&self, p: &Path) -> Linear {
        Linear::with_weight_shape(p, &self.weight.shape)
    }
}

/// LayerNorm or GroupNorm affine terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Norm {
    /// Scale [C].
    pub weight: Param,
    /// Shift [C].
    pub bias: Param,
}
visit_fields!(Norm { weight, bias });

impl Norm {
    fn new(p: &Path, c: usize) -> Self {
        Norm {
            weight: p.param("weight", &[c]),
            bias: p.param("bias", &[c]),
        }
    }
}

/// detectron2 FrozenBatchNorm2d (all four tensors are buffers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrozenBn {
    /// Scale [C].
    pub weight: Param,
    /// Shift [C].
    pub bias: Param,
    /// Mean [C].
    pub running_mean: Param,
    /// Variance [C].
    pub running_var: Param,
}
visit_fields!(FrozenBn {
    weight,
    bias,
    running_mean,
    running_var
});

/// detectron2 `Conv2d` without bias, with its FrozenBN child `norm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvBn {
    /// [out, in, k, k].
    pub weight: Param,
    /// The norm applied after the convolution.
    pub norm: FrozenBn,
    /// Convolution stride.
    pub stride: usize,
}
visit_fields!(ConvBn { weight, norm });

impl ConvBn {
    fn new(p: &Path, out: usize, inp: usize, k: usize, stride: usize) -> Self {
        let n = p.child("norm");
        ConvBn {
            weight: p.param("weight", &[out, inp, k, k]),
            norm: FrozenBn {
                weight: n.buffer("weight", &[out]),
                bias: n.buffer("bias", &[out]),
                running_mean: n.buffer("running_mean", &[out]),
                running_var: n.buffer("running_var", &[out]),
            },
            stride,
        }
    }
}

/// ResNet bottleneck block (`backbone.resS.i`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bottleneck {
    /// 1×1 projection shortcut (first block of a stage only).
    pub shortcut: Option<ConvBn>,
    /// 1×1 reduce.
    pub conv1: ConvBn,
    /// 3×3, carries the stage stride.
    pub conv2: ConvBn,
    /// 1×1 expand.
    pub conv3: ConvBn,
}

impl Visit for Bottleneck {
    fn visit(&self, out: &mut Vec<SchemaEntry>) {
        if let Some(s) = &self.shortcut {
            s.visit(out);
        }
        self.conv1.visit(out);
        self.conv2.visit(out);
        self.conv3.visit(out);
    }
}

/// detectron2 ResNet (`backbone`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backbone {
    /// 7×7 stride-2 stem convolution (followed by ReLU and a 3×3 stride-2 max-pool).
    pub stem: ConvBn,
    /// Stages res2..res5.
    pub stages: Vec<Vec<Bottleneck>>,
}

impl Visit for Backbone {
    fn visit(&self, out: &mut Vec<SchemaEntry>) {
        self.stem.visit(out);
        self.stages.iter().for_each(|s| s.visit(out));
    }
}

/// detrex ConvNormAct in the neck: biased conv + GroupNorm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvGn {
    /// Convolution weight [out, in, k, k] and bias [out].
    pub conv: Linear,
    /// GroupNorm affine terms.
    pub norm: Norm,
    /// Convolution stride.
    pub stride: usize,
}
visit_fields!(ConvGn { conv, norm });

impl ConvGn {
    fn new(p: &Path, out: usize, inp: usize, k: usize, stride: usize) -> Self {
        ConvGn {
            conv: Linear::with_weight_shape(&p.child("conv"), &[out, inp, k, k]),
            norm: Norm::new(&p.child("norm"), out),
            stride,
        }
    }
}

/// detrex ChannelMapper (`neck`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neck {
    /// 1×1 maps of res3, res4, res5.
    pub convs: Vec<ConvGn>,
    /// 3×3 stride-2 convs producing the extra levels (from the raw last backbone output).
    pub extra_convs: Vec<ConvGn>,
}
visit_fields!(Neck { convs, extra_convs });

/// `nn.MultiheadAttention` (Q/K/V packed in rows of `in_proj_weight`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiheadAttention {
    /// [3·D, D].
    pub in_proj_weight: Param,
    /// [3·D].
    pub in_proj_bias: Param,
    /// Output projection.
    pub out_proj: Linear,
}
visit_fields!(MultiheadAttention {
    in_proj_weight,
    in_proj_bias,
    out_proj
});

impl MultiheadAttention {
    fn new(p: &Path, d: usize) -> Self {
        MultiheadAttention {
            in_proj_weight: p.param("in_proj_weight", &[3 * d, d]),
            in_proj_bias: p.param("in_proj_bias", &[3 * d]),
            out_proj: Linear::new(&p.child("out_proj"), d, d),
        }
    }
}

/// Multi-scale deformable attention module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsDeformAttn {
    /// Query → offsets [heads·levels·points·2, D].
    pub sampling_offsets: Linear,
    /// Query → attention logits [heads·levels·points, D].
    pub attention_weights: Linear,
    /// Value projection.
    pub value_proj: Linear,
    /// Output projection.
    pub output_proj: Linear,
}
visit_fields!(MsDeformAttn {
    sampling_offsets,
    attention_weights,
    value_proj,
    output_proj
});

impl MsDeformAttn {
    fn new(p: &Path, t: &crate::config::TransformerConfig) -> Self {
        let d = t.embed_dim;
        let hlp = t.num_heads * t.num_feature_levels * t.num_points;
        MsDeformAttn {
            sampling_offsets: Linear::new(&p.child("sampling_offsets"), hlp * 2, d),
            attention_weights: Linear::new(&p.child("attention_weights"), hlp, d),
            value_proj: Linear::new(&p.child("value_proj"), d, d),
            output_proj: Linear::new(&p.child("output_proj"), d, d),
        }
    }
}

/// Transformer FFN: Linear → ReLU → Linear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ffn {
    /// D → hidden.
    pub fc1: Linear,
    /// hidden → D.
    pub fc2: Linear,
}
visit_fields!(Ffn { fc1, fc2 });

impl Ffn {
    fn new(p: &Path, d: usize, hidden: usize) -> Self {
        let layers = p.child("layers");
        Ffn {
            fc1: Linear::new(&layers.child(0).child(0), hidden, d),
            fc2: Linear::new(&layers.child(1), d, hidden),
        }
    }
}

/// Focus-DETR encoder layer (`transformer.encoder.layers.L`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderLayer {
    /// Self-attention among the object tokens (`attentions.0.attn`).
    pub object_attn: MultiheadAttention,
    /// Deformable cross-attention over the neck features (`attentions.1`).
    pub deform_attn: MsDeformAttn,
    /// `ffns.0`.
    pub ffn: Ffn,
    /// `norms.0` (after deformable attention) and `norms.1` (after the FFN).
    pub norms: Vec<Norm>,
    /// `norm2`: LayerNorm applied to the object tokens after their self-attention.
    pub object_norm: Norm,
}
visit_fields!(EncoderLayer {
    object_attn,
    deform_attn,
    ffn,
    norms,
    object_norm
});

/// DINO decoder layer (`transformer.decoder.layers.L`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecoderLayer {
    /// Query self-attention (`attentions.0.attn`).
    pub self_attn: MultiheadAttention,
    /// Deformable cross-attention over the memory (`attentions.1`).
    pub cross_attn: MsDeformAttn,
    /// `ffns.0`.
    pub ffn: Ffn,
    /// `norms.0..2`: after self-attention, cross-attention and FFN.
    pub norms: Vec<Norm>,
}
visit_fields!(DecoderLayer {
    self_attn,
    cross_attn,
    ffn,
    norms
});

/// detrex MLP: Linear layers with ReLU between them (`.layers.i`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mlp {
    /// The linear layers in order.
    pub layers: Vec<Linear>,
}
visit_fields!(Mlp { layers });

impl Mlp {
    fn new(p: &Path, dims: &[usize]) -> Self {
        let l = p.child("layers");
        Mlp {
            layers: dims
                .windows(2)
                .enumerate()
                .map(|(i, w)| Linear::new(&l.child(i), w[1], w[0]))
                .collect(),
        }
    }
    fn renamed(&self, p: &Path) -> Mlp {
        let l = p.child("layers");
        Mlp {
            layers: self
                .layers
                .iter()
                .enumerate()
                .map(|(i, lin)| lin.renamed(&l.child(i)))
                .collect(),
        }
    }
}

/// The foreground score network (`transformer.enc_mask_predictor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskPredictor {
    /// `layer1.0`: input LayerNorm.
    pub norm: Norm,
    /// `layer1.1`: D → hidden, followed by GELU.
    pub fc: Linear,
    /// `layer2.0/2/4`: hidden → hidden/2 → hidden/4 → 1 with GELU between.
    pub score: Vec<Linear>,
}
visit_fields!(MaskPredictor { norm, fc, score });

impl MaskPredictor {
    fn new(p: &Path, d: usize, h: usize) -> Self {
        let l1 = p.child("layer1");
        let l2 = p.child("layer2");
        MaskPredictor {
            norm: Norm::new(&l1.child(0), d),
            fc: Linear::new(&l1.child(1), h, d),
            score: vec![
                Linear::new(&l2.child(0), h / 2, h),
                Linear::new(&l2.child(2), h / 4, h / 2),
                Linear::new(&l2.child(4), 1, h / 4),
            ],
        }
    }
}

/// `transformer`: scalars, encoder, decoder, queries, two-stage projection and score network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transformer {
    /// Top-down modulation strengths, one per level below the coarsest.
    pub alpha: Param,
    /// Learned level embeddings [levels, D].
    pub level_embeds: Param,
    /// Encoder layers.
    pub encoder_layers: Vec<EncoderLayer>,
    /// Decoder layers.
    pub decoder_layers: Vec<DecoderLayer>,
    /// Reference-box sine embedding → query position (`decoder.ref_point_head`).
    pub ref_point_head: Mlp,
    /// Final shared decoder LayerNorm (`decoder.norm`).
    pub decoder_norm: Norm,
    /// Content queries [queries, D].
    pub tgt_embed: Param,
    /// Two-stage / FTS token projection.
    pub enc_output: Linear,
    /// Its LayerNorm.
    pub enc_output_norm: Norm,
    /// Foreground score network.
    pub enc_mask_predictor: MaskPredictor,
}

/// The whole checkpoint as a typed tree of keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FocusDetrKeys {
    /// ResNet backbone.
    pub backbone: Backbone,
    /// ChannelMapper neck.
    pub neck: Neck,
    /// Transformer.
    pub transformer: Transformer,
    /// Class heads: 0..L-1 for decoder layers, L for the encoder/two-stage/MCSP head.
    pub class_embed: Vec<Linear>,
    /// Box heads, indexed like `class_embed`.
    pub bbox_embed: Vec<Mlp>,
    /// Denoising label embedding (training only, but part of the checkpoint).
    pub label_enc: Param,
}

impl FocusDetrKeys {
    /// Builds every key and shape for `cfg`.
    pub fn new(cfg: &FocusDetrConfig) -> Self {
        let t = &cfg.transformer;
        let d = t.embed_dim;
        let bb = &cfg.backbone;
        let b = Path::root("backbone");
        let stem_ch = bb.stem_channels;
        let blocks = bb.stage_blocks().unwrap_or([3, 4, 6, 3]);
        let mut in_ch = stem_ch;
        let stages = (0..4)
            .map(|s| {
                let out = bb.stage_channels(s);
                let width = out / 4;
                let stride = if s == 0 { 1 } else { 2 };
                let sp = b.child(format!("res{}", s + 2));
                (0..blocks[s])
                    .map(|i| {
                        let p = sp.child(i);
                        let (cin, st) = if i == 0 { (in_ch, stride) } else { (out, 1) };
                        let blk = Bottleneck {
                            shortcut: (i == 0)
                                .then(|| ConvBn::new(&p.child("shortcut"), out, cin, 1, st)),
                            conv1: ConvBn::new(&p.child("conv1"), width, cin, 1, 1),
                            conv2: ConvBn::new(&p.child("conv2"), width, width, 3, st),
                            conv3: ConvBn::new(&p.child("conv3"), out, width, 1, 1),
                        };
                        if i + 1 == blocks[s] {
                            in_ch = out;
                        }
                        blk
                    })
                    .collect()
            })
            .collect();
        let backbone = Backbone {
            stem: ConvBn::new(&b.child("stem").child("conv1"), stem_ch, 3, 7, 2),
            stages,
        };

        let n = Path::root("neck");
        let backbone_levels = 3; // res3, res4, res5
        let neck = Neck {
            convs: (0..backbone_levels)
                .map(|l| {
                    ConvGn::new(
                        &n.child("convs").child(l),
                        d,
                        bb.stage_channels(l + 1),
                        1,
                        1,
                    )
                })
                .collect(),
            extra_convs: (0..t.num_feature_levels - backbone_levels)
                .map(|l| {
                    let cin = if l == 0 { bb.stage_channels(3) } else { d };
                    ConvGn::new(&n.child("extra_convs").child(l), d, cin, 3, 2)
                })
                .collect(),
        };

        let tr = Path::root("transformer");
        let enc = tr.child("encoder").child("layers");
        let dec = tr.child("decoder");
        let transformer = Transformer {
            alpha: tr.param("alpha", &[t.num_feature_levels - 1]),
            level_embeds: tr.param("level_embeds", &[t.num_feature_levels, d]),
            encoder_layers: (0..t.num_encoder_layers)
                .map(|l| {
                    let p = enc.child(l);
                    let a = p.child("attentions");
                    EncoderLayer {
                        object_attn: MultiheadAttention::new(&a.child(0).child("attn"), d),
                        deform_attn: MsDeformAttn::new(&a.child(1), t),
                        ffn: Ffn::new(&p.child("ffns").child(0), d, t.ffn_dim),
                        norms: (0..2)
                            .map(|i| Norm::new(&p.child("norms").child(i), d))
                            .collect(),
                        object_norm: Norm::new(&p.child("norm2"), d),
                    }
                })
                .collect(),
            decoder_layers: (0..t.num_decoder_layers)
                .map(|l| {
                    let p = dec.child("layers").child(l);
                    let a = p.child("attentions");
                    DecoderLayer {
                        self_attn: MultiheadAttention::new(&a.child(0).child("attn"), d),
                        cross_attn: MsDeformAttn::new(&a.child(1), t),
                        ffn: Ffn::new(&p.child("ffns").child(0), d, t.ffn_dim),
                        norms: (0..3)
                            .map(|i| Norm::new(&p.child("norms").child(i), d))
                            .collect(),
                    }
                })
                .collect(),
            // Input: the sine embedding of 4 box coordinates, num_pos_feats each.
            ref_point_head: Mlp::new(&dec.child("ref_point_head"), &[4 * (d / 2), d, d]),
            decoder_norm: Norm::new(&dec.child("norm"), d),
            tgt_embed: tr
                .child("tgt_embed")
                .param("weight", &[cfg.heads.num_queries, d]),
            enc_output: Linear::new(&tr.child("enc_output"), d, d),
            enc_output_norm: Norm::new(&tr.child("enc_output_norm"), d),
            enc_mask_predictor: MaskPredictor::new(
                &tr.child("enc_mask_predictor"),
                d,
                cfg.focus.mask_predictor_hidden,
            ),
        };

        let heads = t.num_decoder_layers + 1;
        let nc = cfg.heads.num_classes;
        FocusDetrKeys {
            backbone,
            neck,
            transformer,
            class_embed: (0..heads)
                .map(|i| Linear::new(&Path::root("class_embed").child(i), nc, d))
                .collect(),
            bbox_embed: (0..heads)
                .map(|i| Mlp::new(&Path::root("bbox_embed").child(i), &[d, d, d, 4]))
                .collect(),
            label_enc: Path::root("label_enc").param("weight", &[nc, d]),
        }
    }

    /// The encoder / two-stage / multi-category-score head (the last of `class_embed`).
    pub fn encoder_class_head(&self) -> &Linear {
        &self.class_embed[self.class_embed.len() - 1]
    }

    /// The two-stage box head (the last of `bbox_embed`).
    pub fn encoder_box_head(&self) -> &Mlp {
        &self.bbox_embed[self.bbox_embed.len() - 1]
    }

    /// Every key in the official state_dict order, aliases included.
    pub fn state_dict_entries(&self) -> Vec<SchemaEntry> {
        let mut out = Vec::new();
        let alias = |out: &mut Vec<SchemaEntry>, renamed: &dyn Visit, canonical: &dyn Visit| {
            let (mut a, mut c) = (Vec::new(), Vec::new());
            renamed.visit(&mut a);
            canonical.visit(&mut c);
            out.extend(a.into_iter().zip(c).map(|(a, c)| SchemaEntry {
                kind: EntryKind::Alias { canonical: c.key },
                ..a
            }));
        };
        let enc_head = self.encoder_class_head();
        let n_enc = self.transformer.encoder_layers.len();
        let tr = &self.transformer;

        self.backbone.visit(&mut out);
        self.neck.visit(&mut out);
        tr.alpha.visit(&mut out);
        tr.level_embeds.visit(&mut out);
        tr.encoder_layers.visit(&mut out);
        // The encoder registers the shared two-stage class head once per layer.
        let mcsp = Path::root("transformer.encoder.enhance_MCSP");
        for l in 0..n_enc {
            alias(&mut out, &enc_head.renamed(&mcsp.child(l)), enc_head);
        }
        tr.decoder_layers.visit(&mut out);
        tr.ref_point_head.visit(&mut out);
        tr.decoder_norm.visit(&mut out);
        let dec = Path::root("transformer.decoder");
        for (i, h) in self.class_embed.iter().enumerate() {
            alias(&mut out, &h.renamed(&dec.child("class_embed").child(i)), h);
        }
        for (i, h) in self.bbox_embed.iter().enumerate() {
            alias(&mut out, &h.renamed(&dec.child("bbox_embed").child(i)), h);
        }
        tr.tgt_embed.visit(&mut out);
        tr.enc_output.visit(&mut out);
        tr.enc_output_norm.visit(&mut out);
        tr.enc_mask_predictor.visit(&mut out);
        self.class_embed.visit(&mut out);
        self.bbox_embed.visit(&mut out);
        self.label_enc.visit(&mut out);
        let list = Path::root("enhance_MCSP_layerlist");
        for l in 0..n_enc {
            alias(&mut out, &enc_head.renamed(&list.child(l)), enc_head);
        }
        out
    }
}

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
