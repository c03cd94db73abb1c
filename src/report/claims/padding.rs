//! Padding's claims: naive BN against masked BN in evaluation mode, where only the padding
//! changes (training mode), and the slope of the statistics' distance against the padding.

use super::*;

pub(super) fn padding_share(runs: &[&RunResult]) -> f64 {
    let v: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.steps.iter().map(|s| s.padding_fraction))
        .collect();
    median(&v)
}

/// " file-order validation batches: naive BN ..., masked BN ...; difference;" for each way of
/// forming validation batches that has both norms' runs like `c`: training-mode losses, where the
/// validation batches' padding enters.
fn training_mode_losses(runs: &[RunResult], c: &RunConfig) -> String {
    let mut out = String::new();
    for eval in [EvalBatching::Plain, EvalBatching::Bucketed] {
        let group = |norm: NormKind| {
            matching(runs, c, |w| {
                w.norm = norm;
                w.eval_batching = Some(eval);
            })
        };
        let (n, m) = (group(NormKind::Batch), group(NormKind::MaskedBatch));
        if n.is_empty() || m.is_empty() {
            continue;
        }
        let (nt, mt) = (final_train_mode_losses(&n), final_train_mode_losses(&m));
        let name = match eval {
            EvalBatching::Plain => "file-order",
            EvalBatching::Bucketed => "length-bucketed",
        };
        out += &format!(
            " {name} validation batches: naive BN {}, masked BN {}; {};",
            pm_seeds(&nt),
            pm_seeds(&mt),
            compare("naive", &nt, "masked", &mt).estimate
        );
    }
    out
}

/// Padding: naive BN against masked BN (and the authors' scaled BN), one paragraph per way of
/// training. Evaluation mode uses running statistics, so runs that differ only in how validation
/// batches are formed have the same evaluation-mode loss: one verdict per training batching, and
/// the training-mode numbers (which do depend on it) for each validation batching.
pub(super) fn padding(runs: &[RunResult]) -> Vec<String> {
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
        line += &training_mode_losses(runs, c);
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
pub(super) fn padding_shift(runs: &[RunResult], like: &RunConfig, norm: NormKind) -> Vec<f64> {
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
pub(super) fn padding_sensitivity(runs: &[RunResult]) -> Vec<String> {
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

/// Least-squares slope of `y` on `x`; `None` when `x` has no spread.
pub(super) fn slope(x: &[f64], y: &[f64]) -> Option<f64> {
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
pub(super) const PADDING_MEASURE: &str = crate::probe::REL_DIST_VAR;

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
pub(super) fn padding_slopes(runs: &[RunResult]) -> Vec<String> {
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
            match crate::report::inference::one_sample(v) {
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
