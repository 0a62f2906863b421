//! `backbone` (Swin): detectron2's `SwinTransformer` as Focus-DETR uses it. Patch embedding
//! (zero-padded to the patch size), stages of window attention with relative position bias
//! (odd blocks shift the windows cyclically and mask the wrapped-around pairs with −100),
//! patch merging between stages, and a LayerNorm on each output stage. Every size follows the
//! input, so a traced graph serves every image size: the padding, the shift (slices and a
//! concatenation, no `Roll`) and the mask are computed from the feature map's shape.

use crate::backend::{Backend, Result};
use crate::config::SwinConfig;
use crate::schema::{PatchMerging, Swin, SwinBlock, SwinStage, WindowAttention};

use super::layers::{layer_norm, linear};
use super::Capture;

/// Value the official code writes into the attention mask for pairs of different regions.
const MASK_VALUE: f64 = -100.0;

/// A feature map in token layout: `x` [B, H·W, C] with its H and W.
struct Tokens<B: Backend> {
    x: B::Tensor,
    h: B::Dim,
    w: B::Dim,
}

/// `⌈n / m⌉ · m`.
fn round_up<B: Backend>(b: &B, n: &B::Dim, m: usize) -> Result<B::Dim> {
    let q = b.dim_floor_div(&b.dim_add(n, &b.dim_const(m as i64 - 1))?, m as i64)?;
    b.dim_mul(&q, &b.dim_const(m as i64))
}

/// `torch.roll(x, shifts = −s, dims = axis)` for s ≥ 0: `[x[s:], x[:s]]`; `s < 0` rolls the
/// other way, `[x[n−|s|:], x[:n−|s|]]`.
fn roll<B: Backend>(b: &B, x: &B::Tensor, axis: usize, s: i64) -> Result<B::Tensor> {
    let cut = if s >= 0 {
        b.dim_const(s)
    } else {
        b.dim_add(&b.dim(x, axis)?, &b.dim_const(s))?
    };
    let head = b.slice(x, axis, &b.dim_const(0), Some(&cut))?;
    let tail = b.slice(x, axis, &cut, None)?;
    b.concat(&[tail, head], axis)
}

/// [B, Hp, Wp, C] → [B·nW, w·w, C], windows in row-major order of the window grid.
fn window_partition<B: Backend>(
    b: &B,
    x: &B::Tensor,
    hp: &B::Dim,
    wp: &B::Dim,
    w: usize,
) -> Result<B::Tensor> {
    let (bs, c) = (b.dim(x, 0)?, b.dim(x, 3)?);
    let wd = b.dim_const(w as i64);
    let grid = |n: &B::Dim| b.dim_floor_div(n, w as i64);
    let t = b.reshape(
        x,
        &[
            Some(bs),
            Some(grid(hp)?),
            Some(wd.clone()),
            Some(grid(wp)?),
            Some(wd.clone()),
            Some(c.clone()),
        ],
    )?;
    let t = b.permute(&t, &[0, 1, 3, 2, 4, 5])?;
    b.reshape(&t, &[None, Some(b.dim_const((w * w) as i64)), Some(c)])
}

/// [B·nW, w·w, C] → [B, Hp, Wp, C] (the inverse of [`window_partition`]).
fn window_reverse<B: Backend>(
    b: &B,
    x: &B::Tensor,
    hp: &B::Dim,
    wp: &B::Dim,
    w: usize,
) -> Result<B::Tensor> {
    let c = b.dim(x, 2)?;
    let wd = b.dim_const(w as i64);
    let grid = |n: &B::Dim| b.dim_floor_div(n, w as i64);
    let t = b.reshape(
        x,
        &[
            None,
            Some(grid(hp)?),
            Some(grid(wp)?),
            Some(wd.clone()),
            Some(wd),
            Some(c.clone()),
        ],
    )?;
    let t = b.permute(&t, &[0, 1, 3, 2, 4, 5])?;
    b.reshape(&t, &[None, Some(hp.clone()), Some(wp.clone()), Some(c)])
}

/// Region of each position 0..n of a padded side after the cyclic shift, as a float [n]: 0
/// before n − w, 1 before n − s, 2 after (the official `img_mask` slices).
fn regions<B: Backend>(b: &B, n: &B::Dim, w: usize, s: usize) -> Result<B::Tensor> {
    // i − n runs over −n … −1; the region is the number of bounds −w, −s it has reached.
    let rel = b.sub(&b.arange_f32(n)?, &b.dim_to_f32(n)?)?;
    let past = |bound: usize| b.to_f32(&b.gt_scalar(&rel, -(bound as f64) - 0.5)?);
    b.add(&past(w)?, &past(s)?)
}

