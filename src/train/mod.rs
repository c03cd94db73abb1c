//! One run: the step loop, evaluation and logging.
//!
//! Each training step: batch -> forward (norms report their statistics) -> backward ->
//! norms read their gradients (backward probes, PowerNorm's `nu`) -> global gradient clip ->
//! Adam step -> one device read of loss, gradient norm and every probe -> CSV rows.

pub mod schedule;
pub mod writer;

use crate::config::{RunConfig, Task};
use crate::data::images::{self, ImageSet, IndexBatches};
use crate::data::{BatchPlan, TextBatch, TextData, TrainBatches};
use crate::model::{DropoutRng, NormedModel};
use crate::norm::{BatchStats, GradStats, Norm, NormCtx};
use crate::probe;
use anyhow::{Context, Result};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor};
use indicatif::ProgressBar;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use writer::{Divergence, EvalRow, PhaseTimes, ProbeRow, RunStatus, RunWriter, StepRow, Summary};

/// How a caller watches and controls a run.
#[derive(Clone)]
pub struct RunControl {
    pub progress: ProgressBar,
    /// Set (e.g. by a Ctrl-C handler) to stop the run cleanly after the current step.
    pub stop: Arc<AtomicBool>,
}

impl RunControl {
    pub fn hidden() -> Self {
        Self {
            progress: ProgressBar::hidden(),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Global L2 norm of the gradients of `model`'s parameters, scaled in place so that the
/// norm is at most `clip` (0: no clipping). Returns the norm before clipping, on the device.
fn clip_gradients<M: Module>(
    model: &M,
    grads: &mut GradientsParams,
    clip: f64,
) -> Option<Tensor<1>> {
    struct SumSquares<'a> {
        grads: &'a GradientsParams,
        total: Option<Tensor<1>>,
    }
    impl ModuleVisitor for SumSquares<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                let s = g.square().sum();
                self.total = Some(match self.total.take() {
                    Some(t) => t + s,
                    None => s,
                });
            }
        }
    }
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        factor: Tensor<1>,
    }
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.remove::<D>(param.id) {
                let f = self.factor.clone().reshape([1; D]);
                self.grads.register::<D>(param.id, g * f);
            }
        }
    }
    let mut sum = SumSquares { grads, total: None };
    model.visit(&mut sum);
    let norm = sum.total?.sqrt();
    if clip > 0.0 {
        // min(1, clip / norm), computed on the device: no host round trip in the step
        let factor = norm
            .clone()
            .add_scalar(1e-6)
            .recip()
            .mul_scalar(clip)
            .clamp_max(1.0);
        model.visit(&mut Scale { grads, factor });
    }
    Some(norm)
}

/// Moves a freshly built model to the compute device after drawing every parameter where it
/// was built (parameters are initialized lazily; touching them fixes their values first).
/// Burn's CPU generator is process-wide, and a study trains several runs at once: seeding it and
/// drawing a run's weights must not interleave with another run's draws.
static INIT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The model `make` builds on `init_device` with weights drawn from `seed`, moved to `device`.
fn seeded_init<M: Module>(
    seed: u64,
    init_device: &Device,
    device: &Device,
    make: impl FnOnce(&Device) -> M,
) -> M {
    let _guard = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    init_device.seed(seed);
    fork_initialized(make(init_device), device)
}

fn fork_initialized<M: Module>(model: M, device: &Device) -> M {
    struct Touch;
    impl ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    model.visit(&mut Touch);
    model.fork(device)
}

/// Per-step values read back from the device in one transfer.
struct StepValues {
    loss: f64,
    grad_norm: f64,
    /// (layer, probe names, values)
    probes: Vec<(String, Vec<String>, Vec<f64>)>,
}

