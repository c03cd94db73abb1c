//! `REPORT.md`, assembled from its sections: each configuration against a baseline first, then
//! the PowerNorm paper's findings and the question's claims where the study has the runs for
//! them, the tables and the charts. Nothing in it is written by hand.

use super::charts::Chart;
use super::tables;
use super::{by_group, RunResult};
use crate::experiment::Study;
use crate::results::RunStatus;
use std::fmt::Write;

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
    let mut s = header(study, title);
    if let Some(line) = study.and_then(|st| unfinished_runs(st, runs)) {
        let _ = writeln!(s, "**{line}**\n");
    }
    for limit in limits(groups) {
        let _ = writeln!(s, "**{limit}**\n");
    }
    s.push_str(&super::headtohead::section(
        groups,
        study.and_then(|st| st.baseline),
    ));
    let paper = super::paper::findings(groups);
    let claims = super::claims::findings(runs);
    let points = super::scale::points(runs);
    if !paper.is_empty() {
        let _ = writeln!(
            s,
            "\n## The PowerNorm paper's findings, where this study has the runs for them\n\n\
             Each line: the verdict, the claim and measure, the estimate with its 95 % interval between runs, the rule, \
             and the runs per side. One run on a side gives numbers and no verdict.\n"
        );
        for f in &paper {
            let _ = writeln!(s, "{f}");
        }
    }
    if !claims.is_empty() {
        let _ = writeln!(s, "\n## The question's claims, measured\n");
        for c in &claims {
            let _ = writeln!(s, "- {c}");
        }
    }
    if !points.is_empty() {
        let _ = writeln!(s, "\n## Text against images, with intervals\n");
        s.push_str(&super::scale::markdown(
            &points,
            study.is_none_or(|st| st.overrides.is_empty()),
        ));
    }
    s.push_str(&tables::declared_norms(groups));
    s.push_str(&tables::final_metrics(groups));
    s.push_str(&tables::oscillation(groups));
    s.push_str(&tables::charts(charts));
    // the paper's setting only beside the paper's findings
    if !paper.is_empty() || !claims.is_empty() || !points.is_empty() {
        s.push_str(&super::paper::setting(runs));
    }
    s
}

/// How many of the study's runs this report lacks or holds unfinished, said at its top (the
/// study is rerun to complete them: interrupted runs continue from their checkpoints).
fn unfinished_runs(study: &Study, runs: &[RunResult]) -> Option<String> {
    let finished: std::collections::HashSet<String> = runs
        .iter()
        .filter(|r| matches!(r.status(), RunStatus::Finished | RunStatus::Diverged))
        .map(|r| r.config.id())
        .collect();
    let open: Vec<String> = study
        .runs
        .iter()
        .map(|c| c.id())
        .filter(|id| !finished.contains(id))
        .collect();
    (!open.is_empty()).then(|| {
        format!(
            "{} of the study's {} runs have not ended ({}): this report covers the others; \
             `ablate run {}` continues them.",
            open.len(),
            study.runs.len(),
            open.join(", "),
            study.path.display()
        )
    })
}

/// Title, the study's description and how the file was made.
fn header(study: Option<&Study>, title: &str) -> String {
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
    if let Some(st) = study.filter(|st| !st.overrides.is_empty()) {
        let _ = writeln!(
            s,
            "**This study was run changed with `--set {}`: its runs are not the study file's, so this report gives \
             numbers and no verdicts.**\n",
            st.overrides.join(" --set ")
        );
    }
    s
}
