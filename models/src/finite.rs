//! Non-finite values (NaN, +Inf, −Inf) in a tensor: counted, and the first one located, so a
//! weight file or a model output that holds them is named by tensor and index instead of being
//! compared or used as numbers.

use std::fmt;

/// The non-finite values of one tensor: how many of each kind, and where the first one is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonFinite {
    /// Number of NaN values.
    pub nan: usize,
    /// Number of +Inf values.
    pub pos_inf: usize,
    /// Number of −Inf values.
    pub neg_inf: usize,
    /// Index of the first non-finite value (row-major), one entry per axis.
    pub first: Vec<usize>,
}

impl NonFinite {
    /// Scans `values` (a tensor of `shape`, row-major); `None` when every value is finite.
    pub fn scan(values: &[f32], shape: &[usize]) -> Option<Self> {
        // The common case, every value finite, in one pass that stops at nothing.
        if values.iter().all(|v| v.is_finite()) {
            return None;
        }
        let flat = values.iter().position(|v| !v.is_finite())?;
        let (mut nan, mut pos_inf, mut neg_inf) = (0, 0, 0);
        for v in &values[flat..] {
            if v.is_nan() {
                nan += 1;
            } else if *v == f32::INFINITY {
                pos_inf += 1;
            } else if *v == f32::NEG_INFINITY {
                neg_inf += 1;
            }
        }
        Some(NonFinite {
            nan,
            pos_inf,
            neg_inf,
            first: unravel(flat, shape),
        })
    }

    /// The total number of non-finite values.
    pub fn count(&self) -> usize {
        self.nan + self.pos_inf + self.neg_inf
    }
}

/// The multi-axis index of row-major element `flat` of a tensor of `shape` (`[flat]` for a
/// shape that does not hold it, e.g. an empty one).
pub fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    if shape.iter().product::<usize>() <= flat || shape.contains(&0) {
        return vec![flat];
    }
    let mut index = vec![0; shape.len()];
    for (i, &d) in shape.iter().enumerate().rev() {
        index[i] = flat % d;
        flat /= d;
    }
    index
}

impl fmt::Display for NonFinite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds = [
            (self.nan, "NaN"),
            (self.pos_inf, "+Inf"),
            (self.neg_inf, "-Inf"),
        ];
        let parts: Vec<String> = kinds
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
        let at: Vec<String> = self.first.iter().map(usize::to_string).collect();
        write!(f, "{}, the first at [{}]", parts.join(", "), at.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_counts_and_locates_the_first_non_finite_value() {
        assert_eq!(NonFinite::scan(&[1.0, -2.0, 0.0], &[3]), None);
        let v = [0.0, 1.0, 2.0, f32::NAN, f32::INFINITY, f32::NAN];
        let n = NonFinite::scan(&v, &[2, 3]).expect("non-finite values");
        assert_eq!((n.nan, n.pos_inf, n.neg_inf, n.count()), (2, 1, 0, 3));
        assert_eq!(n.first, vec![1, 0]);
        assert_eq!(n.to_string(), "2 NaN, 1 +Inf, the first at [1, 0]");
        let m = NonFinite::scan(&[f32::NEG_INFINITY], &[1, 1, 1]).expect("-inf");
        assert_eq!(m.to_string(), "1 -Inf, the first at [0, 0, 0]");
    }

    #[test]
    fn unravels_row_major_indices() {
        assert_eq!(unravel(0, &[2, 3, 4]), vec![0, 0, 0]);
        assert_eq!(unravel(23, &[2, 3, 4]), vec![1, 2, 3]);
        assert_eq!(unravel(3, &[4]), vec![3]);
        assert_eq!(unravel(7, &[3]), vec![7]);
        assert_eq!(unravel(0, &[]), Vec::<usize>::new());
    }
}
