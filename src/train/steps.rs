//! The step loop, shared by every task.

use super::adam::Adam;
use super::checkpoint::{self, Checkpoint};
use super::clip::clip_gradients;
use super::schedule;
use super::task::{BatchInfo, Forward, Task};
use super::timing::{upper_median, Timings};
use crate::config::RunConfig;
use crate::model::NormedModel;
use crate::norm::{BatchStats, GradStats, Norm, NormCtx};
use crate::probe;
use crate::progress::{long_run_warning, RunControl, StepReport};
use crate::results::{Divergence, EvalRow, ProbeRow, RunStatus, RunWriter, StepRow, Summary};
use anyhow::{Context, Result};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use std::time::Instant;

/// Steps timed before the remaining time is judged (the first steps are slower: allocation).
const TIMED_BEFORE_WARNING: usize = 5;

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

/// Divergence seen by an evaluation: a validation loss (either mode) that is not finite or is
/// above the limit. A run is `finished` only if its last evaluation passes this.
fn eval_divergence(row: &EvalRow, loss_limit: f64) -> Option<Divergence> {
    let bad = |l: f64| !l.is_finite() || l > loss_limit;
    let (quantity, loss) = if bad(row.eval_loss) {
        ("eval_loss", row.eval_loss)
    } else if bad(row.train_mode_loss) {
        ("train_mode_loss", row.train_mode_loss)
    } else {
        return None;
    };
    Some(Divergence {
        step: row.step,
        quantity: quantity.into(),
        layer: None,
        value: loss.is_finite().then_some(loss),
    })
}

/// Trains `task`'s model for `config.steps` steps (from the step after `checkpoint`, when
/// resuming): forward -> backward -> norms read their gradients -> clip -> Adam -> one read of
/// the step's values -> CSV rows; evaluates every `eval_every` steps and at the end; saves a
/// checkpoint every `checkpoint_every` steps and when stopped. Stops early on divergence or
/// when asked to. The step timings (of this process's steps) reach the summary however the run
/// ends.
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
        run.write_step(step, lr, &values, &batch, ms)?;
        run.summary.steps_completed = step;
        run.summary.final_train_loss = Some(values.loss);
        if let Some(div) = divergence(step, &values, loss_limit) {
            let what = match div.value {
                Some(v) => format!("{} {v:.4e} above {loss_limit:.1}", div.quantity),
                None => format!("non-finite {}", div.quantity),
            };
            control.println(format!(
                "run {} diverged at step {step}: {what}{}",
                run.summary.run_id,
                div.layer
                    .as_ref()
                    .map(|l| format!(" in {l}"))
                    .unwrap_or_default()
            ));
            run.summary.divergence = Some(div);
            run.summary.status = RunStatus::Diverged;
            return Ok(());
        }
        // a run that would take longer than a week says so once its first steps are timed
        if timings.step_ms.len() == TIMED_BEFORE_WARNING {
            let ms = upper_median(timings.step_ms.clone()).unwrap_or(0.0);
            if let Some(w) = long_run_warning(
                ms,
                config.steps - step,
                config.steps,
                first > 1,
                config.checkpoint_every > 0,
            ) {
                control.warn(w);
            }
        }
        control.report(&StepReport {
            step,
            steps: config.steps,
            loss: values.loss,
            lr,
            step_ms: ms,
            tokens_per_s: timings.rate(),
            unit: match config.task {
                crate::config::Task::Text => "tokens",
                crate::config::Task::Images => "images",
            },
        });
        if step % config.eval_every == 0 || step == config.steps {
            let row = task.evaluate(&model, step);
            run.writer.eval(&row)?;
            let diverged = eval_divergence(&row, loss_limit);
            run.summary.final_eval = Some(row);
            if let Some(div) = diverged {
                control.println(format!(
                    "run {} diverged at step {step}: validation loss {}",
                    run.summary.run_id,
                    div.value.map_or("non-finite".to_string(), |v| format!(
                        "{v:.4e} above {loss_limit:.1}"
                    ))
                ));
                run.summary.divergence = Some(div);
                run.summary.status = RunStatus::Diverged;
                return Ok(());
            }
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

/// A run's result files and its summary as training fills them in.
pub struct RunOutput {
    pub writer: RunWriter,
    pub summary: Summary,
    pub started: Instant,
    /// What checkpoints record of the data ([`super::data_fingerprint`]).
    pub data_sha256: std::collections::BTreeMap<String, String>,
}

impl RunOutput {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(eval_loss: f64, train_mode_loss: f64) -> EvalRow {
        EvalRow {
            step: 40,
            eval_loss,
            eval_ppl: None,
            train_mode_loss,
            train_mode_ppl: None,
            eval_accuracy: None,
            train_mode_accuracy: None,
            tokens: 10,
        }
    }

    #[test]
    fn an_evaluation_above_the_limit_or_not_finite_is_divergence() {
        assert!(eval_divergence(&row(5.0, 5.2), 100.0).is_none());
        let d = eval_divergence(&row(705.0, 5.0), 100.0).unwrap();
        assert_eq!(
            (d.step, d.quantity.as_str(), d.value),
            (40, "eval_loss", Some(705.0))
        );
        let d = eval_divergence(&row(5.0, f64::NAN), 100.0).unwrap();
        assert_eq!((d.quantity.as_str(), d.value), ("train_mode_loss", None));
        assert!(eval_divergence(&row(f64::INFINITY, 1.0), 100.0).is_some());
    }
}
