//! The question's own claims, each measured where a study has the runs for it: padding pollutes
//! BatchNorm's statistics; tokens at the same position of different sentences are unrelated;
//! BatchNorm is worse than LayerNorm on text at each norm's best learning rate. Every comparison
//! is a difference of final validation losses between two sets of seeds with a 95 % bootstrap
//! interval over seeds, and its verdict names its rule.

use super::{mean_std, median, quantile, RunResult};
use crate::config::{RunConfig, Task};
use crate::data::EvalBatching;
use crate::norm::NormKind;
use crate::results::RunStatus;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Final validation losses (evaluation mode) of the finished runs among `runs`.
fn final_losses(runs: &[&RunResult]) -> Vec<f64> {
    runs.iter()
        .filter(|r| r.status() == RunStatus::Finished)
        .filter_map(|r| r.summary.as_ref()?.final_eval.as_ref().map(|e| e.eval_loss))
        .filter(|x| x.is_finite())
        .collect()
}

/// Final validation losses in training mode (batch statistics) of the finished runs.
fn final_train_mode_losses(runs: &[&RunResult]) -> Vec<f64> {
    runs.iter()
        .filter(|r| r.status() == RunStatus::Finished)
        .filter_map(|r| {
            r.summary
                .as_ref()?
                .final_eval
                .as_ref()
                .map(|e| e.train_mode_loss)
        })
        .filter(|x| x.is_finite())
        .collect()
}

/// Mean of `a` minus mean of `b`, with a 95 % bootstrap interval over the seeds of each.
pub fn difference(a: &[f64], b: &[f64]) -> Option<(f64, f64, f64)> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let mut rng = StdRng::seed_from_u64(0xc1a1);
    let mut draws: Vec<f64> = (0..2000)
        .map(|_| {
            let pick = |v: &[f64], rng: &mut StdRng| {
                (0..v.len())
                    .map(|_| v[rng.random_range(0..v.len())])
                    .sum::<f64>()
                    / v.len() as f64
            };
            pick(a, &mut rng) - pick(b, &mut rng)
        })
        .collect();
    draws.sort_by(|x, y| x.total_cmp(y));
    Some((
        mean(a) - mean(b),
        quantile(&draws, 0.025),
        quantile(&draws, 0.975),
    ))
}

fn fmt(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "n/a".into()
    }
}

fn pm(v: &[f64]) -> String {
    let (m, s) = mean_std(v);
    match v.len() {
        0 => "n/a".into(),
        1 => format!("{} (1 seed)", fmt(m)),
        n => format!("{} ± {} ({n} seeds)", fmt(m), fmt(s)),
    }
}

