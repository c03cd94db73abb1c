//! Norms declared in TOML (`[norms.NAME]` in a study file, or `--norm-file F --norm NAME`),
//! composed from the parts the built-in norms are made of: a pre-scaling, the axes of the
//! statistic and the positions it counts, centring, the scale statistic, which statistic the
//! forward pass uses, how the running one follows, the backward pass, the affine parameters and
//! epsilon ([`decl`] parses and checks a declaration; `docs/composed-norms.md` gives each part's
//! formula). Built from tensor operations (so every backend runs it), with PowerNorm's
//! approximate backward through the same custom op as `power` ([`crate::ops::power_scale`]).
//!
//! Each part computes what the built-in norm that has it computes, with the same operations:
//! statistics in [`stats`], normalization in the order of the norm family (`layer`/`rms` for
//! per-token statistics, `batch` for batch statistics, `power` for the approximate backward).

pub mod decl;
mod stats;

pub use decl::NormDecl;

use self::decl::{Affine, Axes, Backward, Bias, Forward, Means, Positions, PreScale, Running, Scale};
use self::stats::{batch_statistics, fill_padding, Batch, Fallback};
use super::stats::moving_average;
use super::{per_feature, BatchStats, GradStats, Norm, NormConfig, NormCtx, NormDef, NormInfo};
use super::{PowerStats, StatKind};
use anyhow::{bail, Result};
use burn::module::{Module, Param, RunningState};
use burn::tensor::{Device, Gradients, Tensor};

/// The pre-scalings' epsilon: LayerScaling's and GroupScaling's, fixed in the authors' code.
pub const PRE_SCALE_EPS: f64 = 1e-5;

#[derive(Module, Debug)]
pub struct ComposedNorm {
    pub gamma: Option<Param<Tensor<1>>>,
    pub beta: Option<Param<Tensor<1>>>,
    /// `[slots, d]`: one slot, or one per position (`axes = "position"`).
    pub running_mean: Option<RunningState<Tensor<2>>>,
    pub running_second: Option<RunningState<Tensor<2>>>,
    /// The approximate backward's `nu`.
    pub nu: Option<RunningState<Tensor<1>>>,
    #[module(skip)]
    pub decl: NormDecl,
}

pub const COMPOSED: NormDef<ComposedNorm> = NormDef {
    info: NormInfo {
        name: "composed",
        help: "A norm declared in TOML from parts: --norm-file F --norm NAME, or [norms.NAME] in a study file",
        statistic: None,
        params_per_feature: 0,
        buffers_per_feature: 0,
        buffers_per_position: false,
        buffers: "none",
        options: &[],
    },
    build: |c, d, device| {
        let decl = c.decl.clone().expect("a declared norm is validated with its declaration");
        ComposedNorm::new(decl, d, c.max_positions.unwrap_or(1), device)
    },
    validate,
    note: |_| None,
};

fn validate(c: &NormConfig, d: usize) -> Result<()> {
    match &c.decl {
        None => bail!("norm composed is declared in TOML: give --norm-file F --norm NAME, or a [norms.NAME] table in a study file"),
        Some(decl) => decl.check_model(d, c.max_positions),
    }
}

/// The facts of a declared norm (its [`NormInfo`]), from its declaration.
pub fn info(decl: &NormDecl) -> NormInfo {
    let batch = decl.keeps_running();
    let mean = batch && decl.has_mean();
    let second = batch && decl.scale != Scale::None;
    let nu = decl.backward == Backward::Approximate;
    NormInfo {
        statistic: match decl.scale {
            _ if !second => None,
            Scale::Variance => Some(StatKind::Variance),
            _ => Some(StatKind::QuadraticMean),
        },
        params_per_feature: match decl.affine {
            Affine::GainBias => 2,
            Affine::Gain => 1,
            Affine::None => 0,
        },
        buffers_per_feature: mean as u64 + second as u64 + nu as u64,
        buffers_per_position: decl.axes == Axes::Position,
        buffers: match (mean, second, nu) {
            (false, false, _) => "none",
            (true, false, _) => "running mean",
            (false, true, true) => "running quadratic mean and nu",
            (false, true, false) => "running scale statistic",
            (true, true, _) => "running mean and scale statistic",
        },
        ..COMPOSED.info
    }
}

