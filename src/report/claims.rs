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

fn padding_share(runs: &[&RunResult]) -> f64 {
    let v: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.steps.iter().map(|s| s.padding_fraction))
        .collect();
    median(&v)
}

/// Padding: naive BN against masked BN (and the authors' scaled BN), one paragraph per way of
/// training. Evaluation mode uses running statistics, so runs that differ only in how validation
/// batches are formed have the same evaluation-mode loss: one verdict per training batching, and
/// the training-mode numbers (which do depend on it) for each validation batching.
fn padding(runs: &[RunResult]) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for naive in text_runs(runs, NormKind::Batch) {
        let c = &naive.config;
        if !seen.insert(c.bucket_pool) {
            continue;
        }
        let group = |norm: NormKind, eval: EvalBatching| {
            matching(runs, c, |w| {
                w.norm = norm;
                w.eval_batching = Some(eval);
            })
        };
        let first = c.eval_batching.unwrap_or_default();
        let (n, m, s) = (
            group(NormKind::Batch, first),
            group(NormKind::MaskedBatch, first),
            group(NormKind::ScaledBatch, first),
        );
        if m.is_empty() {
            continue;
        }
        let train = if c.bucket_pool > 0 {
            "length-bucketed"
        } else {
            "random"
        };
        let (nl, ml, sl) = (final_losses(&n), final_losses(&m), final_losses(&s));
        let vs_masked = compare("naive", &nl, "masked", &ml);
        let mut line = format!(
            "Claim: padding pollutes BatchNorm's statistics. Trained on {train} batches (median padding {:.0} %), \
             final validation loss in evaluation mode (running statistics, so the same for every way of forming \
             validation batches): naive BN {}, masked BN {}",
            100.0 * padding_share(&n),
            pm_seeds(&nl),
            pm_seeds(&ml)
        );
        if !sl.is_empty() {
            line += &format!(", scaled BN (the authors') {}", pm_seeds(&sl));
        }
        line += ". In training mode (each validation batch's own statistics, which is where the validation \
                 batches' padding enters):";
        for eval in [EvalBatching::Plain, EvalBatching::Bucketed] {
            let (n, m) = (
                group(NormKind::Batch, eval),
                group(NormKind::MaskedBatch, eval),
            );
            if n.is_empty() || m.is_empty() {
                continue;
            }
            let (nt, mt) = (final_train_mode_losses(&n), final_train_mode_losses(&m));
            let name = match eval {
                EvalBatching::Plain => "file-order",
                EvalBatching::Bucketed => "length-bucketed",
            };
            line += &format!(
                " {name} validation batches: naive BN {}, masked BN {}; {};",
                pm_seeds(&nt),
                pm_seeds(&mt),
                compare("naive", &nt, "masked", &mt).estimate
            );
        }
        line.pop();
        line += ".\n";
        line += &claim_verdict(
            &format!("padding pollutes BatchNorm's statistics ({train} training batches), final validation loss in evaluation mode"),
            &vs_masked,
            "reproduced when the interval of naive − masked lies above 0, not reproduced below 0, not resolved when it contains 0",
            ["reproduced", "not reproduced (naive BN does better here)", "not resolved"],
            None,
        );
        out.push(line);
    }
    out
}

/// Per seed, how far the training-mode validation loss moves (absolute difference) between
/// length-bucketed and file-order validation batches: the same sentences, only their padding
/// differs. Either direction counts: a BN whose statistics carry the padding it was trained with
/// is hurt by any other amount of padding.
fn padding_shift(runs: &[RunResult], like: &RunConfig, norm: NormKind) -> Vec<f64> {
    let side = |b: EvalBatching| -> std::collections::BTreeMap<u64, f64> {
        matching(runs, like, |w| {
            w.norm = norm;
            w.eval_batching = Some(b);
        })
        .into_iter()
        .filter(|r| r.status() == RunStatus::Finished)
        .filter_map(|r| {
            Some((
                r.config.seed,
                r.summary.as_ref()?.final_eval.as_ref()?.train_mode_loss,
            ))
        })
        .collect()
    };
    let (plain, bucketed) = (side(EvalBatching::Plain), side(EvalBatching::Bucketed));
    plain
        .iter()
        .filter_map(|(seed, p)| bucketed.get(seed).map(|b| (b - p).abs()))
        .filter(|x| x.is_finite())
        .collect()
}

