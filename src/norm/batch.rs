//! BatchNorm on token data: per feature over batch x time positions.
//!
//! `masked = false` takes statistics over every position, padding included: what an
//! off-the-shelf BatchNorm does to padded text. `masked = true` uses real tokens only.
//! Variance is biased (divide by N) for normalization and for the running estimate.

use super::stats::moving_average;
use super::{
    no_checks, no_note, per_feature, BatchStats, Bound, GradStats, Norm, NormCtx, NormDef,
    NormInfo, NormOption, OptionKind, StatKind, Written,
};
use burn::module::{Module, Param, RunningState};
use burn::tensor::{Device, Gradients, Tensor};

#[derive(Module, Debug)]
pub struct BatchNorm {
    pub gamma: Param<Tensor<1>>,
    pub beta: Param<Tensor<1>>,
    pub running_mean: RunningState<Tensor<1>>,
    pub running_var: RunningState<Tensor<1>>,
    pub eps: f64,
    pub momentum: f64,
    pub masked: bool,
}

impl BatchNorm {
    pub fn new(d: usize, eps: f64, momentum: f64, masked: bool, device: &Device) -> Self {
        Self {
            gamma: Param::from_tensor(Tensor::ones([d], device)),
            beta: Param::from_tensor(Tensor::zeros([d], device)),
            running_mean: RunningState::new(Tensor::zeros([d], device)),
            running_var: RunningState::new(Tensor::ones([d], device)),
            eps,
            momentum,
            masked,
        }
    }

    /// `gamma * (x - mean) / sqrt(var + eps) + beta`, for any statistics (also used by tests
    /// to differentiate with respect to injected statistics).
    pub fn apply(&self, x: Tensor<3>, mean: Tensor<1>, var: Tensor<1>) -> Tensor<3> {
        normalize(x, mean, var, &self.gamma, &self.beta, self.eps)
    }

    /// Batch mean and biased variance, over real tokens (masked) or all positions.
    pub fn batch_statistics(&self, x: Tensor<3>, ctx: &NormCtx) -> (Tensor<1>, Tensor<1>) {
        if self.masked {
            let mean = super::masked_feature_mean(x.clone(), ctx);
            let centered = x - per_feature(mean.clone());
            let var = super::masked_feature_mean(centered.square(), ctx);
            (mean, var)
        } else {
            all_position_statistics(x)
        }
    }
}

/// `gamma * (x - mean) / sqrt(var + eps) + beta` with per-feature statistics.
pub(super) fn normalize(
    x: Tensor<3>,
    mean: Tensor<1>,
    var: Tensor<1>,
    gamma: &Param<Tensor<1>>,
    beta: &Param<Tensor<1>>,
    eps: f64,
) -> Tensor<3> {
    let scale = per_feature(gamma.val() / var.add_scalar(eps).sqrt());
    (x - per_feature(mean)) * scale + per_feature(beta.val())
}

/// Per-feature mean and biased variance over every batch x time position.
pub(super) fn all_position_statistics(x: Tensor<3>) -> (Tensor<1>, Tensor<1>) {
    let mean = super::feature_mean(x.clone());
    let var = super::feature_mean((x - per_feature(mean.clone())).square());
    (mean, var)
}

/// The running statistics' momentum, `running = (1-m) running + m batch`: read by every
/// BatchNorm that keeps running statistics, and by PN-V.
pub const MOMENTUM: NormOption = NormOption {
    key: "norm_momentum",
    help: "BatchNorm / PN-V running-statistics momentum.",
    kind: OptionKind::Number {
        default: 0.1,
        bound: Bound::Within(0.0, 1.0),
    },
    written: Written::Always,
};

