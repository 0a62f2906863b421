//! The keys of each layer kind (linear, norms, convolutions, attention, FFN, encoder and decoder
//! layers, the backbone and the transformer), named as the official checkpoint names them.

use super::tree::{visit_fields, Param, Path, SchemaEntry, Visit};

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
    pub(super) fn new(p: &Path, out: usize, inp: usize) -> Self {
        Self::with_weight_shape(p, &[out, inp])
    }
    fn with_weight_shape(p: &Path, shape: &[usize]) -> Self {
        Linear {
            weight: p.param("weight", shape),
            bias: p.param("bias", &shape[..1]),
        }
    }
    /// The same tensors under another module path (for alias keys).
    pub(super) fn renamed(&self, p: &Path) -> Linear {
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
    pub(super) fn new(p: &Path, c: usize) -> Self {
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
    pub(super) fn new(p: &Path, out: usize, inp: usize, k: usize, stride: usize) -> Self {
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
pub struct ResNet {
    /// 7×7 stride-2 stem convolution (followed by ReLU and a 3×3 stride-2 max-pool).
    pub stem: ConvBn,
    /// Stages res2..res5.
    pub stages: Vec<Vec<Bottleneck>>,
}

impl Visit for ResNet {
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
    pub(super) fn new(p: &Path, out: usize, inp: usize, k: usize, stride: usize) -> Self {
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
    pub(super) fn new(p: &Path, d: usize) -> Self {
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
    pub(super) fn new(p: &Path, t: &crate::config::TransformerConfig) -> Self {
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
    pub(super) fn new(p: &Path, d: usize, hidden: usize) -> Self {
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
    pub(super) fn new(p: &Path, dims: &[usize]) -> Self {
        let l = p.child("layers");
        Mlp {
            layers: dims
                .windows(2)
                .enumerate()
                .map(|(i, w)| Linear::new(&l.child(i), w[1], w[0]))
                .collect(),
        }
    }
    pub(super) fn renamed(&self, p: &Path) -> Mlp {
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
    pub(super) fn new(p: &Path, d: usize, h: usize) -> Self {
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
