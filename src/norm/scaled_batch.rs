//! The PowerNorm authors' BatchNorm baseline (`MaskSyncBatchNorm` in their code, the "BN" of
//! their paper's figures and tables), per feature:
//!
//! - LayerScaling first: each token divided by its RMS over all `d` features,
//!   `x / sqrt(mean_d x^2 + 1e-5)`, no parameters, in training and evaluation alike;
//! - the padded rows filled with the real-token mean, then ordinary batch normalization over
//!   every batch x time position: the batch mean is the real-token mean, the (biased) batch
//!   variance the real-token variance diluted by `N_real / N`;
//! - running statistics with momentum 0.05 (the authors' value, fixed here; `norm_momentum`
//!   does not apply), the running variance taking the unbiased variance (`x N / (N - 1)`) as
//!   PyTorch's batch norm keeps it;
//! - padded positions output `beta` in training (their normalized value is zero); in
//!   evaluation they hold the batch's real-token mean normalized by the running statistics,
//!   as in the code. Either way nothing real depends on them.

use super::batch::{all_position_statistics, normalize, statistic_gradients};
use super::stats::moving_average;
use super::{
    masked_feature_mean, no_checks, no_note, per_feature, BatchStats, GradStats,
    Norm, NormCtx, NormDef, NormInfo, StatKind,
};
use burn::module::{Module, Param, RunningState};
use burn::tensor::{Device, Gradients, Tensor};

/// LayerScaling's epsilon, fixed in the authors' code.
pub const LAYER_SCALING_EPS: f64 = 1e-5;
/// Running-statistics momentum of the authors' `MaskSyncBatchNorm`.
pub const MOMENTUM: f64 = 0.05;

#[derive(Module, Debug)]
pub struct ScaledBatchNorm {
    pub gamma: Param<Tensor<1>>,
    pub beta: Param<Tensor<1>>,
    pub running_mean: RunningState<Tensor<1>>,
    pub running_var: RunningState<Tensor<1>>,
    pub eps: f64,
}

pub const SCALED_BATCH: NormDef<ScaledBatchNorm> = NormDef {
    info: NormInfo {
        name: "scaled-batch",
        help: "The PowerNorm authors' BatchNorm baseline: per-token RMS scaling, pads filled with the real mean, momentum 0.05",
        statistic: Some(StatKind::Variance),
        params_per_feature: 2,
        buffers_per_feature: 2,
        buffers_per_position: false,
        buffers: "running mean and variance",
        options: &[super::EPS],
    },
    build: |c, d, device| ScaledBatchNorm::new(d, c.eps(), device),
    validate: no_checks,
    note: no_note,
};

impl ScaledBatchNorm {
    pub fn new(d: usize, eps: f64, device: &Device) -> Self {
        Self {
            gamma: Param::from_tensor(Tensor::ones([d], device)),
            beta: Param::from_tensor(Tensor::zeros([d], device)),
            running_mean: RunningState::new(Tensor::zeros([d], device)),
            running_var: RunningState::new(Tensor::ones([d], device)),
            eps,
        }
    }

    /// LayerScaling, then the padded rows replaced by the real-token mean of each feature.
    pub fn scaled_and_filled(&self, x: Tensor<3>, ctx: &NormCtx) -> Tensor<3> {
        let ms = x.clone().square().mean_dim(2);
        let x = x / ms.add_scalar(LAYER_SCALING_EPS).sqrt();
        match ctx.mask {
            Some(mask) => {
                let mean = per_feature(masked_feature_mean(x.clone(), ctx));
                x * mask.clone() + mean * mask.clone().neg().add_scalar(1.0)
            }
            None => x,
        }
    }
}

impl Norm for ScaledBatchNorm {
    fn forward(&self, x: Tensor<3>, ctx: &NormCtx) -> (Tensor<3>, Option<BatchStats>) {
        let device = x.device();
        let running_mean = self.running_mean.value_sync().to_device(&device);
        let running_var = self.running_var.value_sync().to_device(&device);
        let filled = self.scaled_and_filled(x, ctx);
        if !ctx.training {
            let y = normalize(filled, running_mean, running_var, &self.gamma, &self.beta, self.eps);
            return (y, None);
        }
        // every position counts: the filled rows sit at the mean, so they dilute the variance
        let [b, t, _] = filled.dims();
        let n = (b * t) as f64;
        let (mean, var) = all_position_statistics(filled.clone());
        let (mean_d, var_d) = (mean.clone().detach(), var.clone().detach());
        if ctx.update_running {
            let unbiased = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
            let var_unbiased = var_d.clone().mul_scalar(unbiased);
            self.running_mean.update(moving_average(running_mean.clone(), mean_d.clone(), MOMENTUM));
            self.running_var.update(moving_average(running_var.clone(), var_unbiased, MOMENTUM));
        }
        let y = normalize(filled, mean, var, &self.gamma, &self.beta, self.eps);
        let stats = BatchStats::variance(
            mean_d.inner(),
            var_d.inner(),
            running_mean.inner(),
            running_var.inner(),
        );
        (y, Some(stats))
    }

    fn after_backward(
        &self,
        grads: &Gradients,
        stats: &BatchStats,
        _ctx: &NormCtx,
    ) -> Option<GradStats> {
        statistic_gradients(&self.gamma, &self.beta, grads, stats, self.eps)
    }
}
