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
//!
//! `random-group-batch` is its control: the same statistics, but over groups of real tokens
//! drawn at random with the sizes the batch's positions have (each sentence's position labels
//! shuffled among its real tokens, a new draw every step: a group holds one token per sentence,
//! as a position does). If per-position statistics do worse than pooled ones
//! only because their groups are small, the control does as badly; if position itself is what
//! hurts, the control does better. Its group `g` keeps running statistics in slot `g`; evaluation
//! reads slot `t` at position `t` as `position-batch` does (every slot averages random groups).
//!
//! `position-batch-pooled-first` is the second control: `position-batch` except at position 0,
//! which holds the same `<bos>` in every sentence (a group with no variance between sentences):
//! there the statistics are pooled over all the batch's real tokens, as `masked-batch` takes
//! them (running values in slot 0). If position 0's degenerate group is what makes per-position
//! statistics worse, this control does as well as pooled BN.

use super::stats::moving_average;
use super::{
    no_note, per_feature, BatchStats, Norm, NormConfig, NormCtx, NormDef, NormInfo, StatKind,
};
use anyhow::{bail, Result};
use burn::module::{Module, Param, RunningState};
use burn::tensor::{Device, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::SeedableRng;

#[derive(Module, Debug)]
pub struct PositionBatchNorm {
    pub gamma: Param<Tensor<1>>,
    pub beta: Param<Tensor<1>>,
    /// `[max_len, d]`: running mean and variance of each position.
    pub running_mean: RunningState<Tensor<2>>,
    pub running_var: RunningState<Tensor<2>>,
    pub eps: f64,
    pub momentum: f64,
    /// `random-group-batch`: groups of random real tokens instead of positions.
    pub shuffle: bool,
    /// `position-batch-pooled-first`: position 0 uses statistics pooled over all real tokens.
    pub pool_first: bool,
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
        options: &[super::EPS, super::batch::MOMENTUM],
    },
    build: |c, d, device| {
        PositionBatchNorm::new(d, c.max_positions.unwrap_or(1), c.eps(), c.number(&super::batch::MOMENTUM), device)
    },
    validate,
    note: no_note,
};

pub const RANDOM_GROUP_BATCH: NormDef<PositionBatchNorm> = NormDef {
    info: NormInfo {
        name: "random-group-batch",
        help: "position-batch's control: mean and variance per feature over random groups of real tokens with the sizes of the batch's positions (text only)",
        ..POSITION_BATCH.info
    },
    build: |c, d, device| PositionBatchNorm {
        shuffle: true,
        ..(POSITION_BATCH.build)(c, d, device)
    },
    validate,
    note: no_note,
};

pub const POSITION_BATCH_POOLED_FIRST: NormDef<PositionBatchNorm> = NormDef {
    info: NormInfo {
        name: "position-batch-pooled-first",
        help: "position-batch's second control: per-position statistics except at position 0 (the <bos> of every sentence), which uses statistics pooled over all real tokens (text only)",
        ..POSITION_BATCH.info
    },
    build: |c, d, device| PositionBatchNorm {
        pool_first: true,
        ..(POSITION_BATCH.build)(c, d, device)
    },
    validate,
    note: no_note,
};

/// The group of every `(batch, time)` position (row-major) for `random-group-batch`: within
/// each sentence, the position labels of its real tokens shuffled among them (a generator
/// seeded with `seed`); a padded position keeps its own label. Group `g` then holds one token of
/// every sentence with a token at position `g`, as position `g` does, so the groups have the
/// positions' sizes, never two tokens of one sentence, and no token shares a statistic with
/// another token of its own sentence (which a causal model must not see).
pub fn random_groups(real: &[bool], time: usize, seed: u64) -> Vec<usize> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut groups: Vec<usize> = (0..real.len()).map(|i| i % time).collect();
    for row in groups.chunks_mut(time).zip(real.chunks(time)) {
        let (labels, real) = row;
        let mut own: Vec<usize> = (0..time).filter(|&t| real[t]).collect();
        let slots = own.clone();
        own.shuffle(&mut rng);
        for (slot, label) in slots.into_iter().zip(own) {
            labels[slot] = label;
        }
    }
    groups
}