fn read_step_values(
    loss: Tensor<1>,
    grad_norm: Option<Tensor<1>>,
    layer_names: &[String],
    stats: &[Option<BatchStats>],
    grads: &[Option<GradStats>],
    probes_on: bool,
) -> StepValues {
    let device = loss.device();
    let grad_norm = grad_norm.unwrap_or_else(|| Tensor::zeros([1], &device));
    let mut parts = vec![
        loss.detach().inner().reshape([1]),
        grad_norm.inner().reshape([1]),
    ];
    let mut layout = Vec::new();
    if probes_on {
        for ((name, s), g) in layer_names.iter().zip(stats).zip(grads) {
            if let Some(s) = s {
                let p = probe::layer_probes(s, g.as_ref());
                layout.push((name.clone(), p.names));
                parts.push(p.values);
            }
        }
    }
    let values: Vec<f64> = Tensor::cat(parts, 0)
        .into_data()
        .convert::<f64>()
        .try_to_vec::<f64>()
        .expect("float probe values");
    let mut at = 2;
    let probes = layout
        .into_iter()
        .map(|(layer, names)| {
            let v = values[at..at + names.len()].to_vec();
            at += names.len();
            (layer, names, v)
        })
        .collect();
    StepValues {
        loss: values[0],
        grad_norm: values[1],
        probes,
    }
}

/// Divergence: a non-finite loss, gradient norm or probe value, or a loss above `loss_limit`
/// (100 x the loss of a uniform guess, ln(classes): far beyond anything a training run
/// passes through, and on some backends an exploding run stays finite for a long time).
fn divergence(step: usize, v: &StepValues, loss_limit: f64) -> Option<Divergence> {
    if !v.loss.is_finite() || v.loss > loss_limit {
        return Some(Divergence {
            step,
            quantity: "loss".into(),
            layer: None,
            value: v.loss.is_finite().then_some(v.loss),
        });
    }
    if !v.grad_norm.is_finite() {
        return Some(Divergence {
            step,
            quantity: "grad_norm".into(),
            layer: None,
            value: None,
        });
    }
    for (layer, names, values) in &v.probes {
        if let Some(i) = values.iter().position(|x| !x.is_finite()) {
            return Some(Divergence {
                step,
                quantity: names[i].clone(),
                layer: Some(layer.clone()),
                value: None,
            });
        }
    }
    None
}

/// The git revision the binary was built from (`-dirty`: with uncommitted changes), recorded
/// by build.rs; None when it was built outside a git checkout.
fn git_revision() -> Option<String> {
    Some(env!("ABLATE_GIT_REVISION").to_string()).filter(|r| !r.is_empty())
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Some(v[v.len() / 2])
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
    config.validate()?;
    let started = Instant::now();
    let mut writer = RunWriter::create(dir, config)?;
    let base_device = crate::backend::device(config.backend, config.device)?;
    let mut summary = Summary {
        run_id: config.id(),
        status: RunStatus::Running,
        task: config.task.name().into(),
        norm: config.norm.name().into(),
        seed: config.seed,
        steps_planned: config.steps,
        steps_completed: 0,
        final_train_loss: None,
        final_eval: None,
        unigram_valid_loss: None,
        vocab_size: None,
        truncated_train_sentences: None,
        num_params: 0,
        median_step_ms: None,
        phase_ms: None,
        tokens_per_s: None,
        wall_s: 0.0,
        backend: config.backend.name().into(),
        adapter: crate::backend::adapter_name(config.backend, &base_device),
        crate_version: env!("CARGO_PKG_VERSION").into(),
        git_revision: git_revision(),
        divergence: None,
        error: None,
    };
    let result = train(
        config,
        data,
        &base_device,
        &mut writer,
        &mut summary,
        control,
        started,
    );
    summary.wall_s = started.elapsed().as_secs_f64();
    if let Err(e) = &result {
        summary.status = RunStatus::Failed;
        summary.error = Some(format!("{e:#}"));
    }
    writer.summary(&summary)?;
    result.map(|()| summary)
}

/// A relative data path that does not exist from the working directory is looked up in the
/// source checkout the binary was built from, so the shipped data is found from anywhere.
pub fn resolve_data_path(path: &Path) -> std::path::PathBuf {
    if path.is_relative() && !path.exists() {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        if shipped.exists() {
            return shipped;
        }
    }
    path.to_path_buf()
}

/// Loads and checks a run's data: corpus, vocabulary and splits, or the image set.
pub fn load_data(config: &RunConfig) -> Result<TaskData> {
    Ok(match config.task {
        Task::Text => TaskData::Text(TextData::load(
            &resolve_data_path(&config.corpus),
            config.lowercase,
            config.vocab_size,
            config.max_len,
        )?),
        Task::Images => {
            let set = images::load_idx(
                &resolve_data_path(&config.images),
                &resolve_data_path(&config.labels),
            )?;
            let (train, valid) = images::split(&set);
            TaskData::Images { train, valid }
        }
    })
}

