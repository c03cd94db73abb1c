//! Writing a run's result files: CSV rows as the run goes, the summary atomically.

use super::digest::{hex, prefix_sha256, HashingFile};
use super::{
    EvalRow, ProbeRow, StepRow, Summary, CONFIG_FILE, EVAL_COLUMNS, EVAL_FILE, PROBES_FILE,
    PROBE_COLUMNS, STEPS_FILE, STEP_COLUMNS, SUMMARY_FILE,
};
use crate::config::RunConfig;
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Writes `contents` to `path` through a temporary file, fsync and a rename, so readers never
/// see a half-written file and a crash leaves the old file or the new one. The temporary file
/// is removed if any step fails.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    write_atomic_with(path, |tmp| {
        let mut f = File::create(tmp)?;
        f.write_all(contents)?;
        Ok(())
    })
}

/// [`write_atomic`] for a file that `write` creates at the temporary path it is given (a
/// serializer that writes files itself): synced, renamed into place, removed on failure.
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let written = write(&tmp).and_then(|()| Ok(File::open(&tmp)?.sync_all()?));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", tmp.display()));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot move {} into place", path.display()));
    }
    sync_dir(path.parent().unwrap_or(Path::new(".")));
    Ok(())
}

/// Removes the temporary files (`*.tmp.<pid>`) and folders that a process killed while writing
/// left in `dir` and its `checkpoints/`: only those of processes that are no longer alive.
pub fn remove_stale_temporaries(dir: &Path) {
    for d in [dir.to_path_buf(), dir.join("checkpoints")] {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(pid) = name
                .rsplit_once(".tmp.")
                .and_then(|(_, pid)| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            let path = e.path();
            let _ = match e.file_type() {
                Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
                _ => std::fs::remove_file(&path),
            };
        }
    }
}

/// Makes a rename in `dir` durable (best effort: not every file system supports it).
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Byte lengths of a run's CSV files at a consistent point (after a flush): a resumed run cuts
/// its files back to them, dropping rows written after its checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileLengths {
    pub steps: u64,
    pub probes: u64,
    pub eval: u64,
}

/// SHA-256 (hex) of each CSV file's first [`FileLengths`] bytes: a checkpoint's proof that the
/// rows it continues from are the rows it wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileDigests {
    pub steps: String,
    pub probes: String,
    pub eval: String,
}

/// Checks that each CSV file of `dir` begins with the bytes `lengths` and `digests` describe;
/// the error names the first file that does not.
pub fn check_prefixes(dir: &Path, lengths: &FileLengths, digests: &FileDigests) -> Result<()> {
    for (name, len, want) in [
        (STEPS_FILE, lengths.steps, &digests.steps),
        (PROBES_FILE, lengths.probes, &digests.probes),
        (EVAL_FILE, lengths.eval, &digests.eval),
    ] {
        let path = dir.join(name);
        let got = hex(prefix_sha256(&path, Some(len))?);
        if &got != want {
            anyhow::bail!(
                "{} does not begin with the {len} bytes its checkpoint recorded (their SHA-256 differs): the file was changed since",
                path.display()
            );
        }
    }
    Ok(())
}

pub struct RunWriter {
    pub dir: PathBuf,
    steps: csv::Writer<HashingFile>,
    probes: csv::Writer<HashingFile>,
    eval: csv::Writer<HashingFile>,
}

fn csv_writer(path: &Path, columns: &[&str]) -> Result<csv::Writer<HashingFile>> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(HashingFile::new(file, Sha256::new()));
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

    /// Reopens the result files of `dir` to continue a run: each CSV is cut back to `lengths`
    /// and appended to; config.toml is rewritten (logging keys may have changed).
    pub fn resume(dir: &Path, config: &RunConfig, lengths: FileLengths) -> Result<Self> {
        remove_stale_temporaries(dir);
        write_atomic(&dir.join(CONFIG_FILE), config.to_toml().as_bytes())?;
        let reopen = |name: &str, len: u64| -> Result<csv::Writer<HashingFile>> {
            let path = dir.join(name);
            let file = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .with_context(|| format!("cannot reopen {}", path.display()))?;
            let on_disk = file.metadata()?.len();
            if on_disk < len {
                anyhow::bail!(
                    "{} holds {on_disk} bytes, fewer than the {len} its checkpoint recorded: the results were changed since",
                    path.display()
                );
            }
            // the hash goes on from the rows kept
            let hasher = prefix_sha256(&path, Some(len))?;
            file.set_len(len)
                .with_context(|| format!("cannot cut {} back", path.display()))?;
            Ok(csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(HashingFile::new(file, hasher)))
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            steps: reopen(STEPS_FILE, lengths.steps)?,
            probes: reopen(PROBES_FILE, lengths.probes)?,
            eval: reopen(EVAL_FILE, lengths.eval)?,
        })
    }

    /// Flushes the CSV files and returns their lengths.
    pub fn lengths(&mut self) -> Result<FileLengths> {
        self.flush()?;
        let len = |name: &str| -> Result<u64> {
            let path = self.dir.join(name);
            Ok(std::fs::metadata(&path)
                .with_context(|| format!("cannot read {}", path.display()))?
                .len())
        };
        Ok(FileLengths {
            steps: len(STEPS_FILE)?,
            probes: len(PROBES_FILE)?,
            eval: len(EVAL_FILE)?,
        })
    }

    /// SHA-256 of everything written to each CSV file (flushed first): with [`Self::lengths`],
    /// what a checkpoint records of them.
    pub fn digests(&mut self) -> Result<FileDigests> {
        self.flush()?;
        Ok(FileDigests {
            steps: self.steps.get_ref().digest(),
            probes: self.probes.get_ref().digest(),
            eval: self.eval.get_ref().digest(),
        })
    }

    /// Flushes the CSV files to the disk itself (before a checkpoint points at their lengths).
    pub fn sync(&mut self) -> Result<()> {
        self.flush()?;
        for w in [&self.steps, &self.probes, &self.eval] {
            w.get_ref()
                .file
                .sync_data()
                .context("cannot sync the run's CSV files")?;
        }
        Ok(())
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
        self.steps.flush().context("cannot write steps.csv")?;
        self.probes.flush().context("cannot write probes.csv")?;
        self.eval.flush().context("cannot write eval.csv")?;
        Ok(())
    }

    pub fn summary(&mut self, summary: &Summary) -> Result<()> {
        self.flush()?;
        let json = serde_json::to_string_pretty(summary).expect("summary serializes");
        write_atomic(&self.dir.join(SUMMARY_FILE), json.as_bytes())
    }
}
