//! The CPU kernel of MsDeformAttn ([`crate::decl::MS_DEFORM_ATTN`]).
//!
//! Layout: value [N, S, M, D] keeps each (token, head) D-vector contiguous, so a bilinear corner
//! is one contiguous D-length read; the output row [M·D] of a query is accumulated in place.
//! Queries are split in blocks over the host's thread pool ([`ParallelFor`]); nothing is
//! allocated per sample. On x86-64 the loop is compiled twice and picked at run time: AVX2 with
//! fused multiply-add where the CPU has it, the portable form elsewhere.

use crate::decl::MS_DEFORM_ATTN;
use crate::OpError;

/// Sizes of one MsDeformAttn problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsdaDims {
    /// Batch.
    pub n: usize,
    /// Tokens of all levels together.
    pub s: usize,
    /// Heads.
    pub m: usize,
    /// Channels per head.
    pub d: usize,
    /// Queries.
    pub q: usize,
    /// Levels.
    pub l: usize,
    /// Points per level.
    pub p: usize,
}

fn bad(input: &'static str, message: String) -> OpError {
    OpError::Input {
        op: MS_DEFORM_ATTN.op_type,
        input,
        message,
    }
}

impl MsdaDims {
    /// The sizes from the five inputs' shapes, checked against each other.
    pub fn from_shapes(
        value: &[usize],
        spatial_shapes: &[usize],
        level_start: &[usize],
        loc: &[usize],
        weights: &[usize],
    ) -> Result<Self, OpError> {
        let [n, s, m, d] = value[..] else {
            return Err(bad(
                "value",
                format!("shape {value:?}, expected [N, S, M, D]"),
            ));
        };
        let [l, 2] = spatial_shapes[..] else {
            return Err(bad(
                "spatial_shapes",
                format!("shape {spatial_shapes:?}, expected [L, 2]"),
            ));
        };
        if level_start != [l] {
            return Err(bad(
                "level_start_index",
                format!("shape {level_start:?}, expected [{l}]"),
            ));
        }
        let want_loc = [
            n,
            loc.get(1).copied().unwrap_or(0),
            m,
            l,
            loc.get(4).copied().unwrap_or(0),
            2,
        ];
        if loc.len() != 6 || loc != want_loc {
            return Err(bad(
                "sampling_locations",
                format!("shape {loc:?}, expected [N={n}, Lq, M={m}, L={l}, P, 2]"),
            ));
        }
        let (q, p) = (loc[1], loc[4]);
        if weights != [n, q, m, l, p] {
            return Err(bad(
                "attention_weights",
                format!("shape {weights:?}, expected [{n}, {q}, {m}, {l}, {p}]"),
            ));
        }
        Ok(MsdaDims {
            n,
            s,
            m,
            d,
            q,
            l,
            p,
        })
    }
}

/// Checks the level table: starts are the running sums of H·W, which add up to S.
fn levels(
    dims: &MsdaDims,
    shapes: &[i64],
    starts: &[i64],
) -> Result<Vec<(usize, usize, usize)>, OpError> {
    let mut out = Vec::with_capacity(dims.l);
    let mut next = 0usize;
    for lvl in 0..dims.l {
        let (h, w, st) = (shapes[2 * lvl], shapes[2 * lvl + 1], starts[lvl]);
        if h < 1 || w < 1 {
            return Err(bad(
                "spatial_shapes",
                format!("level {lvl} is {h}×{w}; sizes must be ≥ 1"),
            ));
        }
        if st != next as i64 {
            return Err(bad(
                "level_start_index",
                format!("level {lvl} starts at {st}, expected {next} (the sum of the previous levels' H·W)"),
            ));
        }
        out.push((h as usize, w as usize, next));
        next += (h * w) as usize;
    }
    if next != dims.s {
        return Err(bad(
            "value",
            format!("has {} tokens, the levels add up to {next}", dims.s),
        ));
    }
    Ok(out)
}

