//! `REPORT.md`: tables computed from the result files and one sentence per finding of the
//! paper saying whether these runs reproduced it. Nothing in it is written by hand.

use super::charts::Chart;
use super::{by_group, mean_std, median, RunResult};
use crate::config::Task;
use crate::experiment::Study;
use crate::norm::NormKind;
use crate::results::RunStatus;
use std::fmt::Write;

use super::format::{sig, verdict_line};
use super::inference::{log_mean, welch_difference, welch_log_ratio, Interval};
use super::scale::{Scope, Spread};

fn fmt(x: f64) -> String {
    sig(x)
}

fn pm(v: &[f64]) -> String {
    let (m, s) = mean_std(v);
    if v.len() > 1 {
        format!("{} ± {}", fmt(m), fmt(s))
    } else {
        fmt(m)
    }
}

/// Median of a probe over the last 20 % of training, pooled over a group's seeds.
pub fn late_median(runs: &[&RunResult], first_layer_only: bool, name: &str) -> f64 {
    let vals: Vec<f64> = runs
        .iter()
        .flat_map(|r| {
            let layer = if first_layer_only {
                r.first_layer().map(String::from)
            } else {
                None
            };
            r.probe_window(layer.as_deref(), name, 0.8, 1.0)
        })
        .collect();
    median(&vals)
}

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

fn final_losses(rs: &[&RunResult]) -> Vec<f64> {
    rs.iter()
        .filter(|r| r.status() == RunStatus::Finished)
        .filter_map(|r| r.summary.as_ref()?.final_eval.as_ref().map(|e| e.eval_loss))
        .filter(|x| x.is_finite())
        .collect()
}

fn finished_of<'a>(rs: &[&'a RunResult]) -> Vec<&'a RunResult> {
    rs.iter()
        .copied()
        .filter(|r| r.status() == RunStatus::Finished)
        .collect()
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
                &format!("ratio {} [95 % interval {}, {}]", fmt(i.value), fmt(i.lo), fmt(i.hi)),
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
        fmt(ma / mb),
        sides.0,
        fmt(ma),
        sides.1,
        fmt(mb),
        a.len(),
        b.len()
    )
}

/// Smallest ratio that counts as an effect in the paper's direction.
const PARTLY: f64 = 1.2;

