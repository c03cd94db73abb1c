//! Reports: read result folders (only the files, never the training code), compute the
//! oscillation statistics, draw the charts and write `REPORT.md`.
//!
//! Results may come from several folders (shards of a study run on several machines); runs
//! are matched by their id, so merging is a matter of listing the folders.

pub mod charts;
pub mod markdown;

use crate::config::{RunConfig, Task};
use crate::experiment::Study;
use crate::norm::{BackwardMeans, NormKind};
use crate::train::writer::{self, EvalRow, ProbeRow, RunStatus, StepRow, Summary};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Everything one run left on disk.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub dir: PathBuf,
    pub config: RunConfig,
    pub summary: Option<Summary>,
    pub steps: Vec<StepRow>,
    pub eval: Vec<EvalRow>,
    /// layer -> probe name -> (step, value), steps ascending.
    pub probes: BTreeMap<String, BTreeMap<String, Vec<(usize, f64)>>>,
    /// Layer names in model order (the first is the model's first norm layer).
    pub layers: Vec<String>,
}

impl RunResult {
    pub fn load(dir: &Path) -> Result<Self> {
        let config = writer::read_config(dir)?;
        let summary = writer::read_summary(dir).ok();
        let read = |f: &str| dir.join(f);
        let steps: Vec<StepRow> = if read(writer::STEPS_FILE).exists() {
            writer::read_csv(&read(writer::STEPS_FILE))?
        } else {
            vec![]
        };
        let eval: Vec<EvalRow> = if read(writer::EVAL_FILE).exists() {
            writer::read_csv(&read(writer::EVAL_FILE))?
        } else {
            vec![]
        };
        let rows: Vec<ProbeRow> = if read(writer::PROBES_FILE).exists() {
            writer::read_csv(&read(writer::PROBES_FILE))?
        } else {
            vec![]
        };
        let mut probes: BTreeMap<String, BTreeMap<String, Vec<(usize, f64)>>> = BTreeMap::new();
        let mut layers: Vec<String> = Vec::new();
        for r in rows {
            if !layers.contains(&r.layer) {
                layers.push(r.layer.clone());
            }
            probes
                .entry(r.layer)
                .or_default()
                .entry(r.name)
                .or_default()
                .push((r.step, r.value));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            summary,
            steps,
            eval,
            probes,
            layers,
        })
    }

    pub fn status(&self) -> RunStatus {
        self.summary
            .as_ref()
            .map(|s| s.status)
            .unwrap_or(RunStatus::Running)
    }

    /// Steps the run completed.
    pub fn steps_done(&self) -> usize {
        self.steps.last().map(|s| s.step).unwrap_or(0)
    }

    /// Values of probe `name` in `layer` (all layers pooled when `layer` is `None`) whose step
    /// lies in the fraction `[lo, hi)` of the planned training (`hi = 1` includes the end).
    pub fn probe_window(&self, layer: Option<&str>, name: &str, lo: f64, hi: f64) -> Vec<f64> {
        let total = self.config.steps as f64;
        let in_window = |step: usize| {
            let f = (step as f64 - 1.0) / total;
            f >= lo && (f < hi || (hi >= 1.0 && f <= 1.0))
        };
        self.probes
            .iter()
            .filter(|(l, _)| layer.is_none_or(|want| want == l.as_str()))
            .filter_map(|(_, p)| p.get(name))
            .flat_map(|series| {
                series
                    .iter()
                    .filter(|(s, _)| in_window(*s))
                    .map(|(_, v)| *v)
            })
            .collect()
    }

    pub fn first_layer(&self) -> Option<&str> {
        self.layers.first().map(|s| s.as_str())
    }

    /// The name of the second-order statistic's probes: `var` (BN) or `psi2` (PN-V, PN).
    pub fn second_name(&self) -> &'static str {
        match self.config.norm {
            NormKind::PnV | NormKind::Power => "psi2",
            _ => "var",
        }
    }

    /// Short label: task, norm and the settings that differ from the defaults that matter here.
    pub fn label(&self) -> String {
        group_label(&self.config)
    }
}

/// Label of a run group (the configuration without its seed).
pub fn group_label(c: &RunConfig) -> String {
    let mut s = format!("{} {}", c.task.name(), c.norm.name());
    if c.task == Task::Text && c.bucket_pool > 0 {
        s.push_str(" bucketed");
    }
    if c.norm == NormKind::Power && c.backward_means() == BackwardMeans::All {
        s.push_str(" (means over all positions)");
    }
    s
}

/// Key that groups the seeds of one configuration.
pub fn group_key(c: &RunConfig) -> String {
    let mut c = c.clone();
    c.seed = 0;
    c.to_toml()
}

