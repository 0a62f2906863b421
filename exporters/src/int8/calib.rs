//! Calibration statistics: what the activations of a tensor look like over the calibration
//! images, and the range (then scale and zero point) each method derives from it.

use std::str::FromStr;

/// How a tensor's quantisation range is chosen from its observed values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CalibrationMethod {
    /// The smallest and largest value seen: nothing clips, outliers cost resolution.
    MinMax,
    /// The given percentile of the values at each end (e.g. 99.99): the rare outliers clip.
    Percentile(f64),
    /// The clipping threshold that minimises the Kullback-Leibler divergence between the
    /// histogram and its quantised form (TensorRT's entropy calibration).
    Entropy,
}

/// The percentile `--calibration percentile` uses when none is named.
pub const DEFAULT_PERCENTILE: f64 = 99.99;

impl CalibrationMethod {
    /// The name used on the command line and in the model's metadata.
    pub fn name(&self) -> String {
        match self {
            CalibrationMethod::MinMax => "minmax".into(),
            CalibrationMethod::Percentile(p) => format!("percentile:{p}"),
            CalibrationMethod::Entropy => "entropy".into(),
        }
    }
}

impl Default for CalibrationMethod {
    fn default() -> Self {
        CalibrationMethod::Percentile(DEFAULT_PERCENTILE)
    }
}

impl FromStr for CalibrationMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("`{s}`: expected minmax, entropy, percentile or percentile:P (50 < P < 100)")
        };
        match s {
            "minmax" => Ok(CalibrationMethod::MinMax),
            "entropy" => Ok(CalibrationMethod::Entropy),
            "percentile" => Ok(CalibrationMethod::Percentile(DEFAULT_PERCENTILE)),
            _ => {
                let p: f64 = s
                    .strip_prefix("percentile:")
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(bad)?;
                if p > 50.0 && p < 100.0 {
                    Ok(CalibrationMethod::Percentile(p))
                } else {
                    Err(bad())
                }
            }
        }
    }
}

/// Histogram bins over [−R, R] (even, so that doubling R merges pairs of bins exactly).
const BINS: usize = 4096;

/// What one tensor's values looked like over every calibration image.
#[derive(Debug, Clone)]
pub struct Observer {
    min: f32,
    max: f32,
    /// Half-width R of the histogram's range [−R, R]; doubles when a value falls outside.
    half_range: f32,
    hist: Vec<u64>,
    non_finite: u64,
}

impl Default for Observer {
    fn default() -> Self {
        Observer {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            half_range: 0.0,
            hist: vec![0; BINS],
            non_finite: 0,
        }
    }
}

/// A quantisation range [lo, hi], with lo ≤ 0 ≤ hi so that zero is exact.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// Lower end (≤ 0).
    pub lo: f32,
    /// Upper end (≥ 0).
    pub hi: f32,
}

impl Observer {
    /// Adds the values of one run.
    pub fn observe(&mut self, values: &[f32]) {
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for &v in values {
            if v.is_finite() {
                lo = lo.min(v);
                hi = hi.max(v);
            } else {
                self.non_finite += 1;
            }
        }
        if lo > hi {
            return;
        }
        self.min = self.min.min(lo);
        self.max = self.max.max(hi);
        let need = lo.abs().max(hi.abs());
        if self.half_range == 0.0 {
            self.half_range = if need > 0.0 { need } else { f32::MIN_POSITIVE };
        }
        while need > self.half_range {
            self.double_range();
        }
        let r = self.half_range;
        let per = BINS as f32 / (2.0 * r);
        for &v in values.iter().filter(|v| v.is_finite()) {
            let b = ((v + r) * per) as usize;
            self.hist[b.min(BINS - 1)] += 1;
        }
    }

    /// Doubles the histogram's range: the old bins become the middle half, merged in pairs.
    fn double_range(&mut self) {
        let mut h = vec![0u64; BINS];
        for (i, &c) in self.hist.iter().enumerate() {
            h[BINS / 4 + i / 2] += c;
        }
        self.hist = h;
        self.half_range *= 2.0;
    }

