//! Side-by-side latency and memory of runtimes on one input: warm-up runs, then timed runs,
//! reported as p50/p90 with the process's peak resident memory while each runtime was in use
//! (`focus-export bench` times each runtime in a process of its own, so that figure is the
//! runtime's alone).

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::runtimes::{Runtime, RuntimeError};
use crate::tensors::TensorMap;

/// The paper's latency ratio of Focus-DETR to its dense base DINO (R50, V100): FPS about 20 vs
/// 14 (Tables 1 and 11; the OCR copy in shared/paper drops the decimals, 0.71 is the ratio of
/// the published figures).
pub const PAPER_SPARSE_DENSE_LATENCY: f64 = 0.71;

/// The paper's compute ratio of the same pair: 154 / 279 GFLOPs (Table 11).
pub const PAPER_SPARSE_DENSE_GFLOPS: f64 = 154.0 / 279.0;

/// One runtime's timings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchResult {
    /// Runtime name (`torch-cpu`, `ort-cpu`, `tract`).
    pub runtime: String,
    /// Whether it ran the dense baseline (every encoder layer keeps every token).
    pub dense: bool,
    /// Creating the runtime (loading weights or the model), seconds (the mean over rounds).
    pub load_s: f64,
    /// Rounds merged into this result (`bench --rounds`): each a fresh process that loaded the
    /// runtime and ran the warm-up and timed runs.
    #[serde(default = "one")]
    pub rounds: usize,
    /// Warm-up runs (the first run includes one-off work such as tract's per-shape optimisation).
    pub warmup_s: Vec<f64>,
    /// Timed runs, seconds.
    pub runs_s: Vec<f64>,
    /// Median of the timed runs.
    pub p50_s: f64,
    /// 90th percentile of the timed runs (nearest rank).
    pub p90_s: f64,
    /// Peak resident memory of the process from loading to the last run, MiB (Linux only; the
    /// largest over rounds).
    pub peak_rss_mib: Option<f64>,
    /// The runtime's own per-op profile of the timed runs, when asked for and available (the
    /// first round's).
    pub profile: Option<crate::profile::OpProfile>,
}

fn one() -> usize {
    1
}

impl BenchResult {
    /// Adds a later round of the same form: its runs join these (p50 and p90 are taken over
    /// all of them), the peak is the larger one, and the load time the mean.
    pub fn merge(&mut self, later: BenchResult) {
        let n = self.rounds as f64;
        self.load_s =
            (self.load_s * n + later.load_s * later.rounds as f64) / (n + later.rounds as f64);
        self.rounds += later.rounds;
        self.warmup_s.extend(later.warmup_s);
        self.runs_s.extend(later.runs_s);
        self.p50_s = percentile(&self.runs_s, 0.5);
        self.p90_s = percentile(&self.runs_s, 0.9);
        self.peak_rss_mib = match (self.peak_rss_mib, later.peak_rss_mib) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if self.profile.is_none() {
            self.profile = later.profile;
        }
    }

    /// The runtime's name, marked ` dense` for the dense baseline (table rows and profiles).
    pub fn label(&self) -> String {
        if self.dense {
            format!("{} dense", self.runtime)
        } else {
            self.runtime.clone()
        }
    }
}

/// Nearest-rank percentile `q` (0..=1) of `v`.
pub fn percentile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

/// Resets the kernel's peak-RSS counter of this process (Linux: `/proc/self/clear_refs` 5).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory of this process since the last reset, MiB (`VmHWM`).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Times `make()`'s runtime on `inputs`.
pub fn bench<F>(
    make: F,
    inputs: &TensorMap,
    warmup: usize,
    runs: usize,
) -> Result<BenchResult, RuntimeError>
where
    F: FnOnce() -> Result<Box<dyn Runtime>, RuntimeError>,
{
    // The previous runtime's freed memory would otherwise count in this one's peak.
    crate::heap::release_freed();
    reset_peak_rss();
    let start = Instant::now();
    let mut rt = make()?;
    let load_s = start.elapsed().as_secs_f64();
    let time = |rt: &mut Box<dyn Runtime>| -> Result<f64, RuntimeError> {
        let t = Instant::now();
        rt.run(inputs)?;
        Ok(t.elapsed().as_secs_f64())
    };
    let warmup_s = (0..warmup)
        .map(|_| time(&mut rt))
        .collect::<Result<Vec<_>, _>>()?;
    let runs_s = (0..runs.max(1))
        .map(|_| time(&mut rt))
        .collect::<Result<Vec<_>, _>>()?;
    let peak_rss_mib = peak_rss_mib();
    let profile = rt.take_profile(runs_s.len()).transpose()?;
    Ok(BenchResult {
        runtime: rt.name(),
        dense: rt.config().is_some_and(|c| c.focus.dense),
        load_s,
        warmup_s,
        p50_s: percentile(&runs_s, 0.5),
        p90_s: percentile(&runs_s, 0.9),
        runs_s,
        peak_rss_mib,
        profile,
        rounds: 1,
    })
}

/// (runtime, sparse p50 ÷ dense p50) for each runtime timed both ways.
pub fn sparse_dense_ratios(results: &[BenchResult]) -> Vec<(String, f64)> {
    results
        .iter()
        .filter(|s| !s.dense)
        .filter_map(|s| {
            let d = results.iter().find(|d| d.dense && d.runtime == s.runtime)?;
            Some((s.runtime.clone(), s.p50_s / d.p50_s))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(percentile(&v, 0.5), 3.0);
        assert_eq!(percentile(&v, 0.9), 5.0);
        assert_eq!(percentile(&[2.0], 0.9), 2.0);
    }

    fn result(load_s: f64, runs_s: Vec<f64>, peak: Option<f64>) -> BenchResult {
        BenchResult {
            runtime: "ort-cpu".into(),
            dense: false,
            load_s,
            rounds: 1,
            warmup_s: vec![9.0],
            p50_s: percentile(&runs_s, 0.5),
            p90_s: percentile(&runs_s, 0.9),
            runs_s,
            peak_rss_mib: peak,
            profile: None,
        }
    }

    #[test]
    fn rounds_merge_their_runs_peaks_and_load_times() {
        let mut r = result(1.0, vec![5.0, 1.0, 3.0], Some(500.0));
        r.merge(result(2.0, vec![2.0, 4.0], Some(700.0)));
        r.merge(result(3.0, vec![6.0], None));
        assert_eq!(r.rounds, 3);
        assert_eq!(r.runs_s.len(), 6);
        assert_eq!(r.warmup_s.len(), 3);
        assert_eq!(r.p50_s, 3.0, "the median of all six runs");
        assert_eq!(r.p90_s, 6.0);
        assert_eq!(r.peak_rss_mib, Some(700.0));
        assert!((r.load_s - 2.0).abs() < 1e-12, "{}", r.load_s);
    }

    #[test]
    fn peak_rss_is_readable_on_linux() {
        reset_peak_rss();
        let m = peak_rss_mib();
        if cfg!(target_os = "linux") {
            assert!(m.is_some_and(|m| m > 0.0));
        }
    }
}