/// The shifted-window attention mask [nW, w², w²]: 0 within a region, −100 across regions.
fn shift_mask<B: Backend>(
    b: &B,
    hp: &B::Dim,
    wp: &B::Dim,
    w: usize,
    s: usize,
) -> Result<B::Tensor> {
    let rows = b.unsqueeze(&b.mul_scalar(&regions(b, hp, w, s)?, 3.0)?, 1)?; // [Hp, 1]
    let cols = b.unsqueeze(&regions(b, wp, w, s)?, 0)?; // [1, Wp]
    let ids = b.add(&rows, &cols)?; // [Hp, Wp]: 3·row region + column region
    let ids = b.reshape(
        &ids,
        &[
            Some(b.dim_const(1)),
            Some(hp.clone()),
            Some(wp.clone()),
            Some(b.dim_const(1)),
        ],
    )?;
    let win = window_partition(b, &ids, hp, wp, w)?; // [nW, w², 1]
    let n2 = b.dim_const((w * w) as i64);
    let win = b.reshape(&win, &[None, Some(n2)])?;
    // mask[n, i, j] = id[n, j] − id[n, i], non-zero → −100 (ids are small exact integers).
    let diff = b.sub(&b.unsqueeze(&win, 1)?, &b.unsqueeze(&win, 2)?)?;
    let differs = b.gt_scalar(&b.mul(&diff, &diff)?, 0.5)?;
    b.mul_scalar(&b.to_f32(&differs)?, MASK_VALUE)
}

/// Window attention on [B·nW, N, C] windows (N = w²), with the shift mask when given.
fn window_attention<B: Backend>(
    b: &B,
    x: &B::Tensor,
    a: &WindowAttention,
    w: usize,
    mask: Option<&B::Tensor>,
) -> Result<B::Tensor> {
    b.scope("attn");
    let (bw, c) = (b.dim(x, 0)?, b.dim(x, 2)?);
    let n = (w * w) as i64;
    let heads = a.heads;
    let hd = a.qkv.weight.shape[1] / heads;
    let nd = b.dim_const(n);
    let hdim = b.dim_const(hd as i64);
    let nh = b.dim_const(heads as i64);
    let qkv = linear(b, x, &a.qkv)?; // [B', N, 3C]
    let qkv = b.reshape(
        &qkv,
        &[
            Some(bw.clone()),
            Some(nd.clone()),
            Some(b.dim_const(3)),
            Some(nh.clone()),
            Some(hdim.clone()),
        ],
    )?;
    // Part i of (q, k, v) as [B'·heads, N, hd].
    let part = |i: i64| -> Result<B::Tensor> {
        let t = b.slice(&qkv, 2, &b.dim_const(i), Some(&b.dim_const(i + 1)))?;
        let t = b.reshape(
            &t,
            &[
                Some(bw.clone()),
                Some(nd.clone()),
                Some(nh.clone()),
                Some(hdim.clone()),
            ],
        )?;
        let t = b.permute(&t, &[0, 2, 1, 3])?;
        b.reshape(&t, &[None, Some(nd.clone()), Some(hdim.clone())])
    };
    let q = b.mul_scalar(&part(0)?, (hd as f64).powf(-0.5))?;
    let attn = b.bmm(&q, &b.permute(&part(1)?, &[0, 2, 1])?)?; // [B'·heads, N, N]
                                                               // Relative position bias: table rows by the fixed index, [heads, N, N].
    let index = crate::schema::relative_position_index(w);
    let bias = b.take(&b.param(&a.relative_position_bias_table)?, 0, &index)?;
    let bias = b.permute(
        &b.reshape(
            &bias,
            &[Some(nd.clone()), Some(nd.clone()), Some(nh.clone())],
        )?,
        &[2, 0, 1],
    )?;
    let attn = b.reshape(
        &attn,
        &[
            Some(bw.clone()),
            Some(nh.clone()),
            Some(nd.clone()),
            Some(nd.clone()),
        ],
    )?;
    let mut attn = b.add(&attn, &bias)?; // [B', heads, N, N]
    if let Some(m) = mask {
        // [B, nW, heads, N, N] + mask [1, nW, 1, N, N].
        let nw = b.dim(m, 0)?;
        let t = b.reshape(
            &attn,
            &[
                None,
                Some(nw),
                Some(nh.clone()),
                Some(nd.clone()),
                Some(nd.clone()),
            ],
        )?;
        let m = b.unsqueeze(&b.unsqueeze(m, 1)?, 0)?;
        attn = b.reshape(
            &b.add(&t, &m)?,
            &[
                Some(bw.clone()),
                Some(nh.clone()),
                Some(nd.clone()),
                Some(nd.clone()),
            ],
        )?;
    }
    let attn = b.softmax(&attn, 3)?;
    let attn = b.reshape(&attn, &[None, Some(nd.clone()), Some(nd.clone())])?;
    let out = b.bmm(&attn, &part(2)?)?; // [B'·heads, N, hd]
    let out = b.reshape(&out, &[Some(bw), Some(nh), Some(nd.clone()), Some(hdim)])?;
    let out = b.permute(&out, &[0, 2, 1, 3])?;
    let out = b.reshape(&out, &[None, Some(nd), Some(c)])?;
    let out = linear(b, &out, &a.proj)?;
    b.end_scope();
    Ok(out)
}

