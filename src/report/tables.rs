//! The report's tables: final metrics per configuration, the batch statistics' distances per
//! layer, and the list of charts.

use super::charts::Chart;
use super::format::{pm, sig};
use super::select::{
    final_losses, final_ppl_or_accuracy, final_train_mode_losses, final_values, late_median,
};
use super::{mean_std, RunResult};
use crate::config::Task;
use crate::results::RunStatus;
use std::fmt::Write;

type Groups<'a> = [(String, Vec<&'a RunResult>)];

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

/// "3 finished, 2 diverged at step 112 (grad_norm), ...": how many runs of a group are in each state.
fn statuses(rs: &[&RunResult]) -> String {
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
    statuses.join(", ")
}

/// Final metrics per configuration, over its finished runs.
pub fn final_metrics(groups: &Groups) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n## Final metrics\n");
    let _ = writeln!(s, "| configuration | runs | status | steps | epochs | valid loss | valid ppl / accuracy | training-mode loss | training-mode − eval loss |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for (label, rs) in groups {
        let (loss, train) = (final_losses(rs), final_train_mode_losses(rs));
        let gap = final_values(rs, |e| Some(e.train_mode_loss - e.eval_loss));
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
            statuses(rs),
            steps.join("/"),
            epochs(rs),
            pm(&loss),
            pm(&final_ppl_or_accuracy(rs)),
            pm(&train),
            pm(&gap)
        );
    }
    let _ = writeln!(
        s,
        "\nMean ± sample standard deviation over the finished runs (seeds). Perplexity for text, accuracy for images."
    );
    s
}

/// Medians of the batch statistics' distances over the last 20 % of training, first layer and
/// all layers, for the configurations whose norm keeps batch statistics.
pub fn oscillation(groups: &Groups) -> String {
    let mut s = String::new();
    let stat_groups: Vec<_> = groups
        .iter()
        .filter(|(_, rs)| rs[0].config.norm_info().statistic.is_some())
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
            // the finished runs, as everywhere in the report
            let done = crate::report::select::finished(rs);
            for first in [true, false] {
                let layer = if first {
                    rs[0].first_layer().unwrap_or("-").to_string()
                } else {
                    "all".to_string()
                };
                let _ = writeln!(
                    s,
                    "| {label} | {layer} | {} | {} | {} | {} |",
                    sig(late_median(&done, first, crate::probe::DIST_MEAN)),
                    sig(late_median(&done, first, &crate::probe::dist(second))),
                    sig(late_median(&done, first, &crate::probe::rel_dist(second))),
                    sig(late_median(&done, first, &crate::probe::grad(second)))
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
    s
}

/// Every chart with its caption.
pub fn charts(charts: &[Chart]) -> String {
    let mut s = String::new();
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
    s
}

/// The norms the study declared (`[norms.NAME]`): each name with its declaration, resolved.
pub fn declared_norms(groups: &Groups) -> String {
    let mut rows: Vec<(String, String)> = groups
        .iter()
        .filter_map(|(_, rs)| {
            let c = &rs[0].config;
            Some((c.norm_label(), c.norm_decl.as_ref()?.inline()))
        })
        .collect();
    rows.sort();
    rows.dedup();
    if rows.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "\n## Declared norms\n\nComposed from parts in the study file (`[norms.NAME]`; the parts and their formulas: \
         `docs/composed-norms.md`); a run's id hashes the declaration, not the name.\n\n| norm | declaration |\n|---|---|\n",
    );
    for (name, decl) in rows {
        let _ = writeln!(s, "| `{name}` | `{decl}` |");
    }
    s
}