impl ComposedNorm {
    pub fn new(decl: NormDecl, d: usize, positions: usize, device: &Device) -> Self {
        let slots = if decl.axes == Axes::Position { positions } else { 1 };
        let facts = info(&decl);
        let running = |keep: bool, init: Tensor<2>| keep.then(|| RunningState::new(init));
        let keeps_mean = decl.keeps_running() && decl.has_mean();
        Self {
            gamma: (facts.params_per_feature >= 1).then(|| Param::from_tensor(Tensor::ones([d], device))),
            beta: (facts.params_per_feature == 2).then(|| Param::from_tensor(Tensor::zeros([d], device))),
            running_mean: running(keeps_mean, Tensor::zeros([slots, d], device)),
            running_second: running(facts.statistic.is_some(), Tensor::ones([slots, d], device)),
            nu: (decl.backward == Backward::Approximate)
                .then(|| RunningState::new(Tensor::zeros([d], device))),
            decl,
        }
    }

    /// The pre-scaling: each token (or group of its features) divided by its RMS.
    fn pre_scale(&self, x: Tensor<3>) -> Tensor<3> {
        match self.decl.pre_scale {
            PreScale::None => x,
            PreScale::TokenRms => {
                let ms = x.clone().square().mean_dim(2);
                x / ms.add_scalar(PRE_SCALE_EPS).sqrt()
            }
            PreScale::GroupRms => {
                let g = self.decl.groups.unwrap_or(1);
                let [b, t, d] = x.dims();
                let grouped = x.reshape([b, t, g, d / g]);
                let ms = grouped.clone().square().mean_dim(3);
                (grouped / ms.add_scalar(PRE_SCALE_EPS).sqrt()).reshape([b, t, d])
            }
        }
    }

    /// Whether this training step normalizes by the batch statistic (else the running one).
    fn uses_batch(&self, step: usize) -> bool {
        match self.decl.forward {
            Some(Forward::Running) => false,
            Some(Forward::WarmupThenRunning) => step <= self.decl.warmup.unwrap_or(0),
            _ => true,
        }
    }

    fn gamma(&self) -> Option<Tensor<3>> {
        self.gamma.as_ref().map(|g| per_feature(g.val()))
    }

    fn beta(&self) -> Option<Tensor<3>> {
        self.beta.as_ref().map(|b| per_feature(b.val()))
    }

    /// Per-token statistics over the features (`layer`'s and `rms`'s operations).
    fn per_token(&self, x: Tensor<3>) -> Tensor<3> {
        let eps = self.decl.eps;
        let z = match (self.decl.centre, self.decl.scale) {
            (centre, Scale::Variance) => {
                let (var, mean) = x.clone().var_mean_bias(2);
                let x = if centre { x - mean } else { x };
                x / var.add_scalar(eps).sqrt()
            }
            (centre, Scale::QuadraticMean) => {
                let ms = x.clone().square().mean_dim(2);
                let x = if centre { x.clone() - x.mean_dim(2) } else { x };
                x / ms.add_scalar(eps).sqrt()
            }
            (_, Scale::None) => x.clone() - x.mean_dim(2),
        };
        let z = match self.gamma() {
            Some(g) => z * g,
            None => z,
        };
        match self.beta() {
            Some(b) => z + b,
            None => z,
        }
    }

    /// `gamma (x - mean) / sqrt(second + eps) + beta` in `batch`'s order: the gain divided by
    /// the root first, then one product per position.
    fn apply(&self, x: Tensor<3>, mean: Option<Tensor<3>>, second: Option<Tensor<3>>) -> Tensor<3> {
        let x = match mean {
            Some(m) if self.decl.centre => x - m,
            _ => x,
        };
        let root = second.map(|s| s.add_scalar(self.decl.eps).sqrt());
        let y = match (self.gamma(), root) {
            (Some(g), Some(r)) => x * (g / r),
            (Some(g), None) => x * g,
            (None, Some(r)) => x / r,
            (None, None) => x,
        };
        match self.beta() {
            Some(b) => y + b,
            None => y,
        }
    }

