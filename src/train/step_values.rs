//! What a training step reads back from the device (loss, gradient norm, probes), and the
//! rules that call a step or an evaluation diverged.

use crate::norm::{BatchStats, GradStats};
use crate::probe;
use crate::results::{Divergence, EvalRow};
use burn::tensor::Tensor;

/// Per-step values read back from the device in one transfer.
pub(super) struct StepValues {
    pub loss: f64,
    pub grad_norm: f64,
    /// (layer, probe names, values)
    pub probes: Vec<(String, Vec<String>, Vec<f64>)>,
}

pub(super) fn read_step_values(
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
pub(super) fn divergence(step: usize, v: &StepValues, loss_limit: f64) -> Option<Divergence> {
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
pub(super) fn eval_divergence(row: &EvalRow, loss_limit: f64) -> Option<Divergence> {
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
