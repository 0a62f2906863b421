//! The CPU kernel of MsDeformAttn ([`crate::decl::MS_DEFORM_ATTN`]).
//!
//! Layout: value [N, S, M, D] keeps each (token, head) D-vector contiguous, so a bilinear corner
//! is one contiguous D-length read; the output row [M·D] of a query is accumulated in place.
//! Queries are split across threads (rayon); nothing is allocated per sample.

use rayon::prelude::*;

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

/// MsDeformAttn on the CPU: returns the output [N, Lq, M·D].
pub fn ms_deform_attn(
    value: &[f32],
    spatial_shapes: &[i64],
    level_start_index: &[i64],
    sampling_locations: &[f32],
    attention_weights: &[f32],
    dims: MsdaDims,
) -> Result<Vec<f32>, OpError> {
    let MsdaDims {
        n,
        s,
        m,
        d,
        q,
        l,
        p,
    } = dims;
    let lv = levels(&dims, spatial_shapes, level_start_index)?;
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
    expect("value", value.len(), n * s * m * d)?;
    expect(
        "sampling_locations",
        sampling_locations.len(),
        n * q * m * l * p * 2,
    )?;
    expect(
        "attention_weights",
        attention_weights.len(),
        n * q * m * l * p,
    )?;

    let mut out = vec![0f32; n * q * m * d];
    if out.is_empty() {
        return Ok(out);
    }
    out.par_chunks_mut(m * d)
        .enumerate()
        .for_each(|(row, acc)| {
            let b = row / q;
            let v_batch = &value[b * s * m * d..(b + 1) * s * m * d];
            for head in 0..m {
                let acc = &mut acc[head * d..(head + 1) * d];
                for (lvl, &(h, w, start)) in lv.iter().enumerate() {
                    for pt in 0..p {
                        // [N, Lq, M, L, P] and [N, Lq, M, L, P, 2]
                        let i = ((row * m + head) * l + lvl) * p + pt;
                        let aw = attention_weights[i];
                        let x = sampling_locations[2 * i] * w as f32 - 0.5;
                        let y = sampling_locations[2 * i + 1] * h as f32 - 0.5;
                        let (x0, y0) = (x.floor(), y.floor());
                        let (fx, fy) = (x - x0, y - y0);
                        let (x0, y0) = (x0 as i64, y0 as i64);
                        let corners = [
                            (y0, x0, (1.0 - fy) * (1.0 - fx)),
                            (y0, x0 + 1, (1.0 - fy) * fx),
                            (y0 + 1, x0, fy * (1.0 - fx)),
                            (y0 + 1, x0 + 1, fy * fx),
                        ];
                        for (yy, xx, cw) in corners {
                            // Zeros padding: corners outside the map contribute nothing.
                            if yy < 0 || xx < 0 || yy >= h as i64 || xx >= w as i64 {
                                continue;
                            }
                            let tok = start + yy as usize * w + xx as usize;
                            let src = &v_batch[(tok * m + head) * d..(tok * m + head + 1) * d];
                            let f = aw * cw;
                            for (a, v) in acc.iter_mut().zip(src) {
                                *a += f * v;
                            }
                        }
                    }
                }
            }
        });
    Ok(out)
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