/// Runs `body(i)` for every `i` in `0..units`, possibly on several threads at once: the thread
/// pool a kernel borrows from its host (ONNX Runtime's intra-op pool, tract's), so that one pool,
/// not two, shares the cores.
pub type ParallelFor<'a> = &'a dyn Fn(usize, &(dyn Fn(usize) + Sync));

/// [`ParallelFor`] on rayon's current pool (the global one, or the pool it runs inside).
pub fn rayon_parallel_for(units: usize, body: &(dyn Fn(usize) + Sync)) {
    use rayon::prelude::*;
    (0..units).into_par_iter().for_each(body);
}

/// Queries per unit of parallel work: enough to amortise scheduling, few enough to balance.
const QUERIES_PER_UNIT: usize = 16;

/// MsDeformAttn on the CPU: returns the output [N, Lq, M·D], computed on rayon's pool.
pub fn ms_deform_attn(
    value: &[f32],
    spatial_shapes: &[i64],
    level_start_index: &[i64],
    sampling_locations: &[f32],
    attention_weights: &[f32],
    dims: MsdaDims,
) -> Result<Vec<f32>, OpError> {
    let mut out = vec![0f32; dims.n * dims.q * dims.m * dims.d];
    ms_deform_attn_into(
        &mut out,
        MsdaInputs {
            value,
            spatial_shapes,
            level_start_index,
            sampling_locations,
            attention_weights,
        },
        dims,
        &rayon_parallel_for,
    )?;
    Ok(out)
}

/// The five inputs of MsDeformAttn, flat in their declared layouts.
#[derive(Debug, Clone, Copy)]
pub struct MsdaInputs<'a> {
    /// [N, S, M, D].
    pub value: &'a [f32],
    /// [L, 2]: (H, W) per level.
    pub spatial_shapes: &'a [i64],
    /// [L]: first token of each level.
    pub level_start_index: &'a [i64],
    /// [N, Lq, M, L, P, 2]: (x, y) in [0, 1].
    pub sampling_locations: &'a [f32],
    /// [N, Lq, M, L, P].
    pub attention_weights: &'a [f32],
}

/// MsDeformAttn on the CPU into `out` ([N, Lq, M·D], overwritten), with the work split by `par`.
pub fn ms_deform_attn_into(
    out: &mut [f32],
    inputs: MsdaInputs<'_>,
    dims: MsdaDims,
    par: ParallelFor<'_>,
) -> Result<(), OpError> {
    let MsdaDims {
        n,
        s,
        m,
        d,
        q,
        l,
        p,
    } = dims;
    let lv = levels(&dims, inputs.spatial_shapes, inputs.level_start_index)?;
    let expect = |name: &'static str, len: usize, want: usize| {
        if len == want {
            Ok(())
        } else {
            Err(bad(
                name,
                format!("holds {len} values, its shape needs {want}"),
            ))
        }
    };
    expect("value", inputs.value.len(), n * s * m * d)?;
    expect(
        "sampling_locations",
        inputs.sampling_locations.len(),
        n * q * m * l * p * 2,
    )?;
    expect(
        "attention_weights",
        inputs.attention_weights.len(),
        n * q * m * l * p,
    )?;
    if out.len() != n * q * m * d {
        return Err(OpError::Output {
            op: MS_DEFORM_ATTN.op_type,
            message: format!(
                "buffer holds {} values, [N, Lq, M·D] needs {}",
                out.len(),
                n * q * m * d
            ),
        });
    }
    let rows = n * q;
    if out.is_empty() {
        return Ok(());
    }
    let job = Job {
        inputs,
        dims,
        levels: &lv,
    };
    let out_ptr = SharedOut(out.as_mut_ptr());
    let units = rows.div_ceil(QUERIES_PER_UNIT);
    par(units, &|unit| {
        let first = unit * QUERIES_PER_UNIT;
        let last = (first + QUERIES_PER_UNIT).min(rows);
        let row_len = m * d;
        // SAFETY: units cover disjoint row ranges of `out`, which outlives `par` (it returns
        // only when every unit has run), so no two threads touch the same element.
        let block = unsafe {
            std::slice::from_raw_parts_mut(out_ptr.at(first * row_len), (last - first) * row_len)
        };
        job.rows(first, block);
    });
    Ok(())
}

