//! The whole checkpoint as one typed tree of keys, built from a configuration.

use super::layers::{
    Bottleneck, ConvBn, ConvGn, DecoderLayer, EncoderLayer, Ffn, Linear, MaskPredictor, Mlp,
    MsDeformAttn, MultiheadAttention, Neck, Norm, ResNet, Transformer,
};
use super::swin::Swin;
use super::tree::{EntryKind, Param, Path, SchemaEntry, Visit};
use crate::config::{BackboneConfig, FocusDetrConfig, ResNetConfig, BACKBONE_LEVELS};

/// The backbone's keys (`backbone`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backbone {
    /// detectron2 ResNet.
    Resnet(ResNet),
    /// detectron2 SwinTransformer.
    Swin(Swin),
}

impl Visit for Backbone {
    fn visit(&self, out: &mut Vec<SchemaEntry>) {
        match self {
            Backbone::Resnet(r) => r.visit(out),
            Backbone::Swin(s) => s.visit(out),
        }
    }
}

/// The whole checkpoint as a typed tree of keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FocusDetrKeys {
    /// ResNet or Swin backbone.
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
        let b = Path::root("backbone");
        let backbone = match &cfg.backbone {
            BackboneConfig::Resnet(r) => Backbone::Resnet(resnet_keys(&b, r)),
            BackboneConfig::Swin(s) => Backbone::Swin(Swin::new(&b, s)),
        };
        let in_channels = cfg.backbone.out_channels();

        let n = Path::root("neck");
        let neck = Neck {
            convs: in_channels
                .iter()
                .enumerate()
                .map(|(l, &cin)| ConvGn::new(&n.child("convs").child(l), d, cin, 1, 1))
                .collect(),
            extra_convs: (0..t.num_feature_levels - BACKBONE_LEVELS)
                .map(|l| {
                    // The first extra level reads the raw last backbone output.
                    let cin = if l == 0 {
                        in_channels[BACKBONE_LEVELS - 1]
                    } else {
                        d
                    };
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

/// The keys of a detectron2 ResNet under `backbone`.
fn resnet_keys(b: &Path, bb: &ResNetConfig) -> ResNet {
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
    ResNet {
        stem: ConvBn::new(&b.child("stem").child("conv1"), stem_ch, 3, 7, 2),
        stages,
    }
}
