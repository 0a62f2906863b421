//! The twelve summary numbers of `COCOeval.summarize()` for boxes, their names, and the lines
//! pycocotools prints for them.

use serde::Serialize;

use crate::eval::{iou_thresholds, Evaluation, AREA_LABELS, MAX_DETS};

/// The names of the twelve numbers, in pycocotools' `stats` order (the JSON keys of a report).
pub const STAT_NAMES: [&str; 12] = [
    "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl",
];

/// What one summary number averages: precision or recall, at one IoU threshold or all, over one
/// area range, at one maxDets.
struct StatSpec {
    precision: bool,
    iou: Option<f64>,
    area: usize,
    max_dets: usize,
}

const fn spec(precision: bool, iou: Option<f64>, area: usize, max_dets: usize) -> StatSpec {
    StatSpec {
        precision,
        iou,
        area,
        max_dets,
    }
}

/// `_summarizeDets`' twelve calls.
const SPECS: [StatSpec; 12] = [
    spec(true, None, 0, 2),
    spec(true, Some(0.5), 0, 2),
    spec(true, Some(0.75), 0, 2),
    spec(true, None, 1, 2),
    spec(true, None, 2, 2),
    spec(true, None, 3, 2),
    spec(false, None, 0, 0),
    spec(false, None, 0, 1),
    spec(false, None, 0, 2),
    spec(false, None, 1, 2),
    spec(false, None, 2, 2),
    spec(false, None, 3, 2),
];

/// The twelve summary numbers (−1 where nothing had ground truth). Serialises as an object
/// keyed by [`STAT_NAMES`], in that order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats(pub [f64; 12]);

impl Serialize for Stats {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(STAT_NAMES.len()))?;
        for (k, v) in STAT_NAMES.iter().zip(self.0) {
            m.serialize_entry(k, &v)?;
        }
        m.end()
    }
}

/// numpy's pairwise summation of float64 (`add.reduce` on a contiguous array): blocks of up to
/// 128 summed with eight accumulators, larger arrays split in halves at a multiple of 8.
fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        return a.iter().fold(-0.0, |s, &x| s + x);
    }
    if n <= 128 {
        let mut r = [0.0; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - n % 8 {
            for (j, acc) in r.iter_mut().enumerate() {
                *acc += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &a[i..] {
            res += x;
        }
        return res;
    }
    let mut half = n / 2;
    half -= half % 8;
    pairwise_sum(&a[..half]) + pairwise_sum(&a[half..])
}

/// `np.mean(s[s > -1])`, or −1 when no cell is set.
fn mean_of_set(cells: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = cells.filter(|&x| x > -1.0).collect();
    if v.is_empty() {
        -1.0
    } else {
        pairwise_sum(&v) / v.len() as f64
    }
}

impl Stats {
    /// `COCOeval.summarize()`'s numbers for an evaluation.
    pub fn of(e: &Evaluation) -> Stats {
        let thrs = iou_thresholds();
        let k_n = e.k();
        let mut out = [0.0; 12];
        for (o, s) in out.iter_mut().zip(&SPECS) {
            // `np.where(iouThr == p.iouThrs)`: exact equality, as pycocotools compares.
            let ts: Vec<usize> = (0..thrs.len())
                .filter(|&t| s.iou.is_none_or(|v| v == thrs[t]))
                .collect();
            *o =
                if s.precision {
                    // C order of precision[t, :, :, a, m]: t, then r, then k.
                    mean_of_set(ts.iter().flat_map(|&t| {
                        (0..101).flat_map(move |r| {
                            (0..k_n).map(move |k| e.precision_at(t, r, k, s.area, s.max_dets))
                        })
                    }))
                } else {
                    mean_of_set(ts.iter().flat_map(|&t| {
                        (0..k_n).map(move |k| e.recall_at(t, k, s.area, s.max_dets))
                    }))
                };
        }
        Stats(out)
    }

    /// The value of one named number (see [`STAT_NAMES`]).
    pub fn get(&self, name: &str) -> Option<f64> {
        STAT_NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| self.0[i])
    }

    /// The twelve lines `summarize()` prints, in its format.
    pub fn lines(&self) -> Vec<String> {
        let thrs = iou_thresholds();
        SPECS
            .iter()
            .zip(self.0)
            .map(|(s, v)| {
                let (title, kind) = if s.precision {
                    ("Average Precision", "(AP)")
                } else {
                    ("Average Recall", "(AR)")
                };
                let iou = match s.iou {
                    Some(t) => format!("{t:.2}"),
                    None => format!("{:.2}:{:.2}", thrs[0], thrs[thrs.len() - 1]),
                };
                format!(
                    " {title:<18} {kind} @[ IoU={iou:<9} | area={:>6} | maxDets={:>3} ] = {v:.3}",
                    AREA_LABELS[s.area], MAX_DETS[s.max_dets]
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_sum_follows_numpy_blocks() {
        // 0.1 summed 1000 times: the pairwise order gives a different last bit than a
        // left-to-right sum; the value is numpy's `np.add.reduce(np.full(1000, 0.1))`.
        let v = vec![0.1; 1000];
        assert_eq!(pairwise_sum(&v), 100.00000000000001);
        assert_eq!(pairwise_sum(&[1.0, 2.0]), 3.0);
    }

    #[test]
    fn lines_have_pycocotools_format() {
        let s = Stats([0.5; 12]);
        let l = s.lines();
        assert_eq!(
            l[0],
            " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.500"
        );
        assert_eq!(
            l[7],
            " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets= 10 ] = 0.500"
        );
        assert_eq!(
            l[1],
            " Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 0.500"
        );
    }
}
