//! The question's own claims, each measured where a study has the runs for it: padding pollutes
//! BatchNorm's statistics; tokens at the same position of different sentences are unrelated;
//! BatchNorm is worse than LayerNorm on text at each norm's best learning rate. Every comparison
//! is a difference of final validation losses between two sets of seeds with Welch's 95 % t
//! interval (`report::inference`), and ends in one verdict line (`report::format`) that names
//! its rule and its runs per side.

use super::format::{pm_seeds, sig, verdict_line};
use super::inference::{welch_difference, Interval};
use super::select::{final_losses, final_train_mode_losses};
use super::{mean_std, median, RunResult};
use crate::config::{RunConfig, Task};
use crate::data::EvalBatching;
use crate::norm::NormKind;
use crate::results::RunStatus;

/// Mean of `a` minus mean of `b` with Welch's 95 % interval between seeds.
pub fn difference(a: &[f64], b: &[f64]) -> Option<Interval> {
    welch_difference(a, b)
}

/// A difference of means between two sets of seeds, ready for a verdict line.
struct Comparison {
    /// "a − b = d [95 % interval lo, hi]"
    estimate: String,
    /// +1 when the interval lies above 0, −1 below, 0 when it contains 0; `None` when there is
    /// no interval (fewer than two seeds on a side) or too few runs for a verdict.
    sign: Option<f64>,
    runs: String,
    /// Why there is no verdict, if there is none.
    no_verdict: Option<&'static str>,
}

fn compare(a_name: &str, a: &[f64], b_name: &str, b: &[f64]) -> Comparison {
    let runs = if a.len() == b.len() {
        format!("{} runs per side (Welch t between seeds)", a.len())
    } else {
        format!(
            "{} runs of {a_name} and {} runs of {b_name} (Welch t between seeds)",
            a.len(),
            b.len()
        )
    };
    match difference(a, b) {
        None => Comparison {
            estimate: format!(
                "{a_name} − {b_name} = {} [95 % interval n/a: fewer than two seeds on a side]",
                sig(mean_std(a).0 - mean_std(b).0)
            ),
            sign: None,
            runs,
            no_verdict: Some("no verdict: fewer than two runs on a side"),
        },
        Some(d) => Comparison {
            estimate: format!(
                "{a_name} − {b_name} = {} [95 % interval {}, {}]",
                sig(d.value),
                sig(d.lo),
                sig(d.hi)
            ),
            sign: Some(if d.lo > 0.0 {
                1.0
            } else if d.hi < 0.0 {
                -1.0
            } else {
                0.0
            }),
            runs,
            no_verdict: if !d.supports_verdict() {
                Some("no verdict: fewer than 3 runs a side")
            } else if d.hi <= d.lo {
                Some("no verdict: the runs do not differ (an interval of zero width)")
            } else {
                None
            },
        },
    }
}

/// The verdict line of a claim: `words` maps the comparison's sign (+1, −1, 0) to a verdict.
fn claim_verdict(
    subject: &str,
    c: &Comparison,
    rule: &str,
    words: [&str; 3],
    override_verdict: Option<&str>,
) -> String {
    let verdict = match (c.no_verdict, override_verdict, c.sign) {
        (Some(why), _, _) => why.to_string(),
        (None, Some(v), _) => v.to_string(),
        (None, None, Some(s)) if s > 0.0 => words[0].to_string(),
        (None, None, Some(s)) if s < 0.0 => words[1].to_string(),
        (None, None, Some(_)) => words[2].to_string(),
        (None, None, None) => "could not be measured".to_string(),
    };
    verdict_line(&verdict, subject, &c.estimate, rule, &c.runs)
}

/// The runs of `runs` whose configuration equals `like` up to the seed, with `edit` applied.
fn matching<'a>(
    runs: &'a [RunResult],
    like: &RunConfig,
    edit: impl Fn(&mut RunConfig),
) -> Vec<&'a RunResult> {
    let mut want = like.clone();
    edit(&mut want);
    want.seed = 0;
    let key = want.identity().to_toml();
    runs.iter()
        .filter(|r| {
            let mut c = r.config.clone();
            c.seed = 0;
            c.identity().to_toml() == key
        })
        .collect()
}

fn text_runs(runs: &[RunResult], norm: NormKind) -> Vec<&RunResult> {
    runs.iter()
        .filter(|r| r.config.task == Task::Text && r.config.norm == norm)
        .collect()
}

mod padding;
mod position;
mod sweep;

pub use padding::padding_slope;
use padding::{padding, padding_sensitivity, padding_slopes};
use position::position;
use sweep::learning_rates;

/// Every claim the runs can speak to, one paragraph each.
pub fn findings(runs: &[RunResult]) -> Vec<String> {
    let mut out = padding(runs);
    out.extend(padding_slopes(runs));
    out.extend(padding_sensitivity(runs));
    out.extend(position(runs));
    out.extend(learning_rates(runs));
    out
}

