//! The PowerNorm paper's findings, each checked where a study has the runs for it: BatchNorm's
//! batch statistics vary far more on text than on images (on the paper's measures and a
//! scale-free one), they grow over training, PN-V and PowerNorm tame them, and the final losses
//! against LayerNorm. One verdict line each (`report::format`); and how far the study's setting
//! is from the paper's.

use super::format::{sig, verdict_line};
use super::inference::{log_mean, welch_difference, welch_log_ratio, Interval};
use super::scale::{Scope, Spread};
use super::select::{final_losses, finished};
use super::{mean_std, median, RunResult};
use crate::config::Task;
use crate::norm::NormKind;
use crate::results::RunStatus;
use std::fmt::Write;

type Groups<'a> = [(String, Vec<&'a RunResult>)];

fn find<'a>(
    groups: &'a [(String, Vec<&'a RunResult>)],
    task: Task,
    norm: NormKind,
) -> Option<&'a Vec<&'a RunResult>> {
    groups
        .iter()
        .find(|(_, rs)| {
            rs[0].config.task == task && rs[0].config.norm == norm && rs[0].config.bucket_pool == 0
        })
        .or_else(|| {
            groups
                .iter()
                .find(|(_, rs)| rs[0].config.task == task && rs[0].config.norm == norm)
        })
        .map(|(_, rs)| rs)
}

/// Per finished run, the median of a probe over the window `lo..hi` (fractions of training),
/// in the first layer or all layers pooled.
fn per_run(runs: &[&RunResult], first: bool, name: &str, lo: f64, hi: f64) -> Vec<f64> {
    runs.iter()
        .filter(|r| r.status() == RunStatus::Finished)
        .map(|r| {
            let layer = if first { r.first_layer() } else { None };
            median(&r.probe_window(layer, name, lo, hi))
        })
        .filter(|x| x.is_finite())
        .collect()
}

/// Runs label of a two-sided comparison.
fn runs_of(i: &Interval, a: &str, b: &str) -> String {
    if a == "text" && b == "images" {
        format!(
            "{} text runs, {} image runs (Welch t between runs)",
            i.runs.0, i.runs.1
        )
    } else if i.runs.0 == i.runs.1 {
        format!("{} runs per side (Welch t between runs)", i.runs.0)
    } else {
        format!(
            "{} runs of {a} and {} runs of {b} (Welch t between runs)",
            i.runs.0, i.runs.1
        )
    }
}

/// Verdict words for an interval, `None` when it cannot carry one; `rule` decides the rest.
fn gated(i: &Interval, verdict: &str) -> String {
    if !i.supports_verdict() {
        "no verdict: fewer than 3 runs a side".to_string()
    } else if i.hi <= i.lo {
        "no verdict: the runs do not differ (an interval of zero width)".to_string()
    } else {
        verdict.to_string()
    }
}

/// A ratio (a / b) that the paper says is large, judged as the scale ladder judges: the whole
/// interval at or above `strong` reproduces it, above 1.2 is its direction.
fn ratio_line(subject: &str, a: &[f64], b: &[f64], sides: (&str, &str), strong: f64) -> String {
    match welch_log_ratio(a, b) {
        Some(i) => {
            let verdict = if i.lo >= strong {
                "reproduced"
            } else if i.lo >= PARTLY {
                "the paper's direction, smaller effect"
            } else if i.hi < 1.0 {
                "the opposite direction"
            } else if i.hi < PARTLY {
                "not reproduced"
            } else {
                "not resolved"
            };
            verdict_line(
                &gated(&i, verdict),
                subject,
                &format!("ratio {} [95 % interval {}, {}]", sig(i.value), sig(i.lo), sig(i.hi)),
                &format!("reproduced when the whole interval is at or above {strong}; the paper's direction above {PARTLY}; not reproduced below {PARTLY}; not resolved otherwise; 3 runs a side at least"),
                &runs_of(&i, sides.0, sides.1),
            )
        }
        None => single_run_line(subject, a, b, sides),
    }
}

/// With one run on a side there is no interval between runs: the numbers, and no verdict.
fn single_run_line(subject: &str, a: &[f64], b: &[f64], sides: (&str, &str)) -> String {
    let (ma, mb) = (mean_std(a).0, mean_std(b).0);
    format!(
        "- **no verdict: fewer than two runs on a side** — {subject}: ratio {} ({} {} vs {} {}; {} and {} runs). \
         A verdict needs an interval between runs: run more seeds.",
        sig(ma / mb),
        sides.0,
        sig(ma),
        sides.1,
        sig(mb),
        a.len(),
        b.len()
    )
}