/// Finds run folders: a folder holding `config.toml` is a run; otherwise its subfolders are
/// searched (one level).
pub fn find_run_dirs(path: &Path) -> Result<Vec<PathBuf>> {
    if path.join(writer::CONFIG_FILE).is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("cannot read results folder {}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(writer::CONFIG_FILE).is_file())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// Loads the runs named by `inputs`: result folders, or study files whose runs are looked up
/// by id in the `results` folders.
pub fn load_inputs(
    inputs: &[PathBuf],
    results: &[PathBuf],
) -> Result<(Option<Study>, Vec<RunResult>)> {
    let mut study = None;
    let mut dirs: Vec<PathBuf> = Vec::new();
    for input in inputs {
        if input.extension().is_some_and(|e| e == "toml") && input.is_file() {
            let s = Study::load(input)?;
            for run in &s.runs {
                let id = run.id();
                if let Some(dir) = results
                    .iter()
                    .map(|r| r.join(&id))
                    .find(|d| d.join(writer::CONFIG_FILE).is_file())
                {
                    dirs.push(dir);
                }
            }
            study = Some(s);
        } else if input.is_dir() {
            dirs.extend(find_run_dirs(input)?);
        } else {
            bail!(
                "{} is neither a results folder nor a study file (.toml)",
                input.display()
            );
        }
    }
    let mut runs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for dir in dirs {
        let run = RunResult::load(&dir)?;
        // the same run id in two merged folders: keep the first
        if seen.insert(run.config.id()) {
            runs.push(run);
        }
    }
    if runs.is_empty() {
        bail!(
            "no runs found in {}",
            inputs
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok((study, runs))
}

// ---------- statistics ----------

pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

pub fn sorted_finite(v: &[f64]) -> Vec<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    s.sort_by(|a, b| a.total_cmp(b));
    s
}

pub fn median(v: &[f64]) -> f64 {
    quantile(&sorted_finite(v), 0.5)
}

pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, var.sqrt())
}

/// Box-plot summary: quartiles, whiskers at the furthest points within 1.5 IQR, outliers.
#[derive(Debug, Clone, PartialEq)]
pub struct BoxStats {
    pub q1: f64,
    pub median: f64,
    pub q3: f64,
    pub low: f64,
    pub high: f64,
    pub outliers: Vec<f64>,
    pub n: usize,
}

impl BoxStats {
    pub fn of(values: &[f64]) -> Option<Self> {
        let s = sorted_finite(values);
        if s.is_empty() {
            return None;
        }
        let (q1, median, q3) = (quantile(&s, 0.25), quantile(&s, 0.5), quantile(&s, 0.75));
        let iqr = q3 - q1;
        let (lo_fence, hi_fence) = (q1 - 1.5 * iqr, q3 + 1.5 * iqr);
        let low = *s.iter().find(|&&x| x >= lo_fence).unwrap_or(&s[0]);
        let high = *s
            .iter()
            .rev()
            .find(|&&x| x <= hi_fence)
            .unwrap_or(&s[s.len() - 1]);
        let outliers = s
            .iter()
            .copied()
            .filter(|&x| x < lo_fence || x > hi_fence)
            .collect();
        Some(Self {
            q1,
            median,
            q3,
            low,
            high,
            outliers,
            n: s.len(),
        })
    }
}

/// The five 20 % buckets of training the paper's box plots use.
pub const BUCKETS: [(f64, f64); 5] = [(0.0, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 1.0)];

/// Runs that finished or diverged, plus all others (reports show every run, with its status).
pub fn by_group(runs: &[RunResult]) -> Vec<(String, Vec<&RunResult>)> {
    let mut groups: Vec<(String, String, Vec<&RunResult>)> = Vec::new();
    for r in runs {
        let key = group_key(&r.config);
        match groups.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, _, v)) => v.push(r),
            None => groups.push((key, r.label(), vec![r])),
        }
    }
    // distinct labels for groups that differ in other settings
    let mut out: Vec<(String, Vec<&RunResult>)> = Vec::new();
    for (_, label, v) in groups {
        let n = out
            .iter()
            .filter(|(l, _)| l == &label || l.starts_with(&format!("{label} #")))
            .count();
        let label = if n == 0 {
            label
        } else {
            format!("{label} #{}", n + 1)
        };
        out.push((label, v));
    }
    out
}

/// Writes charts and `REPORT.md` for `runs` into `out`; returns the chart files written.
pub fn write_report(study: Option<&Study>, runs: &[RunResult], out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create report folder {}", out.display()))?;
    let charts = charts::draw_all(runs, out)?;
    let md = markdown::report(study, runs, &charts);
    writer::write_atomic(&out.join("REPORT.md"), md.as_bytes())?;
    Ok(charts.into_iter().map(|c| out.join(c.file)).collect())
}

#[cfg(test)]
mod tests;
