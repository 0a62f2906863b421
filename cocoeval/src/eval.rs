//! Per-image matching (`COCOeval.evaluateImg`) and accumulation into precision and recall
//! (`COCOeval.accumulate`), with pycocotools' parameters and its exact float arithmetic: stable
//! score sorts, the IoU of `maskApi.c`'s `bbIou`, greedy matching that prefers regular boxes
//! over ignored ones, 101-point interpolated precision, and −1 for cells without ground truth.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::data::{Detection, GroundTruth};

/// IoU thresholds: numpy's `linspace(0.5, 0.95, 10)`, bit for bit (`i·step + start`, the last
/// one exactly `stop`).
pub fn iou_thresholds() -> [f64; 10] {
    linspace(0.5, 0.95)
}

/// Recall thresholds: numpy's `linspace(0, 1, 101)`, bit for bit.
pub fn recall_thresholds() -> [f64; 101] {
    linspace(0.0, 1.0)
}

fn linspace<const N: usize>(start: f64, stop: f64) -> [f64; N] {
    let step = (stop - start) / (N - 1) as f64;
    let mut v = [0.0; N];
    for (i, x) in v.iter_mut().enumerate() {
        *x = i as f64 * step + start;
    }
    v[N - 1] = stop;
    v
}

/// Detections per image and category that count (pycocotools' `maxDets`).
pub const MAX_DETS: [usize; 3] = [1, 10, 100];

/// Area ranges (inclusive at both ends) and their labels: all, small, medium, large.
pub const AREA_RANGES: [(f64, f64); 4] =
    [(0.0, 1e10), (0.0, 1024.0), (1024.0, 9216.0), (9216.0, 1e10)];

/// The labels of [`AREA_RANGES`].
pub const AREA_LABELS: [&str; 4] = ["all", "small", "medium", "large"];

const T: usize = 10;
const R: usize = 101;
const A: usize = AREA_RANGES.len();
const M: usize = MAX_DETS.len();
/// Detections kept per image and category before matching.
const MAX_DET: usize = MAX_DETS[M - 1];

/// Accumulated precision and recall, laid out as pycocotools' `eval` dictionary.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The categories, in the order of the K axis.
    pub category_ids: Vec<i64>,
    /// Precision [T=10, R=101, K, A=4, M=3], −1 where a cell has no ground truth.
    pub precision: Vec<f64>,
    /// Recall [T=10, K, A=4, M=3], −1 where a cell has no ground truth.
    pub recall: Vec<f64>,
}

impl Evaluation {
    /// Number of categories (the K axis).
    pub fn k(&self) -> usize {
        self.category_ids.len()
    }

    /// precision[t, r, k, a, m].
    pub fn precision_at(&self, t: usize, r: usize, k: usize, a: usize, m: usize) -> f64 {
        self.precision[(((t * R + r) * self.k() + k) * A + a) * M + m]
    }

    /// recall[t, k, a, m].
    pub fn recall_at(&self, t: usize, k: usize, a: usize, m: usize) -> f64 {
        self.recall[((t * self.k() + k) * A + a) * M + m]
    }
}

/// The IoU of `maskApi.c`'s `bbIou`, in its order of operations; a crowd box's union is the
/// detection's area.
fn iou(d: &[f64; 4], g: &[f64; 4], crowd: bool) -> f64 {
    let w = (d[2] + d[0]).min(g[2] + g[0]) - d[0].max(g[0]);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (d[3] + d[1]).min(g[3] + g[1]) - d[1].max(g[1]);
    if h <= 0.0 {
        return 0.0;
    }
    let i = w * h;
    let da = d[2] * d[3];
    let u = if crowd { da } else { da + g[2] * g[3] - i };
    i / u
}

/// One image and category at one area range: which detections count as true and false
/// positives at each threshold ([T, D], t-major) and how many boxes are not ignored.
struct AreaRecord {
    tp: Vec<bool>,
    fp: Vec<bool>,
    npig: usize,
}

/// One image and category: its detections' scores, best first (at most [`MAX_DET`]), and the
/// matching at each area range.
struct ImageRecord {
    scores: Vec<f64>,
    areas: Vec<AreaRecord>,
}

/// A ground-truth box as matching needs it.
struct Gt {
    id: i64,
    bbox: [f64; 4],
    area: f64,
    crowd: bool,
}

/// Indices of `scores` by descending score, ties in their given order (numpy's stable
/// `argsort(-score)`; scores are finite).
fn by_score(scores: impl ExactSizeIterator<Item = f64>) -> Vec<usize> {
    let s: Vec<f64> = scores.collect();
    let mut idx: Vec<usize> = (0..s.len()).collect();
    idx.sort_by(|&a, &b| s[b].partial_cmp(&s[a]).unwrap_or(std::cmp::Ordering::Equal));
    idx
}

