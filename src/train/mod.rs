//! One run: data, model and the step loop, written to a result folder.
//!
//! Each training step: batch -> forward (norms report their statistics) -> backward ->
//! norms read their gradients (backward probes, PowerNorm's `nu`) -> global gradient clip ->
//! Adam step -> one device read of loss, gradient norm and every probe -> CSV rows. What
//! differs between text and images is a [`Task`](task::Task).

mod adam;
pub mod checkpoint;
mod clip;
mod init;
pub mod schedule;
mod step_values;
mod steps;
pub mod task;
mod timing;

use crate::backend::BackendKind;
use crate::config::{MatmulPrecision, RunConfig, Task as TaskKind};
use crate::data::images::{self, ImageSet};
use crate::data::{TextData, TextOptions, TextSource};
use crate::progress::RunControl;
use crate::results::digest::file_sha256;
use crate::results::{RunStatus, RunWriter, Summary};
use anyhow::Result;
use burn::tensor::Device;
use checkpoint::Checkpoint;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use steps::{train_loop, RunOutput};
use task::{ImageTask, Task, TextTask};

/// The git revision the binary was built from (`-dirty`: with uncommitted changes), recorded
/// by build.rs; None when it was built outside a git checkout.
fn git_revision() -> Option<String> {
    Some(env!("ABLATE_GIT_REVISION").to_string()).filter(|r| !r.is_empty())
}

/// The data of a run, loaded (and checked) before a run folder is created.
pub enum TaskData {
    Text(TextData),
    Images { train: ImageSet, valid: ImageSet },
}

/// Trains one run into `dir` (which must exist and be empty) on data from [`load_data`].
/// Returns its summary; the summary is also written to `dir/summary.json`, whatever the
/// outcome.
pub fn run(
    config: &RunConfig,
    data: &TaskData,
    dir: &Path,
    control: &RunControl,
) -> Result<Summary> {
    run_from(config, data, dir, None, control)
}

/// Continues the run in `dir` from `checkpoint` (checked with
/// [`Checkpoint::check_compatible`]): the CSV files are cut back to the checkpoint's step and
/// training goes on from the next step, with the numbers an uninterrupted run would give.
pub fn resume(
    config: &RunConfig,
    data: &TaskData,
    dir: &Path,
    checkpoint: &Checkpoint,
    control: &RunControl,
) -> Result<Summary> {
    checkpoint.check_compatible(config)?;
    run_from(config, data, dir, Some(checkpoint), control)
}

fn run_from(
    config: &RunConfig,
    data: &TaskData,
    dir: &Path,
    checkpoint: Option<&Checkpoint>,
    control: &RunControl,
) -> Result<Summary> {
    config.validate()?;
    let base_device = crate::backend::device(config.backend, config.device)?;
    let (writer, summary, started) = match checkpoint {
        None => (
            RunWriter::create(dir, config)?,
            fresh_summary(config, &base_device),
            Instant::now(),
        ),
        Some(c) => {
            let mut summary = c.state.summary.clone();
            summary.status = RunStatus::Running;
            summary.git_revision = git_revision();
            let now = Instant::now();
            let started = now
                .checked_sub(Duration::from_secs_f64(c.state.wall_s.max(0.0)))
                .unwrap_or(now);
            (
                RunWriter::resume(dir, config, c.state.files)?,
                summary,
                started,
            )
        }
    };
    let mut out = RunOutput {
        writer,
        summary,
        started,
        data_sha256: data_fingerprint(config)?,
    };
    // a panic (a bug, or a library's refusal) ends this run as failed, with its message in
    // summary.json, instead of taking a study's other runs down with it
    let bf16 = config.matmul_precision() == MatmulPrecision::Bf16;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // on a thread of rayon's pool (this one, in a study): the step's parallel operations
        // then start and finish on a thread that does its share, rather than being handed to
        // the pool by a thread that sleeps until they are done
        rayon::scope(|_| {
            crate::ops::with_bf16_products(bf16, || {
                train(config, data, &base_device, &mut out, checkpoint, control)
            })
        })
    }))
    .unwrap_or_else(|panic| {
        Err(anyhow::anyhow!(
            "internal error: {}",
            panic_message(&*panic)
        ))
    });
    let RunOutput {
        mut writer,
        mut summary,
        ..
    } = out;
    summary.wall_s = started.elapsed().as_secs_f64();
    if let Err(e) = &result {
        summary.status = RunStatus::Failed;
        summary.error = Some(format!("{e:#}"));
    }
    writer.summary(&summary)?;
    result.map(|()| summary)
}

/// The message a panic carried.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn fresh_summary(config: &RunConfig, base_device: &Device) -> Summary {
    Summary {
        run_id: config.id(),
        status: RunStatus::Running,
        task: config.task.name().into(),
        norm: config.norm_label(),
        seed: config.seed,
        steps_planned: config.steps,
        steps_completed: 0,
        final_train_loss: None,
        final_eval: None,
        unigram_valid_loss: None,
        vocab_size: None,
        truncated_train_sentences: None,
        train_examples: None,
        num_params: 0,
        median_step_ms: None,
        phase_ms: None,
        tokens_per_s: None,
        wall_s: 0.0,
        backend: config.backend.name().into(),
        adapter: crate::backend::adapter_name(config.backend, base_device),
        crate_version: env!("CARGO_PKG_VERSION").into(),
        git_revision: git_revision(),
        divergence: None,
        error: None,
    }
}

pub use crate::data::files::resolve_data_path;

