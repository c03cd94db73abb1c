//! Reports: read result folders (only the files, never the training code), compute the
//! oscillation statistics, draw the charts and write `REPORT.md`.
//!
//! Results may come from several folders (shards of a study run on several machines); runs
//! are matched by their id, so merging is a matter of listing the folders.

mod accuracy;
pub mod charts;
pub mod claims;
mod curves;
pub mod format;
mod headtohead;
pub mod inference;
pub mod markdown;
mod paper;
mod plot;
pub mod scale;
mod select;
pub mod stats;
mod sweep;
mod tables;
mod training;

pub use stats::{mean_std, median, median_in_place, quantile, sorted_finite, BoxStats, BUCKETS};

use crate::config::{RunConfig, Task};
use crate::experiment::Study;
use crate::results::{self, find_run_dirs, RunResult, RunStatus};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Label of a run group (the configuration without its seed).
pub fn group_label(c: &RunConfig) -> String {
    let mut s = format!("{} {}", c.task.name(), c.norm_label());
    if c.task == Task::Text && c.bucket_pool > 0 {
        s.push_str(" bucketed");
    }
    if let Some(note) = c.norm_config().note() {
        s.push_str(&format!(" ({note})"));
    }
    s
}

/// Key that groups the seeds of one configuration.
pub fn group_key(c: &RunConfig) -> String {
    let mut c = c.identity();
    c.seed = 0;
    c.to_toml()
}

/// Loads the runs named by `inputs`: result folders, or study files whose runs are looked up
/// by id in the `results` folders. Says on stderr, one line each, what it leaves out or finds
/// damaged: every planned run without a result folder or without a finished result, every
/// damaged or missing file; the report goes on with the rest.
pub fn load_inputs(
    inputs: &[PathBuf],
    results: &[PathBuf],
) -> Result<(Option<Study>, Vec<RunResult>)> {
    load_inputs_with(inputs, results, &[])
}

/// [`load_inputs`] with study files loaded under `--set` overrides.
pub fn load_inputs_with(
    inputs: &[PathBuf],
    results: &[PathBuf],
    overrides: &[(String, toml::Value)],
) -> Result<(Option<Study>, Vec<RunResult>)> {
    let mut study = None;
    let mut all_missing = false;
    let mut dirs: Vec<PathBuf> = Vec::new();
    for input in inputs {
        if input.extension().is_some_and(|e| e == "toml") && input.is_file() {
            let s = Study::load_with(input, overrides)?;
            all_missing |= study_run_dirs(&s, input, results, &mut dirs);
            study = Some(s);
        } else if input.is_dir() {
            dirs.extend(find_run_dirs(input)?);
            for orphan in results::orphan_run_dirs(input) {
                eprintln!(
                    "warning: left out {}: it holds results but no {} (its configuration is unknown)",
                    orphan.display(),
                    results::CONFIG_FILE
                );
            }
        } else {
            bail!(
                "{} is neither a results folder nor a study file (.toml)",
                input.display()
            );
        }
    }
    let runs = load_run_dirs(dirs, study.is_some());
    if runs.is_empty() {
        return Err(no_runs_error(inputs, results, all_missing));
    }
    Ok((study, runs))
}

/// The result folders of a study's planned runs in `results`, pushed to `dirs`; says on stderr
/// which planned runs have none. True when none of them has one.
fn study_run_dirs(s: &Study, input: &Path, results: &[PathBuf], dirs: &mut Vec<PathBuf>) -> bool {
    let mut missing = Vec::new();
    for run in &s.runs {
        match planned_run_dir(run, results) {
            Some(dir) => dirs.push(dir),
            None => missing.push(run.id()),
        }
    }
    if !missing.is_empty() {
        eprintln!(
            "warning: {} of the {} runs of {} have no results in {}: {}",
            missing.len(),
            s.runs.len(),
            input.display(),
            joined(results),
            missing.join(", ")
        );
    }
    missing.len() == s.runs.len()
}

/// The runs in `dirs`, each once (the first folder of a run id wins); a damaged folder is named
/// on stderr and left out; in a study, a run without a finished result is named there too.
fn load_run_dirs(dirs: Vec<PathBuf>, in_study: bool) -> Vec<RunResult> {
    let mut runs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for dir in dirs {
        // a damaged run folder is named and left out; the report goes on with the others
        let run = match RunResult::load(&dir) {
            Ok(run) => run,
            Err(e) => {
                eprintln!("warning: left out {}: {e:#}", dir.display());
                continue;
            }
        };
        for w in &run.warnings {
            eprintln!("warning: {w}");
        }
        if in_study && !matches!(run.status(), RunStatus::Finished | RunStatus::Diverged) {
            eprintln!(
                "warning: {} has no finished result ({}, {} of {} steps)",
                dir.display(),
                format!("{:?}", run.status()).to_lowercase(),
                run.steps_done(),
                run.config.steps
            );
        }
        // the same run id in two merged folders: keep the first
        if seen.insert(run.config.id()) {
            runs.push(run);
        }
    }
    runs
}