/// The paper's findings that this study has the runs for, one verdict line each.
fn findings(groups: &[(String, Vec<&RunResult>)]) -> Vec<String> {
    let mut out = Vec::new();
    let text_bn = find(groups, Task::Text, NormKind::Batch);
    let image_bn = find(groups, Task::Images, NormKind::Batch);
    let pnv = find(groups, Task::Text, NormKind::PnV);
    let pn = find(groups, Task::Text, NormKind::Power);
    let ln = find(groups, Task::Text, NormKind::Layer);
    if let (Some(t), Some(i)) = (text_bn, image_bn) {
        let (t_done, i_done) = (finished_of(t), finished_of(i));
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
                        fmt(r.value),
                        fmt(r.lo),
                        fmt(r.hi),
                        if r.spread == Spread::WithinRun { ", within one run" } else { "" }
                    ),
                    "whole interval at or above 10: reproduced; above 1.2: the paper's direction; 3 runs a side at least",
                    &r.runs_label(),
                ));
            }
        }
        // growth over training: per run, last fifth's median over the first fifth's
        let growth: Vec<f64> = t
            .iter()
            .filter(|r| r.status() == RunStatus::Finished)
            .map(|r| {
                let layer = r.first_layer();
                median(&r.probe_window(layer, "dist_var", 0.8, 1.0))
                    / median(&r.probe_window(layer, "dist_var", 0.0, 0.2))
            })
            .filter(|x| x.is_finite() && *x > 0.0)
            .collect();
        let subject = "on text the variance distance grows over training (the paper: its BN medians grow about 28-fold from the first to the last fifth): text BN, first layer, dist_var's last-fifth median over its first-fifth median";
        match log_mean(&growth) {
            Some(g) => out.push(verdict_line(
                &gated(&g, if g.lo >= 2.0 { "reproduced" } else if g.hi < 2.0 { "not reproduced" } else { "not resolved" }),
                subject,
                &format!("growth factor {} [95 % interval {}, {}] (geometric mean over runs)", fmt(g.value), fmt(g.lo), fmt(g.hi)),
                "reproduced when the whole interval is at or above 2, not reproduced when it lies below 2",
                &format!("{} runs per side (one-sample t on the logarithms)", g.runs.0),
            )),
            None => out.push(format!(
                "- **no verdict: fewer than two runs** — {subject}: {} ({} run).",
                growth.first().map(|g| fmt(*g)).unwrap_or_else(|| "n/a".into()),
                growth.len()
            )),
        }
    }
    if let Some(t) = text_bn {
        for (name, other) in [("PN-V", pnv), ("PowerNorm", pn)] {
            let Some(o) = other else { continue };
            // BN's variance and PowerNorm's psi2 (after GroupScaling) live on different scales:
            // judge on the scale-free relative distance
            let (b, p) = (
                per_run(t, false, "rel_dist_var", 0.8, 1.0),
                per_run(o, false, "rel_dist_psi2", 0.8, 1.0),
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
                per_run(t, false, "grad_var", 0.8, 1.0),
                per_run(o, false, "grad_psi2", 0.8, 1.0),
            );
            out.push(ratio_line(
                "the gradient with respect to the batch statistic is much smaller for PN-V than for BN: BN's ‖dL/dσ²_B‖/d over PN-V's ‖dL/dψ²_B‖/d, all layers, last fifth",
                &b,
                &p,
                ("BN", "PN-V"),
                2.0,
            ));
        }
    }
    if let Some(l) = ln {
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
                        &format!("{} [95 % interval {}, {}] (perplexity {} vs {})", fmt(d.value), fmt(d.lo), fmt(d.hi), fmt(mean_std(&o_loss).0.exp()), fmt(mean_std(&ln_loss).0.exp())),
                        "reproduced when the interval excludes 0 on the paper's side, not resolved when it contains 0",
                        &runs_of(&d, name, "LayerNorm"),
                    ));
                }
                None => out.push(format!(
                    "- **no verdict: fewer than two runs on a side** — {subject}: {} ({} and {} runs; perplexity {} vs {}).",
                    fmt(mean_std(&o_loss).0 - mean_std(&ln_loss).0),
                    o_loss.len(),
                    ln_loss.len(),
                    fmt(mean_std(&o_loss).0.exp()),
                    fmt(mean_std(&ln_loss).0.exp())
                )),
            }
        }
    }
    out
}

/// Passes over the training split the finished runs made (sentences or images seen over the
/// training examples), or "n/a" for runs from builds that did not record the split's size.
fn epochs(rs: &[&RunResult]) -> String {
    let e: Vec<f64> = rs
        .iter()
        .filter(|r| r.status() == RunStatus::Finished)
        .filter_map(|r| {
            let n = r.summary.as_ref()?.train_examples? as f64;
            let seen: usize = r.steps.iter().map(|s| s.batch).sum();
            Some(seen as f64 / n)
        })
        .collect();
    if e.is_empty() {
        "n/a".into()
    } else {
        sig(mean_std(&e).0)
    }
}

/// What keeps this report's runs from carrying verdicts, said at its top.
fn limits(groups: &[(String, Vec<&RunResult>)]) -> Vec<String> {
    let mut out = Vec::new();
    let in_warm_up: Vec<&str> = groups
        .iter()
        .filter(|(_, rs)| rs[0].config.steps <= rs[0].config.warmup_steps)
        .map(|(l, _)| l.as_str())
        .collect();
    if !in_warm_up.is_empty() {
        out.push(format!(
            "These runs end inside their learning-rate warm-up ({}): they have no statistics after warm-up, so this \
             report gives numbers and no verdicts. A study shrunk with `--set steps=...` needs `--set warmup_steps=...` too.",
            in_warm_up.join("; ")
        ));
    }
    let few = groups
        .iter()
        .map(|(_, rs)| {
            rs.iter()
                .filter(|r| r.status() == RunStatus::Finished)
                .count()
        })
        .min()
        .unwrap_or(0);
    if few < super::inference::MIN_RUNS_FOR_VERDICT {
        out.push(format!(
            "Some configurations have {few} finished run{} (seed{}): a verdict needs an interval between at least {} \
             runs a side, so those comparisons give numbers and no verdict.",
            if few == 1 { "" } else { "s" },
            if few == 1 { "" } else { "s" },
            super::inference::MIN_RUNS_FOR_VERDICT
        ));
    }
    out
}

