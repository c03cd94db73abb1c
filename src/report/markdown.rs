//! `REPORT.md`: tables computed from the result files and one sentence per finding of the
//! paper saying whether these runs reproduced it. Nothing in it is written by hand.

use super::charts::Chart;
use super::{by_group, mean_std, median, RunResult, BUCKETS};
use crate::config::Task;
use crate::experiment::Study;
use crate::norm::NormKind;
use crate::results::RunStatus;
use std::fmt::Write;

fn fmt(x: f64) -> String {
    if !x.is_finite() {
        "n/a".into()
    } else if x != 0.0 && (x.abs() < 1e-2 || x.abs() >= 1e4) {
        format!("{x:.3e}")
    } else {
        format!("{x:.4}")
    }
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

fn bucket_median(runs: &[&RunResult], name: &str, bucket: usize) -> f64 {
    let (lo, hi) = BUCKETS[bucket];
    let vals: Vec<f64> = runs
        .iter()
        .flat_map(|r| {
            let layer = r.first_layer().map(String::from);
            r.probe_window(layer.as_deref(), name, lo, hi)
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
        .filter_map(|r| r.summary.as_ref()?.final_eval.as_ref().map(|e| e.eval_loss))
        .filter(|x| x.is_finite())
        .collect()
}

/// A ratio that the paper says is large: at least `strong` reproduces it, above
/// [`PARTLY`] is the right direction with a smaller effect, anything else is not reproduced
/// (within 20 % of 1 is no effect).
fn verdict_ratio(ratio: f64, strong: f64) -> &'static str {
    if !ratio.is_finite() {
        "could not be measured"
    } else if ratio >= strong {
        "**reproduced**"
    } else if ratio >= PARTLY {
        "**partly reproduced** (right direction, smaller effect)"
    } else {
        "**not reproduced**"
    }
}

/// Smallest ratio that counts as an effect in the paper's direction.
const PARTLY: f64 = 1.2;

fn findings(groups: &[(String, Vec<&RunResult>)]) -> Vec<String> {
    let mut out = Vec::new();
    let text_bn = find(groups, Task::Text, NormKind::Batch);
    let image_bn = find(groups, Task::Images, NormKind::Batch);
    let pnv = find(groups, Task::Text, NormKind::PnV);
    let pn = find(groups, Task::Text, NormKind::Power);
    let ln = find(groups, Task::Text, NormKind::Layer);
    if let (Some(t), Some(i)) = (text_bn, image_bn) {
        for (first, scope) in [
            (true, "the first BN layer"),
            (false, "all BN layers pooled"),
        ] {
            let (tv, iv) = (
                late_median(t, first, "dist_var"),
                late_median(i, first, "dist_var"),
            );
            let (tm, im) = (
                late_median(t, first, "dist_mean"),
                late_median(i, first, "dist_mean"),
            );
            let (tr, ir) = (
                late_median(t, first, "rel_dist_var"),
                late_median(i, first, "rel_dist_var"),
            );
            out.push(format!(
                "Paper: BatchNorm's batch statistics vary far more on text than on images (orders of magnitude). \
                 Here, {scope}, median over the last 20 % of training: dist_var text {} vs images {} (ratio {}), \
                 dist_mean text {} vs images {} (ratio {}), scale-free rel_dist_var text {} vs images {} (ratio {}). \
                 Verdict on dist_var: {} (reproduced means a ratio of at least 10).",
                fmt(tv), fmt(iv), fmt(tv / iv), fmt(tm), fmt(im), fmt(tm / im), fmt(tr), fmt(ir), fmt(tr / ir),
                verdict_ratio(tv / iv, 10.0)
            ));
        }
        let (first, last) = (
            bucket_median(t, "dist_var", 0),
            bucket_median(t, "dist_var", 4),
        );
        out.push(format!(
            "Paper: on text the variance distance grows over training (its BN medians grow about 28-fold from the \
             first to the last 20 %). Here (text BN, first layer) the median dist_var is {} in the first 20 % and {} \
             in the last 20 % (ratio {}): {} (reproduced means a ratio of at least 2).",
            fmt(first), fmt(last), fmt(last / first),
            verdict_ratio(last / first, 2.0)
        ));
    } else {
        out.push(
            "This section compares plain `batch` on both tasks, and this report has no such pair; where text runs \
             use another BatchNorm (`scaled-batch`, `masked-batch`), the scale ladder below compares them with the \
             image model's BatchNorm."
                .into(),
        );
    }
    if let Some(t) = text_bn {
        for (name, other) in [("PN-V", pnv), ("PowerNorm", pn)] {
            let Some(o) = other else { continue };
            let (b, p) = (
                late_median(t, false, "dist_var"),
                late_median(o, false, "dist_psi2"),
            );
            // BN's variance and PowerNorm's psi2 (after GroupScaling) live on different scales:
            // judge on the scale-free relative distance
            let (br, pr) = (
                late_median(t, false, "rel_dist_var"),
                late_median(o, false, "rel_dist_psi2"),
            );
            out.push(format!(
                "Paper: {name} tames the forward statistic (its psi2 stays closer to the running value than BN's variance). \
                 Here, all layers, last 20 %, on the scale-free relative distance: BN rel_dist_var {} vs {name} rel_dist_psi2 {} \
                 (BN/{name} ratio {}): {} (reproduced means a ratio of at least 2; the absolute distances, on different \
                 scales, are {} and {}).",
                fmt(br), fmt(pr), fmt(br / pr), verdict_ratio(br / pr, 2.0), fmt(b), fmt(p)
            ));
        }
        if let Some(o) = pnv {
            let (b, p) = (
                late_median(t, false, "grad_var"),
                late_median(o, false, "grad_psi2"),
            );
            out.push(format!(
                "Paper: the gradient of the loss with respect to the batch statistic is much smaller for PN-V than for BN. \
                 Here, all layers, last 20 %: BN ||dL/dsigma2||/d {} vs PN-V ||dL/dpsi2||/d {} (ratio {}): {}.",
                fmt(b), fmt(p), fmt(b / p), verdict_ratio(b / p, 2.0)
            ));
        }
    }
    if let Some(l) = ln {
        let ln_loss = final_losses(l);
        for (name, other) in [("PowerNorm", pn), ("BatchNorm", text_bn)] {
            let Some(o) = other else { continue };
            let o_loss = final_losses(o);
            let (lm, om) = (mean_std(&ln_loss).0, mean_std(&o_loss).0);
            let claim = if name == "PowerNorm" {
                "PowerNorm beats LayerNorm on language modelling"
            } else {
                "BatchNorm is worse than LayerNorm on text"
            };
            let holds = if name == "PowerNorm" {
                om < lm
            } else {
                om > lm
            };
            out.push(format!(
                "Paper: {claim}. Here the final validation perplexity is {} for LayerNorm and {} for {name} \
                 (mean over {} and {} seeds): {}.",
                fmt(lm.exp()), fmt(om.exp()), ln_loss.len(), o_loss.len(),
                if ln_loss.is_empty() || o_loss.is_empty() {
                    "could not be measured (no run of one of them finished)"
                } else if holds {
                    "**reproduced**"
                } else {
                    "**not reproduced**"
                }
            ));
        }
    }
    out
}

/// The report text.
pub fn report(study: Option<&Study>, runs: &[RunResult], charts: &[Chart]) -> String {
    let mut s = String::new();
    let groups = by_group(runs);
    let title = study.map(|s| s.name.as_str()).unwrap_or("ablate results");
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

    let _ = writeln!(s, "## Findings of the PowerNorm paper, checked\n");
    for f in findings(&groups) {
        let _ = writeln!(s, "- {f}");
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
        s.push_str(&super::scale::markdown(&points));
    }

    let _ = writeln!(s, "\n## Final metrics\n");
    let _ = writeln!(s, "| configuration | runs | status | steps | valid loss | valid ppl / accuracy | training-mode loss | training-mode − eval loss |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    for (label, rs) in &groups {
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
            "| {label} | {} | {} | {} | {} | {}{unit} | {} | {} |",
            rs.len(),
            statuses.join(", "),
            steps.join("/"),
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
