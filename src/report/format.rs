//! How reports write numbers and verdicts.
//!
//! Precision: three significant digits ([`sig`]); the intervals between runs rarely support
//! more. Scientific notation below 0.001 and from 10,000 up.
//!
//! Verdict lines have one shape, so that a reader (or a test) finds the verdict, what it is
//! about, the estimate with its interval, the rule and the runs behind it:
//!
//! `- **VERDICT** — SUBJECT: ESTIMATE [95 % interval LO, HI]. Rule: RULE. Runs: N text runs, M image runs (HOW).`

/// `x` with three significant digits.
pub fn sig(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    if x == 0.0 {
        return "0".into();
    }
    let a = x.abs();
    if !(1e-3..1e4).contains(&a) {
        return format!("{x:.2e}");
    }
    let decimals = (2 - a.log10().floor() as i32).max(0) as usize;
    let s = format!("{x:.decimals$}");
    // rounding that carries into the next power of ten (0.09999 -> "0.1000") keeps one digit fewer
    match s.trim_start_matches('-').parse::<f64>() {
        Ok(r) if decimals > 0 && r >= 10f64.powi(a.log10().floor() as i32 + 1) => {
            format!("{x:.*}", decimals - 1)
        }
        _ => s,
    }
}

/// Mean ± sample standard deviation of `v` (the mean alone for one value, "n/a" for none).
pub fn pm(v: &[f64]) -> String {
    let (m, s) = super::mean_std(v);
    match v.len() {
        0 => "n/a".into(),
        1 => sig(m),
        _ => format!("{} ± {}", sig(m), sig(s)),
    }
}

/// [`pm`] with the number of seeds: "5.03 ± 0.00591 (3 seeds)".
pub fn pm_seeds(v: &[f64]) -> String {
    match v.len() {
        0 => "n/a".into(),
        1 => format!("{} (1 seed)", pm(v)),
        n => format!("{} ({n} seeds)", pm(v)),
    }
}

/// A verdict line (see the module docs).
pub fn verdict_line(
    verdict: &str,
    subject: &str,
    estimate: &str,
    rule: &str,
    runs: &str,
) -> String {
    format!("- **{verdict}** — {subject}: {estimate}. Rule: {rule}. Runs: {runs}.")
}

/// Whether `line` is a verdict line with every part present: a verdict, an interval, a rule
/// and the runs per side. Reports' tests hold every verdict line to it.
pub fn is_complete_verdict_line(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("- **") else {
        return false;
    };
    let Some((_verdict, rest)) = rest.split_once("** — ") else {
        return false;
    };
    let Some((estimate, rest)) = rest.split_once(". Rule: ") else {
        return false;
    };
    let Some((_rule, runs)) = rest.split_once(". Runs: ") else {
        return false;
    };
    let counted = |s: &str| {
        let words: Vec<&str> = s.split_whitespace().collect();
        words.windows(3).any(|w| {
            w[0].parse::<usize>().is_ok()
                && ((w[1] == "text" || w[1] == "image") && w[2].starts_with("runs")
                    || w[1] == "runs" && (w[2] == "per" || w[2] == "of"))
        })
    };
    estimate.contains("interval") && counted(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_significant_digits() {
        assert_eq!(sig(1308.2478), "1308");
        assert_eq!(sig(1.1426), "1.14");
        assert_eq!(sig(27.93), "27.9");
        assert_eq!(sig(0.05123), "0.0512");
        assert_eq!(sig(-0.0055), "-0.00550");
        assert_eq!(sig(0.0), "0");
        assert_eq!(sig(2.5e-5), "2.50e-5");
        assert_eq!(sig(f64::NAN), "n/a");
        assert_eq!(sig(0.09999999), "0.100");
        assert_eq!(sig(-9.9996), "-10.0");
        assert_eq!(sig(999.7), "1000");
    }

    #[test]
    fn verdict_lines_are_recognised_only_when_complete() {
        let line = verdict_line(
            "reproduced",
            "dist_var, last layer",
            "ratio 27.9 [95 % interval 12.1, 64.3]",
            "whole interval at or above 10",
            "5 text runs, 5 image runs (Welch t)",
        );
        assert!(is_complete_verdict_line(&line), "{line}");
        let per_side = verdict_line(
            "not resolved",
            "a − b",
            "0.01 [95 % interval -0.02, 0.04]",
            "interval excludes 0",
            "3 runs per side",
        );
        assert!(is_complete_verdict_line(&per_side));
        let no_runs = verdict_line(
            "reproduced",
            "x",
            "ratio 3 [95 % interval 2, 4]",
            "r",
            "Welch",
        );
        assert!(!is_complete_verdict_line(&no_runs));
        let no_interval = verdict_line("reproduced", "x", "ratio 3", "r", "3 runs per side");
        assert!(!is_complete_verdict_line(&no_interval));
    }
}