/// The report text.
pub fn report(study: Option<&Study>, runs: &[RunResult], charts: &[Chart]) -> String {
    let groups = by_group(runs);
    let title = study.map(|s| s.name.as_str()).unwrap_or("ablate results");
    let s = body(study, runs, charts, &groups, title);
    if study.is_some_and(|st| !st.overrides.is_empty()) {
        without_verdicts(&s, "no verdict: study changed with --set")
    } else {
        s
    }
}

/// Every verdict line's verdict replaced by `why` (the rule's reading kept beside it).
fn without_verdicts(md: &str, why: &str) -> String {
    md.lines()
        .map(
            |l| match l.strip_prefix("- **").and_then(|r| r.split_once("** — ")) {
                Some((verdict, rest)) if !verdict.starts_with("no verdict") => {
                    format!("- **{why}** (the rule would read: {verdict}) — {rest}")
                }
                _ => l.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn body(
    study: Option<&Study>,
    runs: &[RunResult],
    charts: &[Chart],
    groups: &[(String, Vec<&RunResult>)],
    title: &str,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# {title}\n");
    if let Some(st) = study {
        if !st.description.trim().is_empty() {
            let _ = writeln!(s, "{}\n", st.description.trim());
        }
        let _ = writeln!(s, "Study file: `{}`. ", st.path.display());
    }
    let _ = writeln!(
        s,
        "This file is generated by `ablate report` from the result files alone; rerun the command to regenerate it. \
         Batch statistics are compared with the running statistics from *before* each step's update.\n"
    );

    let changed = study.filter(|st| !st.overrides.is_empty());
    if let Some(st) = changed {
        let _ = writeln!(
            s,
            "**This study was run changed with `--set {}`: its runs are not the study file's, so this report gives \
             numbers and no verdicts.**\n",
            st.overrides.join(" --set ")
        );
    }
    for limit in limits(&groups) {
        let _ = writeln!(s, "**{limit}**\n");
    }
    let paper = findings(&groups);
    if !paper.is_empty() {
        let _ = writeln!(
            s,
            "## The PowerNorm paper's findings, where this study has the runs for them\n\n\
             Each line: the verdict, the claim and measure, the estimate with its 95 % interval between runs, the rule, \
             and the runs per side. One run on a side gives numbers and no verdict.\n"
        );
        for f in paper {
            let _ = writeln!(s, "{f}");
        }
    }

    let claims = super::claims::findings(runs);
    if !claims.is_empty() {
        let _ = writeln!(s, "\n## The question's claims, measured\n");
        for c in claims {
            let _ = writeln!(s, "- {c}");
        }
    }

    let points = super::scale::points(runs);
    if !points.is_empty() {
        let _ = writeln!(s, "\n## Text against images, with intervals\n");
        s.push_str(&super::scale::markdown(
            &points,
            study.is_none_or(|st| st.overrides.is_empty()),
        ));
    }

    let _ = writeln!(s, "\n## Final metrics\n");
    let _ = writeln!(s, "| configuration | runs | status | steps | epochs | valid loss | valid ppl / accuracy | training-mode loss | training-mode − eval loss |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for (label, rs) in groups {
        let evals: Vec<_> = rs
            .iter()
            .filter_map(|r| r.summary.as_ref()?.final_eval.clone())
            .collect();
        let loss: Vec<f64> = evals.iter().map(|e| e.eval_loss).collect();
        let train: Vec<f64> = evals.iter().map(|e| e.train_mode_loss).collect();
        let gap: Vec<f64> = evals
            .iter()
            .map(|e| e.train_mode_loss - e.eval_loss)
            .collect();
        let second: Vec<f64> = evals
            .iter()
            .filter_map(|e| e.eval_ppl.or(e.eval_accuracy.map(|a| a * 100.0)))
            .collect();
        let mut statuses: Vec<String> = Vec::new();
        for st in [
            RunStatus::Finished,
            RunStatus::Diverged,
            RunStatus::Interrupted,
            RunStatus::Failed,
            RunStatus::Running,
        ] {
            let n = rs.iter().filter(|r| r.status() == st).count();
            if n > 0 {
                let mut name = format!("{st:?}").to_lowercase();
                if st == RunStatus::Diverged {
                    let at: Vec<String> = rs
                        .iter()
                        .filter_map(|r| r.summary.as_ref()?.divergence.as_ref())
                        .map(|d| format!("step {} ({})", d.step, d.quantity))
                        .collect();
                    name = format!("diverged at {}", at.join(", "));
                }
                statuses.push(format!("{n} {name}"));
            }
        }
        let steps: Vec<String> = rs
            .iter()
            .map(|r| r.steps_done().to_string())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let unit = if rs[0].config.task == Task::Text {
            ""
        } else {
            " %"
        };
        let _ = writeln!(
            s,
            "| {label} | {} | {} | {} | {} | {} | {}{unit} | {} | {} |",
            rs.len(),
            statuses.join(", "),
            steps.join("/"),
            epochs(rs),
            pm(&loss),
            pm(&second),
            pm(&train),
            pm(&gap)
        );
    }
    let _ = writeln!(
        s,
        "\nMean ± sample standard deviation over seeds. Perplexity for text, accuracy for images."
    );

    let stat_groups: Vec<_> = groups
        .iter()
        .filter(|(_, rs)| rs[0].config.norm.has_batch_stats())
        .collect();
    // a group none of whose runs finished has no last 20 % to take medians over
    let (stat_groups, unfinished): (Vec<_>, Vec<_>) = stat_groups
        .into_iter()
        .partition(|(_, rs)| rs.iter().any(|r| r.status() == RunStatus::Finished));
    if !stat_groups.is_empty() {
        let _ = writeln!(
            s,
            "\n## Oscillation of the batch statistics (median over the last 20 % of training)\n"
        );
        let _ = writeln!(s, "| configuration | layer | dist_mean | dist_var / dist_psi2 | rel_dist_var / rel_dist_psi2 | grad_var / grad_psi2 |");
        let _ = writeln!(s, "|---|---|---|---|---|---|");
        for (label, rs) in &stat_groups {
            let second = rs[0].second_name();
            for first in [true, false] {
                let layer = if first {
                    rs[0].first_layer().unwrap_or("-").to_string()
                } else {
                    "all".to_string()
                };
                let _ = writeln!(
                    s,
                    "| {label} | {layer} | {} | {} | {} | {} |",
                    fmt(late_median(rs, first, "dist_mean")),
                    fmt(late_median(rs, first, &format!("dist_{second}"))),
                    fmt(late_median(rs, first, &format!("rel_dist_{second}"))),
                    fmt(late_median(rs, first, &format!("grad_{second}")))
                );
            }
        }
        let _ = writeln!(s, "\nn/a: the norm has no such statistic (PN-V and PowerNorm keep no mean; PowerNorm's statistic gets no gradient).");
        for (label, _) in &unfinished {
            let _ = writeln!(
                s,
                "{label}: left out, no run finished (see the final metrics above)."
            );
        }
    }

    if !charts.is_empty() {
        let _ = writeln!(s, "\n## Charts\n");
        for c in charts {
            let _ = writeln!(
                s,
                "### {}\n\n![{}]({})\n\n{} (Vector version: [{}]({}).)\n",
                c.title,
                c.title,
                c.file,
                c.caption,
                c.svg(),
                c.svg()
            );
        }
    }

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
