//! The step loop, shared by every task.

use super::adam::Adam;
use super::checkpoint::{self, Checkpoint};
use super::clip::clip_gradients;
use super::schedule;
use super::step_values::{divergence, eval_divergence, read_step_values, StepValues};
use super::task::{BatchInfo, Forward, Task};
use super::timing::{upper_median, Timings};
use crate::config::RunConfig;
use crate::model::NormedModel;
use crate::norm::{GradStats, Norm, NormCtx};
use crate::progress::{long_run_warning, RunControl, StepReport};
use crate::results::{Divergence, ProbeRow, RunStatus, RunWriter, StepRow, Summary};
use anyhow::{Context, Result};
use burn::optim::GradientsParams;
use std::time::Instant;

/// Steps timed before the remaining time is judged (the first steps are slower: allocation).
const TIMED_BEFORE_WARNING: usize = 5;

pub fn train_loop<T: Task>(
    config: &RunConfig,
    task: &mut T,
    model: T::Model,
    run: &mut RunOutput,
    checkpoint: Option<&Checkpoint>,
    control: &RunControl,
) -> Result<()> {
    let mut timings = Timings::default();
    let result = run_steps(config, task, model, run, checkpoint, control, &mut timings);
    timings.summarize(&mut run.summary);
    result
}

fn run_steps<T: Task>(
    config: &RunConfig,
    task: &mut T,
    mut model: T::Model,
    run: &mut RunOutput,
    checkpoint: Option<&Checkpoint>,
    control: &RunControl,
    timings: &mut Timings,
) -> Result<()> {
    let mut optim = Adam {
        beta_1: config.adam_beta1 as f32,
        beta_2: config.adam_beta2 as f32,
        epsilon: config.adam_eps as f32,
        weight_decay: config.weight_decay.unwrap_or(0.0) as f32,
    }
    .init();
    let first = match checkpoint {
        Some(c) => {
            optim = c.load_optimizer(optim)?;
            c.state.step + 1
        }
        None => 1,
    };
    let mut saved_at = first - 1;
    let layer_names = model.norm_names();
    let loss_limit = task.loss_limit();
    control.progress.set_length(config.steps as u64);
    control.progress.set_position(saved_at as u64);
    for step in first..=config.steps {
        if control.stopped_before(step) {
            if config.checkpoint_every > 0 && step - 1 > saved_at {
                run.save_checkpoint(step - 1, &model, &optim, control)?;
            }
            run.summary.status = RunStatus::Interrupted;
            return Ok(());
        }
        let done;
        (model, done) = train_step(config, task, model, &mut optim, step, &layer_names, timings);
        run.write_step(step, done.lr, &done.values, &done.batch, done.ms)?;
        run.summary.steps_completed = step;
        run.summary.final_train_loss = Some(done.values.loss);
        if let Some(div) = divergence(step, &done.values, loss_limit) {
            let what = match div.value {
                Some(v) => format!("{} {v:.4e} above {loss_limit:.1}", div.quantity),
                None => format!("non-finite {}", div.quantity),
            };
            let layer = div.layer.as_ref().map(|l| format!(" in {l}"));
            run.diverge(control, step, what + &layer.unwrap_or_default(), div);
            return Ok(());
        }
        if timings.step_ms.len() == TIMED_BEFORE_WARNING {
            warn_if_long(config, timings, step, first > 1, control);
        }
        report_progress(config, step, &done, timings, control);
        if (step % config.eval_every == 0 || step == config.steps)
            && evaluate_diverged(task, &model, run, control, step, loss_limit)?
        {
            return Ok(());
        }
        if step % 50 == 0 {
            run.writer
                .flush()
                .context("cannot write the run's CSV files")?;
        }
        if config.checkpoint_every > 0 && step % config.checkpoint_every == 0 && step < config.steps
        {
            run.save_checkpoint(step, &model, &optim, control)?;
            saved_at = step;
        }
    }
    run.summary.status = RunStatus::Finished;
    checkpoint::finish(&run.writer.dir, &model)?;
    Ok(())
}

/// A run that would take longer than a week says so once its first steps are timed.
fn warn_if_long(
    config: &RunConfig,
    timings: &Timings,
    step: usize,
    resumed: bool,
    control: &RunControl,
) {
    let ms = upper_median(timings.step_ms.clone()).unwrap_or(0.0);
    if let Some(w) = long_run_warning(
        ms,
        config.steps - step,
        config.steps,
        resumed,
        config.checkpoint_every > 0,
    ) {
        control.warn(w);
    }
}

/// The progress bar's (or log line's) report of a step.
fn report_progress(
    config: &RunConfig,
    step: usize,
    done: &StepDone,
    timings: &Timings,
    control: &RunControl,
) {
    control.report(&StepReport {
        step,
        steps: config.steps,
        loss: done.values.loss,
        lr: done.lr,
        step_ms: done.ms,
        tokens_per_s: timings.rate(),
        unit: match config.task {
            crate::config::Task::Text => "tokens",
            crate::config::Task::Images => "images",
        },
    });
}

/// What one training step leaves: its values read back, its batch, rate and time.
struct StepDone {
    values: StepValues,
    batch: BatchInfo,
    lr: f64,
    ms: f64,
}

