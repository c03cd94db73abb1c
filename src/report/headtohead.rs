//! The report's first section, for any study: each configuration against a baseline
//! configuration with the same settings but the norm — final validation loss and its difference
//! with Welch's 95 % interval between seeds, perplexity or accuracy, and how far the batch
//! statistics stray from their running values.
//!
//! The baseline norm is the study file's `baseline = "NORM"`; without one, LayerNorm when the
//! task has it, else the norm of the task's first configuration.

use super::format::{pm, sig};
use super::inference::welch_difference;
use super::select::{final_losses, final_ppl_or_accuracy, finished, late_median};
use super::RunResult;
use crate::config::{RunConfig, Task};
use crate::norm::NormKind;
use std::fmt::Write;

type Group<'a> = (String, Vec<&'a RunResult>);

/// The configuration of `c` without its seed, its norm and the norm options that not both
/// `c`'s norm and `other` read: two groups with the same key for each other differ only in the
/// norm (an option both read, such as `norm_eps`, must match).
fn settings_key(c: &RunConfig, other: NormKind) -> String {
    let mut t: toml::Table =
        toml::from_str(&c.identity().to_toml()).expect("a run config's TOML reads back");
    t.remove("seed");
    t.remove("norm");
    t.remove("norm_decl");
    let (mine, theirs) = (c.norm.info().options, other.info().options);
    for option in crate::norm::all_options() {
        if !(mine.contains(option) && theirs.contains(option)) {
            t.remove(option.key);
        }
    }
    t.to_string()
}

/// The baseline norm of `task`'s groups.
fn baseline_norm(groups: &[Group], task: Task, named: Option<NormKind>) -> Option<NormKind> {
    let norms: Vec<NormKind> = groups
        .iter()
        .filter(|(_, rs)| rs[0].config.task == task)
        .map(|(_, rs)| rs[0].config.norm)
        .collect();
    named
        .filter(|n| norms.contains(n))
        .or_else(|| norms.contains(&NormKind::Layer).then_some(NormKind::Layer))
        .or_else(|| norms.first().copied())
}

/// "0.0512 / 0.0774": the batch statistic's relative distance to its running value, median over
/// the last 20 % of training, first layer / all layers.
fn distances(rs: &[&RunResult]) -> String {
    if rs[0].config.norm_info().statistic.is_none() || finished(rs).is_empty() {
        return "—".into();
    }
    let name = crate::probe::rel_dist(rs[0].second_name());
    let done = finished(rs);
    format!(
        "{} / {}",
        sig(late_median(&done, true, &name)),
        sig(late_median(&done, false, &name))
    )
}

/// One table row: `g` against its baseline `b`.
fn row(g: &Group, b: &Group) -> String {
    let (a, base) = (final_losses(&g.1), final_losses(&b.1));
    let diff = match welch_difference(&a, &base) {
        Some(d) => format!("{} [{}, {}]", sig(d.value), sig(d.lo), sig(d.hi)),
        None if a.is_empty() || base.is_empty() => "n/a (no finished run)".into(),
        None => format!(
            "{} (no interval: fewer than two runs a side)",
            sig(super::mean_std(&a).0 - super::mean_std(&base).0)
        ),
    };
    let unit = if g.1[0].config.task == Task::Text {
        ""
    } else {
        " %"
    };
    format!(
        "| {} | {} | {} of {} | {} | {diff} | {}{unit} | {} |",
        g.0,
        b.0,
        a.len(),
        g.1.len(),
        pm(&a),
        pm(&final_ppl_or_accuracy(&g.1)),
        distances(&g.1)
    )
}

/// Each configuration's row against its baseline, the configurations without one, and the
/// baseline norms.
struct Pairs {
    rows: Vec<String>,
    unmatched: Vec<String>,
    baselines: Vec<NormKind>,
}

/// Pairs every configuration with the baseline configuration of the same settings but the norm.
fn pairs(groups: &[Group], named: Option<NormKind>) -> Pairs {
    let mut rows = Vec::new();
    let mut unmatched = Vec::new();
    let mut baselines = Vec::new();
    for g in groups {
        let c = &g.1[0].config;
        let Some(norm) = baseline_norm(groups, c.task, named) else {
            continue;
        };
        if c.norm == norm {
            if !baselines.contains(&norm) {
                baselines.push(norm);
            }
            continue;
        }
        let key = settings_key(c, norm);
        let bases: Vec<&Group> = groups
            .iter()
            .filter(|(_, rs)| {
                rs[0].config.norm == norm
                    && rs[0].config.task == c.task
                    && settings_key(&rs[0].config, c.norm) == key
            })
            .collect();
        match bases.as_slice() {
            [b] => rows.push(row(g, b)),
            [] => unmatched.push(format!("{} (no `{norm}` run with its settings)", g.0)),
            _ => unmatched.push(format!(
                "{} ({} `{norm}` configurations match its settings)",
                g.0,
                bases.len()
            )),
        }
    }
    Pairs {
        rows,
        unmatched,
        baselines,
    }
}

/// The section, or nothing when the study has no configuration to compare.
pub fn section(groups: &[Group], named: Option<NormKind>) -> String {
    let Pairs {
        rows,
        unmatched,
        baselines,
    } = pairs(groups, named);
    if rows.is_empty() && unmatched.is_empty() {
        return String::new();
    }
    let names: Vec<String> = baselines.iter().map(|n| format!("`{n}`")).collect();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## Each configuration against the baseline\n\n\
         Baseline: {} ({}). Each configuration is set against the baseline configuration with the same settings but \
         the norm. Final validation loss in evaluation mode over the finished runs (mean ± standard deviation over \
         seeds); the difference configuration − baseline with Welch's 95 % interval between seeds (below 0: lower \
         loss than the baseline); the batch statistic's distance to its running value relative to the running value \
         (variance, or ψ² for PowerNorm and PN-V), median over the last 20 % of training, first layer / all layers.\n",
        if names.is_empty() { "none".to_string() } else { names.join(", ") },
        match named {
            Some(n) if baselines.iter().all(|b| *b == n) => "named by the study file",
            Some(_) => "named by the study file where a task has it, else LayerNorm, else the task's first configuration",
            None => "LayerNorm where the task has it, else the task's first configuration; a study file names another with `baseline = \"NORM\"`",
        }
    );
    if !rows.is_empty() {
        let _ = writeln!(
            s,
            "| configuration | baseline | finished runs | valid loss | − baseline [95 % interval] | valid ppl / accuracy | batch statistic's relative distance (first / all layers) |\n\
             |---|---|---|---|---|---|---|"
        );
        for r in rows {
            let _ = writeln!(s, "{r}");
        }
    }
    if !unmatched.is_empty() {
        let _ = writeln!(s, "\nNot compared: {}.", unmatched.join("; "));
    }
    s
}
