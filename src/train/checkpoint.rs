//! Checkpoints: the complete training state, saved every `checkpoint_every` steps and when a
//! run is stopped, so that an interrupted run continues exactly where it was.
//!
//! `<run>/checkpoints/step-<N>/` (the last two are kept) holds
//! - `model.bpk`: weights and every norm's buffers (running statistics, PowerNorm's ν), with
//!   their parameter ids (Burn's `ModuleRecord`, burnpack format);
//! - `optimizer.bpk`: Adam's moments and step counts, keyed by those ids (Burn's
//!   `OptimizerRecord`);
//! - `state.json`: the step, the run id, the build, the CSV files' lengths and the summary so
//!   far ([`CheckpointState`]), with SHA-256 digests of the CSV files' prefixes, of the two
//!   tensor files and of the data files the run reads;
//! - `state.sha256`: the digest of `state.json` itself.
//!
//! A checkpoint is used only when all of it agrees: an edited `state.json`, a damaged tensor
//! file, CSV rows changed before its step, or a steps.csv whose rows disagree with its step make
//! it pass over to the previous checkpoint, and the resume says so; data files that changed
//! refuse the resume (steps after it would train on other data).
//!
//! Everything else follows from the step: the batch order (the batch iterators are replayed
//! from the seed), the dropout masks (drawn from seed and step), the learning rate and
//! PowerNorm's warm-up. A checkpoint directory is written under a temporary name, synced and
//! renamed, so a crash leaves either the whole checkpoint or none.

use crate::config::RunConfig;
use crate::results::digest::{file_sha256, prefix_lines, sha256_hex};
use crate::results::{
    check_prefixes, sync_dir, write_atomic, FileDigests, FileLengths, RunWriter, Summary,
    STEPS_FILE,
};
use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// Weights of a finished run, saved next to its results.
pub const FINAL_WEIGHTS_FILE: &str = "model.bpk";
const MODEL_FILE: &str = "model.bpk";
const OPTIMIZER_FILE: &str = "optimizer.bpk";
const STATE_FILE: &str = "state.json";
const STATE_DIGEST_FILE: &str = "state.sha256";
const KEEP: usize = 2;

/// What a checkpoint records besides the tensors.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Steps completed (the run continues with step + 1).
    pub step: usize,
    /// The run id of the configuration (trajectory keys only).
    pub run_id: String,
    /// The build that wrote it: a resume needs the same build, or the numbers would mix.
    pub crate_version: String,
    pub git_revision: Option<String>,
    /// The CSV files' lengths at `step`.
    pub files: FileLengths,
    /// Training seconds before the checkpoint (so `wall_s` goes on from there).
    pub wall_s: f64,
    pub summary: Summary,
    /// SHA-256 of each CSV file's first `files` bytes.
    #[serde(default)]
    pub files_sha256: FileDigests,
    #[serde(default)]
    pub model_sha256: String,
    #[serde(default)]
    pub optimizer_sha256: String,
    /// SHA-256 of every data file the run reads, by path ([`super::data_fingerprint`]).
    #[serde(default)]
    pub data_sha256: BTreeMap<String, String>,
}

/// The newest usable checkpoint of a run folder, and the newer ones passed over with why.
#[derive(Debug, Default)]
pub struct Latest {
    pub checkpoint: Option<Checkpoint>,
    pub passed_over: Vec<String>,
}

impl Latest {
    /// One line per checkpoint passed over, for the user.
    pub fn notes(&self) -> Vec<String> {
        let to = match &self.checkpoint {
            Some(c) => format!("continuing from step {}", c.state.step),
            None => "no usable checkpoint left".to_string(),
        };
        self.passed_over
            .iter()
            .map(|why| format!("{why}; {to}"))
            .collect()
    }
}

/// A checkpoint found in a run folder.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub dir: PathBuf,
    pub state: CheckpointState,
}

impl Checkpoint {
    /// The newest checkpoint of the run folder `run_dir` whose files all agree (see the module
    /// notes); newer ones that do not are passed over and listed with the reason.
    pub fn latest(run_dir: &Path) -> Result<Latest> {
        let mut found = saved_steps(run_dir)?;
        found.sort_by_key(|(step, _)| std::cmp::Reverse(*step));
        let mut latest = Latest::default();
        for (_, dir) in found {
            match verify(run_dir, &dir) {
                Ok(state) => {
                    latest.checkpoint = Some(Checkpoint { dir, state });
                    break;
                }
                Err(e) => latest
                    .passed_over
                    .push(format!("checkpoint {} passed over: {e:#}", dir.display())),
            }
        }
        Ok(latest)
    }