/// "a − b = d [lo, hi]: higher / lower / no difference", the rule being whether the interval
/// excludes 0.
fn compare(a_name: &str, a: &[f64], b_name: &str, b: &[f64]) -> (String, Option<f64>) {
    match difference(a, b) {
        None => (format!("{a_name} − {b_name}: could not be measured"), None),
        Some((d, lo, hi)) => {
            let word = if lo > 0.0 {
                format!("{a_name} is worse")
            } else if hi < 0.0 {
                format!("{a_name} is better")
            } else {
                "no difference the seeds can resolve".into()
            };
            let sign = if lo > 0.0 {
                1.0
            } else if hi < 0.0 {
                -1.0
            } else {
                0.0
            };
            (
                format!(
                    "{a_name} − {b_name} = {} [95 % interval {}, {}]: {word}",
                    fmt(d),
                    fmt(lo),
                    fmt(hi)
                ),
                Some(sign),
            )
        }
    }
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
    let key = want.to_toml();
    runs.iter()
        .filter(|r| {
            let mut c = r.config.clone();
            c.seed = 0;
            c.to_toml() == key
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

/// Padding: naive BN against masked BN (and the authors' scaled BN) for every way of training
/// and evaluating that the runs cover.
fn padding(runs: &[RunResult]) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for naive in text_runs(runs, NormKind::Batch) {
        let c = &naive.config;
        if !seen.insert((c.bucket_pool, c.eval_batching.unwrap_or_default())) {
            continue;
        }
        let group = |norm: NormKind| matching(runs, c, |w| w.norm = norm);
        let (n, m, s) = (
            group(NormKind::Batch),
            group(NormKind::MaskedBatch),
            group(NormKind::ScaledBatch),
        );
        if m.is_empty() {
            continue;
        }
        let train = if c.bucket_pool > 0 {
            "length-bucketed"
        } else {
            "random"
        };
        let eval = match c.eval_batching.unwrap_or_default() {
            EvalBatching::Plain => "file-order",
            EvalBatching::Bucketed => "length-bucketed",
        };
        let (nl, ml, sl) = (final_losses(&n), final_losses(&m), final_losses(&s));
        let (vs_masked, sign) = compare("naive", &nl, "masked", &ml);
        let (nt, mt) = (final_train_mode_losses(&n), final_train_mode_losses(&m));
        let (train_vs, _) = compare("naive", &nt, "masked", &mt);
        let verdict = match sign {
            Some(s) if s > 0.0 => "**reproduced** (padding in the statistics costs loss here)",
            Some(s) if s < 0.0 => "**not reproduced** (naive BN does better here)",
            Some(_) => "**not resolved** (no difference beyond the seed spread)",
            None => "could not be measured",
        };
        let mut line = format!(
            "Claim: padding pollutes BatchNorm's statistics. Trained on {train} batches (median padding {:.0} %), \
             evaluated on {eval} validation batches, final validation loss: naive BN {}, masked BN {}",
            100.0 * padding_share(&n),
            pm(&nl),
            pm(&ml)
        );
        if !sl.is_empty() {
            line += &format!(", scaled BN (the authors') {}", pm(&sl));
        }
        line += &format!(
            "; {vs_masked}. In training mode (each validation batch's own statistics, which is where the \
             validation batches' padding enters: evaluation mode uses running statistics and does not depend on \
             how validation batches are formed): naive BN {}, masked BN {}; {train_vs}. Rule: reproduced when the \
             interval of naive − masked (evaluation mode) lies above 0. Verdict: {verdict}.",
            pm(&nt),
            pm(&mt)
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
        let (line, sign) = compare("naive", &ns, "masked", &ms);
        let verdict = match sign {
            Some(x) if x > 0.0 => {
                "**reproduced**: naive BN's statistics carry the padding of its training batches"
            }
            Some(x) if x < 0.0 => "**not reproduced**",
            Some(_) => "**not resolved** by these seeds",
            None => "could not be measured",
        };
        out.push(format!(
            "Claim: padding pollutes BatchNorm's statistics, seen where only the padding changes. Trained on {train} \
             batches, how far the training-mode validation loss moves between file-order and length-bucketed \
             validation batches (the same sentences, only their padding differs): naive BN {}, masked BN {}; {line}. Rule: reproduced when the interval \
             of naive − masked lies above 0. Verdict: {verdict}.",
            pm(&ns),
            pm(&ms)
        ));
    }
    out
}

/// Per-position against pooled BatchNorm statistics.
fn position(runs: &[RunResult]) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for p in text_runs(runs, NormKind::PositionBatch) {
        let pooled = matching(runs, &p.config, |w| w.norm = NormKind::MaskedBatch);
        let per = matching(runs, &p.config, |w| w.norm = NormKind::PositionBatch);
        if pooled.is_empty() || !seen.insert(p.config.bucket_pool) {
            continue;
        }
        let (pl, ml) = (final_losses(&per), final_losses(&pooled));
        let (line, sign) = compare("per-position", &pl, "pooled", &ml);
        let (pt, mt) = (
            final_train_mode_losses(&per),
            final_train_mode_losses(&pooled),
        );
        let (train_line, _) = compare("per-position", &pt, "pooled", &mt);
        let verdict = match sign {
            Some(s) if s > 0.0 => "**supported**: statistics of the same position across sentences make a worse normalizer than pooled ones",
            Some(s) if s < 0.0 => "**contradicted**: per-position statistics do better here",
            Some(_) => "**not resolved** by these seeds",
            None => "could not be measured",
        };
        out.push(format!(
            "Claim: tokens at the same position of different sentences are unrelated, so per-position batch statistics \
             help nothing. Final validation loss (evaluation mode, running statistics): per-position BN {}, pooled \
             (masked) BN {}; {line}. In training mode (each batch's own statistics): per-position {}, pooled {}; \
             {train_line}. Rule: supported when the interval of per-position − pooled (evaluation mode) lies above 0. \
             Verdict: {verdict}.",
            pm(&pl),
            pm(&ml),
            pm(&pt),
            pm(&mt)
        ));
    }
    out
}

/// BatchNorm against LayerNorm, each at its best learning rate among those the runs cover.
fn learning_rates(runs: &[RunResult]) -> Vec<String> {
    let mut out = Vec::new();
    let Some(layer) = text_runs(runs, NormKind::Layer).into_iter().next() else {
        return out;
    };
    let sweep = |norm: NormKind| -> Vec<(f64, Vec<f64>)> {
        let mut lrs: Vec<f64> = text_runs(runs, norm).iter().map(|r| r.config.lr).collect();
        lrs.sort_by(|a, b| a.total_cmp(b));
        lrs.dedup();
        lrs.into_iter()
            .map(|lr| {
                (
                    lr,
                    final_losses(&matching(runs, &layer.config, |w| {
                        w.norm = norm;
                        w.lr = lr;
                    })),
                )
            })
            .filter(|(_, l)| !l.is_empty())
            .collect()
    };
    let best = |sweep: &[(f64, Vec<f64>)]| -> Option<(f64, Vec<f64>)> {
        sweep
            .iter()
            .min_by(|a, b| mean_std(&a.1).0.total_cmp(&mean_std(&b.1).0))
            .cloned()
    };
    let ln = sweep(NormKind::Layer);
    if ln.len() < 2 {
        return out;
    }
    let Some((ln_lr, ln_loss)) = best(&ln) else {
        return out;
    };
    for bn in [
        NormKind::Batch,
        NormKind::MaskedBatch,
        NormKind::ScaledBatch,
    ] {
        let s = sweep(bn);
        let Some((bn_lr, bn_loss)) = best(&s) else {
            continue;
        };
        if s.len() < 2 {
            continue;
        }
        let (line, sign) = compare(bn.name(), &bn_loss, "layer", &ln_loss);
        let verdict = match sign {
            Some(x) if x > 0.0 => "**reproduced**",
            Some(x) if x < 0.0 => "**not reproduced** (BatchNorm does better)",
            Some(_) => "**not resolved** by these seeds",
            None => "could not be measured",
        };
        let edge = |sw: &[(f64, Vec<f64>)], lr: f64| {
            sw.first().is_some_and(|f| f.0 == lr) || sw.last().is_some_and(|l| l.0 == lr)
        };
        let caveat = if edge(&ln, ln_lr) || edge(&s, bn_lr) {
            " A best learning rate lies at the edge of the sweep: a wider sweep could move it."
        } else {
            ""
        };
        let list = |sw: &[(f64, Vec<f64>)]| {
            sw.iter()
                .map(|(lr, l)| format!("{lr}: {}", fmt(mean_std(l).0)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push(format!(
            "Claim: BatchNorm is worse than LayerNorm on text, at each norm's best learning rate. Mean final validation \
             loss by learning rate: layer {}; {} {}. Best: layer at {ln_lr} ({}), {} at {bn_lr} ({}); {line}. Rule: \
             reproduced when the interval of {} − layer lies above 0. Verdict: {verdict}.{caveat}",
            list(&ln),
            bn.name(),
            list(&s),
            pm(&ln_loss),
            bn.name(),
            pm(&bn_loss),
            bn.name()
        ));
    }
    out
}

/// Every claim the runs can speak to, one paragraph each.
pub fn findings(runs: &[RunResult]) -> Vec<String> {
    let mut out = padding(runs);
    out.extend(padding_sensitivity(runs));
    out.extend(position(runs));
    out.extend(learning_rates(runs));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_difference_interval_covers_the_mean_and_excludes_zero_when_clear() {
        let (d, lo, hi) = difference(&[5.0, 5.1, 4.9], &[4.0, 4.1, 3.9]).unwrap();
        assert!((d - 1.0).abs() < 1e-12);
        assert!(lo > 0.7 && lo <= d && d <= hi && hi < 1.3, "{lo} {hi}");
        let (_, lo, hi) = difference(&[5.0, 4.0, 6.0], &[5.1, 4.2, 5.8]).unwrap();
        assert!(lo < 0.0 && hi > 0.0);
        assert!(difference(&[], &[1.0]).is_none());
        let (text, sign) = compare("a", &[2.0, 2.1], "b", &[1.0, 1.1]);
        assert_eq!(sign, Some(1.0));
        assert!(text.contains("a is worse"), "{text}");
    }
}