/// The generator seed of a step's groups: the same draw for every layer of the step and for
/// its training-mode evaluation, a new one each step; a resumed run draws the same groups.
pub(crate) fn group_seed(step: usize) -> u64 {
    0x6a09_e667_f3bc_c908 ^ step as u64
}

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
            shuffle: false,
            pool_first: false,
        }
    }

    /// Training statistics over random groups (`random-group-batch`): per-group mean and
    /// variance `[t, d]`, each token's group statistics `[b, t, d]`, the running slots used.
    #[allow(clippy::type_complexity)]
    fn group_forward(
        &self,
        x: Tensor<3>,
        mask: Tensor<3>,
        ctx: &NormCtx,
        rm: Tensor<2>,
        rv: Tensor<2>,
    ) -> (Tensor<3>, Tensor<2>, Tensor<2>) {
        let [b, t, d] = x.dims();
        let device = x.device();
        let n = b * t;
        let real: Vec<bool> = mask
            .clone()
            .reshape([n])
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("a float mask")
            .into_iter()
            .map(|m| m > 0.5)
            .collect();
        let groups = random_groups(&real, t, group_seed(ctx.step));
        let mut onehot = vec![0f32; n * t];
        for (i, g) in groups.iter().enumerate() {
            onehot[i * t + g] = 1.0;
        }
        // every position's group (padded ones: their own position's); real tokens only count
        let assign: Tensor<2> = Tensor::from_data(TensorData::new(onehot, [n, t]), &device);
        let counted = assign.clone() * mask.reshape([n, 1]);
        let xf = x.clone().reshape([n, d]);
        let count = counted.clone().sum_dim(0).reshape([t, 1]);
        let denom = count.clone().clamp_min(1.0);
        let mean = counted.clone().transpose().matmul(xf.clone()) / denom.clone();
        let centered = xf - assign.clone().matmul(mean.clone());
        let var = counted.transpose().matmul(centered.square()) / denom;
        let usable = count.greater_equal_elem(MIN_TOKENS).float();
        let unusable = usable.clone().neg().add_scalar(1.0);
        let mean_used = mean * usable.clone() + rm * unusable.clone();
        let var_used = var * usable + rv * unusable;
        let per_token = |s: Tensor<2>| assign.clone().matmul(s).reshape([b, t, d]);
        let y = self.apply(x, per_token(mean_used.clone()), per_token(var_used.clone()));
        (y, mean_used, var_used)
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
        if self.shuffle {
            let (rm2, rv2) = (rm.clone().reshape([t, d]), rv.clone().reshape([t, d]));
            let (y, mean_used, var_used) = self.group_forward(x, mask, ctx, rm2, rv2);
            let (mean_d, var_d) = (
                mean_used.detach().reshape([1, t, d]),
                var_used.detach().reshape([1, t, d]),
            );
            return (y, Some(self.update_and_stats(rm, rv, mean_d, var_d, running_mean, running_var, ctx)));
        }
        let count = mask.clone().sum_dim(0); // [1, t, 1]
        let denom = count.clone().clamp_min(1.0);
        let mean = (x.clone() * mask.clone()).sum_dim(0) / denom.clone();
        let var = ((x.clone() - mean.clone()).square() * mask.clone()).sum_dim(0) / denom;
        // 1 where the position has enough real tokens for batch statistics, else 0
        let usable = count.greater_equal_elem(MIN_TOKENS).float();
        let unusable = usable.clone().neg().add_scalar(1.0);
        let mut mean_used = mean * usable.clone() + rm.clone() * unusable.clone();
        let mut var_used = var * usable.clone() + rv.clone() * unusable;
        if self.pool_first {
            // position 0 takes masked-batch's statistics: over every real token of the batch
            let total = mask.clone().sum_dim(0).sum_dim(1).clamp_min(1.0); // [1, 1, 1]
            let pooled_mean = (x.clone() * mask.clone()).sum_dim(0).sum_dim(1) / total.clone();
            let pooled_var =
                ((x.clone() - pooled_mean.clone()).square() * mask).sum_dim(0).sum_dim(1) / total;
            let mut first = vec![0f32; t];
            first[0] = 1.0;
            let first: Tensor<3> = Tensor::from_data(TensorData::new(first, [1, t, 1]), &device);
            let rest = first.clone().neg().add_scalar(1.0);
            mean_used = mean_used * rest.clone() + pooled_mean * first.clone();
            var_used = var_used * rest + pooled_var * first;
        }
        let (mean_d, var_d) = (mean_used.clone().detach(), var_used.clone().detach());
        let y = self.apply(x, mean_used, var_used);
        let stats = self.update_and_stats(rm, rv, mean_d, var_d, running_mean, running_var, ctx);
        (y, Some(stats))
    }
}

impl PositionBatchNorm {
    /// Moves the running statistics of the slots used toward this step's (on real training
    /// steps) and returns the probes' view: every slot's statistics, flattened.
    #[allow(clippy::too_many_arguments)]
    fn update_and_stats(
        &self,
        rm: Tensor<3>,
        rv: Tensor<3>,
        mean_d: Tensor<3>,
        var_d: Tensor<3>,
        running_mean: Tensor<2>,
        running_var: Tensor<2>,
        ctx: &NormCtx,
    ) -> BatchStats {
        let [_, t, d] = rm.dims();
        if ctx.update_running {
            // unusable positions hold their running value (batch value = running value there)
            let m = self.momentum;
            let new_rm = moving_average(rm.clone(), mean_d.clone(), m).reshape([t, d]);
            let new_rv = moving_average(rv.clone(), var_d.clone(), m).reshape([t, d]);
            self.running_mean
                .update(running_mean.slice_assign([0..t, 0..d], new_rm).detach());
            self.running_var
                .update(running_var.slice_assign([0..t, 0..d], new_rv).detach());
        }
        let flat = |v: Tensor<3>| v.reshape([t * d]).inner();
        BatchStats::variance(flat(mean_d), flat(var_d), flat(rm), flat(rv))
    }
}