/// `COCOeval.evaluateImg` for every area range of one image and category.
fn evaluate_image(gts: &[Gt], dts: &[&Detection], thresholds: &[f64; T]) -> ImageRecord {
    let order = by_score(dts.iter().map(|d| d.score));
    let dts: Vec<&Detection> = order.iter().take(MAX_DET).map(|&i| dts[i]).collect();
    let (d_n, g_n) = (dts.len(), gts.len());
    // [D, G], in the annotations' order.
    let ious: Vec<f64> = dts
        .iter()
        .flat_map(|d| gts.iter().map(|g| iou(&d.bbox, &g.bbox, g.crowd)))
        .collect();
    let areas = AREA_RANGES
        .iter()
        .map(|&(lo, hi)| {
            let ignored: Vec<bool> = gts
                .iter()
                .map(|g| g.crowd || g.area < lo || g.area > hi)
                .collect();
            // Regular boxes first, ignored last, each group in file order.
            let mut gi: Vec<usize> = (0..g_n).collect();
            gi.sort_by_key(|&g| ignored[g]);
            let npig = ignored.iter().filter(|&&i| !i).count();
            let mut tp = vec![false; T * d_n];
            let mut fp = vec![false; T * d_n];
            for (t, &thr) in thresholds.iter().enumerate() {
                let mut taken = vec![false; g_n];
                for (di, d) in dts.iter().enumerate() {
                    let mut best = thr.min(1.0 - 1e-10);
                    let mut m: Option<usize> = None;
                    for (pos, &g) in gi.iter().enumerate() {
                        if taken[pos] && !gts[g].crowd {
                            continue;
                        }
                        if let Some(mp) = m {
                            if !ignored[gi[mp]] && ignored[g] {
                                break;
                            }
                        }
                        let v = ious[di * g_n + g];
                        if v < best {
                            continue;
                        }
                        best = v;
                        m = Some(pos);
                    }
                    let (mut dt_ignored, mut matched_id) = (false, 0);
                    if let Some(mp) = m {
                        dt_ignored = ignored[gi[mp]];
                        matched_id = gts[gi[mp]].id;
                        taken[mp] = true;
                    }
                    // A detection "matched" to an annotation with id 0 counts as unmatched,
                    // as pycocotools stores the id and tests it for zero.
                    let matched = matched_id != 0;
                    let area = d.bbox[2] * d.bbox[3];
                    if !matched && (area < lo || area > hi) {
                        dt_ignored = true;
                    }
                    tp[t * d_n + di] = matched && !dt_ignored;
                    fp[t * d_n + di] = !matched && !dt_ignored;
                }
            }
            AreaRecord { tp, fp, npig }
        })
        .collect();
    ImageRecord {
        scores: dts.iter().map(|d| d.score).collect(),
        areas,
    }
}

/// Precision [T, R, A, M] and recall [T, A, M] of one category (`accumulate` for one k).
fn accumulate(records: &[ImageRecord], rec_thrs: &[f64; R]) -> (Vec<f64>, Vec<f64>) {
    let mut precision = vec![-1.0; T * R * A * M];
    let mut recall = vec![-1.0; T * A * M];
    if records.is_empty() {
        return (precision, recall);
    }
    for (m, &max_det) in MAX_DETS.iter().enumerate() {
        // The first max_det detections of every image, concatenated in image order, then
        // sorted stably by descending score.
        let pool: Vec<(usize, usize)> = records
            .iter()
            .enumerate()
            .flat_map(|(i, r)| (0..r.scores.len().min(max_det)).map(move |d| (i, d)))
            .collect();
        let order = by_score(pool.iter().map(|&(i, d)| records[i].scores[d]));
        let nd = order.len();
        for a in 0..A {
            let npig: usize = records.iter().map(|r| r.areas[a].npig).sum();
            if npig == 0 {
                continue;
            }
            for t in 0..T {
                let (mut tp_sum, mut fp_sum) = (0usize, 0usize);
                let mut rc = Vec::with_capacity(nd);
                let mut pr = Vec::with_capacity(nd);
                for &o in &order {
                    let (i, d) = pool[o];
                    let rec = &records[i].areas[a];
                    let n = records[i].scores.len();
                    tp_sum += usize::from(rec.tp[t * n + d]);
                    fp_sum += usize::from(rec.fp[t * n + d]);
                    let (tp, fp) = (tp_sum as f64, fp_sum as f64);
                    rc.push(tp / npig as f64);
                    pr.push(tp / (fp + tp + f64::EPSILON));
                }
                recall[(t * A + a) * M + m] = rc.last().copied().unwrap_or(0.0);
                for i in (1..nd).rev() {
                    if pr[i] > pr[i - 1] {
                        pr[i - 1] = pr[i];
                    }
                }
                // q[r] = pr[first index with rc ≥ thr]; from the first threshold past the
                // end, the rest stay 0 (pycocotools' IndexError ends its loop).
                for (r, &thr) in rec_thrs.iter().enumerate() {
                    let p = rc.partition_point(|&x| x < thr);
                    precision[((t * R + r) * A + a) * M + m] = pr.get(p).copied().unwrap_or(0.0);
                }
            }
        }
    }
    (precision, recall)
}