fn train(
    config: &RunConfig,
    data: &TaskData,
    base_device: &Device,
    writer: &mut RunWriter,
    summary: &mut Summary,
    control: &RunControl,
    started: Instant,
) -> Result<()> {
    // Weights are drawn on the CPU reference backend with the run's seed, then moved: every
    // backend starts from the same weights (and sees the same batches), so their numbers can
    // be compared. Dropout draws from its own generator keyed by seed and step (DropoutRng).
    let init_device = crate::backend::device(crate::config::BackendKind::Ndarray, 0)?.autodiff();
    let device = base_device.clone().autodiff();
    let norm = config.norm_config();
    let plan = BatchPlan {
        sentences: config.batch_size,
        max_tokens: config.max_tokens,
        bucket_pool: config.bucket_pool,
        max_len: config.max_len,
    };
    plan.validate()?;
    match data {
        TaskData::Text(text) => {
            summary.unigram_valid_loss = Some(text.unigram_valid_loss);
            summary.vocab_size = Some(text.vocab.len());
            summary.truncated_train_sentences = Some(text.train.truncated);
            let model = seeded_init(config.seed, &init_device, &device, |d| {
                config.lm_config(text.vocab.len()).init(&norm, d)
            });
            summary.num_params = model.num_params();
            let mut batches = TrainBatches::new(&text.train.examples, plan, config.seed);
            let valid: Vec<TextBatch> = crate::data::batcher::eval_batches(
                &text.valid.examples,
                &plan,
                config.eval_batches,
            );
            let step = |model: &crate::model::LanguageModel, step: usize| {
                let batch = batches.next().expect("training split is not empty");
                let t = batch.to_device(&device);
                let ctx = NormCtx {
                    mask: Some(&t.mask),
                    n_real: t.n_real,
                    training: true,
                    update_running: true,
                    step,
                };
                let dropout = DropoutRng::new(config.seed, step);
                let out = model.forward_loss_dropout(&t, &ctx, Some(&dropout));
                let info = BatchInfo {
                    tokens: t.n_real,
                    batch: batch.batch,
                    time: batch.time,
                    padding_fraction: batch.padding_fraction(),
                    positions: batch.batch * batch.time,
                };
                (out.loss, out.stats, info)
            };
            let eval = |model: &crate::model::LanguageModel, step: usize| {
                evaluate_text(model, &valid, base_device, step)
            };
            let loss_limit = 100.0 * (text.vocab.len() as f64).ln();
            train_loop(
                config, model, step, eval, loss_limit, writer, summary, control, started,
            )
        }
        TaskData::Images { train, valid } => {
            let model = seeded_init(config.seed, &init_device, &device, |d| {
                config.cnn_config().init(&norm, d)
            });
            summary.num_params = model.num_params();
            let mut batches = IndexBatches::new(train.len(), config.batch_size, config.seed);
            let step = |model: &crate::model::ImageModel, step: usize| {
                let idx = batches.next().expect("image training split is not empty");
                let b = images::image_batch(train, &idx, &device);
                let [_, _, h, w] = b.images.dims();
                let positions = b.batch * h * w;
                let ctx = NormCtx {
                    mask: None,
                    n_real: positions,
                    training: true,
                    update_running: true,
                    step,
                };
                let out = model.forward_loss(b.images, b.labels, &ctx);
                let info = BatchInfo {
                    tokens: b.batch,
                    batch: b.batch,
                    time: 1,
                    padding_fraction: 0.0,
                    positions,
                };
                (out.loss, out.stats, info)
            };
            let eval = |model: &crate::model::ImageModel, step: usize| {
                evaluate_images(
                    model,
                    valid,
                    config.batch_size,
                    config.eval_batches,
                    base_device,
                    step,
                )
            };
            let loss_limit = 100.0 * (config.cnn_config().classes as f64).ln();
            train_loop(
                config, model, step, eval, loss_limit, writer, summary, control, started,
            )
        }
    }
}