/// Training step `step`: forward, backward, the norms' after-backward work (statistic
/// gradients, PowerNorm's `nu`), clipping and the optimizer's update, timed by phase.
fn train_step<T: Task>(
    config: &RunConfig,
    task: &mut T,
    model: T::Model,
    optim: &mut burn::optim::ModuleOptimizer,
    step: usize,
    layer_names: &[String],
    timings: &mut Timings,
) -> (T::Model, StepDone) {
    let t0 = Instant::now();
    let lr = schedule::learning_rate(
        config.schedule.unwrap_or_default(),
        config.lr,
        config.warmup_steps,
        config.steps,
        step,
    );
    let Forward { loss, stats, batch } = task.forward(&model, step);
    let t_forward = t0.elapsed();
    let grads = loss.backward();
    let t_backward = t0.elapsed();
    let ctx = NormCtx {
        mask: None,
        n_real: batch.positions,
        training: true,
        update_running: true,
        step,
    };
    let grad_stats: Vec<Option<GradStats>> = model
        .norms()
        .iter()
        .zip(&stats)
        .map(|(norm, s)| {
            s.as_ref()
                .and_then(|s| norm.after_backward(&grads, s, &ctx))
        })
        .collect();
    let mut grads = GradientsParams::from_grads(grads, &model);
    let grad_norm = clip_gradients(&model, &mut grads, config.grad_clip);
    let t_norms = t0.elapsed();
    let model = optim.step(lr, model, grads);
    let t_optimizer = t0.elapsed();
    let values = read_step_values(
        loss,
        grad_norm,
        layer_names,
        &stats,
        &grad_stats,
        config.probes,
    );
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    let at = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    timings.push(
        ms,
        [
            at(t_forward),
            at(t_backward - t_forward),
            at(t_norms - t_backward),
            at(t_optimizer - t_norms),
            ms - at(t_optimizer),
        ],
        batch.tokens,
    );
    let done = StepDone {
        values,
        batch,
        lr,
        ms,
    };
    (model, done)
}

/// Evaluates after `step` and writes the row; true when the validation loss diverged (the run
/// then ends as diverged).
fn evaluate_diverged<T: Task>(
    task: &T,
    model: &T::Model,
    run: &mut RunOutput,
    control: &RunControl,
    step: usize,
    loss_limit: f64,
) -> Result<bool> {
    let row = task.evaluate(model, step);
    run.writer.eval(&row)?;
    let diverged = eval_divergence(&row, loss_limit);
    run.summary.final_eval = Some(row);
    let Some(div) = diverged else {
        return Ok(false);
    };
    let what = div.value.map_or("non-finite".to_string(), |v| {
        format!("{v:.4e} above {loss_limit:.1}")
    });
    run.diverge(control, step, format!("validation loss {what}"), div);
    Ok(true)
}

/// A run's result files and its summary as training fills them in.
pub struct RunOutput {
    pub writer: RunWriter,
    pub summary: Summary,
    pub started: Instant,
    /// What checkpoints record of the data ([`super::data_fingerprint`]).
    pub data_sha256: std::collections::BTreeMap<String, String>,
}

impl RunOutput {
    /// Ends the run as diverged at `step`, saying `what` diverged.
    fn diverge(&mut self, control: &RunControl, step: usize, what: String, div: Divergence) {
        control.println(format!(
            "run {} diverged at step {step}: {what}",
            self.summary.run_id
        ));
        self.summary.divergence = Some(div);
        self.summary.status = RunStatus::Diverged;
    }

    /// The state after `step` into the run folder's checkpoints; says so with its size and
    /// the time it took.
    fn save_checkpoint<M: burn::module::Module>(
        &mut self,
        step: usize,
        model: &M,
        optim: &burn::optim::ModuleOptimizer,
        control: &RunControl,
    ) -> Result<()> {
        let dir = self.writer.dir.clone();
        let t0 = Instant::now();
        let wall_s = t0.duration_since(self.started).as_secs_f64();
        let (writer, summary) = (&mut self.writer, &self.summary);
        let bytes = checkpoint::save(
            &dir,
            step,
            model,
            optim,
            writer,
            summary,
            wall_s,
            &self.data_sha256,
        )?;
        control.println(format!(
            "{} checkpoint at step {step}: {:.1} MB in {:.0} ms",
            self.summary.run_id,
            bytes as f64 / 1e6,
            t0.elapsed().as_secs_f64() * 1e3
        ));
        Ok(())
    }

    /// The step's row in `steps.csv` and its probes in `probes.csv`.
    fn write_step(
        &mut self,
        step: usize,
        lr: f64,
        values: &StepValues,
        batch: &BatchInfo,
        step_ms: f64,
    ) -> Result<()> {
        self.writer.step(&StepRow {
            step,
            loss: values.loss,
            lr,
            grad_norm: values.grad_norm,
            tokens: batch.tokens,
            batch: batch.batch,
            time: batch.time,
            padding_fraction: batch.padding_fraction,
            step_ms,
            wall_s: self.started.elapsed().as_secs_f64(),
        })?;
        for (layer, names, vals) in &values.probes {
            for (name, value) in names.iter().zip(vals) {
                self.writer.probe(&ProbeRow {
                    step,
                    layer: layer.clone(),
                    name: name.clone(),
                    value: *value,
                })?;
            }
        }
        Ok(())
    }
}
