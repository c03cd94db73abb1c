//! Inference between runs: every verdict of a report rests on an interval from these functions,
//! computed from one value per independent run (seed), never from the steps of one run.
//!
//! - A difference of means (final losses): Welch's t interval, degrees of freedom by
//!   Welch-Satterthwaite.
//! - A ratio of positive values (text / images distances): Welch's t interval on the logarithms,
//!   exponentiated: an interval for the ratio of the two sides' geometric means.
//!
//! Both need at least two runs a side; [`MIN_RUNS_FOR_VERDICT`] a side before a verdict is given.
//! The coverage of the 95 % intervals is checked by simulation in the tests.

/// Runs a side below which a report prints numbers but no verdict.
pub const MIN_RUNS_FOR_VERDICT: usize = 3;

/// An estimate with its 95 % interval between runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
    /// Runs behind each side.
    pub runs: (usize, usize),
    /// Welch-Satterthwaite degrees of freedom (infinite when both sides have no spread).
    pub df: f64,
}

impl Interval {
    /// Whether the interval rests on enough runs for a verdict.
    pub fn supports_verdict(&self) -> bool {
        self.runs.0 >= MIN_RUNS_FOR_VERDICT && self.runs.1 >= MIN_RUNS_FOR_VERDICT
    }
}

fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
    (m, var)
}

/// Mean of `a` minus mean of `b` with Welch's 95 % t interval; `None` with fewer than two
/// finite values on a side.
pub fn welch_difference(a: &[f64], b: &[f64]) -> Option<Interval> {
    let a: Vec<f64> = a.iter().copied().filter(|x| x.is_finite()).collect();
    let b: Vec<f64> = b.iter().copied().filter(|x| x.is_finite()).collect();
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let ((ma, va), (mb, vb)) = (mean_var(&a), mean_var(&b));
    let (sa, sb) = (va / a.len() as f64, vb / b.len() as f64);
    let se = (sa + sb).sqrt();
    let df = if se > 0.0 {
        (sa + sb).powi(2) / (sa * sa / (a.len() as f64 - 1.0) + sb * sb / (b.len() as f64 - 1.0))
    } else {
        f64::INFINITY
    };
    let half = if se > 0.0 {
        t_quantile(0.975, df) * se
    } else {
        0.0
    };
    let d = ma - mb;
    Some(Interval {
        value: d,
        lo: d - half,
        hi: d + half,
        runs: (a.len(), b.len()),
        df,
    })
}

/// Ratio of the geometric means of `a` and `b` (positive values) with the exponentiated Welch
/// interval of the difference of their logarithms; `None` with fewer than two positive finite
/// values on a side.
pub fn welch_log_ratio(a: &[f64], b: &[f64]) -> Option<Interval> {
    let logs = |v: &[f64]| -> Vec<f64> {
        v.iter()
            .filter(|x| x.is_finite() && **x > 0.0)
            .map(|x| x.ln())
            .collect()
    };
    let d = welch_difference(&logs(a), &logs(b))?;
    Some(Interval {
        value: d.value.exp(),
        lo: d.lo.exp(),
        hi: d.hi.exp(),
        ..d
    })
}

/// Mean of `v` with the one-sample 95 % t interval; `None` with fewer than two values.
pub fn one_sample(v: &[f64]) -> Option<Interval> {
    let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.len() < 2 {
        return None;
    }
    let (m, var) = mean_var(&v);
    let n = v.len() as f64;
    let half = t_quantile(0.975, n - 1.0) * (var / n).sqrt();
    Some(Interval {
        value: m,
        lo: m - half,
        hi: m + half,
        runs: (v.len(), v.len()),
        df: n - 1.0,
    })
}

/// Geometric mean of positive values with the exponentiated one-sample t interval of their
/// logarithms (e.g. per-run growth factors); `None` with fewer than two.
pub fn log_mean(v: &[f64]) -> Option<Interval> {
    let logs: Vec<f64> = v
        .iter()
        .filter(|x| x.is_finite() && **x > 0.0)
        .map(|x| x.ln())
        .collect();
    if logs.len() < 2 {
        return None;
    }
    let (m, var) = mean_var(&logs);
    let n = logs.len() as f64;
    let half = if var > 0.0 {
        t_quantile(0.975, n - 1.0) * (var / n).sqrt()
    } else {
        0.0
    };
    Some(Interval {
        value: m.exp(),
        lo: (m - half).exp(),
        hi: (m + half).exp(),
        runs: (logs.len(), logs.len()),
        df: n - 1.0,
    })
}