/// Padding's own effect: naive BN's training-mode loss moves with the validation batches'
/// padding, masked BN's should not.
fn padding_sensitivity(runs: &[RunResult]) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for naive in text_runs(runs, NormKind::Batch) {
        let c = &naive.config;
        if !seen.insert(c.bucket_pool) {
            continue;
        }
        let (ns, ms) = (
            padding_shift(runs, c, NormKind::Batch),
            padding_shift(runs, c, NormKind::MaskedBatch),
        );
        if ns.is_empty() || ms.is_empty() {
            continue;
        }
        let train = if c.bucket_pool > 0 {
            "length-bucketed"
        } else {
            "random"
        };
        let c = compare("naive", &ns, "masked", &ms);
        out.push(format!(
            "Claim: padding pollutes BatchNorm's statistics, seen where only the padding changes. Trained on {train} \
             batches, how far the training-mode validation loss moves between file-order and length-bucketed \
             validation batches (the same sentences, only their padding differs): naive BN {}, masked BN {}.\n{}",
            pm_seeds(&ns),
            pm_seeds(&ms),
            claim_verdict(
                &format!("padding's own effect ({train} training batches), shift of the training-mode validation loss"),
                &c,
                "reproduced when the interval of naive − masked lies above 0",
                ["reproduced", "not reproduced", "not resolved"],
                None,
            )
        ));
    }
    out
}

/// Per-position against pooled BatchNorm statistics, and against the control: random groups of
/// real tokens with the same sizes (`random-group-batch`).
fn position(runs: &[RunResult]) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for p in text_runs(runs, NormKind::PositionBatch) {
        let pooled = matching(runs, &p.config, |w| w.norm = NormKind::MaskedBatch);
        let per = matching(runs, &p.config, |w| w.norm = NormKind::PositionBatch);
        let control = matching(runs, &p.config, |w| w.norm = NormKind::RandomGroupBatch);
        let pooled_first = matching(runs, &p.config, |w| {
            w.norm = NormKind::PositionBatchPooledFirst
        });
        if pooled.is_empty() || !seen.insert(p.config.bucket_pool) {
            continue;
        }
        let (pl, ml, cl) = (
            final_losses(&per),
            final_losses(&pooled),
            final_losses(&control),
        );
        let c = compare("per-position", &pl, "pooled", &ml);
        let (pt, mt) = (
            final_train_mode_losses(&per),
            final_train_mode_losses(&pooled),
        );
        let train_c = compare("per-position", &pt, "pooled", &mt);
        let mut text = format!(
            "Claim: tokens at the same position of different sentences are unrelated, so per-position batch statistics \
             help nothing. Final validation loss (evaluation mode, running statistics): per-position BN {}, pooled \
             (masked) BN {}",
            pm_seeds(&pl),
            pm_seeds(&ml)
        );
        if !cl.is_empty() {
            text += &format!(
                ", random groups of the same sizes (the control) {}",
                pm_seeds(&cl)
            );
        }
        text += &format!(
            ". In training mode (each batch's own statistics): per-position {}, pooled {}; {}.\n{}",
            pm_seeds(&pt),
            pm_seeds(&mt),
            train_c.estimate,
            claim_verdict(
                "per-position statistics do worse than pooled ones, final validation loss in evaluation mode",
                &c,
                "worse when the interval of per-position − pooled lies above 0, better below 0, not resolved when it contains 0",
                ["worse than pooled", "better than pooled", "not resolved"],
                None,
            )
        );
        if cl.is_empty() {
            text += "\n- Without the control (`random-group-batch`: random groups of real tokens with the sizes of the \
                     positions) a worse loss may come from the small groups alone: the claim is not tested by this \
                     comparison.";
        } else {
            let vs = compare("per-position", &pl, "random groups", &cl);
            text += &format!(
                "\n{}",
                claim_verdict(
                    "positions carry no shared statistics: final validation loss in evaluation mode, per-position − random groups of the same sizes (unrelated positions predict no difference; related ones, per-position better)",
                    &vs,
                    "contradicted when the interval lies below 0 (position grouping beats chance grouping); consistent when it contains 0; above 0, position grouping is worse than chance (something about positions hurts, e.g. position 0 is the same <bos> everywhere)",
                    [
                        "consistent, and position grouping is worse than chance",
                        "contradicted (position grouping beats chance grouping)",
                        "consistent (no difference from chance grouping)",
                    ],
                    None,
                )
            );
        }
        let fl = final_losses(&pooled_first);
        if !fl.is_empty() {
            let vs = compare("position 0 pooled", &fl, "pooled", &ml);
            text += &format!(
                "\n{}",
                claim_verdict(
                    "position 0 (the same <bos> in every sentence, a group without variance) explains per-position BN's deficit: final validation loss in evaluation mode, per-position with position 0 pooled over all real tokens − pooled",
                    &vs,
                    "not explained when the interval lies above 0 (still worse than pooled without position 0's group); explained when it contains 0; below 0, better than pooled",
                    [
                        "not explained by position 0",
                        "explained, and better than pooled",
                        "explained (no difference from pooled once position 0 is pooled)",
                    ],
                    None,
                )
            );
        }
        out.push(text);
    }
    out
}

