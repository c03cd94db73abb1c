//! Writing a run's result files: CSV rows as the run goes, the summary atomically.

use super::{
    EvalRow, ProbeRow, StepRow, Summary, CONFIG_FILE, EVAL_COLUMNS, EVAL_FILE, PROBES_FILE,
    PROBE_COLUMNS, STEPS_FILE, STEP_COLUMNS, SUMMARY_FILE,
};
use crate::config::RunConfig;
use anyhow::{Context, Result};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Writes `value` to `path` through a temporary file and a rename, so readers never see a
/// half-written file.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, contents).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot move {} into place", path.display()))?;
    Ok(())
}

pub struct RunWriter {
    pub dir: PathBuf,
    steps: csv::Writer<File>,
    probes: csv::Writer<File>,
    eval: csv::Writer<File>,
}

fn csv_writer(path: &Path, columns: &[&str]) -> Result<csv::Writer<File>> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(file);
    w.write_record(columns)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(w)
}

impl RunWriter {
    /// Creates the result files in an existing, empty run directory.
    pub fn create(dir: &Path, config: &RunConfig) -> Result<Self> {
        write_atomic(&dir.join(CONFIG_FILE), config.to_toml().as_bytes())?;
        Ok(Self {
            dir: dir.to_path_buf(),
            steps: csv_writer(&dir.join(STEPS_FILE), &STEP_COLUMNS)?,
            probes: csv_writer(&dir.join(PROBES_FILE), &PROBE_COLUMNS)?,
            eval: csv_writer(&dir.join(EVAL_FILE), &EVAL_COLUMNS)?,
        })
    }

    pub fn step(&mut self, row: &StepRow) -> Result<()> {
        self.steps.serialize(row).context("cannot write steps.csv")
    }

    pub fn probe(&mut self, row: &ProbeRow) -> Result<()> {
        self.probes
            .serialize(row)
            .context("cannot write probes.csv")
    }

    pub fn eval(&mut self, row: &EvalRow) -> Result<()> {
        self.eval.serialize(row).context("cannot write eval.csv")?;
        self.eval.flush().context("cannot write eval.csv")
    }

    pub fn flush(&mut self) -> Result<()> {
        self.steps.flush()?;
        self.probes.flush()?;
        self.eval.flush()?;
        Ok(())
    }

    pub fn summary(&mut self, summary: &Summary) -> Result<()> {
        self.flush()?;
        let json = serde_json::to_string_pretty(summary).expect("summary serializes");
        write_atomic(&self.dir.join(SUMMARY_FILE), json.as_bytes())
    }
}
