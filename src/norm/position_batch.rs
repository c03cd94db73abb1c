//! BatchNorm per token position: statistics per (time position, feature) over the batch's
//! real tokens at that position, to measure the claim that tokens at the same position of
//! different sentences are unrelated (so pooling them into one statistic is what makes BN noisy,
//! or not).
//!
//! - Training: at position `t` with `n_t >= 2` real tokens, mean and biased variance over those
//!   tokens; the running values of position `t` move by the momentum toward them.
//! - A position with fewer than 2 real tokens (the tail of a batch of short sentences) has no
//!   usable batch variance: it is normalized with its running statistics, which it leaves
//!   unchanged. Padded positions get the statistics of their position and influence none.
//! - Evaluation: the running statistics of each position.
//! - Running statistics are kept for every position up to the maximum length (text only).
//! - Probes: the statistics used at every position of the batch, flattened (`positions x d`
//!   values, so the probes' `1/d` is `1/(positions x d)`: compare it with pooled BN through the
//!   scale-free relative distance). The batch statistics' gradients are not reported.

use super::stats::moving_average;
use super::{
    no_note, per_feature, BatchStats, Norm, NormConfig, NormCtx, NormDef, NormInfo, StatKind,
};
use anyhow::{bail, Result};
use burn::module::{Module, Param, RunningState};
use burn::tensor::{Device, Tensor};

#[derive(Module, Debug)]
pub struct PositionBatchNorm {
    pub gamma: Param<Tensor<1>>,
    pub beta: Param<Tensor<1>>,
    /// `[max_len, d]`: running mean and variance of each position.
    pub running_mean: RunningState<Tensor<2>>,
    pub running_var: RunningState<Tensor<2>>,
    pub eps: f64,
    pub momentum: f64,
}

pub const POSITION_BATCH: NormDef<PositionBatchNorm> = NormDef {
    info: NormInfo {
        name: "position-batch",
        help: "BatchNorm per token position: mean and variance per (position, feature) over the batch's real tokens (text only)",
        statistic: Some(StatKind::Variance),
        params_per_feature: 2,
        buffers_per_feature: 2,
        buffers_per_position: true,
        buffers: "running mean and variance of every position",
        options: &["norm_eps", "norm_momentum"],
    },
    build: |c, d, device| {
        PositionBatchNorm::new(d, c.max_positions.unwrap_or(1), c.eps, c.momentum, device)
    },
    validate,
    note: no_note,
};

fn validate(c: &NormConfig, _d: usize) -> Result<()> {
    if c.max_positions.is_none() {
        bail!("position-batch keeps statistics per token position and needs text: use --task text");
    }
    Ok(())
}

/// A position needs this many real tokens in the batch for batch statistics.
pub const MIN_TOKENS: f64 = 2.0;

impl PositionBatchNorm {
    pub fn new(d: usize, positions: usize, eps: f64, momentum: f64, device: &Device) -> Self {
        Self {
            gamma: Param::from_tensor(Tensor::ones([d], device)),
            beta: Param::from_tensor(Tensor::zeros([d], device)),
            running_mean: RunningState::new(Tensor::zeros([positions, d], device)),
            running_var: RunningState::new(Tensor::ones([positions, d], device)),
            eps,
            momentum,
        }
    }

    /// `gamma * (x - mean) / sqrt(var + eps) + beta` with `[1, time, d]` statistics.
    fn apply(&self, x: Tensor<3>, mean: Tensor<3>, var: Tensor<3>) -> Tensor<3> {
        let scale = per_feature(self.gamma.val()) / var.add_scalar(self.eps).sqrt();
        (x - mean) * scale + per_feature(self.beta.val())
    }
}

impl Norm for PositionBatchNorm {
    fn forward(&self, x: Tensor<3>, ctx: &NormCtx) -> (Tensor<3>, Option<BatchStats>) {
        let [b, t, d] = x.dims();
        let device = x.device();
        let running_mean = self.running_mean.value_sync().to_device(&device);
        let running_var = self.running_var.value_sync().to_device(&device);
        let positions = running_mean.dims()[0];
        assert!(t <= positions, "a batch of {t} positions for statistics of {positions}");
        let rm = running_mean.clone().slice([0..t, 0..d]).reshape([1, t, d]);
        let rv = running_var.clone().slice([0..t, 0..d]).reshape([1, t, d]);
        if !ctx.training {
            return (self.apply(x, rm, rv), None);
        }
        let mask = match ctx.mask {
            Some(m) => m.clone(),
            None => Tensor::ones([b, t, 1], &device),
        };
        let count = mask.clone().sum_dim(0); // [1, t, 1]
        let denom = count.clone().clamp_min(1.0);
        let mean = (x.clone() * mask.clone()).sum_dim(0) / denom.clone();
        let var = ((x.clone() - mean.clone()).square() * mask).sum_dim(0) / denom;
        // 1 where the position has enough real tokens for batch statistics, else 0
        let usable = count.greater_equal_elem(MIN_TOKENS).float();
        let unusable = usable.clone().neg().add_scalar(1.0);
        let mean_used = mean * usable.clone() + rm.clone() * unusable.clone();
        let var_used = var * usable.clone() + rv.clone() * unusable;
        let (mean_d, var_d) = (mean_used.clone().detach(), var_used.clone().detach());
        if ctx.update_running {
            // unusable positions hold their running value (batch value = running value there)
            let m = self.momentum;
            let new_rm = moving_average(rm.clone(), mean_d.clone(), m).reshape([t, d]);
            let new_rv = moving_average(rv.clone(), var_d.clone(), m).reshape([t, d]);
            self.running_mean
                .update(running_mean.clone().slice_assign([0..t, 0..d], new_rm).detach());
            self.running_var
                .update(running_var.clone().slice_assign([0..t, 0..d], new_rv).detach());
        }
        let y = self.apply(x, mean_used, var_used);
        let flat = |v: Tensor<3>| v.reshape([t * d]).inner();
        let stats = BatchStats::variance(flat(mean_d), flat(var_d), flat(rm), flat(rv));
        (y, Some(stats))
    }
}