/// [`resolve_data_path`], and a missing Fashion-MNIST file (named as the dataset names it)
/// taken from Debian's package or downloaded into the checkout's `data/` (`data::fetch`).
fn obtain_data_path(path: &Path) -> Result<std::path::PathBuf> {
    let found = resolve_data_path(path);
    if found.exists() {
        return Ok(found);
    }
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let dest = if path.is_relative() && shipped.parent().is_some_and(Path::is_dir) {
        shipped
    } else {
        path.to_path_buf()
    };
    Ok(crate::data::fetch::obtain(&dest)?.unwrap_or(found))
}

/// SHA-256 of every data file a run of `config` reads, keyed by the path it is read from: a
/// checkpoint records it, and a resume refuses data that changed since.
pub fn data_fingerprint(config: &RunConfig) -> Result<BTreeMap<String, String>> {
    let paths = match config.task {
        TaskKind::Text => match &config.train_file {
            None => vec![resolve_data_path(&config.corpus)],
            Some(train) => [
                Some(train),
                config.valid_file.as_ref(),
                config.test_file.as_ref(),
            ]
            .into_iter()
            .flatten()
            .map(|p| resolve_data_path(p))
            .collect(),
        },
        TaskKind::Images => {
            let mut p = vec![
                obtain_data_path(&config.images)?,
                obtain_data_path(&config.labels)?,
            ];
            if let (Some(vi), Some(vl)) = (&config.valid_images, &config.valid_labels) {
                if !config.held_out_validation() {
                    p.push(obtain_data_path(vi)?);
                    p.push(obtain_data_path(vl)?);
                }
            }
            p
        }
    };
    paths
        .into_iter()
        .map(|p| Ok((p.display().to_string(), file_sha256(&p)?)))
        .collect()
}

/// Loads and checks a run's data: corpus, vocabulary and splits, or the image set. A BPE
/// tokenizer is trained in memory ([`load_data_in`] caches it).
pub fn load_data(config: &RunConfig) -> Result<TaskData> {
    load_data_in(config, None)
}

/// [`load_data`] for a run of the results folder `results`, where a BPE tokenizer is cached
/// (`results/tokenizers/`) for the other runs on the same training text.
pub fn load_data_in(config: &RunConfig, results: Option<&Path>) -> Result<TaskData> {
    Ok(match config.task {
        TaskKind::Text => {
            let corpus = resolve_data_path(&config.corpus);
            let files = [&config.train_file, &config.valid_file, &config.test_file]
                .map(|f| f.as_deref().map(resolve_data_path));
            let source = match &files {
                [Some(train), Some(valid), test] => TextSource::Files {
                    train,
                    valid,
                    test: test.as_deref(),
                },
                _ => TextSource::Corpus(&corpus),
            };
            let options = TextOptions {
                lowercase: config.lowercase,
                vocab_size: config.vocab_size,
                max_len: config.max_len,
                tokenizer: config.tokenizer(),
                cache: results,
            };
            TaskData::Text(TextData::load(source, &options)?)
        }
        TaskKind::Images => {
            let set = images::load_idx(
                &obtain_data_path(&config.images)?,
                &obtain_data_path(&config.labels)?,
            )?;
            let (train, valid) = match (&config.valid_images, &config.valid_labels) {
                (Some(vi), Some(vl)) if !config.held_out_validation() => {
                    let valid = images::load_idx(&obtain_data_path(vi)?, &obtain_data_path(vl)?)?;
                    if (valid.rows, valid.cols) != (set.rows, set.cols) {
                        anyhow::bail!(
                            "validation images {} are {}x{}, training images {} are {}x{}",
                            vi.display(),
                            valid.rows,
                            valid.cols,
                            config.images.display(),
                            set.rows,
                            set.cols
                        );
                    }
                    (set, valid)
                }
                _ => images::split(&set),
            };
            if train.len() < config.batch_size || valid.is_empty() {
                anyhow::bail!(
                    "{} images for training and {} for validation (from {}): fewer than one training batch of {} and one validation image",
                    train.len(),
                    valid.len(),
                    config.images.display(),
                    config.batch_size
                );
            }
            TaskData::Images { train, valid }
        }
    })
}

/// Weights are drawn on the CPU reference backend with the run's seed, then moved: every
/// backend starts from the same weights (and sees the same batches), so their numbers can be
/// compared. Dropout draws from its own generator keyed by seed and step (`DropoutRng`).
fn train(
    config: &RunConfig,
    data: &TaskData,
    base_device: &Device,
    out: &mut RunOutput,
    checkpoint: Option<&Checkpoint>,
    control: &RunControl,
) -> Result<()> {
    let init_device = crate::backend::device(BackendKind::Ndarray, 0)?.autodiff();
    let device = base_device.clone().autodiff();
    match data {
        TaskData::Text(text) => {
            let mut task = TextTask::new(config, text, &device, base_device);
            start(
                config,
                &mut task,
                &init_device,
                &device,
                out,
                checkpoint,
                control,
            )
        }
        TaskData::Images { train, valid } => {
            let mut task = ImageTask::new(config, train, valid, &device, base_device);
            start(
                config,
                &mut task,
                &init_device,
                &device,
                out,
                checkpoint,
                control,
            )
        }
    }
}

fn start<T: Task>(
    config: &RunConfig,
    task: &mut T,
    init_device: &Device,
    device: &Device,
    out: &mut RunOutput,
    checkpoint: Option<&Checkpoint>,
    control: &RunControl,
) -> Result<()> {
    task.describe(&mut out.summary);
    let mut model = task.model(init_device, device);
    out.summary.num_params = burn::module::Module::num_params(&model);
    if let Some(c) = checkpoint {
        model = c.load_model(model)?;
        // the batch order: replay the iterators to where the checkpoint left them
        task.skip_batches(c.state.step);
    }
    train_loop(config, task, model, out, checkpoint, control)
}
