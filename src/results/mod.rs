//! The one place the result-file schema lives: file names, row types, the summary, and the
//! writers and readers. `train` writes through it, `experiment` and `report` read through it,
//! so reports run on results produced elsewhere (another machine, a cluster shard).
//!
//! `results/<run-id>/`
//! - `config.toml`: the full [`RunConfig`](crate::config::RunConfig); `ablate --config` on it reruns the run.
//! - `steps.csv`: one row per training step ([`StepRow`]).
//! - `probes.csv`: long format, one row per step, norm layer and probe ([`ProbeRow`]).
//! - `eval.csv`: one row per evaluation ([`EvalRow`]).
//! - `summary.json`: final state ([`Summary`]), written atomically.

pub mod digest;
pub mod lock;
mod read;
mod write;

pub use lock::RunLock;

pub use read::{
    find_run_dirs, orphan_run_dirs, read_config, read_csv, read_csv_growing, read_summary,
    RunResult,
};
pub use write::{
    check_prefixes, sync_dir, write_atomic, write_atomic_with, FileDigests, FileLengths, RunWriter,
};

use serde::{Deserialize, Deserializer, Serialize};
use std::path::Path;

/// JSON has no NaN or infinity: serde_json writes a non-finite number as `null`, and this reads
/// that `null` back as NaN, so a summary with a non-finite value stays readable.
fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// A number that does not apply to a row (perplexity of an image run, accuracy of a text run) is
/// written as NaN rather than left empty: every column of the CSV files then reads as a float
/// column in pandas and polars (an empty column reads as text there, so text and image files
/// would not concatenate). `null` in JSON, `NaN` or empty in CSV read back as `None`.
fn nan_if_none<S: serde::Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(v.unwrap_or(f64::NAN))
}

fn none_if_nan<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.filter(|x| !x.is_nan()))
}

/// Refuses a results folder whose path leaves no room for the deepest file a run of id `id`
/// writes (a checkpoint's temporary tensor file): checked before training, not at the first
/// checkpoint.
pub fn check_path_room(results: &Path, id: &str) -> anyhow::Result<()> {
    // Linux's PATH_MAX, the terminating zero included
    const PATH_MAX: usize = 4096;
    let deepest = results
        .join(format!("{id}-999"))
        .join("checkpoints")
        .join(".step-000000000.tmp.4294967295")
        .join("optimizer.bpk.tmp.4294967295");
    let len = deepest.as_os_str().len();
    if len >= PATH_MAX {
        anyhow::bail!(
            "the results folder's path is too long: a run's checkpoint files would need paths of {len} bytes, more than the system's {} (use a shorter --results)",
            PATH_MAX - 1
        );
    }
    Ok(())
}

pub const CONFIG_FILE: &str = "config.toml";
pub const STEPS_FILE: &str = "steps.csv";
pub const PROBES_FILE: &str = "probes.csv";
pub const EVAL_FILE: &str = "eval.csv";
pub const SUMMARY_FILE: &str = "summary.json";

/// One training step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepRow {
    pub step: usize,
    /// Training loss (mean cross-entropy over real tokens / images), nats.
    pub loss: f64,
    pub lr: f64,
    /// Global L2 norm of the gradient before clipping.
    pub grad_norm: f64,
    /// Real tokens (text) or images in the batch.
    pub tokens: usize,
    /// Batch shape: sentences x padded length (text), images x 1.
    pub batch: usize,
    pub time: usize,
    /// Share of the batch x time positions that are padding.
    pub padding_fraction: f64,
    /// Wall time of this step (data, forward, backward, optimizer, probes), milliseconds.
    pub step_ms: f64,
    /// Seconds since the run started.
    pub wall_s: f64,
}

/// One probe value: step, norm layer, probe name (see [`crate::probe`]), value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProbeRow {
    pub step: usize,
    pub layer: String,
    pub name: String,
    pub value: f64,
}

