//! Summary statistics the charts and the report share: quantiles, mean and spread, box plots.

pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

pub fn sorted_finite(v: &[f64]) -> Vec<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    s.sort_by(|a, b| a.total_cmp(b));
    s
}

/// The median of finite values as [`quantile`]`(sorted, 0.5)` gives it (the mean of the two
/// middle values for an even count), by selection instead of a sort: the bootstraps take
/// thousands of medians of long series. Reorders `v`.
pub fn median_in_place(v: &mut [f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    let mid = (n - 1) / 2;
    let (_, &mut lo, upper) = v.select_nth_unstable_by(mid, |a, b| a.total_cmp(b));
    if n % 2 == 1 {
        return lo;
    }
    let hi = upper.iter().copied().fold(f64::INFINITY, f64::min);
    lo + (hi - lo) * 0.5
}

pub fn median(v: &[f64]) -> f64 {
    quantile(&sorted_finite(v), 0.5)
}

/// The smallest and the largest value (infinite for an empty slice).
pub fn spread(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        })
}

pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, var.sqrt())
}

/// Box-plot summary: quartiles, whiskers at the furthest points within 1.5 IQR, outliers.
#[derive(Debug, Clone, PartialEq)]
pub struct BoxStats {
    pub q1: f64,
    pub median: f64,
    pub q3: f64,
    pub low: f64,
    pub high: f64,
    pub outliers: Vec<f64>,
    pub n: usize,
}

impl BoxStats {
    pub fn of(values: &[f64]) -> Option<Self> {
        let s = sorted_finite(values);
        if s.is_empty() {
            return None;
        }
        let (q1, median, q3) = (quantile(&s, 0.25), quantile(&s, 0.5), quantile(&s, 0.75));
        let iqr = q3 - q1;
        let (lo_fence, hi_fence) = (q1 - 1.5 * iqr, q3 + 1.5 * iqr);
        let low = *s.iter().find(|&&x| x >= lo_fence).unwrap_or(&s[0]);
        let high = *s
            .iter()
            .rev()
            .find(|&&x| x <= hi_fence)
            .unwrap_or(&s[s.len() - 1]);
        let outliers = s
            .iter()
            .copied()
            .filter(|&x| x < lo_fence || x > hi_fence)
            .collect();
        Some(Self {
            q1,
            median,
            q3,
            low,
            high,
            outliers,
            n: s.len(),
        })
    }
}

/// The five 20 % buckets of training the paper's box plots use.
pub const BUCKETS: [(f64, f64); 5] = [(0.0, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 1.0)];

#[cfg(test)]
mod median_tests {
    use super::*;

    #[test]
    fn selection_median_matches_the_sorted_one() {
        for v in [
            vec![3.0],
            vec![4.0, 1.0],
            vec![5.0, 1.0, 3.0, 2.0],
            vec![9.0, -1.0, 7.5, 7.5, 0.25, 3.0, 2.0],
        ] {
            let mut w = v.clone();
            assert_eq!(median_in_place(&mut w), median(&v), "{v:?}");
        }
        assert!(median_in_place(&mut []).is_nan());
    }
}