/// Smallest ratio that counts as an effect in the paper's direction.
const PARTLY: f64 = 1.2;

/// The paper's findings that this study has the runs for, one verdict line each.
pub fn findings(groups: &Groups) -> Vec<String> {
    let text_bn = find(groups, Task::Text, NormKind::Batch);
    let image_bn = find(groups, Task::Images, NormKind::Batch);
    let pnv = find(groups, Task::Text, NormKind::PnV);
    let pn = find(groups, Task::Text, NormKind::Power);
    let mut out = Vec::new();
    if let (Some(t), Some(i)) = (text_bn, image_bn) {
        out.extend(text_against_images(t, i));
        out.push(growth(t));
    }
    if let Some(t) = text_bn {
        out.extend(tamed(t, pnv, pn));
    }
    if let Some(l) = find(groups, Task::Text, NormKind::Layer) {
        out.extend(against_layer_norm(l, pn, text_bn));
    }
    out
}

/// Text BN against image BN on the paper's measures, per scope.
fn text_against_images(t: &[&RunResult], i: &[&RunResult]) -> Vec<String> {
    let mut out = Vec::new();
    let (t_done, i_done) = (finished(t), finished(i));
    for scope in [Scope::First, Scope::Last, Scope::Pooled] {
        for (measure, meaning) in super::scale::PAPER_MEASURES
            .iter()
            .chain([&super::scale::RESTATEMENTS[2]])
        {
            let Some(r) = super::scale::ratio(&t_done, &i_done, measure, scope, None) else {
                continue;
            };
            let subject = format!(
                "BatchNorm's batch statistics vary far more on text than on images: {measure} ({meaning}), {}, after warm-up",
                scope.label()
            );
            out.push(verdict_line(
                r.verdict(),
                &subject,
                &format!(
                    "text/images ratio {} [95 % interval {}, {}{}]",
                    sig(r.value),
                    sig(r.lo),
                    sig(r.hi),
                    if r.spread == Spread::WithinRun { ", within one run" } else { "" }
                ),
                "whole interval at or above 10: reproduced; above 1.2: the paper's direction; 3 runs a side at least",
                &r.runs_label(),
            ));
        }
    }
    out
}

/// Growth over training: per run, the last fifth's median over the first fifth's.
fn growth(t: &[&RunResult]) -> String {
    let growth: Vec<f64> = t
        .iter()
        .filter(|r| r.status() == RunStatus::Finished)
        .map(|r| {
            let layer = r.first_layer();
            median(&r.probe_window(layer, crate::probe::DIST_VAR, 0.8, 1.0))
                / median(&r.probe_window(layer, crate::probe::DIST_VAR, 0.0, 0.2))
        })
        .filter(|x| x.is_finite() && *x > 0.0)
        .collect();
    let subject = "on text the variance distance grows over training (the paper: its BN medians grow about 28-fold from the first to the last fifth): text BN, first layer, dist_var's last-fifth median over its first-fifth median";
    match log_mean(&growth) {
        Some(g) => verdict_line(
            &gated(&g, if g.lo >= 2.0 { "reproduced" } else if g.hi < 2.0 { "not reproduced" } else { "not resolved" }),
            subject,
            &format!("growth factor {} [95 % interval {}, {}] (geometric mean over runs)", sig(g.value), sig(g.lo), sig(g.hi)),
            "reproduced when the whole interval is at or above 2, not reproduced when it lies below 2",
            &format!("{} runs per side (one-sample t on the logarithms)", g.runs.0),
        ),
        None => format!(
            "- **no verdict: fewer than two runs** — {subject}: {} ({} run).",
            growth.first().map(|g| sig(*g)).unwrap_or_else(|| "n/a".into()),
            growth.len()
        ),
    }
}

/// PN-V and PowerNorm against BN on the forward statistic, and PN-V's gradient.
fn tamed(
    t: &[&RunResult],
    pnv: Option<&Vec<&RunResult>>,
    pn: Option<&Vec<&RunResult>>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (name, other) in [("PN-V", pnv), ("PowerNorm", pn)] {
        let Some(o) = other else { continue };
        // BN's variance and PowerNorm's psi2 (after GroupScaling) live on different scales:
        // judge on the scale-free relative distance
        let (b, p) = (
            per_run(t, false, crate::probe::REL_DIST_VAR, 0.8, 1.0),
            per_run(o, false, crate::probe::REL_DIST_PSI2, 0.8, 1.0),
        );
        out.push(ratio_line(
            &format!("{name} tames the forward statistic: BN's rel_dist_var over {name}'s rel_dist_psi2, all layers, last fifth of training"),
            &b,
            &p,
            ("BN", name),
            2.0,
        ));
    }
    if let Some(o) = pnv {
        let (b, p) = (
            per_run(t, false, crate::probe::GRAD_VAR, 0.8, 1.0),
            per_run(o, false, crate::probe::GRAD_PSI2, 0.8, 1.0),
        );
        out.push(ratio_line(
            "the gradient with respect to the batch statistic is much smaller for PN-V than for BN: BN's ‖dL/dσ²_B‖/d over PN-V's ‖dL/dψ²_B‖/d, all layers, last fifth",
            &b,
            &p,
            ("BN", "PN-V"),
            2.0,
        ));
    }
    out
}