/// `out`'s base pointer, shared by the units that write disjoint parts of it.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: only used to write disjoint ranges (see `ms_deform_attn_into`).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}
impl SharedOut {
    /// The pointer `offset` values on (a method, so closures capture the whole `Sync` wrapper).
    fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: the caller stays within the buffer.
        unsafe { self.0.add(offset) }
    }
}

/// One call's checked inputs and level table (H, W, first token).
struct Job<'a> {
    inputs: MsdaInputs<'a>,
    dims: MsdaDims,
    levels: &'a [(usize, usize, usize)],
}

impl Job<'_> {
    /// Rows `first..` (query rows over the batch) into `block` ([rows, M·D]), with the widest
    /// vector instructions this CPU has.
    fn rows(&self, first: usize, block: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has the features the function is compiled for.
            unsafe { self.rows_avx2_fma(first, block) };
            return;
        }
        self.rows_portable(first, block);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn rows_avx2_fma(&self, first: usize, block: &mut [f32]) {
        self.rows_with::<true>(first, block);
    }

    fn rows_portable(&self, first: usize, block: &mut [f32]) {
        self.rows_with::<false>(first, block);
    }

    /// The loop nest; `FUSED` selects fused multiply-add (only where the CPU has it: elsewhere
    /// `mul_add` would be a slow library call). Per (query, head) the bilinear taps of the L·P
    /// samples are listed first (token offsets and weights), then gathered into the output
    /// D-vector: the address arithmetic stays out of the multiply-add loop and the CPU can issue
    /// the taps' loads ahead. D = 32 (every Focus-DETR configuration: 256 channels, 8 heads)
    /// gets a fixed-length accumulator that stays in vector registers.
    #[inline(always)]
    fn rows_with<const FUSED: bool>(&self, first: usize, block: &mut [f32]) {
        let MsdaDims {
            s, m, d, q, l, p, ..
        } = self.dims;
        // At most four taps per sample; one list per unit of work, reused for every row.
        let mut taps = Vec::with_capacity(4 * l * p);
        for (r, out_row) in block.chunks_exact_mut(m * d).enumerate() {
            let row = first + r;
            let v_batch = &self.inputs.value[(row / q) * s * m * d..(row / q + 1) * s * m * d];
            for (head, out) in out_row.chunks_exact_mut(d).enumerate() {
                taps.clear();
                self.taps(row, head, &mut taps);
                // The value rows of this head: token t's D-vector starts at (t·M + head)·D.
                let v_head = &v_batch[head * d..];
                match d {
                    32 => gather_fixed::<FUSED, 32>(&taps, v_head, out),
                    _ => gather_any::<FUSED>(&taps, v_head, out),
                }
            }
        }
    }

    /// Appends (value offset of the token, weight) for each in-map bilinear corner of each of
    /// the L·P samples of (row, head), in level, point, corner order; the weight is attention ×
    /// corner weight, and the offset is token · M·D (the head's own offset is added by the caller).
    #[inline(always)]
    fn taps(&self, row: usize, head: usize, taps: &mut Vec<(usize, f32)>) {
        let MsdaDims { m, d, l, p, .. } = self.dims;
        let stride = m * d;
        // [N, Lq, M, L, P] and [N, Lq, M, L, P, 2]
        let base = (row * m + head) * l * p;
        let aw = &self.inputs.attention_weights[base..base + l * p];
        let loc = &self.inputs.sampling_locations[2 * base..2 * (base + l * p)];
        for (lvl, &(h, w, start)) in self.levels.iter().enumerate() {
            let (hf, wf) = (h as f32, w as f32);
            for pt in 0..p {
                let i = lvl * p + pt;
                // grid_sample(align_corners=False): pixel centres at integer + 0.5.
                let x = loc[2 * i] * wf - 0.5;
                let y = loc[2 * i + 1] * hf - 0.5;
                // Wholly outside (zeros padding): no corner lands on the map.
                if !(x > -1.0 && y > -1.0 && x < wf && y < hf) {
                    if x.is_nan() || y.is_nan() {
                        // Keep NaN visible, as grid_sample does, instead of dropping it.
                        taps.push((start * stride, f32::NAN));
                    }
                    continue;
                }
                let (x0, y0) = (x.floor(), y.floor());
                let (fx, fy) = (x - x0, y - y0);
                let (x0, y0) = (x0 as isize, y0 as isize);
                let a = aw[i];
                let (left, right) = (x0 >= 0, x0 + 1 < w as isize);
                let (top, bottom) = (y0 >= 0, y0 + 1 < h as isize);
                // Token of the top-left corner; the other three are +1, +W, +W+1.
                let tl = start as isize + y0 * w as isize + x0;
                let at = |t: isize| t as usize * stride;
                if top && left {
                    taps.push((at(tl), a * ((1.0 - fy) * (1.0 - fx))));
                }
                if top && right {
                    taps.push((at(tl + 1), a * ((1.0 - fy) * fx)));
                }
                if bottom && left {
                    taps.push((at(tl + w as isize), a * (fy * (1.0 - fx))));
                }
                if bottom && right {
                    taps.push((at(tl + w as isize + 1), a * (fy * fx)));
                }
            }
        }
    }
}