    /// Refuses a checkpoint of another configuration or written by another build.
    pub fn check_compatible(&self, config: &RunConfig) -> Result<()> {
        let s = &self.state;
        if s.run_id != config.id() {
            bail!(
                "{} is a checkpoint of run {}, not of this configuration ({})",
                self.dir.display(),
                s.run_id,
                config.id()
            );
        }
        if s.step > config.steps {
            bail!(
                "{} is at step {}, beyond the {} steps the run plans",
                self.dir.display(),
                s.step,
                config.steps
            );
        }
        let this = build_name(env!("CARGO_PKG_VERSION"), super::git_revision().as_deref());
        let that = build_name(&s.crate_version, s.git_revision.as_deref());
        if this != that {
            bail!(
                "{} was written by build {that}, this is build {this}: its numbers would mix with another build's; resume with that build, or start the run over",
                self.dir.display()
            );
        }
        let now = super::data_fingerprint(config)?;
        for (path, digest) in &s.data_sha256 {
            if now.get(path) != Some(digest) {
                bail!(
                    "{path} changed since {} was saved (its SHA-256 differs): the steps after it would train on other data; restore the file, or start the run over with --force",
                    self.dir.display()
                );
            }
        }
        Ok(())
    }

    /// Loads the weights and buffers into `model` (built for the same configuration).
    pub fn load_model<M: Module>(&self, model: M) -> Result<M> {
        let path = self.dir.join(MODEL_FILE);
        let record = ModuleRecord::load(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        model
            .try_load_record(record)
            .map_err(|e| anyhow::anyhow!("cannot load {}: {e}", path.display()))
    }

    /// Loads Adam's state into `optim`.
    pub fn load_optimizer(&self, optim: ModuleOptimizer) -> Result<ModuleOptimizer> {
        let path = self.dir.join(OPTIMIZER_FILE);
        optim
            .load(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
    }
}

fn build_name(version: &str, revision: Option<&str>) -> String {
    format!("{version} (git {})", revision.unwrap_or("unknown"))
}

/// The state of the checkpoint `dir` of `run_dir` once every file it vouches for agrees.
fn verify(run_dir: &Path, dir: &Path) -> Result<CheckpointState> {
    let state_path = dir.join(STATE_FILE);
    let text = std::fs::read(&state_path)
        .with_context(|| format!("cannot read {}", state_path.display()))?;
    let recorded = std::fs::read_to_string(dir.join(STATE_DIGEST_FILE))
        .with_context(|| format!("cannot read {STATE_DIGEST_FILE}"))?;
    if sha256_hex(&text) != recorded.trim() {
        bail!("{STATE_FILE} does not match {STATE_DIGEST_FILE} (it was edited or damaged)");
    }
    let state: CheckpointState =
        serde_json::from_slice(&text).with_context(|| format!("{STATE_FILE} does not parse"))?;
    for (name, want) in [
        (MODEL_FILE, &state.model_sha256),
        (OPTIMIZER_FILE, &state.optimizer_sha256),
    ] {
        let got = file_sha256(&dir.join(name))?;
        if &got != want {
            bail!("{name} does not match the digest in {STATE_FILE} (it is damaged)");
        }
    }
    check_prefixes(run_dir, &state.files, &state.files_sha256)?;
    // the header and one row per step before the checkpoint
    let steps_path = run_dir.join(STEPS_FILE);
    let rows = prefix_lines(&steps_path, state.files.steps)?;
    if rows != state.step as u64 + 1 {
        bail!(
            "{} holds {} rows before the checkpoint's length, the checkpoint is at step {}",
            steps_path.display(),
            rows.saturating_sub(1),
            state.step
        );
    }
    Ok(state)
}

/// `(step, dir)` of every `step-<N>` directory in `run_dir/checkpoints`.
fn saved_steps(run_dir: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let dir = run_dir.join(CHECKPOINTS_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(step) = name
            .to_str()
            .and_then(|n| n.strip_prefix("step-"))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        // never follow a symlink: only real directories count
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.push((step, entry.path()));
        }
    }
    Ok(found)
}

/// The records are taken from `model.valid()`: a running state's stored value can lag its
/// last update by one step (Burn keeps the update per thread until it syncs), and `valid`
/// syncs it; the training model shares that state, so syncing changes none of its numbers.
///
/// Saves the state after `step` into `run_dir/checkpoints/step-<step>` and removes all but
/// the last two checkpoints. Returns the checkpoint's size in bytes.
#[allow(clippy::too_many_arguments)]
pub fn save<M: Module>(
    run_dir: &Path,
    step: usize,
    model: &M,
    optim: &ModuleOptimizer,
    writer: &mut RunWriter,
    summary: &Summary,
    wall_s: f64,
    data_sha256: &BTreeMap<String, String>,
) -> Result<u64> {
    writer.sync()?;
    let files = writer.lengths()?;
    let files_sha256 = writer.digests()?;
    let root = run_dir.join(CHECKPOINTS_DIR);
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let target = root.join(format!("step-{step:09}"));
    let tmp = root.join(format!(".step-{step:09}.tmp.{}", std::process::id()));
    let written = (|| -> Result<u64> {
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        model
            .valid()
            .into_record()
            .save(tmp.join(MODEL_FILE))
            .map_err(|e| anyhow::anyhow!("cannot write the model checkpoint: {e}"))?;
        optim
            .save(tmp.join(OPTIMIZER_FILE))
            .map_err(|e| anyhow::anyhow!("cannot write the optimizer checkpoint: {e}"))?;
        let state = CheckpointState {
            step,
            run_id: summary.run_id.clone(),
            crate_version: env!("CARGO_PKG_VERSION").into(),
            git_revision: super::git_revision(),
            files,
            wall_s,
            summary: summary.clone(),
            files_sha256,
            model_sha256: file_sha256(&tmp.join(MODEL_FILE))?,
            optimizer_sha256: file_sha256(&tmp.join(OPTIMIZER_FILE))?,
            data_sha256: data_sha256.clone(),
        };
        let json = serde_json::to_string_pretty(&state).expect("checkpoint state serializes");
        write_atomic(&tmp.join(STATE_FILE), json.as_bytes())?;
        let digest = sha256_hex(json.as_bytes());
        write_atomic(
            &tmp.join(STATE_DIGEST_FILE),
            format!("{digest}\n").as_bytes(),
        )?;
        let mut bytes = 0;
        for name in [MODEL_FILE, OPTIMIZER_FILE] {
            let f = std::fs::File::open(tmp.join(name))?;
            f.sync_all()?;
            bytes += f.metadata()?.len();
        }
        sync_dir(&tmp);
        if target.exists() {
            std::fs::remove_dir_all(&target)?;
        }
        std::fs::rename(&tmp, &target)?;
        sync_dir(&root);
        Ok(bytes)
    })();
    let bytes = match written {
        Ok(b) => b,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e).with_context(|| format!("cannot save checkpoint {}", target.display()));
        }
    };
    let mut steps = saved_steps(run_dir)?;
    steps.sort_by_key(|(s, _)| std::cmp::Reverse(*s));
    for (_, old) in steps.into_iter().skip(KEEP) {
        std::fs::remove_dir_all(&old)
            .with_context(|| format!("cannot remove old checkpoint {}", old.display()))?;
    }
    Ok(bytes)
}

/// A finished run keeps its final weights (`model.bpk` in the run folder) and drops its
/// checkpoints, which only served to continue it.
pub fn finish<M: Module>(run_dir: &Path, model: &M) -> Result<()> {
    let path = run_dir.join(FINAL_WEIGHTS_FILE);
    let record = model.valid().into_record();
    crate::results::write_atomic_with(&path, |tmp| {
        record.save(tmp).map_err(|e| anyhow::anyhow!("{e}"))
    })
    .with_context(|| format!("cannot save the final weights {}", path.display()))?;
    let root = run_dir.join(CHECKPOINTS_DIR);
    if root.is_dir() && !root.is_symlink() {
        std::fs::remove_dir_all(&root)
            .with_context(|| format!("cannot remove {}", root.display()))?;
    }
    Ok(())
}