/// One block: `x + attn(norm1(x))` over (shifted) windows, then `x + mlp(norm2(x))`.
fn block<B: Backend>(
    b: &B,
    t: &Tokens<B>,
    k: &SwinBlock,
    cfg: &SwinConfig,
    mask: &B::Tensor,
) -> Result<B::Tensor> {
    let (w, eps) = (cfg.window_size, cfg.layer_norm_eps);
    let (bs, c) = (b.dim(&t.x, 0)?, b.dim(&t.x, 2)?);
    let x = layer_norm(b, &t.x, &k.norm1, eps)?;
    let x = b.reshape(
        &x,
        &[
            Some(bs.clone()),
            Some(t.h.clone()),
            Some(t.w.clone()),
            Some(c.clone()),
        ],
    )?;
    // Pad H and W to multiples of the window (zeros after the norm, as F.pad does).
    let (hp, wp) = (round_up(b, &t.h, w)?, round_up(b, &t.w, w)?);
    let x = b.pad_end(&b.pad_end(&x, 1, &hp)?, 2, &wp)?;
    let s = k.shift as i64;
    let shifted = if s > 0 {
        roll(b, &roll(b, &x, 1, s)?, 2, s)?
    } else {
        x
    };
    let win = window_partition(b, &shifted, &hp, &wp, w)?;
    let att = window_attention(b, &win, &k.attn, w, (s > 0).then_some(mask))?;
    let mut x = window_reverse(b, &att, &hp, &wp, w)?;
    if s > 0 {
        x = roll(b, &roll(b, &x, 1, -s)?, 2, -s)?;
    }
    // Crop the padding (a full-range slice when there is none).
    let zero = b.dim_const(0);
    let x = b.slice(&b.slice(&x, 1, &zero, Some(&t.h))?, 2, &zero, Some(&t.w))?;
    let x = b.reshape(&x, &[Some(bs), None, Some(c)])?;
    let x = b.add(&t.x, &x)?;
    b.scope("mlp");
    let h = b.gelu(&linear(b, &layer_norm(b, &x, &k.norm2, eps)?, &k.fc1)?)?;
    let y = b.add(&x, &linear(b, &h, &k.fc2)?)?;
    b.end_scope();
    Ok(y)
}

/// Patch merging: pad to even sides, concatenate the four 2×2 phases (x0, x1, x2, x3 =
/// (even, even), (odd, even), (even, odd), (odd, odd) rows/columns), LayerNorm, reduce 4C → 2C.
fn merge<B: Backend>(b: &B, t: &Tokens<B>, k: &PatchMerging, eps: f64) -> Result<Tokens<B>> {
    b.scope("downsample");
    let (bs, c) = (b.dim(&t.x, 0)?, b.dim(&t.x, 2)?);
    let x = b.reshape(
        &t.x,
        &[
            Some(bs.clone()),
            Some(t.h.clone()),
            Some(t.w.clone()),
            Some(c),
        ],
    )?;
    let x = b.pad_end(
        &b.pad_end(&x, 1, &round_up(b, &t.h, 2)?)?,
        2,
        &round_up(b, &t.w, 2)?,
    )?;
    let phase = |r: usize, col: usize| b.slice_step(&b.slice_step(&x, 1, r, 2)?, 2, col, 2);
    let x = b.concat(&[phase(0, 0)?, phase(1, 0)?, phase(0, 1)?, phase(1, 1)?], 3)?;
    let c4 = b.dim(&x, 3)?;
    let x = b.reshape(&x, &[Some(bs), None, Some(c4)])?;
    let x = layer_norm(b, &x, &k.norm, eps)?;
    let x = b.linear(&x, &b.param(&k.reduction)?, None)?;
    b.end_scope();
    let half = |n: &B::Dim| b.dim_floor_div(&b.dim_add(n, &b.dim_const(1))?, 2);
    Ok(Tokens {
        x,
        h: half(&t.h)?,
        w: half(&t.w)?,
    })
}