/// One learning rate of a sweep: the finished runs' final losses and how many runs diverged.
struct SweepPoint {
    lr: f64,
    losses: Vec<f64>,
    diverged: usize,
}

impl SweepPoint {
    /// The mean final loss; a rate where any run diverged counts as worse than any other.
    fn score(&self) -> f64 {
        if self.losses.is_empty() || self.diverged > 0 {
            f64::INFINITY
        } else {
            mean_std(&self.losses).0
        }
    }
}

/// The best rate of a sweep, and whether it is bracketed: a worse rate on both sides.
fn best_rate(sweep: &[SweepPoint]) -> Option<(usize, bool)> {
    let (i, best) = sweep
        .iter()
        .enumerate()
        .filter(|(_, p)| p.score().is_finite())
        .min_by(|a, b| a.1.score().total_cmp(&b.1.score()))?;
    let worse = |p: &SweepPoint| p.score() > best.score();
    let bracketed = sweep[..i].iter().any(worse) && sweep[i + 1..].iter().any(worse);
    Some((i, bracketed))
}

/// BatchNorm against LayerNorm, each at its best learning rate among those the runs cover. A
/// best rate at the edge of the sweep (no worse rate on one side; a diverged rate counts as
/// worse) gives "not resolved", whatever the difference says.
fn learning_rates(runs: &[RunResult]) -> Vec<String> {
    let mut out = Vec::new();
    let Some(layer) = text_runs(runs, NormKind::Layer).into_iter().next() else {
        return out;
    };
    let sweep = |norm: NormKind| -> Vec<SweepPoint> {
        let mut lrs: Vec<f64> = text_runs(runs, norm).iter().map(|r| r.config.lr).collect();
        lrs.sort_by(|a, b| a.total_cmp(b));
        lrs.dedup();
        lrs.into_iter()
            .map(|lr| {
                let at = matching(runs, &layer.config, |w| {
                    w.norm = norm;
                    w.lr = lr;
                });
                SweepPoint {
                    lr,
                    losses: final_losses(&at),
                    diverged: at
                        .iter()
                        .filter(|r| r.status() == RunStatus::Diverged)
                        .count(),
                }
            })
            .filter(|p| !p.losses.is_empty() || p.diverged > 0)
            .collect()
    };
    let ln = sweep(NormKind::Layer);
    if ln.len() < 2 {
        return out;
    }
    let Some((ln_i, ln_bracketed)) = best_rate(&ln) else {
        return out;
    };
    let list = |sw: &[SweepPoint]| {
        sw.iter()
            .map(|p| match (p.losses.is_empty(), p.diverged) {
                (true, _) => format!("{}: diverged", p.lr),
                (false, 0) => format!("{}: {}", p.lr, sig(p.score())),
                (false, d) => format!("{}: {} ({d} diverged)", p.lr, sig(p.score())),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    for bn in [
        NormKind::Batch,
        NormKind::MaskedBatch,
        NormKind::ScaledBatch,
    ] {
        let s = sweep(bn);
        if s.len() < 2 {
            continue;
        }
        let Some((bn_i, bn_bracketed)) = best_rate(&s) else {
            continue;
        };
        let c = compare(bn.name(), &s[bn_i].losses, "layer", &ln[ln_i].losses);
        let edge = (!ln_bracketed || !bn_bracketed)
            .then_some("not resolved (optimum at the edge of the sweep)");
        out.push(format!(
            "Claim: BatchNorm is worse than LayerNorm on text, at each norm's best learning rate. Mean final validation \
             loss by learning rate: layer {}; {} {}. Best: layer at {} ({}{}), {} at {} ({}{}).\n{}",
            list(&ln),
            bn.name(),
            list(&s),
            ln[ln_i].lr,
            pm_seeds(&ln[ln_i].losses),
            if ln_bracketed { "" } else { ", at the edge of the sweep" },
            bn.name(),
            s[bn_i].lr,
            pm_seeds(&s[bn_i].losses),
            if bn_bracketed { "" } else { ", at the edge of the sweep" },
            claim_verdict(
                &format!("{} is worse than layer at each one's best learning rate, final validation loss", bn.name()),
                &c,
                "reproduced when the interval of BN − layer lies above 0; not resolved when it contains 0 or when either best rate lacks a worse rate on both sides",
                ["reproduced", "not reproduced (BatchNorm does better)", "not resolved"],
                edge,
            )
        ));
    }
    out
}

/// Least-squares slope of `y` on `x`; `None` when `x` has no spread.
fn slope(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len() as f64;
    if x.len() < 3 {
        return None;
    }
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxx: f64 = x.iter().map(|a| (a - mx) * (a - mx)).sum();
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    (sxx > 1e-12).then(|| sxy / sxx)
}

/// The measure the padding slope is taken on: scale-free, so variants compare.
const PADDING_MEASURE: &str = crate::probe::REL_DIST_VAR;

/// Per run, the slope of `PADDING_MEASURE` (mean over the BN layers at each step after warm-up)
/// against the step's padding fraction: how much the batch statistics move with padding.
pub fn padding_slope(r: &RunResult) -> Option<f64> {
    let pad: std::collections::HashMap<usize, f64> = r
        .steps
        .iter()
        .map(|s| (s.step, s.padding_fraction))
        .collect();
    let mut by_step: std::collections::BTreeMap<usize, (f64, usize)> = Default::default();
    for series in r.probes.values().filter_map(|p| p.get(PADDING_MEASURE)) {
        for &(step, v) in series
            .iter()
            .filter(|(s, v)| *s > r.config.warmup_steps && v.is_finite())
        {
            let e = by_step.entry(step).or_insert((0.0, 0));
            (e.0, e.1) = (e.0 + v, e.1 + 1);
        }
    }
    let (x, y): (Vec<f64>, Vec<f64>) = by_step
        .iter()
        .filter_map(|(step, (sum, n))| Some((*pad.get(step)?, sum / *n as f64)))
        .unzip();
    slope(&x, &y)
}

/// Padding's measured number: per BN variant, how its statistics' distance grows with the
/// batch's padding fraction (one slope per run, an interval between runs), and naive against
/// masked BN.
fn padding_slopes(runs: &[RunResult]) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for naive in text_runs(runs, NormKind::Batch) {
        let c = &naive.config;
        // the slope is taken on training steps: validation batching does not enter it
        if !seen.insert(c.bucket_pool) {
            continue;
        }
        let slopes = |norm: NormKind| -> Vec<f64> {
            matching(runs, c, |w| w.norm = norm)
                .into_iter()
                .filter(|r| r.status() == RunStatus::Finished)
                .filter_map(padding_slope)
                .collect()
        };
        let (n, m, sc) = (
            slopes(NormKind::Batch),
            slopes(NormKind::MaskedBatch),
            slopes(NormKind::ScaledBatch),
        );
        if n.is_empty() || m.is_empty() {
            continue;
        }
        let each = |name: &str, v: &[f64]| -> String {
            match super::inference::one_sample(v) {
                Some(i) => format!(
                    "{name} {} [95 % interval {}, {}]",
                    sig(i.value),
                    sig(i.lo),
                    sig(i.hi)
                ),
                None => format!("{name} {} (1 run)", sig(mean_std(v).0)),
            }
        };
        let mut per = vec![each("naive", &n), each("masked", &m)];
        if !sc.is_empty() {
            per.push(each("scaled (the authors')", &sc));
        }
        let train = if c.bucket_pool > 0 {
            "length-bucketed"
        } else {
            "random"
        };
        let cmp = compare("naive", &n, "masked", &m);
        out.push(format!(
            "Padding's measured number: the slope of `{PADDING_MEASURE}` (mean over BN layers, each step after warm-up) \
             against the batch's padding fraction, per run, {train} training batches: {}.\n{}",
            per.join(", "),
            claim_verdict(
                "BatchNorm's statistics move with padding unless it is masked: padding slope, naive − masked",
                &cmp,
                "reproduced when the interval of the slopes' difference lies above 0",
                ["reproduced", "not reproduced (masked moves more)", "not resolved"],
                None,
            )
        ));
    }
    out
}

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
