//! Reading result files back: summaries, configurations, CSV rows and whole run folders.

use super::{
    EvalRow, ProbeRow, RunStatus, StepRow, Summary, CONFIG_FILE, EVAL_FILE, PROBES_FILE,
    STEPS_FILE, SUMMARY_FILE,
};
use crate::config::RunConfig;
use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub fn read_summary(dir: &Path) -> Result<Summary> {
    let path = dir.join(SUMMARY_FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid run summary", path.display()))
}

pub fn read_config(dir: &Path) -> Result<RunConfig> {
    let path = dir.join(CONFIG_FILE);
    let text =
        crate::errors::read_text_limited(&path, crate::errors::MAX_SETTINGS_BYTES, "config")?;
    RunConfig::from_toml(&text, &path.display().to_string())
}

/// Reads a CSV file of rows of type `T`.
pub fn read_csv<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    reader
        .deserialize()
        .enumerate()
        .map(|(i, r)| {
            r.with_context(|| format!("{} row {}: unexpected format", path.display(), i + 2))
        })
        .collect()
}

/// Like [`read_csv`], for a file still being written: a last line cut short (the writer is in
/// the middle of it) ends the rows instead of failing; a bad line before the last still fails.
pub fn read_csv_growing<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let rows: Vec<_> = reader.deserialize().collect();
    let n = rows.len();
    let mut out = Vec::with_capacity(n);
    for (i, r) in rows.into_iter().enumerate() {
        match r {
            Ok(v) => out.push(v),
            Err(_) if i + 1 == n => break,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("{} row {}: unexpected format", path.display(), i + 2)
                })
            }
        }
    }
    Ok(out)
}

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
    /// Damaged or missing files, one line each (see [`RunResult::load`]).
    pub warnings: Vec<String>,
}

/// The file's bytes up to its last newline, and whether anything came after it: a row cut short
/// by an interrupted write, left out even when what is left of it parses (`5.1` of `5.1234`).
fn complete_lines(path: &Path) -> Result<(Vec<u8>, bool)> {
    let mut bytes =
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let cut = keep < bytes.len();
    bytes.truncate(keep);
    Ok((bytes, cut))
}

/// Rows of a CSV file read by [`complete_lines`] (none when the file is missing); a bad row is
/// an error naming the file and the line.
fn parse_rows<T: for<'de> Deserialize<'de>>(
    path: &Path,
    content: Option<(Vec<u8>, bool)>,
) -> Result<Vec<T>> {
    let Some((bytes, _)) = content else {
        return Ok(vec![]);
    };
    csv::Reader::from_reader(&bytes[..])
        .deserialize()
        .enumerate()
        .map(|(i, r)| {
            r.with_context(|| format!("{} row {}: unexpected format", path.display(), i + 2))
        })
        .collect()
}

impl RunResult {
    /// Loads a run folder. What is damaged or missing but leaves the run usable (a summary that
    /// does not parse, a missing CSV file, a last row cut short) goes into `warnings`, one line
    /// each naming the file; a missing or unreadable config.toml, or a bad row inside a file,
    /// is an error.
    pub fn load(dir: &Path) -> Result<Self> {
        let config = read_config(dir)?;
        let mut warnings = Vec::new();
        let summary_path = dir.join(SUMMARY_FILE);
        let summary = match read_summary(dir) {
            Ok(s) => Some(s),
            Err(e) if summary_path.exists() => {
                warnings.push(format!(
                    "{}: the run counts as not finished",
                    crate::errors::one_line(&format!("{e:#}"))
                ));
                None
            }
            Err(_) => None,
        };
        // A run without a summary may still be writing its CSVs: a missing file or a last line
        // cut short is expected there, and worth a warning only in a run that has ended.
        let ended = summary.is_some();
        let mut read = |name: &str, wanted: bool| -> Result<Option<(Vec<u8>, bool)>> {
            let path = dir.join(name);
            if !path.exists() {
                if wanted && (ended || name == STEPS_FILE) {
                    warnings.push(format!("{} is missing", path.display()));
                }
                return Ok(None);
            }
            let (bytes, cut) = complete_lines(&path)?;
            if cut && ended {
                warnings.push(format!(
                    "{} ends in a row cut short: that row is left out",
                    path.display()
                ));
            }
            Ok(Some((bytes, cut)))
        };
        let steps: Vec<StepRow> = parse_rows(&dir.join(STEPS_FILE), read(STEPS_FILE, true)?)?;
        let eval: Vec<EvalRow> = parse_rows(&dir.join(EVAL_FILE), read(EVAL_FILE, true)?)?;
        let rows: Vec<ProbeRow> =
            parse_rows(&dir.join(PROBES_FILE), read(PROBES_FILE, config.probes)?)?;
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
            warnings,
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
        self.config
            .norm_info()
            .statistic
            .map_or("var", |s| s.probe_name())
    }
}

/// Finds run folders: a folder holding `config.toml` is a run; otherwise its subfolders are
/// searched (one level).
/// The folders of `path` (or `path` itself) that hold result files but no config.toml.
pub fn orphan_run_dirs(path: &Path) -> Vec<PathBuf> {
    let orphan = |p: &Path| {
        !p.join(CONFIG_FILE).is_file()
            && [STEPS_FILE, SUMMARY_FILE]
                .iter()
                .any(|f| p.join(f).is_file())
    };
    if orphan(path) {
        return vec![path.to_path_buf()];
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir() && orphan(p))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

pub fn find_run_dirs(path: &Path) -> Result<Vec<PathBuf>> {
    if path.join(CONFIG_FILE).is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("cannot read results folder {}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(CONFIG_FILE).is_file())
        .collect();
    dirs.sort();
    Ok(dirs)
}
