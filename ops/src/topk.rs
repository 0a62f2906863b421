//! The CPU kernel of DynamicTopK ([`crate::decl::DYNAMIC_TOPK`]): per row, a selection
//! (`select_nth_unstable`, O(N)) of the k largest, then a sort of those k only.
//!
//! Order returned: descending score, exact ties broken by the lower index (the project's one tie
//! rule, ONNX TopK's documented one, so that every runtime and form selects the same tokens).
//! −0.0 ties with +0.0; NaN counts as larger than every number.

use std::cmp::Ordering;

use rayon::prelude::*;

use crate::decl::DYNAMIC_TOPK;
use crate::OpError;

/// The score as ordered by the tie rule: −0.0 equals +0.0 (they tie, as in ONNX TopK's `==`),
/// and every NaN is one value above +∞.
fn key(v: f32) -> f32 {
    if v.is_nan() {
        f32::NAN.copysign(1.0)
    } else if v == 0.0 {
        0.0
    } else {
        v
    }
}

/// Descending score, then ascending index.
fn rank(scores: &[f32]) -> impl Fn(&u32, &u32) -> Ordering + '_ {
    |&a, &b| {
        key(scores[b as usize])
            .total_cmp(&key(scores[a as usize]))
            .then(a.cmp(&b))
    }
}

/// The k largest of each row of `scores` [rows, n]: (values [rows, k], indices [rows, k]).
pub fn dynamic_topk(
    scores: &[f32],
    rows: usize,
    n: usize,
    k: i64,
) -> Result<(Vec<f32>, Vec<i64>), OpError> {
    let bad = |input: &'static str, message: String| OpError::Input {
        op: DYNAMIC_TOPK.op_type,
        input,
        message,
    };
    if scores.len() != rows * n {
        return Err(bad(
            "scores",
            format!("holds {} values, expected {rows}×{n}", scores.len()),
        ));
    }
    if k < 1 || k as usize > n || n > u32::MAX as usize {
        return Err(bad(
            "k",
            format!("is {k}; it must lie in 1..={n} (the row length)"),
        ));
    }
    let k = k as usize;
    let mut values = vec![0f32; rows * k];
    let mut indices = vec![0i64; rows * k];
    values
        .par_chunks_mut(k)
        .zip(indices.par_chunks_mut(k))
        .enumerate()
        .for_each(|(r, (vals, idx))| {
            let row = &scores[r * n..(r + 1) * n];
            let mut order: Vec<u32> = (0..n as u32).collect();
            let cmp = rank(row);
            if k < n {
                order.select_nth_unstable_by(k - 1, &cmp);
            }
            let top = &mut order[..k];
            top.sort_unstable_by(&cmp);
            for (j, &i) in top.iter().enumerate() {
                vals[j] = row[i as usize];
                idx[j] = i64::from(i);
            }
        });
    Ok((values, indices))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msda::tests::Rng;

    /// Full sort by (score desc, index asc), then the first k.
    fn naive(row: &[f32], k: usize) -> Vec<i64> {
        let mut o: Vec<u32> = (0..row.len() as u32).collect();
        o.sort_by(rank(row));
        o[..k].iter().map(|&i| i64::from(i)).collect()
    }

    #[test]
    fn equals_a_full_sort_including_ties_and_edges() {
        let mut r = Rng(7);
        for (rows, n) in [(1, 1), (2, 17), (3, 1000)] {
            // Scores on a coarse grid: many exact ties.
            let s: Vec<f32> = (0..rows * n)
                .map(|_| (r.uniform(0.0, 8.0)).floor())
                .collect();
            for k in [1, n / 3 + 1, n] {
                let (v, i) = dynamic_topk(&s, rows, n, k as i64).unwrap();
                for row in 0..rows {
                    let want = naive(&s[row * n..(row + 1) * n], k);
                    assert_eq!(
                        &i[row * k..(row + 1) * k],
                        &want[..],
                        "rows {rows} n {n} k {k}"
                    );
                    for j in 0..k {
                        assert_eq!(v[row * k + j], s[row * n + want[j] as usize]);
                    }
                }
            }
        }
    }

    #[test]
    fn signed_zeros_tie_and_nan_ranks_first() {
        // −0.0 == +0.0: a tie, broken by the lower index (as ONNX TopK's `==` sees it).
        let (_, i) = dynamic_topk(&[0.0, -0.0, 1.0, -0.0], 1, 4, 3).unwrap();
        assert_eq!(i, vec![2, 0, 1]);
        let (_, i) = dynamic_topk(&[-0.0, 0.0], 1, 2, 1).unwrap();
        assert_eq!(i, vec![0]);
        let (_, i) = dynamic_topk(&[1.0, f32::NAN, f32::INFINITY], 1, 3, 2).unwrap();
        assert_eq!(i, vec![1, 2]);
    }

    #[test]
    fn k_outside_the_row_is_an_error() {
        let e = dynamic_topk(&[1.0, 2.0], 1, 2, 3).unwrap_err();
        assert!(e.to_string().contains("1..=2"), "{e}");
        assert!(dynamic_topk(&[1.0, 2.0], 1, 2, 0).is_err());
    }
}