    /// The running values of the slots this batch uses (`[1, slots, d]`), with the full
    /// `[slots, d]` buffers they came from.
    #[allow(clippy::type_complexity)]
    fn running(&self, t: usize, device: &Device) -> [Option<(Tensor<2>, Tensor<3>)>; 2] {
        let view = |state: &Option<RunningState<Tensor<2>>>| {
            state.as_ref().map(|s| {
                let full = s.value_sync().to_device(device);
                let [slots, d] = full.dims();
                let used = if self.decl.axes == Axes::Position {
                    assert!(t <= slots, "a batch of {t} positions for statistics of {slots}");
                    full.clone().slice([0..t, 0..d]).reshape([1, t, d])
                } else {
                    full.clone().reshape([1, 1, d])
                };
                (full, used)
            })
        };
        [view(&self.running_mean), view(&self.running_second)]
    }

    /// Moves one running statistic toward this batch's (detached) value.
    fn update(&self, state: &RunningState<Tensor<2>>, full: Tensor<2>, used: Tensor<3>, batch: Tensor<3>, step: usize) {
        let mut r = used;
        if self.decl.running == Some(Running::CumulativeThenEma) && step < self.decl.warmup.unwrap_or(0) {
            let s = step.max(1) as f64;
            r = r.mul_scalar((s - 1.0) / s) + batch.clone().div_scalar(s);
        }
        let r = moving_average(r, batch, self.decl.momentum.unwrap_or(decl::MOMENTUM));
        let [_, t, d] = r.dims();
        if self.decl.axes == Axes::Position {
            state.update(full.slice_assign([0..t, 0..d], r.reshape([t, d])).detach());
        } else {
            state.update(r.reshape([1, d]));
        }
    }
}

impl Norm for ComposedNorm {
    fn forward(&self, x: Tensor<3>, ctx: &NormCtx) -> (Tensor<3>, Option<BatchStats>) {
        let x = self.pre_scale(x);
        let x = match self.decl.positions {
            Some(Positions::Filled) => fill_padding(x, ctx),
            _ => x,
        };
        match self.decl.axes {
            Axes::Token => (self.per_token(x), None),
            _ if self.decl.backward == Backward::Approximate => self.approximate(x, ctx),
            _ => self.batch_forward(x, ctx),
        }
    }

    fn after_backward(&self, grads: &Gradients, stats: &BatchStats, ctx: &NormCtx) -> Option<GradStats> {
        if self.decl.backward == Backward::Approximate {
            return self.update_nu(grads, stats, ctx);
        }
        // the gradients of a statistic shared per feature and used in this step's forward pass
        if self.decl.axes != Axes::Batch || !self.uses_batch(ctx.step) {
            return None;
        }
        let gamma = self.gamma.as_ref()?;
        match &self.beta {
            Some(beta) if stats.mean.is_some() && self.decl.centre => {
                super::batch::statistic_gradients(gamma, beta, grads, stats, self.decl.eps)
            }
            _ => {
                let d_second = super::batch::second_statistic_gradient(gamma, grads, stats, self.decl.eps)?;
                Some(GradStats { d_mean: None, d_second: Some(d_second), power: None })
            }
        }
    }
}