    /// Non-finite values seen (they are left out of the statistics).
    pub fn non_finite(&self) -> u64 {
        self.non_finite
    }

    /// The smallest and largest values seen (None before any finite value).
    pub fn extremes(&self) -> Option<(f32, f32)> {
        (self.min <= self.max).then_some((self.min, self.max))
    }

    fn bin_width(&self) -> f32 {
        2.0 * self.half_range / BINS as f32
    }

    /// The value below which `q` (0..1) of the values lie, read off the histogram.
    fn quantile(&self, q: f64) -> f32 {
        let total: u64 = self.hist.iter().sum();
        let target = (q * total as f64).ceil() as u64;
        let mut seen = 0;
        for (i, &c) in self.hist.iter().enumerate() {
            seen += c;
            if seen >= target.max(1) {
                // The bin's upper edge for the upper tail, lower edge for the lower one.
                let edge = if q >= 0.5 { i + 1 } else { i };
                return -self.half_range + edge as f32 * self.bin_width();
            }
        }
        self.half_range
    }

    /// The range `method` picks, widened to hold zero; None when nothing finite was seen.
    /// `levels` is the number of quantisation steps on the range's wider side (255 for an
    /// unsigned activation of one sign, 127 a side otherwise), used by entropy.
    pub fn range(&self, method: CalibrationMethod) -> Option<Range> {
        let (min, max) = self.extremes()?;
        let (lo, hi) = match method {
            CalibrationMethod::MinMax => (min, max),
            CalibrationMethod::Percentile(p) => {
                let tail = (100.0 - p) / 100.0;
                (
                    self.quantile(tail).max(min),
                    self.quantile(1.0 - tail).min(max),
                )
            }
            CalibrationMethod::Entropy => {
                let t = self.entropy_threshold(if min >= 0.0 { 255 } else { 127 });
                (min.max(-t), max.min(t))
            }
        };
        Some(Range {
            lo: lo.min(0.0),
            hi: hi.max(0.0),
        })
    }

    /// TensorRT's entropy calibration on |x|: the threshold T (a bin edge) whose clipped,
    /// `levels`-step quantised histogram is closest to the observed one in KL divergence.
    fn entropy_threshold(&self, levels: usize) -> f32 {
        let half = BINS / 2;
        // |x| histogram: bin k covers [k·w, (k+1)·w).
        let abs: Vec<f64> = (0..half)
            .map(|k| (self.hist[half + k] + self.hist[half - 1 - k]) as f64)
            .collect();
        let last = abs.iter().rposition(|&c| c > 0.0).unwrap_or(0) + 1;
        if last <= levels {
            return last as f32 * self.bin_width();
        }
        let mut best = (f64::INFINITY, last);
        for t in levels..=last {
            // P: the first t bins, the clipped mass added to the last; Q: P merged into
            // `levels` groups, each group's mass spread over its non-empty bins.
            let mut p: Vec<f64> = abs[..t].to_vec();
            p[t - 1] += abs[t..].iter().sum::<f64>();
            let mut q = vec![0.0; t];
            for j in 0..levels {
                let (a, b) = (
                    j * t / levels,
                    ((j + 1) * t / levels).max(j * t / levels + 1),
                );
                let b = b.min(t);
                let mass: f64 = abs[a..b].iter().sum();
                let nonzero = abs[a..b].iter().filter(|&&c| c > 0.0).count();
                if nonzero > 0 {
                    for k in a..b {
                        if abs[k] > 0.0 {
                            q[k] = mass / nonzero as f64;
                        }
                    }
                }
            }
            let (ps, qs): (f64, f64) = (p.iter().sum(), q.iter().sum());
            if ps == 0.0 || qs == 0.0 {
                continue;
            }
            let mut kl = 0.0;
            for k in 0..t {
                if p[k] > 0.0 {
                    let pk = p[k] / ps;
                    // An empty Q bin where P has mass: a small floor, as TensorRT does.
                    let qk = (q[k] / qs).max(1e-12);
                    kl += pk * (pk / qk).ln();
                }
            }
            if kl < best.0 {
                best = (kl, t);
            }
        }
        best.1 as f32 * self.bin_width()
    }
}