/// One stage: its blocks (sharing one shift mask), then patch merging if any. Returns the
/// stage output (before merging) and the next stage's input.
fn stage<B: Backend>(
    b: &B,
    t: Tokens<B>,
    k: &SwinStage,
    cfg: &SwinConfig,
) -> Result<(Tokens<B>, Option<Tokens<B>>)> {
    let w = cfg.window_size;
    let (hp, wp) = (round_up(b, &t.h, w)?, round_up(b, &t.w, w)?);
    let mask = shift_mask(b, &hp, &wp, w, cfg.shift_size())?;
    let mut x = t.x;
    for (j, blk) in k.blocks.iter().enumerate() {
        b.scope(&format!("blocks.{j}"));
        let cur = Tokens {
            x,
            h: t.h.clone(),
            w: t.w.clone(),
        };
        x = block(b, &cur, blk, cfg, &mask)?;
        b.end_scope();
    }
    let out = Tokens { x, h: t.h, w: t.w };
    let next = match &k.downsample {
        Some(d) => Some(merge(b, &out, d, cfg.layer_norm_eps)?),
        None => None,
    };
    Ok((out, next))
}

/// Runs the Swin backbone on normalised images [B, 3, H, W]; returns the normed outputs of the
/// configured stages, each [B, C_i, H_i, W_i].
pub fn forward<B: Backend>(
    b: &B,
    cfg: &SwinConfig,
    k: &Swin,
    images: &B::Tensor,
    cap: &mut Capture<B>,
) -> Result<Vec<B::Tensor>> {
    let eps = cfg.layer_norm_eps;
    let p = cfg.patch_size;
    b.scope("patch_embed");
    let (h, w) = (b.dim(images, 2)?, b.dim(images, 3)?);
    // W is padded first, then H, both with zeros at the end (as PatchEmbed does).
    let x = b.pad_end(images, 3, &round_up(b, &w, p)?)?;
    let x = b.pad_end(&x, 2, &round_up(b, &h, p)?)?;
    let x = b.conv2d(
        &x,
        &b.param(&k.patch_proj.weight)?,
        Some(&b.param(&k.patch_proj.bias)?),
        p,
        0,
    )?; // [B, E, Wh, Ww]
    let (bs, e, gh, gw) = (b.dim(&x, 0)?, b.dim(&x, 1)?, b.dim(&x, 2)?, b.dim(&x, 3)?);
    let tokens = |x: &B::Tensor| -> Result<B::Tensor> {
        let t = b.reshape(x, &[Some(bs.clone()), Some(e.clone()), None])?;
        b.permute(&t, &[0, 2, 1])
    };
    let x = layer_norm(b, &tokens(&x)?, &k.patch_norm, eps)?;
    b.end_scope();
    cap.put_with("patch_embed", || {
        let t = b.permute(&x, &[0, 2, 1])?;
        b.reshape(
            &t,
            &[
                Some(bs.clone()),
                Some(e.clone()),
                Some(gh.clone()),
                Some(gw.clone()),
            ],
        )
    })?;
    let mut cur = Some(Tokens { x, h: gh, w: gw });
    let mut outs = Vec::new();
    for (i, st) in k.stages.iter().enumerate() {
        let Some(t) = cur.take() else { break };
        b.scope(&format!("layers.{i}"));
        let (out, next) = stage(b, t, st, cfg)?;
        b.end_scope();
        if let Some((_, norm)) = k.out_norms.iter().find(|(s, _)| *s == i) {
            b.scope(&format!("norm{i}"));
            let y = layer_norm(b, &out.x, norm, eps)?;
            let c = b.dim(&y, 2)?;
            let y = b.reshape(&y, &[Some(bs.clone()), Some(out.h), Some(out.w), Some(c)])?;
            outs.push(b.permute(&y, &[0, 3, 1, 2])?);
            b.end_scope();
        }
        cur = next;
    }
    Ok(outs)
}