struct BatchInfo {
    tokens: usize,
    batch: usize,
    time: usize,
    padding_fraction: f64,
    /// Positions the norms saw (batch x time, or batch x height x width).
    positions: usize,
}

#[allow(clippy::too_many_arguments)]
fn train_loop<M, S, E>(
    config: &RunConfig,
    mut model: M,
    mut step_fn: S,
    mut eval_fn: E,
    loss_limit: f64,
    writer: &mut RunWriter,
    summary: &mut Summary,
    control: &RunControl,
    started: Instant,
) -> Result<()>
where
    M: NormedModel,
    S: FnMut(&M, usize) -> (Tensor<1>, Vec<Option<BatchStats>>, BatchInfo),
    E: FnMut(&M, usize) -> EvalRow,
{
    let mut optim = AdamConfig::new()
        .with_beta_1(config.adam_beta1 as f32)
        .with_beta_2(config.adam_beta2 as f32)
        .with_epsilon(config.adam_eps as f32)
        .init();
    let layer_names = model.norm_names();
    let mut step_ms = Vec::with_capacity(config.steps);
    let mut phases: Vec<[f64; 5]> = Vec::with_capacity(config.steps);
    let mut step_tokens: Vec<usize> = Vec::with_capacity(config.steps);
    control.progress.set_length(config.steps as u64);
    for step in 1..=config.steps {
        if control.stop.load(Ordering::SeqCst) {
            summary.status = RunStatus::Interrupted;
            return Ok(());
        }
        let t0 = Instant::now();
        let lr = schedule::inverse_sqrt(config.lr, config.warmup_steps, step);
        let (loss, stats, info) = step_fn(&model, step);
        let t_forward = t0.elapsed();
        let grads = loss.backward();
        let t_backward = t0.elapsed();
        let grad_stats: Vec<Option<GradStats>> = {
            let ctx = NormCtx {
                mask: None,
                n_real: info.positions,
                training: true,
                update_running: true,
                step,
            };
            model
                .norms()
                .iter()
                .zip(&stats)
                .map(|(norm, s)| {
                    s.as_ref()
                        .and_then(|s| norm.after_backward(&grads, s, &ctx))
                })
                .collect()
        };
        let mut grads = GradientsParams::from_grads(grads, &model);
        let grad_norm = clip_gradients(&model, &mut grads, config.grad_clip);
        let t_norms = t0.elapsed();
        model = optim.step(lr, model, grads);
        let t_optimizer = t0.elapsed();
        let values = read_step_values(
            loss,
            grad_norm,
            &layer_names,
            &stats,
            &grad_stats,
            config.probes,
        );
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        let at = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        phases.push([
            at(t_forward),
            at(t_backward - t_forward),
            at(t_norms - t_backward),
            at(t_optimizer - t_norms),
            ms - at(t_optimizer),
        ]);
        step_ms.push(ms);
        step_tokens.push(info.tokens);
        writer.step(&StepRow {
            step,
            loss: values.loss,
            lr,
            grad_norm: values.grad_norm,
            tokens: info.tokens,
            batch: info.batch,
            time: info.time,
            padding_fraction: info.padding_fraction,
            step_ms: ms,
            wall_s: started.elapsed().as_secs_f64(),
        })?;
        for (layer, names, vals) in &values.probes {
            for (name, value) in names.iter().zip(vals) {
                writer.probe(&ProbeRow {
                    step,
                    layer: layer.clone(),
                    name: name.clone(),
                    value: *value,
                })?;
            }
        }
        summary.steps_completed = step;
        summary.final_train_loss = Some(values.loss);
        // timings over the second half: the first steps warm caches (and compile GPU kernels)
        let half = step_ms.len() / 2;
        summary.median_step_ms = median(step_ms[half..].to_vec());
        let late = &phases[half..];
        let phase = |i: usize| median(late.iter().map(|p| p[i]).collect()).unwrap_or(f64::NAN);
        summary.phase_ms = Some(PhaseTimes {
            forward: phase(0),
            backward: phase(1),
            norms_and_clip: phase(2),
            optimizer: phase(3),
            probes_and_read: phase(4),
        });
        let late_s: f64 = step_ms[half..].iter().sum::<f64>() / 1e3;
        let late_tokens: usize = step_tokens[half..].iter().sum();
        summary.tokens_per_s = Some(late_tokens as f64 / late_s.max(1e-9));
        if let Some(div) = divergence(step, &values, loss_limit) {
            let what = match div.value {
                Some(v) => format!("{} {v:.4e} above {loss_limit:.1}", div.quantity),
                None => format!("non-finite {}", div.quantity),
            };
            control.progress.println(format!(
                "run {} diverged at step {step}: {what}{}",
                summary.run_id,
                div.layer
                    .as_ref()
                    .map(|l| format!(" in {l}"))
                    .unwrap_or_default()
            ));
            summary.divergence = Some(div);
            summary.status = RunStatus::Diverged;
            return Ok(());
        }
        control.progress.set_position(step as u64);
        control
            .progress
            .set_message(format!("loss {:.3} | {:.1} steps/s", values.loss, 1e3 / ms));
        if step % config.eval_every == 0 || step == config.steps {
            let row = eval_fn(&model, step);
            writer.eval(&row)?;
            summary.final_eval = Some(row);
        }
        if step % 50 == 0 {
            writer.flush().context("cannot write the run's CSV files")?;
        }
    }
    summary.status = RunStatus::Finished;
    Ok(())
}