impl ComposedNorm {
    /// Batch statistics through ordinary autodiff: `batch`, `masked-batch`, `scaled-batch`,
    /// `position-batch` and `pn-v` compute theirs so.
    fn batch_forward(&self, x: Tensor<3>, ctx: &NormCtx) -> (Tensor<3>, Option<BatchStats>) {
        let [_, t, _] = x.dims();
        let [rm, rs] = self.running(t, &x.device());
        let used = |r: &Option<(Tensor<2>, Tensor<3>)>| r.as_ref().map(|(_, u)| u.clone());
        if !ctx.training {
            return (self.apply(x, used(&rm), used(&rs)), None);
        }
        let fallback = Fallback { mean: used(&rm), second: used(&rs) };
        let Batch { mean, second, count } = batch_statistics(&self.decl, x.clone(), ctx, fallback);
        let detached = |v: &Option<Tensor<3>>| v.as_ref().map(|v| v.clone().detach());
        let (mean_d, second_d) = (detached(&mean), detached(&second));
        if ctx.update_running {
            if let (Some(state), Some((full, u)), Some(b)) = (&self.running_mean, rm.clone(), mean_d.clone()) {
                self.update(state, full, u, b, ctx.step);
            }
            if let (Some(state), Some((full, u)), Some(b)) = (&self.running_second, rs.clone(), second_d.clone()) {
                let b = match self.decl.running_variance {
                    Some(Bias::Unbiased) if count > 1.0 => b.mul_scalar(count / (count - 1.0)),
                    _ => b,
                };
                self.update(state, full, u, b, ctx.step);
            }
        }
        let y = if self.uses_batch(ctx.step) {
            self.apply(x, mean, second)
        } else {
            self.apply(x, used(&rm), used(&rs))
        };
        let flat = |v: Tensor<3>| {
            let n = v.dims().iter().product::<usize>();
            v.reshape([n]).inner()
        };
        let stats = match (second_d, used(&rs)) {
            (Some(s), Some(r)) => Some(BatchStats {
                kind: info(&self.decl).statistic.unwrap_or(StatKind::Variance),
                mean: mean_d.filter(|_| rm.is_some()).map(flat),
                second: flat(s),
                running_mean: used(&rm).map(flat),
                running_second: flat(r),
                power: None,
            }),
            _ => None,
        };
        (y, stats)
    }

    /// PowerNorm's approximate backward on a quadratic mean over the batch, in `power`'s
    /// operations: `z = x / sqrt(psi2 + eps)` through [`crate::ops::power_scale`].
    fn approximate(&self, x: Tensor<3>, ctx: &NormCtx) -> (Tensor<3>, Option<BatchStats>) {
        let device = x.device();
        let [_, rs] = self.running(1, &device);
        let (full, running) = rs.expect("the approximate backward keeps a quadratic mean");
        let running = running.reshape([full.dims()[1]]);
        let eps = self.decl.eps;
        let inv_sqrt = |v: Tensor<1>| per_feature(v.add_scalar(eps).sqrt().recip());
        let affine = |z: Tensor<3>| {
            let z = z * self.gamma().expect("the approximate backward has a gain");
            match self.beta() {
                Some(b) => z + b,
                None => z,
            }
        };
        if !ctx.training {
            return (affine(x * inv_sqrt(running)), None);
        }
        let real = self.decl.positions == Some(Positions::Real);
        let mean = |v: Tensor<3>| if real { super::masked_feature_mean(v, ctx) } else { super::feature_mean(v) };
        let psi2 = mean(x.clone().detach().square()).detach();
        let batch = self.uses_batch(ctx.step);
        let s_fwd = inv_sqrt(if batch { psi2.clone() } else { running.clone() });
        let nu = self.nu.as_ref().expect("the approximate backward keeps nu").value_sync().to_device(&device);
        let z = crate::ops::power_scale(x, s_fwd, inv_sqrt(psi2.clone()), per_feature(nu));
        let z2 = z.clone().detach().square();
        let (gamma_stat, positions) = match (self.decl.backward_means, ctx.mask) {
            (Some(Means::Real), Some(_)) => (super::masked_feature_mean(z2, ctx), ctx.n_real),
            _ => {
                let [b, t, _] = z.dims();
                (super::feature_mean(z2), b * t)
            }
        };
        if ctx.update_running {
            let state = self.running_second.as_ref().expect("a running quadratic mean");
            let used = running.clone().reshape([1, 1, full.dims()[1]]);
            self.update(state, full, used, per_feature(psi2.clone()), ctx.step);
        }
        let power = PowerStats {
            gamma_stat: gamma_stat.inner(),
            warmup: batch,
            positions,
        };
        let stats = BatchStats::quadratic_mean(psi2.inner(), running.inner(), Some(power));
        (affine(z), Some(stats))
    }

    /// `nu`'s update, as `power` makes it.
    fn update_nu(&self, grads: &Gradients, stats: &BatchStats, ctx: &NormCtx) -> Option<GradStats> {
        let m = self.decl.nu_momentum.unwrap_or(decl::NU_MOMENTUM);
        super::power::update_nu(self.gamma.as_ref()?, self.nu.as_ref()?, m, grads, stats, ctx)
    }
}