/// The `p` quantile of Student's t distribution with `df` (> 0, possibly fractional) degrees of
/// freedom, by bisection on its distribution function.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    if p == 0.5 {
        return 0.0;
    }
    if p < 0.5 {
        return -t_quantile(1.0 - p, df);
    }
    if !df.is_finite() || df > 1e7 {
        return normal_quantile(p);
    }
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    while t_cdf(hi, df) < p {
        hi *= 2.0;
        if hi > 1e12 {
            return f64::INFINITY;
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-12 * hi.max(1.0) {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// P(T ≤ t) for Student's t with `df` degrees of freedom.
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let x = df / (df + t * t);
    let tail = 0.5 * regularized_beta(x, df / 2.0, 0.5);
    if t >= 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

fn normal_quantile(p: f64) -> f64 {
    // bisection on the normal distribution function through erf's complement
    let cdf = |z: f64| 0.5 * erfc(-z / std::f64::consts::SQRT_2);
    let (mut lo, mut hi) = (-40.0f64, 40.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if cdf(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// erfc by a Chebyshev fit (Numerical Recipes' erfcc, relative error < 1.2e-7): enough for the
/// normal limit of a t quantile.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.26551223
            + t * (1.00002368
                + t * (0.37409196
                    + t * (0.09678418
                        + t * (-0.18628806
                            + t * (0.27886807
                                + t * (-1.13520398
                                    + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms; relative error about 1e-15).
fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // reflection
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// The regularized incomplete beta function I_x(a, b), by its continued fraction (Lentz).
fn regularized_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    // the fraction converges fast for x < (a + 1) / (a + b + 2); use the symmetry otherwise
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(x, a, b) / a
    } else {
        1.0 - front * beta_fraction(1.0 - x, b, a) / b
    }
}

fn beta_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    // one Lentz step: the fraction's next coefficient folded into c and d, their product
    let step = |aa: f64, c: &mut f64, d: &mut f64| {
        *d = 1.0 + aa * *d;
        if d.abs() < TINY {
            *d = TINY;
        }
        *c = 1.0 + aa / *c;
        if c.abs() < TINY {
            *c = TINY;
        }
        *d = 1.0 / *d;
        *d * *c
    };
    for m in 1..=300 {
        let m = m as f64;
        let m2 = 2.0 * m;
        h *= step(m * (b - m) * x / ((qam + m2) * (a + m2)), &mut c, &mut d);
        let del = step(
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
            &mut c,
            &mut d,
        );
        h *= del;
        if (del - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn t_quantiles_match_tables() {
        // two-sided 95 % critical values from standard tables
        for (df, want) in [
            (1.0, 12.706_204_736),
            (2.0, 4.302_652_730),
            (3.0, 3.182_446_305),
            (4.0, 2.776_445_105),
            (8.0, 2.306_004_135),
            (30.0, 2.042_272_456),
            (1e9, 1.959_963_985),
        ] {
            let got = t_quantile(0.975, df);
            assert!((got - want).abs() < 1e-6 * want, "df {df}: {got} vs {want}");
        }
        assert!((t_quantile(0.025, 4.0) + 2.776_445_105).abs() < 1e-6);
        // a fractional df lies between its integer neighbours
        let q = t_quantile(0.975, 2.5);
        assert!(q < 4.302_652_730 && q > 3.182_446_305, "{q}");
        assert!((t_cdf(0.0, 3.0) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn log_mean_is_the_geometric_mean_with_a_t_interval() {
        // logs 0, ln 4: mean ln 2, sd ln 4 / sqrt 2, half width t(1) * sd / sqrt 2 = t(1) ln 2
        let g = log_mean(&[1.0, 4.0]).unwrap();
        assert!((g.value - 2.0).abs() < 1e-12);
        let half = 12.706_204_736 * 2f64.ln();
        assert!((g.hi.ln() - (2f64.ln() + half)).abs() < 1e-6);
        assert!(log_mean(&[3.0]).is_none());
    }

    #[test]
    fn welch_matches_a_hand_computed_interval() {
        // a = 1, 2, 3 (mean 2, var 1); b = 4, 6 (mean 5, var 2): se² = 1/3 + 1 = 4/3,
        // df = (4/3)² / ((1/3)²/2 + 1²/1) = (16/9) / (1/18 + 1) = 32/19
        let d = welch_difference(&[1.0, 2.0, 3.0], &[4.0, 6.0]).unwrap();
        assert!((d.value + 3.0).abs() < 1e-12);
        assert!((d.df - 32.0 / 19.0).abs() < 1e-12, "{}", d.df);
        let half = t_quantile(0.975, 32.0 / 19.0) * (4.0f64 / 3.0).sqrt();
        assert!((d.hi - (-3.0 + half)).abs() < 1e-9 && (d.lo - (-3.0 - half)).abs() < 1e-9);
        assert_eq!(d.runs, (3, 2));
        assert!(!d.supports_verdict());
        assert!(welch_difference(&[1.0], &[1.0, 2.0]).is_none());
        // a ratio is the exponentiated interval of the logs
        let r = welch_log_ratio(&[2.0, 4.0, 8.0], &[1.0, 1.0, 1.0]).unwrap();
        assert!((r.value - 4.0).abs() < 1e-12);
        assert!(r.lo < 4.0 && r.hi > 4.0 && (r.lo * r.hi - 16.0).abs() < 1e-9);
    }

    /// Share of 95 % intervals that cover the true log-ratio, over `reps` simulated studies of
    /// lognormal values, `n` runs a side.
    fn coverage(n: usize, sd_a: f64, sd_b: f64, reps: usize, seed: u64) -> f64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut normal = move || {
            // Box-Muller
            let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
            (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
        };
        let true_ratio = (1.5f64 + 0.2).exp();
        let mut covered = 0;
        for _ in 0..reps {
            let a: Vec<f64> = (0..n).map(|_| (1.5 + sd_a * normal()).exp()).collect();
            let b: Vec<f64> = (0..n).map(|_| (-0.2 + sd_b * normal()).exp()).collect();
            let r = welch_log_ratio(&a, &b).unwrap();
            if r.lo <= true_ratio && true_ratio <= r.hi {
                covered += 1;
            }
        }
        covered as f64 / reps as f64
    }

    #[test]
    fn ratio_intervals_cover_95_percent_of_simulated_studies() {
        for (n, sd_a, sd_b, seed) in [
            (3, 0.5, 0.5, 1),
            (5, 0.5, 0.5, 2),
            (3, 0.2, 0.8, 3),
            (5, 1.0, 0.3, 4),
        ] {
            // 20,000 simulated studies: the estimate's own sd is 0.0015
            let c = coverage(n, sd_a, sd_b, 20_000, seed);
            assert!(
                (0.93..=0.97).contains(&c),
                "n {n}, sd {sd_a}/{sd_b}: coverage {c}"
            );
        }
    }

    #[test]
    fn a_percentile_bootstrap_at_three_runs_undercovers() {
        // why the reports left the bootstrap: with 3 runs a side it has 10 distinct resamples
        // and z-like width; the same simulated studies show it
        let mut rng = StdRng::seed_from_u64(9);
        let mut draw = StdRng::seed_from_u64(10);
        let mut normal = move || {
            let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
            (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
        };
        let mut covered = 0;
        let reps = 1000;
        for _ in 0..reps {
            let a: Vec<f64> = (0..3).map(|_| 0.5 * normal()).collect();
            let b: Vec<f64> = (0..3).map(|_| 0.5 * normal()).collect();
            let mut boot: Vec<f64> = (0..400)
                .map(|_| {
                    let pick = |v: &[f64], r: &mut StdRng| {
                        (0..3).map(|_| v[r.random_range(0..3)]).sum::<f64>() / 3.0
                    };
                    pick(&a, &mut draw) - pick(&b, &mut draw)
                })
                .collect();
            boot.sort_by(|x, y| x.total_cmp(y));
            let (lo, hi) = (boot[10], boot[389]);
            if lo <= 0.0 && 0.0 <= hi {
                covered += 1;
            }
        }
        let c = covered as f64 / reps as f64;
        assert!(c < 0.9, "bootstrap coverage {c}");
    }
}