/// PowerNorm and BatchNorm against LayerNorm on the final validation loss.
fn against_layer_norm(
    l: &[&RunResult],
    pn: Option<&Vec<&RunResult>>,
    text_bn: Option<&Vec<&RunResult>>,
) -> Vec<String> {
    let mut out = Vec::new();
    let ln_loss = final_losses(l);
    for (name, other, better) in [("PowerNorm", pn, true), ("BatchNorm", text_bn, false)] {
        let Some(o) = other else { continue };
        let o_loss = final_losses(o);
        let subject = if better {
            "PowerNorm beats LayerNorm on language modelling: final validation loss, PowerNorm − LayerNorm"
        } else {
            "BatchNorm is worse than LayerNorm on text: final validation loss, BatchNorm − LayerNorm"
        };
        match welch_difference(&o_loss, &ln_loss) {
            Some(d) => {
                let verdict = match (better, d.lo > 0.0, d.hi < 0.0) {
                    (true, _, true) | (false, true, _) => "reproduced",
                    (true, true, _) | (false, _, true) => "not reproduced (the opposite holds)",
                    _ => "not resolved",
                };
                out.push(verdict_line(
                    &gated(&d, verdict),
                    subject,
                    &format!("{} [95 % interval {}, {}] (perplexity {} vs {})", sig(d.value), sig(d.lo), sig(d.hi), sig(mean_std(&o_loss).0.exp()), sig(mean_std(&ln_loss).0.exp())),
                    "reproduced when the interval excludes 0 on the paper's side, not resolved when it contains 0",
                    &runs_of(&d, name, "LayerNorm"),
                ));
            }
            None => out.push(format!(
                "- **no verdict: fewer than two runs on a side** — {subject}: {} ({} and {} runs; perplexity {} vs {}).",
                sig(mean_std(&o_loss).0 - mean_std(&ln_loss).0),
                o_loss.len(),
                ln_loss.len(),
                sig(mean_std(&o_loss).0.exp()),
                sig(mean_std(&ln_loss).0.exp())
            )),
        }
    }
    out
}

/// How far the study's text setting is from the paper's (IWSLT14 translation).
pub fn setting(runs: &[RunResult]) -> String {
    let mut s = String::new();
    if let Some(r) = runs.iter().find(|r| r.config.task == Task::Text) {
        let c = &r.config;
        let tokens: Vec<f64> = r.steps.iter().map(|s| s.tokens as f64).collect();
        let pad: Vec<f64> = r.steps.iter().map(|s| s.padding_fraction).collect();
        let _ = writeln!(s, "\n## Distance to the paper's setting\n");
        let _ = writeln!(
            s,
            "| | paper (IWSLT14, Transformer + BN/PN) | this study (text) |"
        );
        let _ = writeln!(s, "|---|---|---|");
        let _ = writeln!(s, "| model | encoder-decoder, 6+6 layers, d 512, FFN 1024, 4 heads | decoder-only LM, {} layers, d {}, FFN {}, {} heads, {}-norm |", c.layers, c.d_model, c.d_ff, c.heads, format!("{:?}", c.norm_position).to_lowercase());
        let shape = match c.max_tokens {
            Some(t) => format!("batches of up to {t} padded tokens"),
            None => format!("{} sentences", c.batch_size),
        };
        let _ = writeln!(s, "| batch | about 4096 tokens | {:.0} real tokens on average ({shape}, max length {}, padding fraction {:.3}) |", mean_std(&tokens).0, c.max_len, mean_std(&pad).0);
        let _ = writeln!(s, "| training | tens of thousands of updates, lr 1.5e-3, 8000 warm-up | {} updates, lr {}, {} warm-up |", c.steps, c.lr, c.warmup_steps);
        let _ = writeln!(
            s,
            "| data | IWSLT14 de-en translation | {} (word-level, vocabulary {}) |",
            c.corpus.display(),
            c.vocab_size
        );
    }
    s
}