/// One evaluation on the validation split.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EvalRow {
    pub step: usize,
    /// Evaluation mode (running statistics): loss (nats) and perplexity (text).
    #[serde(deserialize_with = "nan_if_null")]
    pub eval_loss: f64,
    #[serde(
        serialize_with = "nan_if_none",
        deserialize_with = "none_if_nan",
        default
    )]
    pub eval_ppl: Option<f64>,
    /// Training mode (batch statistics, no dropout, nothing updated) on the same batches.
    #[serde(deserialize_with = "nan_if_null")]
    pub train_mode_loss: f64,
    #[serde(
        serialize_with = "nan_if_none",
        deserialize_with = "none_if_nan",
        default
    )]
    pub train_mode_ppl: Option<f64>,
    /// Images: classification accuracy in each mode.
    #[serde(
        serialize_with = "nan_if_none",
        deserialize_with = "none_if_nan",
        default
    )]
    pub eval_accuracy: Option<f64>,
    #[serde(
        serialize_with = "nan_if_none",
        deserialize_with = "none_if_nan",
        default
    )]
    pub train_mode_accuracy: Option<f64>,
    /// Real tokens (text) or images evaluated.
    pub tokens: usize,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    Running,
    Finished,
    /// A non-finite loss, gradient or statistic, or a loss above the divergence limit
    /// (100 x ln(classes)), stopped the run.
    Diverged,
    /// Stopped by Ctrl-C / SIGTERM; rerunning the study redoes it.
    Interrupted,
    /// An error stopped the run.
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Divergence {
    pub step: usize,
    /// `loss`, `grad_norm` or a probe name.
    pub quantity: String,
    /// Norm layer, when the quantity is a probe.
    pub layer: Option<String>,
    /// The finite value that crossed the divergence bound (a loss); absent when non-finite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

/// Where a training step's time goes (medians, milliseconds).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct PhaseTimes {
    /// Batch to device and forward pass (ndarray computes eagerly, so this is real work).
    #[serde(deserialize_with = "nan_if_null")]
    pub forward: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub backward: f64,
    /// Norms' after-backward work (backward probes, PowerNorm's nu), gradient collection and clipping.
    #[serde(deserialize_with = "nan_if_null")]
    pub norms_and_clip: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub optimizer: f64,
    /// Probe computation and the single device-to-host read of the step's values.
    #[serde(deserialize_with = "nan_if_null")]
    pub probes_and_read: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub run_id: String,
    pub status: RunStatus,
    pub task: String,
    pub norm: String,
    pub seed: u64,
    pub steps_planned: usize,
    pub steps_completed: usize,
    pub final_train_loss: Option<f64>,
    pub final_eval: Option<EvalRow>,
    /// Text: unigram cross-entropy on the validation split (the baseline to beat).
    pub unigram_valid_loss: Option<f64>,
    pub vocab_size: Option<usize>,
    pub truncated_train_sentences: Option<usize>,
    /// Training sentences (text) or images (images): with the batch, how many epochs a run saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_examples: Option<usize>,
    pub num_params: usize,
    /// Median step time over the second half of the run, milliseconds.
    pub median_step_ms: Option<f64>,
    /// Median time of each phase of a step over the second half of the run, milliseconds.
    #[serde(default)]
    pub phase_ms: Option<PhaseTimes>,
    /// Real tokens (text) or images per second over the run's training steps.
    pub tokens_per_s: Option<f64>,
    #[serde(deserialize_with = "nan_if_null")]
    pub wall_s: f64,
    pub backend: String,
    pub adapter: String,
    pub crate_version: String,
    pub git_revision: Option<String>,
    pub divergence: Option<Divergence>,
    pub error: Option<String>,
}

/// Column names, written at creation so that a file without rows (e.g. `probes.csv` of a norm
/// without batch statistics) still has its header.
pub const STEP_COLUMNS: [&str; 10] = [
    "step",
    "loss",
    "lr",
    "grad_norm",
    "tokens",
    "batch",
    "time",
    "padding_fraction",
    "step_ms",
    "wall_s",
];
pub const PROBE_COLUMNS: [&str; 4] = ["step", "layer", "name", "value"];
pub const EVAL_COLUMNS: [&str; 8] = [
    "step",
    "eval_loss",
    "eval_ppl",
    "train_mode_loss",
    "train_mode_ppl",
    "eval_accuracy",
    "train_mode_accuracy",
    "tokens",
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixed headers must name the fields the rows serialize, in order.
    #[test]
    fn headers_match_the_row_types() {
        fn header_of<T: Serialize>(row: &T) -> Vec<String> {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.serialize(row).unwrap();
            let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
            text.lines()
                .next()
                .unwrap()
                .split(',')
                .map(String::from)
                .collect()
        }
        let step = StepRow {
            step: 1,
            loss: 0.0,
            lr: 0.0,
            grad_norm: 0.0,
            tokens: 0,
            batch: 0,
            time: 0,
            padding_fraction: 0.0,
            step_ms: 0.0,
            wall_s: 0.0,
        };
        assert_eq!(header_of(&step), STEP_COLUMNS);
        let probe = ProbeRow {
            step: 1,
            layer: "l".into(),
            name: "n".into(),
            value: 0.0,
        };
        assert_eq!(header_of(&probe), PROBE_COLUMNS);
        let eval = EvalRow {
            step: 1,
            eval_loss: 0.0,
            eval_ppl: None,
            train_mode_loss: 0.0,
            train_mode_ppl: None,
            eval_accuracy: None,
            train_mode_accuracy: None,
            tokens: 0,
        };
        assert_eq!(header_of(&eval), EVAL_COLUMNS);
    }

    /// A summary with non-finite numbers is still valid JSON and reads back (as NaN).
    #[test]
    fn non_finite_numbers_survive_a_summary_round_trip() {
        let eval = EvalRow {
            step: 3,
            eval_loss: f64::NAN,
            eval_ppl: Some(f64::INFINITY),
            train_mode_loss: f64::INFINITY,
            train_mode_ppl: None,
            eval_accuracy: None,
            train_mode_accuracy: None,
            tokens: 1,
        };
        let json = serde_json::to_string(&eval).unwrap();
        assert!(json.contains("\"eval_loss\":null"), "{json}");
        let back: EvalRow = serde_json::from_str(&json).unwrap();
        assert!(back.eval_loss.is_nan() && back.train_mode_loss.is_nan());
        assert_eq!(back.eval_ppl, None);
    }
}