/// Evaluates `detections` against `gt` as `COCOeval(gt, gt.loadRes(dets), "bbox")` followed by
/// `evaluate()` and `accumulate()`. Detections of images or categories `gt` does not list are
/// not evaluated (as in pycocotools; [`crate::parse_results`] refuses unknown images).
pub fn evaluate(gt: &GroundTruth, detections: &[Detection]) -> Evaluation {
    let thresholds = iou_thresholds();
    let rec_thrs = recall_thresholds();
    let img_index: HashMap<i64, usize> = gt
        .image_ids
        .iter()
        .enumerate()
        .map(|(i, &id)| (id, i))
        .collect();
    let cat_index: HashMap<i64, usize> = gt
        .category_ids
        .iter()
        .enumerate()
        .map(|(k, &id)| (id, k))
        .collect();
    let k_n = gt.category_ids.len();
    let place = |img: i64, cat: i64| Some((*cat_index.get(&cat)?, *img_index.get(&img)?));
    // Per category: (image index, position in file) of its annotations and detections, sorted
    // by image with file order kept inside an image.
    let mut gts_by_cat: Vec<Vec<(usize, usize)>> = vec![Vec::new(); k_n];
    for (n, a) in gt.annotations.iter().enumerate() {
        if let Some((k, i)) = place(a.image_id, a.category_id) {
            gts_by_cat[k].push((i, n));
        }
    }
    let mut dts_by_cat: Vec<Vec<(usize, usize)>> = vec![Vec::new(); k_n];
    for (n, d) in detections.iter().enumerate() {
        if let Some((k, i)) = place(d.image_id, d.category_id) {
            dts_by_cat[k].push((i, n));
        }
    }
    let per_category: Vec<(Vec<f64>, Vec<f64>)> = gts_by_cat
        .par_iter_mut()
        .zip(dts_by_cat.par_iter_mut())
        .map(|(g, d)| {
            g.sort_by_key(|&(i, _)| i);
            d.sort_by_key(|&(i, _)| i);
            let mut records = Vec::new();
            let (mut gp, mut dp) = (0, 0);
            while gp < g.len() || dp < d.len() {
                let img = match (g.get(gp), d.get(dp)) {
                    (Some(a), Some(b)) => a.0.min(b.0),
                    (Some(a), None) => a.0,
                    (None, Some(b)) => b.0,
                    (None, None) => break,
                };
                let g_end = gp + g[gp..].iter().take_while(|x| x.0 == img).count();
                let d_end = dp + d[dp..].iter().take_while(|x| x.0 == img).count();
                let gts: Vec<Gt> = g[gp..g_end]
                    .iter()
                    .map(|&(_, n)| {
                        let a = &gt.annotations[n];
                        Gt {
                            id: a.id,
                            bbox: a.bbox,
                            area: a.area,
                            crowd: a.iscrowd,
                        }
                    })
                    .collect();
                let dts: Vec<&Detection> =
                    d[dp..d_end].iter().map(|&(_, n)| &detections[n]).collect();
                records.push(evaluate_image(&gts, &dts, &thresholds));
                (gp, dp) = (g_end, d_end);
            }
            accumulate(&records, &rec_thrs)
        })
        .collect();
    let mut precision = vec![-1.0; T * R * k_n * A * M];
    let mut recall = vec![-1.0; T * k_n * A * M];
    for (k, (p, r)) in per_category.iter().enumerate() {
        for t in 0..T {
            for a in 0..A {
                for m in 0..M {
                    recall[((t * k_n + k) * A + a) * M + m] = r[(t * A + a) * M + m];
                    for rr in 0..R {
                        precision[(((t * R + rr) * k_n + k) * A + a) * M + m] =
                            p[((t * R + rr) * A + a) * M + m];
                    }
                }
            }
        }
    }
    Evaluation {
        category_ids: gt.category_ids.clone(),
        precision,
        recall,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_numpys() {
        // numpy.linspace(.5, .95, 10) in hex, as pycocotools 2.0.11 on numpy 2.4 holds them.
        let want: [u64; 10] = [
            0x3fe0000000000000,
            0x3fe199999999999a,
            0x3fe3333333333333,
            0x3fe4cccccccccccd,
            0x3fe6666666666666,
            0x3fe8000000000000,
            0x3fe999999999999a,
            0x3feb333333333333,
            0x3feccccccccccccc,
            0x3fee666666666666,
        ];
        let got: Vec<u64> = iou_thresholds().iter().map(|x| x.to_bits()).collect();
        assert_eq!(got, want);
        assert_eq!(iou_thresholds()[5], 0.75);
        assert_eq!(recall_thresholds()[100], 1.0);
        assert_eq!(recall_thresholds()[37], 37.0 * 0.01);
    }

    #[test]
    fn crowd_iou_divides_by_the_detection_area() {
        let d = [0.0, 0.0, 10.0, 10.0];
        let g = [5.0, 0.0, 100.0, 100.0];
        assert_eq!(iou(&d, &g, true), 0.5);
        assert_eq!(iou(&d, &g, false), 50.0 / (100.0 + 10000.0 - 50.0));
        assert_eq!(iou(&d, &[10.0, 0.0, 5.0, 5.0], false), 0.0);
    }
}