#[cfg(test)]
mod tests {
    use super::padding::*;
    use super::sweep::*;
    use super::*;

    #[test]
    fn welch_difference_interval_covers_the_mean_and_excludes_zero_when_clear() {
        let d = difference(&[5.0, 5.1, 4.9], &[4.0, 4.1, 3.9]).unwrap();
        assert!((d.value - 1.0).abs() < 1e-12);
        // se = sqrt(0.01/3 + 0.01/3), df = 4, t = 2.776
        let half = 2.776_445 * (0.02f64 / 3.0).sqrt();
        assert!((d.lo - (1.0 - half)).abs() < 1e-5 && (d.hi - (1.0 + half)).abs() < 1e-5);
        let d = difference(&[5.0, 4.0, 6.0], &[5.1, 4.2, 5.8]).unwrap();
        assert!(d.lo < 0.0 && d.hi > 0.0);
        assert!(difference(&[], &[1.0]).is_none());
        let c = compare("a", &[2.0, 2.1, 2.05], "b", &[1.0, 1.1, 1.05]);
        assert_eq!((c.sign, c.no_verdict), (Some(1.0), None));
        let line = claim_verdict("a is worse", &c, "rule", ["worse", "better", "same"], None);
        assert!(
            super::super::format::is_complete_verdict_line(&line),
            "{line}"
        );
        assert!(line.starts_with("- **worse**"), "{line}");
        // two seeds a side: an interval, but no verdict
        let c = compare("a", &[2.0, 2.1], "b", &[1.0, 1.1]);
        assert!(claim_verdict("x", &c, "r", ["w", "b", "s"], None).contains("no verdict"));
    }

    #[test]
    fn least_squares_slope_by_hand() {
        // y = 2x + 1 exactly, then with symmetric noise that leaves the slope
        assert!((slope(&[0.0, 1.0, 2.0], &[1.0, 3.0, 5.0]).unwrap() - 2.0).abs() < 1e-12);
        assert!((slope(&[0.0, 1.0, 2.0, 3.0], &[1.5, 2.5, 5.5, 6.5]).unwrap() - 1.8).abs() < 1e-12);
        assert!(slope(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_none());
    }

    #[test]
    fn a_runs_padding_slope_follows_its_steps_after_warm_up() {
        use crate::results::StepRow;
        let config = RunConfig {
            norm: NormKind::Batch,
            steps: 40,
            warmup_steps: 10,
            ..Default::default()
        };
        let pad = |s: usize| 0.1 + 0.02 * (s % 7) as f64;
        let steps = (1..=40)
            .map(|step| StepRow {
                step,
                loss: 1.0,
                lr: 1e-3,
                grad_norm: 1.0,
                tokens: 10,
                batch: 2,
                time: 8,
                padding_fraction: pad(step),
                step_ms: 1.0,
                wall_s: 1.0,
            })
            .collect();
        // two layers: 3 * pad + 1 and 5 * pad (mean slope 4); warm-up steps carry 100 * pad
        let mut probes: std::collections::BTreeMap<_, std::collections::BTreeMap<_, _>> =
            Default::default();
        for (layer, a, b) in [("l0", 3.0, 1.0), ("l1", 5.0, 0.0)] {
            let series: Vec<(usize, f64)> = (1..=40)
                .map(|s| {
                    (
                        s,
                        if s <= 10 {
                            100.0 * pad(s)
                        } else {
                            a * pad(s) + b
                        },
                    )
                })
                .collect();
            probes
                .entry(layer.to_string())
                .or_default()
                .insert(PADDING_MEASURE.to_string(), series);
        }
        let r = RunResult {
            dir: Default::default(),
            summary: None,
            steps,
            eval: vec![],
            probes,
            layers: vec!["l0".into(), "l1".into()],
            config,
            warnings: vec![],
        };
        assert!((padding_slope(&r).unwrap() - 4.0).abs() < 1e-9);
    }

    #[test]
    fn an_optimum_at_the_edge_of_the_sweep_is_not_bracketed() {
        let p = |lr: f64, loss: Option<f64>| SweepPoint {
            lr,
            losses: loss.into_iter().collect(),
            diverged: usize::from(loss.is_none()),
        };
        // the best rate is the largest: not bracketed
        let sweep = [p(1e-3, Some(5.0)), p(2e-3, Some(4.8)), p(4e-3, Some(4.7))];
        assert_eq!(best_rate(&sweep), Some((2, false)));
        // a diverged larger rate counts as worse: bracketed
        let sweep = [p(1e-3, Some(5.0)), p(4e-3, Some(4.7)), p(8e-3, None)];
        assert_eq!(best_rate(&sweep), Some((1, true)));
        // a rate where one seed of several diverged is not the best, however low its survivors
        let mut partly = p(8e-3, Some(4.0));
        partly.diverged = 1;
        let sweep = [p(1e-3, Some(5.0)), p(4e-3, Some(4.7)), partly];
        assert_eq!(best_rate(&sweep), Some((1, true)));
    }
}