/// out = Σ weight · v[offset..offset + D] over the taps, with a register-resident accumulator.
#[inline(always)]
fn gather_fixed<const FUSED: bool, const D: usize>(
    taps: &[(usize, f32)],
    v: &[f32],
    out: &mut [f32],
) {
    let mut acc = [0f32; D];
    for &(at, f) in taps {
        let src: &[f32; D] = v[at..at + D].try_into().expect("a D-long slice");
        for c in 0..D {
            acc[c] = fma::<FUSED>(f, src[c], acc[c]);
        }
    }
    out.copy_from_slice(&acc);
}

/// [`gather_fixed`] for any D.
#[inline(always)]
fn gather_any<const FUSED: bool>(taps: &[(usize, f32)], v: &[f32], out: &mut [f32]) {
    let d = out.len();
    out.fill(0.0);
    for &(at, f) in taps {
        for (a, x) in out.iter_mut().zip(&v[at..at + d]) {
            *a = fma::<FUSED>(f, *x, *a);
        }
    }
}

/// `a + f·v`, fused when `FUSED`.
#[inline(always)]
fn fma<const FUSED: bool>(f: f32, v: f32, a: f32) -> f32 {
    if FUSED {
        f.mul_add(v, a)
    } else {
        a + f * v
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small deterministic generator for test problems (SplitMix64).
    pub struct Rng(pub u64);
    impl Rng {
        pub fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        /// Uniform in [lo, hi).
        pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
            lo + (hi - lo) * ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
        }
    }

    /// grid_sample(bilinear, zeros, align_corners=False) at one point, written the way the
    /// PyTorch reference composes it (grid = 2·loc − 1, unnormalised), straight from the formula.
    fn naive(
        value: &[f32],
        shapes: &[(usize, usize)],
        loc: &[f32],
        aw: &[f32],
        dm: MsdaDims,
    ) -> Vec<f32> {
        let MsdaDims {
            n,
            s,
            m,
            d,
            q,
            l,
            p,
        } = dm;
        let mut out = vec![0f64; n * q * m * d];
        for b in 0..n {
            for qi in 0..q {
                for head in 0..m {
                    let mut start = 0;
                    for (lvl, &(h, w)) in shapes.iter().enumerate() {
                        for pt in 0..p {
                            let i = ((((b * q + qi) * m + head) * l + lvl) * p) + pt;
                            let gx = 2.0 * f64::from(loc[2 * i]) - 1.0;
                            let gy = 2.0 * f64::from(loc[2 * i + 1]) - 1.0;
                            let x = ((gx + 1.0) * w as f64 - 1.0) / 2.0;
                            let y = ((gy + 1.0) * h as f64 - 1.0) / 2.0;
                            let (xf, yf) = (x.floor(), y.floor());
                            for (yy, xx) in [
                                (yf, xf),
                                (yf, xf + 1.0),
                                (yf + 1.0, xf),
                                (yf + 1.0, xf + 1.0),
                            ] {
                                let wgt = (1.0 - (x - xx).abs()) * (1.0 - (y - yy).abs());
                                if yy < 0.0 || xx < 0.0 || yy >= h as f64 || xx >= w as f64 {
                                    continue;
                                }
                                let tok = start + yy as usize * w + xx as usize;
                                for c in 0..d {
                                    let v = f64::from(value[((b * s + tok) * m + head) * d + c]);
                                    out[((b * q + qi) * m + head) * d + c] +=
                                        f64::from(aw[i]) * wgt * v;
                                }
                            }
                        }
                        start += h * w;
                    }
                }
            }
        }
        out.into_iter().map(|v| v as f32).collect()
    }

    /// The five inputs of a problem and its sizes.
    type Problem = (Vec<f32>, Vec<i64>, Vec<i64>, Vec<f32>, Vec<f32>, MsdaDims);

    /// A seeded problem; locations span [-0.3, 1.3] so that many samples fall partly or wholly
    /// outside their maps.
    pub fn problem(
        seed: u64,
        n: usize,
        shapes: &[(usize, usize)],
        m: usize,
        d: usize,
        q: usize,
        p: usize,
    ) -> Problem {
        let mut r = Rng(seed);
        let l = shapes.len();
        let s: usize = shapes.iter().map(|(h, w)| h * w).sum();
        let dims = MsdaDims {
            n,
            s,
            m,
            d,
            q,
            l,
            p,
        };
        let value = (0..n * s * m * d).map(|_| r.uniform(-1.0, 1.0)).collect();
        let flat = shapes
            .iter()
            .flat_map(|&(h, w)| [h as i64, w as i64])
            .collect();
        let mut starts = Vec::new();
        let mut acc = 0;
        for (h, w) in shapes {
            starts.push(acc as i64);
            acc += h * w;
        }
        let loc = (0..n * q * m * l * p * 2)
            .map(|_| r.uniform(-0.3, 1.3))
            .collect();
        let aw = (0..n * q * m * l * p)
            .map(|_| r.uniform(0.0, 1.0))
            .collect();
        (value, flat, starts, loc, aw, dims)
    }

    fn check(
        seed: u64,
        n: usize,
        shapes: &[(usize, usize)],
        m: usize,
        d: usize,
        q: usize,
        p: usize,
    ) {
        let (v, sh, st, loc, aw, dims) = problem(seed, n, shapes, m, d, q, p);
        let got = ms_deform_attn(&v, &sh, &st, &loc, &aw, dims).unwrap();
        let want = naive(&v, shapes, &loc, &aw, dims);
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        // Float32 accumulation over L·P·4 terms of magnitude ≤ 1 against an f64 reference.
        assert!(worst <= 1e-5, "shapes {shapes:?}: max|Δ| {worst}");
    }

    #[test]
    fn matches_the_grid_sample_formula() {
        check(1, 1, &[(8, 10), (4, 5), (2, 3), (1, 2)], 8, 4, 30, 4);
        check(2, 2, &[(7, 7), (3, 4)], 2, 3, 11, 2); // batch > 1
        check(3, 1, &[(1, 1)], 1, 5, 6, 3); // a single 1×1 level
        check(4, 1, &[(6, 9), (1, 1), (2, 2)], 3, 2, 5, 1); // a 1×1 level between others
                                                            // D = 32 takes the fixed-length loop; 37 queries leave a partial last unit of work.
        check(7, 2, &[(9, 13), (5, 7), (3, 4), (2, 2)], 8, 32, 37, 4);
    }

    #[test]
    fn the_portable_loop_matches_the_formula_too() {
        // `rows` picks the vector form on CPUs that have it; the fallback must hold as well.
        for (seed, d) in [(8, 32), (9, 6)] {
            let shapes = [(6, 5), (3, 3)];
            let (v, sh, st, loc, aw, dims) = problem(seed, 1, &shapes, 2, d, 9, 3);
            let lv = levels(&dims, &sh, &st).unwrap();
            let job = Job {
                inputs: MsdaInputs {
                    value: &v,
                    spatial_shapes: &sh,
                    level_start_index: &st,
                    sampling_locations: &loc,
                    attention_weights: &aw,
                },
                dims,
                levels: &lv,
            };
            let mut got = vec![f32::NAN; dims.q * dims.m * d];
            job.rows_portable(0, &mut got);
            let want = naive(&v, &shapes, &loc, &aw, dims);
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst <= 1e-5, "d {d}: max|Δ| {worst}");
        }
    }

    #[test]
    fn a_nan_location_gives_nan_not_zero() {
        let (v, sh, st, mut loc, aw, dims) = problem(10, 1, &[(4, 4)], 1, 2, 1, 1);
        loc[0] = f32::NAN;
        let out = ms_deform_attn(&v, &sh, &st, &loc, &aw, dims).unwrap();
        assert!(out.iter().all(|x| x.is_nan()), "{out:?}");
    }

    #[test]
    fn a_wrong_output_buffer_is_named() {
        let (v, sh, st, loc, aw, dims) = problem(11, 1, &[(4, 4)], 1, 2, 3, 1);
        let inputs = MsdaInputs {
            value: &v,
            spatial_shapes: &sh,
            level_start_index: &st,
            sampling_locations: &loc,
            attention_weights: &aw,
        };
        let mut out = vec![0f32; 5];
        let e = ms_deform_attn_into(&mut out, inputs, dims, &rayon_parallel_for).unwrap_err();
        assert!(
            e.to_string().contains("output") && e.to_string().contains("needs 6"),
            "{e}"
        );
    }

    #[test]
    fn samples_outside_the_map_are_zero() {
        let (mut v, sh, st, mut loc, aw, dims) = problem(5, 1, &[(4, 4)], 1, 2, 1, 1);
        v.iter_mut().for_each(|x| *x = 1.0);
        // Far outside: nothing; exactly on the border centre line: half the corners inside.
        loc[0] = 2.0;
        loc[1] = 2.0;
        let out = ms_deform_attn(&v, &sh, &st, &loc, &aw, dims).unwrap();
        assert_eq!(out, vec![0.0, 0.0]);
        loc[0] = 0.0; // x = −0.5: the left two corners fall outside
        loc[1] = 0.5;
        let out = ms_deform_attn(&v, &sh, &st, &loc, &aw, dims).unwrap();
        assert!((out[0] - 0.5 * aw[0]).abs() < 1e-6, "{out:?}");
    }

    #[test]
    fn inconsistent_inputs_are_named() {
        let (v, sh, _, loc, aw, dims) = problem(6, 1, &[(4, 4), (2, 2)], 1, 2, 3, 1);
        let e = ms_deform_attn(&v, &sh, &[0, 15], &loc, &aw, dims).unwrap_err();
        assert!(e.to_string().contains("level_start_index"), "{e}");
        let e = MsdaDims::from_shapes(
            &[1, 20, 1, 2],
            &[2, 2],
            &[2],
            &[1, 3, 1, 2, 1, 3],
            &[1, 3, 1, 2, 1],
        )
        .unwrap_err();
        assert!(e.to_string().contains("sampling_locations"), "{e}");
    }
}
