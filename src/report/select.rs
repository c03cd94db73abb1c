//! Which runs count in a report's numbers, one rule for every section: a run counts when it
//! finished (a diverged, interrupted, failed or running run has no final result to average),
//! and of its values only the finite ones. Tables say how many runs did not count.

use super::{median, RunResult};
use crate::results::{EvalRow, RunStatus};

/// The finished runs among `runs`.
pub fn finished<'a>(runs: &[&'a RunResult]) -> Vec<&'a RunResult> {
    runs.iter()
        .copied()
        .filter(|r| r.status() == RunStatus::Finished)
        .collect()
}

/// `value` of each finished run's final evaluation, where finite.
pub fn final_values(runs: &[&RunResult], value: impl Fn(&EvalRow) -> Option<f64>) -> Vec<f64> {
    finished(runs)
        .into_iter()
        .filter_map(|r| value(r.summary.as_ref()?.final_eval.as_ref()?))
        .filter(|x| x.is_finite())
        .collect()
}

/// Final validation losses in evaluation mode (running statistics).
pub fn final_losses(runs: &[&RunResult]) -> Vec<f64> {
    final_values(runs, |e| Some(e.eval_loss))
}

/// Final validation losses in training mode (each batch's own statistics).
pub fn final_train_mode_losses(runs: &[&RunResult]) -> Vec<f64> {
    final_values(runs, |e| Some(e.train_mode_loss))
}

/// Final perplexity (text) or accuracy in percent (images).
pub fn final_ppl_or_accuracy(runs: &[&RunResult]) -> Vec<f64> {
    final_values(runs, |e| e.eval_ppl.or(e.eval_accuracy.map(|a| a * 100.0)))
}

/// Median of a probe over the last 20 % of training, pooled over a group's seeds.
pub fn late_median(runs: &[&RunResult], first_layer_only: bool, name: &str) -> f64 {
    let vals: Vec<f64> = runs
        .iter()
        .flat_map(|r| {
            let layer = if first_layer_only {
                r.first_layer().map(String::from)
            } else {
                None
            };
            r.probe_window(layer.as_deref(), name, 0.8, 1.0)
        })
        .collect();
    median(&vals)
}