/// Loss in evaluation mode (running statistics) and in training mode (batch statistics,
/// nothing updated, no dropout) on the same validation batches.
fn evaluate_text(
    model: &crate::model::LanguageModel,
    batches: &[TextBatch],
    device: &Device,
    step: usize,
) -> EvalRow {
    let model = model.valid();
    let mut sums = [0.0f64; 2];
    let mut tokens = 0usize;
    for batch in batches {
        let t = batch.to_device(device);
        for (i, training) in [false, true].into_iter().enumerate() {
            let ctx = NormCtx {
                mask: Some(&t.mask),
                n_real: t.n_real,
                training,
                update_running: false,
                step,
            };
            let loss: f64 = model.forward_loss(&t, &ctx).loss.into_scalar::<f64>();
            sums[i] += loss * t.n_real as f64;
        }
        tokens += t.n_real;
    }
    let mean = |s: f64| s / tokens.max(1) as f64;
    EvalRow {
        step,
        eval_loss: mean(sums[0]),
        eval_ppl: Some(mean(sums[0]).exp()),
        train_mode_loss: mean(sums[1]),
        train_mode_ppl: Some(mean(sums[1]).exp()),
        eval_accuracy: None,
        train_mode_accuracy: None,
        tokens,
    }
}

fn evaluate_images(
    model: &crate::model::ImageModel,
    valid: &ImageSet,
    batch_size: usize,
    limit: usize,
    device: &Device,
    step: usize,
) -> EvalRow {
    let model = model.valid();
    let idx: Vec<usize> = (0..valid.len()).collect();
    let chunks: Vec<&[usize]> = idx.chunks(batch_size).collect();
    let take = if limit == 0 {
        chunks.len()
    } else {
        limit.min(chunks.len())
    };
    let (mut loss, mut correct, mut n) = ([0.0f64; 2], [0i64; 2], 0usize);
    for chunk in &chunks[..take] {
        let b = images::image_batch(valid, chunk, device);
        let [_, _, h, w] = b.images.dims();
        for (i, training) in [false, true].into_iter().enumerate() {
            let ctx = NormCtx {
                mask: None,
                n_real: b.batch * h * w,
                training,
                update_running: false,
                step,
            };
            let out = model.forward_loss(b.images.clone(), b.labels.clone(), &ctx);
            loss[i] += out.loss.into_scalar::<f64>() * b.batch as f64;
            correct[i] += out.correct.into_scalar::<i64>();
        }
        n += b.batch;
    }
    let n_f = n.max(1) as f64;
    EvalRow {
        step,
        eval_loss: loss[0] / n_f,
        eval_ppl: None,
        train_mode_loss: loss[1] / n_f,
        train_mode_ppl: None,
        eval_accuracy: Some(correct[0] as f64 / n_f),
        train_mode_accuracy: Some(correct[1] as f64 / n_f),
        tokens: n,
    }
}