pub const BATCH: NormDef<BatchNorm> = NormDef {
    info: NormInfo {
        name: "batch",
        help: "BatchNorm over all batch x time positions, padding included (off-the-shelf BN)",
        statistic: Some(StatKind::Variance),
        params_per_feature: 2,
        buffers_per_feature: 2,
        buffers_per_position: false,
        buffers: "running mean and variance",
        options: &[super::EPS, MOMENTUM],
    },
    build: |c, d, device| BatchNorm::new(d, c.eps(), c.number(&MOMENTUM), false, device),
    validate: no_checks,
    note: no_note,
};

pub const MASKED_BATCH: NormDef<BatchNorm> = NormDef {
    info: NormInfo {
        name: "masked-batch",
        help: "BatchNorm with statistics over real (non-pad) tokens only",
        ..BATCH.info
    },
    build: |c, d, device| BatchNorm::new(d, c.eps(), c.number(&MOMENTUM), true, device),
    ..BATCH
};

impl Norm for BatchNorm {
    fn forward(&self, x: Tensor<3>, ctx: &NormCtx) -> (Tensor<3>, Option<BatchStats>) {
        let device = x.device();
        let running_mean = self.running_mean.value_sync().to_device(&device);
        let running_var = self.running_var.value_sync().to_device(&device);
        if !ctx.training {
            return (self.apply(x, running_mean, running_var), None);
        }
        let (mean, var) = self.batch_statistics(x.clone(), ctx);
        let (mean_d, var_d) = (mean.clone().detach(), var.clone().detach());
        if ctx.update_running {
            let m = self.momentum;
            self.running_mean.update(moving_average(running_mean.clone(), mean_d.clone(), m));
            self.running_var.update(moving_average(running_var.clone(), var_d.clone(), m));
        }
        let y = self.apply(x, mean, var);
        let stats = BatchStats::variance(
            mean_d.inner(),
            var_d.inner(),
            running_mean.inner(),
            running_var.inner(),
        );
        (y, Some(stats))
    }

    /// See [`statistic_gradients`].
    fn after_backward(
        &self,
        grads: &Gradients,
        stats: &BatchStats,
        _ctx: &NormCtx,
    ) -> Option<GradStats> {
        statistic_gradients(&self.gamma, &self.beta, grads, stats, self.eps)
    }
}

/// The gradient of the loss with respect to a batch's second statistic s (variance or ψ²) where
/// `y = gamma x / sqrt(s + eps) (+ beta)`: `dL/ds = -gamma dgamma / (2 (s + eps))`.
pub(super) fn second_statistic_gradient(
    gamma: &Param<Tensor<1>>,
    grads: &Gradients,
    stats: &BatchStats,
    eps: f64,
) -> Option<Tensor<1>> {
    let gamma = gamma.val();
    let dgamma = gamma.grad(grads)?;
    Some(
        (gamma.inner() * dgamma)
            .div(stats.second.clone().add_scalar(eps))
            .mul_scalar(-0.5),
    )
}

/// The gradients of the loss with respect to a batch-normalizing layer's mean and variance,
/// from its parameters' gradients. With `g = gamma * dL/dy`, `xhat = (x - mu)/sqrt(var + eps)` at
/// every position: `dL/dvar = -sum(g xhat) / (2 (var + eps)) = -gamma dgamma / (2 (var + eps))`
/// and `dL/dmu = -sum(g) / sqrt(var + eps) = -gamma dbeta / sqrt(var + eps)` (the variance's
/// own dependence on mu has zero derivative).
pub(super) fn statistic_gradients(
    gamma: &Param<Tensor<1>>,
    beta: &Param<Tensor<1>>,
    grads: &Gradients,
    stats: &BatchStats,
    eps: f64,
) -> Option<GradStats> {
    let d_second = second_statistic_gradient(gamma, grads, stats, eps)?;
    let dbeta = beta.val().grad(grads)?;
    let var_eps = stats.second.clone().add_scalar(eps);
    let d_mean = (gamma.val().inner() * dbeta).div(var_eps.sqrt()).neg();
    Some(GradStats {
        d_mean: Some(d_mean),
        d_second: Some(d_second),
        power: None,
    })
}
