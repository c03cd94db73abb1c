//! BatchNorm against LayerNorm at each norm's best learning rate.

use super::*;

/// One learning rate of a sweep: the finished runs' final losses and how many runs diverged.
pub(super) struct SweepPoint {
    pub(super) lr: f64,
    pub(super) losses: Vec<f64>,
    pub(super) diverged: usize,
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
pub(super) fn best_rate(sweep: &[SweepPoint]) -> Option<(usize, bool)> {
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
/// `norm`'s sweep: at each learning rate its runs set like `layer` otherwise, their final
/// losses and how many diverged.
fn sweep_of(runs: &[RunResult], layer: &RunResult, norm: NormKind) -> Vec<SweepPoint> {
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
}

/// "0.001: 4.81, 0.002: 4.79 (1 diverged), ...".
fn rate_list(sw: &[SweepPoint]) -> String {
    sw.iter()
        .map(|p| match (p.losses.is_empty(), p.diverged) {
            (true, _) => format!("{}: diverged", p.lr),
            (false, 0) => format!("{}: {}", p.lr, sig(p.score())),
            (false, d) => format!("{}: {} ({d} diverged)", p.lr, sig(p.score())),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn learning_rates(runs: &[RunResult]) -> Vec<String> {
    let mut out = Vec::new();
    let Some(layer) = text_runs(runs, NormKind::Layer).into_iter().next() else {
        return out;
    };
    let sweep = |norm: NormKind| sweep_of(runs, layer, norm);
    let ln = sweep(NormKind::Layer);
    if ln.len() < 2 {
        return out;
    }
    let Some((ln_i, ln_bracketed)) = best_rate(&ln) else {
        return out;
    };
    let list = rate_list;
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
