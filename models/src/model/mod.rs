//! The Focus-DETR forward pass, written once against [`Backend`]. Submodules mirror the
//! checkpoint: `backbone`, `neck`, the token layout (`levels`), the foreground token selector
//! (`fts`), `encoder`, two-stage selection and `decoder`, and post-processing.

pub mod backbone;
pub mod decoder;
pub mod encoder;
pub mod fts;
pub mod layers;
pub mod levels;
pub mod neck;
pub mod selections;
pub mod swin;

use std::collections::BTreeMap;

use crate::backend::{Backend, ModelError, Result};
use crate::config::FocusDetrConfig;
use crate::schema::FocusDetrKeys;

/// Collects named intermediate tensors when debugging (names as in the goldens).
pub struct Capture<B: Backend> {
    enabled: bool,
    items: Vec<(String, B::Tensor)>,
}

impl<B: Backend> Capture<B> {
    /// A capture that records (`enabled`) or ignores everything.
    pub fn new(enabled: bool) -> Self {
        Capture {
            enabled,
            items: Vec::new(),
        }
    }

    /// Records `t` under `name`.
    pub fn put(&mut self, name: impl Into<String>, t: &B::Tensor) {
        if self.enabled {
            self.items.push((name.into(), t.clone()));
        }
    }

    /// Records the value of `f` under `name`; `f` runs only when recording.
    pub fn put_with(
        &mut self,
        name: impl Into<String>,
        f: impl FnOnce() -> Result<B::Tensor>,
    ) -> Result<()> {
        if self.enabled {
            self.items.push((name.into(), f()?));
        }
        Ok(())
    }

    /// The recorded tensors, in recording order.
    pub fn into_items(self) -> Vec<(String, B::Tensor)> {
        self.items
    }
}

/// Options of a forward pass.
pub struct ForwardOptions<T> {
    /// Record intermediate tensors.
    pub debug: bool,
    /// Forced selections by name ([`selections`]: `enc_topk_idx_l` [B, k_l],
    /// `enc_oesm_token_idx_l` [B, object_tokens], `topk_proposals` [B, num_queries]; int64 token
    /// indices, rows of −1 keep the model's own): the model uses them instead of its own, so a
    /// run can be compared exactly with a reference whose selections differ at a near-tie.
    pub force: BTreeMap<String, T>,
    /// Deviation from the official code: when an encoder layer selects fewer tokens than
    /// `focus.object_tokens`, use all of them as object tokens instead of failing.
    pub clamp_object_tokens: bool,
    /// Each image's original (height, width), int64 [B, 2]: `boxes_xyxy` are scaled to it
    /// instead of the input size.
    pub orig_sizes: Option<T>,
}

impl<T> Default for ForwardOptions<T> {
    fn default() -> Self {
        ForwardOptions {
            debug: false,
            force: BTreeMap::new(),
            clamp_object_tokens: false,
            orig_sizes: None,
        }
    }
}

/// Model outputs. Post-processed boxes are in input-pixel coordinates, not clipped.
pub struct Outputs<B: Backend> {
    /// Final class logits [B, Q, classes].
    pub pred_logits: B::Tensor,
    /// Final boxes (cx, cy, w, h), normalised [B, Q, 4].
    pub pred_boxes: B::Tensor,
    /// Top `num_select` scores over queries × classes [B, S].
    pub scores: B::Tensor,
    /// Their class indices [B, S].
    pub labels: B::Tensor,
    /// Their boxes (x1, y1, x2, y2) in input pixels [B, S, 4].
    pub boxes_xyxy: B::Tensor,
    /// Intermediates (with `debug`), named as in the goldens.
    pub debug: Vec<(String, B::Tensor)>,
}

/// Focus-DETR bound to a config and its checkpoint keys.
pub struct FocusDetr {
    /// The configuration.
    pub cfg: FocusDetrConfig,
    /// The checkpoint keys of that configuration.
    pub keys: FocusDetrKeys,
}