/// Why a report found no runs: when none of a study's runs is in `results` but other runs are,
/// the likely cause is a `--set` the study was run with.
fn no_runs_error(inputs: &[PathBuf], results: &[PathBuf], all_missing: bool) -> anyhow::Error {
    // runs of the study made under other settings (`ablate run STUDY --set ...`) have other
    // ids: say how to reach them
    let other_runs = results
        .iter()
        .filter_map(|r| find_run_dirs(r).ok())
        .any(|d| !d.is_empty());
    if all_missing && other_runs {
        return anyhow::anyhow!(
            "none of the study's runs are in {}, which holds other runs: if they were made with `ablate run ... --set KEY=VALUE`, pass the same --set to report",
            joined(results)
        );
    }
    anyhow::anyhow!("no runs found in {}", joined(inputs))
}

/// Paths as one comma-separated line.
fn joined(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The result folder of a planned run in `results`: `<id>` (or an earlier build's name for it),
/// or a rerun of it by single runs (`<id>-2`, `<id>-3`, ...); a finished (or diverged) one is
/// preferred over one that was interrupted.
fn planned_run_dir(run: &crate::config::RunConfig, results: &[PathBuf]) -> Option<PathBuf> {
    let id = run.id();
    let mut candidates = Vec::new();
    for r in results {
        candidates.push(run.run_dir(r));
        if let Ok(entries) = std::fs::read_dir(r) {
            let mut reruns: Vec<(usize, PathBuf)> = entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_str()?.to_string();
                    let n = name
                        .strip_prefix(&format!("{id}-"))?
                        .parse::<usize>()
                        .ok()?;
                    Some((n, e.path()))
                })
                .collect();
            reruns.sort();
            candidates.extend(reruns.into_iter().map(|(_, p)| p));
        }
    }
    let candidates: Vec<PathBuf> = candidates
        .into_iter()
        .filter(|d| d.join(results::CONFIG_FILE).is_file())
        .collect();
    let done = |d: &PathBuf| {
        results::read_summary(d)
            .is_ok_and(|s| matches!(s.status, RunStatus::Finished | RunStatus::Diverged))
    };
    candidates
        .iter()
        .find(|d| done(d))
        .or(candidates.first())
        .cloned()
}

/// Runs that finished or diverged, plus all others (reports show every run, with its status).
pub fn by_group(runs: &[RunResult]) -> Vec<(String, Vec<&RunResult>)> {
    let mut groups: Vec<(String, String, Vec<&RunResult>)> = Vec::new();
    for r in runs {
        let key = group_key(&r.config);
        match groups.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, _, v)) => v.push(r),
            None => groups.push((key, group_label(&r.config), vec![r])),
        }
    }
    // groups whose labels collide are told apart by the settings that differ between them
    let mut out: Vec<(String, Vec<&RunResult>)> = Vec::new();
    for (_, label, v) in &groups {
        let same: Vec<&RunConfig> = groups
            .iter()
            .filter(|(_, l, _)| l == label)
            .map(|(_, _, rs)| &rs[0].config)
            .collect();
        let label = if same.len() > 1 {
            let keys = scale::varying_keys(&same);
            let what: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{k} {}",
                        scale::key_value(&v[0].config, k).trim_matches('"')
                    )
                })
                .collect();
            format!("{label}, {}", what.join(", "))
        } else {
            label.clone()
        };
        // still the same (settings that do not show in config.toml): number them
        let n = out
            .iter()
            .filter(|(l, _)| *l == label || l.starts_with(&format!("{label} #")))
            .count();
        let label = if n == 0 {
            label
        } else {
            format!("{label} #{}", n + 1)
        };
        out.push((label, v.clone()));
    }
    out
}

/// Writes charts and `REPORT.md` for `runs` into `out`; returns the chart files written.
pub fn write_report(study: Option<&Study>, runs: &[RunResult], out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create report folder {}", out.display()))?;
    // charts are drawn in a private folder and renamed into place: a rename replaces a symbolic
    // link found at a chart's name instead of writing through it, and readers never see a
    // half-drawn chart
    let tmp = out.join(format!(".report.tmp.{}", std::process::id()));
    std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let drawn = charts::draw_all(runs, &tmp).and_then(|charts| {
        for c in &charts {
            for file in [c.file.clone(), c.svg()] {
                std::fs::rename(tmp.join(&file), out.join(&file))
                    .with_context(|| format!("cannot move {file} into {}", out.display()))?;
            }
        }
        Ok(charts)
    });
    let _ = std::fs::remove_dir_all(&tmp);
    let charts = drawn?;
    let md = markdown::report(study, runs, &charts);
    results::write_atomic(&out.join("REPORT.md"), md.as_bytes())?;
    Ok(charts.into_iter().map(|c| out.join(c.file)).collect())
}

#[cfg(test)]
mod tests;