/// Scale and zero point of an unsigned 8-bit activation over `r` (asymmetric: the zero point
/// puts 0.0 on an exact step).
pub fn uint8_params(r: Range) -> (f32, u8) {
    let span = r.hi - r.lo;
    if span <= 0.0 {
        // A tensor that is always zero: any scale represents it exactly.
        return (1.0, 0);
    }
    let scale = span / 255.0;
    let zp = (-r.lo / scale).round().clamp(0.0, 255.0) as u8;
    (scale, zp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(values: &[f32]) -> Observer {
        let mut o = Observer::default();
        o.observe(values);
        o
    }

    #[test]
    fn methods_parse_and_name_round_trip() {
        for m in [
            CalibrationMethod::MinMax,
            CalibrationMethod::Entropy,
            CalibrationMethod::Percentile(99.9),
        ] {
            assert_eq!(m.name().parse::<CalibrationMethod>(), Ok(m));
        }
        assert_eq!(
            "percentile".parse::<CalibrationMethod>(),
            Ok(CalibrationMethod::Percentile(DEFAULT_PERCENTILE))
        );
        for bad in ["max", "percentile:100", "percentile:x", "percentile:20"] {
            assert!(bad.parse::<CalibrationMethod>().is_err(), "{bad}");
        }
    }

    #[test]
    fn minmax_is_the_extremes_and_holds_zero() {
        let o = observed(&[0.5, 2.0, 1.0]);
        assert_eq!(
            o.range(CalibrationMethod::MinMax),
            Some(Range { lo: 0.0, hi: 2.0 })
        );
        let o = observed(&[-3.0, 1.0]);
        assert_eq!(
            o.range(CalibrationMethod::MinMax),
            Some(Range { lo: -3.0, hi: 1.0 })
        );
        assert_eq!(observed(&[f32::NAN]).range(CalibrationMethod::MinMax), None);
    }

    #[test]
    fn growing_the_range_keeps_every_count() {
        let mut o = Observer::default();
        o.observe(&[0.1, -0.1, 0.05]);
        o.observe(&[100.0, -7.0]);
        assert_eq!(o.hist.iter().sum::<u64>(), 5);
        assert!(o.half_range >= 100.0);
        assert_eq!(o.extremes(), Some((-7.0, 100.0)));
    }

    #[test]
    fn percentile_and_entropy_clip_a_lone_outlier() {
        // 100 000 values in [0, 1) and one at 1000: min-max spends almost every step on the
        // outlier, the other two methods clip it.
        let mut v: Vec<f32> = (0..100_000).map(|i| (i % 1000) as f32 / 1000.0).collect();
        v.push(1000.0);
        let o = observed(&v);
        assert_eq!(o.range(CalibrationMethod::MinMax).unwrap().hi, 1000.0);
        let p = o.range(CalibrationMethod::Percentile(99.9)).unwrap();
        assert!(p.hi > 0.9 && p.hi < 1.6, "{p:?}");
        // Entropy cannot cut below `levels` histogram bins (as in TensorRT): with the range
        // grown to the outlier, 255 bins of 1000/2048 each; it still clips 8-fold.
        let e = o.range(CalibrationMethod::Entropy).unwrap();
        assert!(e.hi < 130.0 && e.hi > 0.5, "{e:?}");
        assert_eq!(e.lo, 0.0);
    }

    #[test]
    fn uint8_parameters_put_zero_on_a_step() {
        let (s, zp) = uint8_params(Range { lo: -1.0, hi: 3.0 });
        assert!((s - 4.0 / 255.0).abs() < 1e-7);
        assert_eq!(zp, 64);
        assert_eq!(uint8_params(Range { lo: 0.0, hi: 0.0 }), (1.0, 0));
        assert_eq!(uint8_params(Range { lo: 0.0, hi: 2.55 }).1, 0);
    }
}