impl FocusDetr {
    /// The model of `cfg`.
    pub fn new(cfg: FocusDetrConfig) -> Self {
        let keys = FocusDetrKeys::new(&cfg);
        FocusDetr { cfg, keys }
    }

    /// Runs the model on normalised images [B, 3, H, W].
    pub fn forward<B: Backend>(
        &self,
        b: &B,
        images: &B::Tensor,
        opts: &ForwardOptions<B::Tensor>,
    ) -> Result<Outputs<B>> {
        let cfg = &self.cfg;
        let keys = &self.keys;
        if let Some(name) = opts
            .force
            .keys()
            .find(|n| !selections::is_selection(cfg, n))
        {
            return Err(ModelError::Input(format!(
                "`{name}` is not a selection of this model; forcible selections: {}",
                selections::names(cfg).join(", ")
            )));
        }
        let forced = |name: &str| opts.force.get(name);
        let mut cap = Capture::<B>::new(opts.debug);
        let feats = backbone::forward(b, cfg, &keys.backbone, images, &mut cap)?;
        let neck = neck::forward(b, cfg, &keys.neck, &feats)?;
        for (i, n) in neck.iter().enumerate() {
            cap.put(format!("neck_{i}"), n);
        }
        let lv = levels::build(b, cfg, &keys.transformer, &neck)?;
        let flat_shapes: Vec<B::Dim> = lv
            .shapes
            .iter()
            .flat_map(|(h, w)| [h.clone(), w.clone()])
            .collect();
        cap.put_with("spatial_shapes", || {
            let t = b.dims_to_i64(&flat_shapes)?;
            b.reshape(&t, &[None, Some(b.dim_const(2))])
        })?;
        cap.put_with("level_start_index", || {
            b.dims_to_i64(&lv.starts[..lv.shapes.len()])
        })?;
        cap.put("query_pos", &lv.pos);

        // Foreground scores, token budget and the nested per-layer selections.
        let fg = fts::foreground_logits(b, cfg, &keys.transformer, &lv)?;
        cap.put("fg_logits", &fg);
        let (budget, ks) = fts::budgets(b, cfg, lv.num_tokens())?;
        self.check_object_tokens(b, &lv, &ks, opts.clamp_object_tokens)?;
        cap.put_with("focus_token_num", || {
            b.dims_to_i64(std::slice::from_ref(&budget))
        })?;
        cap.put_with("enc_k_per_layer", || b.dims_to_i64(&ks))?;
        let token_sets = ks
            .iter()
            .enumerate()
            .map(|(l, k)| {
                // Only the set matters: every selected token is gathered, updated and scattered
                // back, and the object tokens are re-ranked by their own score.
                let own = b.topk_set(&fg, k)?;
                match forced(&selections::encoder_tokens(l)) {
                    Some(f) => b.select_nonneg(f, &own),
                    None => Ok(own),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let forced_objects: Vec<Option<&B::Tensor>> = (0..ks.len())
            .map(|l| forced(&selections::object_tokens(l)))
            .collect();
        for (l, s) in token_sets.iter().enumerate() {
            cap.put(selections::encoder_tokens(l), s);
        }
        let clamped = self.object_token_cfg(b, &ks, opts.clamp_object_tokens);
        let sel = encoder::Selections {
            tokens: &token_sets,
            forced_objects: &forced_objects,
        };
        let memory = encoder::forward(b, &clamped, keys, &lv, &fg, &sel, &mut cap)?;
        cap.put("memory", &memory);

        let props = decoder::two_stage(
            b,
            cfg,
            keys,
            &lv,
            &memory,
            forced(selections::PROPOSALS),
            &mut cap,
        )?;
        cap.put(selections::PROPOSALS, &props.indices);
        cap.put("init_reference", &props.reference);
        let dec = decoder::forward(b, cfg, keys, &lv, &memory, &props.reference, &mut cap)?;

        let (h, w) = (b.dim(images, 2)?, b.dim(images, 3)?);
        let (scores, labels, boxes_xyxy) = self.postprocess(
            b,
            &dec.logits,
            &dec.boxes,
            (&h, &w),
            opts.orig_sizes.as_ref(),
        )?;
        Ok(Outputs {
            pred_logits: dec.logits,
            pred_boxes: dec.boxes,
            scores,
            labels,
            boxes_xyxy,
            debug: cap.into_items(),
        })
    }

    /// Fails with a clear message when the last cascade layer selects fewer tokens than the
    /// object-token count (the official code fails there too), unless clamping was asked for.
    fn check_object_tokens<B: Backend>(
        &self,
        b: &B,
        lv: &levels::Levels<B>,
        ks: &[B::Dim],
        clamp: bool,
    ) -> Result<()> {
        let smallest = ks.iter().filter_map(|k| b.dim_value(k)).min();
        match b.dim_value(lv.num_tokens()) {
            Some(n) if smallest.is_some() && !clamp => self
                .cfg
                .check_token_count(n as usize)
                .map_err(ModelError::Input),
            _ => Ok(()),
        }
    }

    /// The config the encoder runs with: with clamping, the object-token count is capped by the
    /// smallest layer's token count.
    fn object_token_cfg<B: Backend>(&self, b: &B, ks: &[B::Dim], clamp: bool) -> FocusDetrConfig {
        let mut cfg = self.cfg.clone();
        if clamp {
            if let Some(k) = ks.iter().filter_map(|k| b.dim_value(k)).min() {
                cfg.focus.object_tokens = cfg.focus.object_tokens.min(k.max(1) as usize);
            }
        }
        cfg
    }

    /// Top `num_select` (score, class, box) over queries × classes, boxes as (x1, y1, x2, y2)
    /// scaled to the input size.
    fn postprocess<B: Backend>(
        &self,
        b: &B,
        logits: &B::Tensor,
        boxes: &B::Tensor,
        (h, w): (&B::Dim, &B::Dim),
        orig_sizes: Option<&B::Tensor>,
    ) -> Result<(B::Tensor, B::Tensor, B::Tensor)> {
        b.scope("postprocess");
        let nc = self.cfg.heads.num_classes as i64;
        let bs = b.dim(logits, 0)?;
        let prob = b.reshape(&b.sigmoid(logits)?, &[Some(bs), None])?;
        let (scores, idx) = b.topk(&prob, &b.dim_const(self.cfg.heads.num_select as i64))?;
        let query = b.floor_div_scalar(&idx, nc)?;
        let labels = b.rem_scalar(&idx, nc)?;
        let sel = b.gather_rows(boxes, &query)?;
        let part = |i: i64| b.slice(&sel, 2, &b.dim_const(i), Some(&b.dim_const(i + 1)));
        let (cx, cy, bw, bh) = (part(0)?, part(1)?, part(2)?, part(3)?);
        let hw = b.mul_scalar(&bw, 0.5)?;
        let hh = b.mul_scalar(&bh, 0.5)?;
        let xyxy = b.concat(
            &[
                b.sub(&cx, &hw)?,
                b.sub(&cy, &hh)?,
                b.add(&cx, &hw)?,
                b.add(&cy, &hh)?,
            ],
            2,
        )?;
        let scale = match orig_sizes {
            // [B, 2] (h, w) → [B, 1, 4] (w, h, w, h)
            Some(sizes) => {
                let sizes = b.to_f32(sizes)?;
                let (oh, ow) = (
                    b.slice(&sizes, 1, &b.dim_const(0), Some(&b.dim_const(1)))?,
                    b.slice(&sizes, 1, &b.dim_const(1), Some(&b.dim_const(2)))?,
                );
                b.unsqueeze(&b.concat(&[ow.clone(), oh.clone(), ow, oh], 1)?, 1)?
            }
            None => {
                let (fw, fh) = (b.dim_to_f32(w)?, b.dim_to_f32(h)?);
                b.stack(&[fw.clone(), fh.clone(), fw, fh], 0)?
            }
        };
        let xyxy = b.mul(&xyxy, &scale)?;
        b.end_scope();
        Ok((scores, labels, xyxy))
    }
}
