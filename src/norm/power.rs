//! PowerNorm (Shen et al., ICML 2020) as the authors' code (`MaskPowerNorm`) runs it.
//!
//! Per feature, with `psi2_B = mean(x^2)` over real tokens:
//! - optional GroupScaling first: each token's features split into `groups` groups, each
//!   divided by `sqrt(mean of its squares + 1e-5)` (no parameters; training and evaluation);
//! - forward: during warm-up (`step <= warmup`) `z = x / sqrt(psi2_B + eps)`; after it
//!   `z = x / sqrt(running + eps)` with the running value from before this step's update;
//!   `y = gamma * z + beta`;
//! - running update: while `step < warmup` a cumulative average
//!   `r = r (step-1)/step + psi2_B/step`; then always `r = a_fwd r + (1-a_fwd) psi2_B`;
//! - backward (custom, [`crate::ops::power_scale`]): `a = g - nu z`, `dx = a / sqrt(psi2_B + eps)`
//!   (the code; `BackwardDivisor::Running` divides by the running value as the paper's
//!   algorithm does), and `nu <- nu + (1-a_bkw) (Lambda - nu Gamma)` with
//!   `Gamma = mean(z^2)`, `Lambda = mean(g z)`. The code keeps `ema_gz` with
//!   `nu = (1-a_bkw) ema_gz`; the numbers are identical. The code averages `Gamma` and
//!   `Lambda` over all positions, padding included (`BackwardMeans::All`); the default here
//!   averages over real tokens (`BackwardMeans::Real`), because under heavy padding the
//!   padded positions push `Gamma` past `2/(1-a_bkw)`, where the factor `1 - (1-a_bkw) Gamma` of
//!   the `nu` recursion falls below -1, and `nu` explodes (the authors' known
//!   failure mode, reproduced by the default configuration).
//! - evaluation: `y = gamma x / sqrt(running + eps) + beta`, nothing updated.

use super::stats::PowerGrad;
use super::{per_feature, BatchStats, GradStats, Norm, NormConfig, NormCtx, NormDef, NormInfo};
use super::{Bound, NormOption, OptionKind, PowerStats, StatKind, Written};
use anyhow::{bail, Result};
use burn::module::{Module, Param, RunningState};
use burn::tensor::{Device, Gradients, Tensor};

/// GroupScaling's own epsilon, fixed in the authors' code.
pub const GROUP_SCALING_EPS: f64 = 1e-5;

/// What the approximate backward pass divides by.
/// (Chosen by the `pn_backward_divisor` option, [`BACKWARD_DIVISOR`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackwardDivisor {
    /// `sqrt(psi2_B + eps)`, the batch statistic (the authors' code).
    Batch,
    /// `sqrt(running + eps)`, the running statistic (the paper's Algorithm 1).
    Running,
}

/// Which positions the backward pass's `Gamma` and `Lambda` (and so `nu`) average over.
/// (Chosen by the `pn_backward_means` option, [`BACKWARD_MEANS`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackwardMeans {
    /// Every batch x time position, padding included (the authors' code). Under heavy padding
    /// `Gamma` can exceed 2/(1-a_bkw) (the `nu` recursion's stability bound) and `nu` explodes.
    All,
    /// Real tokens only, like the forward statistic (assumes padded positions get no gradient,
    /// which holds in every model here). The default: the authors' means diverge on the
    /// default, heavily padded configuration.
    Real,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PowerConfig {
    /// Forward momentum of the running quadratic mean (paper: 0.9).
    pub alpha_fwd: f64,
    /// Backward momentum of `nu` (paper: 0.9).
    pub alpha_bkw: f64,
    /// Steps normalized by batch statistics before switching to running ones.
    pub warmup: usize,
    /// GroupScaling groups (the number of attention heads by default); 0 switches it off.
    pub groups: usize,
    pub backward_divisor: BackwardDivisor,
    pub backward_means: BackwardMeans,
}

pub const ALPHA_FWD: NormOption = NormOption {
    key: "pn_alpha_fwd",
    help: "PowerNorm forward momentum of the running quadratic mean.",
    kind: OptionKind::Number {
        default: 0.9,
        bound: Bound::Within(0.0, 1.0),
    },
    written: Written::Always,
};

pub const ALPHA_BKW: NormOption = NormOption {
    key: "pn_alpha_bkw",
    help: "PowerNorm backward momentum of nu.",
    kind: OptionKind::Number {
        default: 0.9,
        bound: Bound::Within(0.0, 1.0),
    },
    written: Written::Always,
};

pub const WARMUP: NormOption = NormOption {
    key: "pn_warmup",
    help: "PowerNorm warm-up steps (batch statistics before running ones).",
    kind: OptionKind::Count {
        default: None,
        derived: "--warmup-steps",
    },
    written: Written::WhenSet,
};

pub const GROUPS: NormOption = NormOption {
    key: "pn_groups",
    help: "PowerNorm GroupScaling groups, 0 = off.",
    kind: OptionKind::Count {
        default: None,
        derived: "--heads",
    },
    written: Written::WhenSet,
};

pub const BACKWARD_DIVISOR: NormOption = NormOption {
    key: "pn_backward_divisor",
    help: "PowerNorm backward divisor: batch (authors' code) or running (paper's algorithm).",
    kind: OptionKind::Choice {
        default: "batch",
        values: &[
            ("batch", "sqrt(psi2_B + eps), the batch statistic (the authors' code)"),
            ("running", "sqrt(running + eps), the running statistic (the paper's Algorithm 1)"),
        ],
    },
    written: Written::Always,
};

pub const BACKWARD_MEANS: NormOption = NormOption {
    key: "pn_backward_means",
    help: "PowerNorm backward means (Gamma, Lambda, nu) over real tokens, or over all positions as the authors' code does (diverges under heavy padding).",
    kind: OptionKind::Choice {
        default: "real",
        values: &[
            ("all", "every batch x time position, padding included (the authors' code)"),
            ("real", "real tokens only, like the forward statistic"),
        ],
    },
    written: Written::WhenRead,
};

impl PowerConfig {
    /// PowerNorm's settings from its options (warm-up and groups default to the run's
    /// learning-rate warm-up and heads).
    pub fn of(c: &NormConfig) -> PowerConfig {
        PowerConfig {
            alpha_fwd: c.number(&ALPHA_FWD),
            alpha_bkw: c.number(&ALPHA_BKW),
            warmup: c.count(&WARMUP).unwrap_or(c.lr_warmup),
            groups: c.count(&GROUPS).unwrap_or(c.heads),
            backward_divisor: match c.choice(&BACKWARD_DIVISOR) {
                "running" => BackwardDivisor::Running,
                _ => BackwardDivisor::Batch,
            },
            backward_means: match c.choice(&BACKWARD_MEANS) {
                "all" => BackwardMeans::All,
                _ => BackwardMeans::Real,
            },
        }
    }

    pub fn validate(&self, d: usize) -> Result<()> {
        if self.groups > 0 && !d.is_multiple_of(self.groups) {
            bail!(
                "PowerNorm groups ({}) must divide the model width d = {d}",
                self.groups
            );
        }
        Ok(())
    }
}

#[derive(Module, Debug)]
pub struct PowerNorm {
    pub gamma: Param<Tensor<1>>,
    pub beta: Param<Tensor<1>>,
    pub running_psi2: RunningState<Tensor<1>>,
    pub nu: RunningState<Tensor<1>>,
    pub eps: f64,
    #[module(skip)]
    pub config: PowerConfig,
}

impl PowerNorm {
    pub fn new(d: usize, eps: f64, config: PowerConfig, device: &Device) -> Self {
        Self {
            gamma: Param::from_tensor(Tensor::ones([d], device)),
            beta: Param::from_tensor(Tensor::zeros([d], device)),
            running_psi2: RunningState::new(Tensor::ones([d], device)),
            nu: RunningState::new(Tensor::zeros([d], device)),
            eps,
            config,
        }
    }

    /// GroupScaling: divide each group of `d / groups` features of a token by its RMS.
    pub fn group_scale(&self, x: Tensor<3>) -> Tensor<3> {
        let g = self.config.groups;
        if g == 0 {
            return x;
        }
        let [b, t, d] = x.dims();
        let grouped = x.reshape([b, t, g, d / g]);
        let ms = grouped.clone().square().mean_dim(3);
        (grouped / ms.add_scalar(GROUP_SCALING_EPS).sqrt()).reshape([b, t, d])
    }

    fn inv_sqrt(&self, v: Tensor<1>) -> Tensor<3> {
        per_feature(v.add_scalar(self.eps).sqrt().recip())
    }
}

pub const POWER: NormDef<PowerNorm> = NormDef {
    info: NormInfo {
        name: "power",
        help: "PowerNorm (Shen et al. 2020) with its custom backward, after the authors' code (see --pn-backward-means)",
        statistic: Some(StatKind::QuadraticMean),
        params_per_feature: 2,
        buffers_per_feature: 2,
        buffers_per_position: false,
        buffers: "running quadratic mean and nu",
        options: &[
            super::EPS,
            ALPHA_FWD,
            ALPHA_BKW,
            WARMUP,
            GROUPS,
            BACKWARD_DIVISOR,
            BACKWARD_MEANS,
        ],
    },
    build: |c, d, device| PowerNorm::new(d, c.eps(), PowerConfig::of(c), device),
    validate: |c, d| PowerConfig::of(c).validate(d),
    note: |c| (c.choice(&BACKWARD_MEANS) == "all").then_some("means over all positions"),
};

impl Norm for PowerNorm {
    fn forward(&self, x: Tensor<3>, ctx: &NormCtx) -> (Tensor<3>, Option<BatchStats>) {
        let x = self.group_scale(x);
        let running = self.running_psi2.value_sync().to_device(&x.device());
        let gamma = per_feature(self.gamma.val());
        let beta = per_feature(self.beta.val());
        if !ctx.training {
            return (x * self.inv_sqrt(running) * gamma + beta, None);
        }
        // The statistic is a constant of the step: the approximate backward ignores it.
        let psi2 = super::masked_feature_mean(x.clone().detach().square(), ctx).detach();
        let warmup = ctx.step <= self.config.warmup;
        let s_fwd = self.inv_sqrt(if warmup {
            psi2.clone()
        } else {
            running.clone()
        });
        let s_bwd = self.inv_sqrt(match self.config.backward_divisor {
            BackwardDivisor::Batch => psi2.clone(),
            BackwardDivisor::Running => running.clone(),
        });
        let nu = self.nu.value_sync().to_device(&x.device());
        let z = crate::ops::power_scale(x, s_fwd, s_bwd, per_feature(nu));
        let z2 = z.clone().detach().square();
        let (gamma_stat, positions) = match (self.config.backward_means, ctx.mask) {
            (BackwardMeans::Real, Some(_)) => (super::masked_feature_mean(z2, ctx), ctx.n_real),
            _ => {
                let [b, t, _] = z.dims();
                (super::feature_mean(z2), b * t)
            }
        };
        if ctx.update_running {
            let step = ctx.step.max(1) as f64;
            let mut r = running.clone();
            if ctx.step < self.config.warmup {
                r = r.mul_scalar((step - 1.0) / step) + psi2.clone().div_scalar(step);
            }
            let a = self.config.alpha_fwd;
            r = r.mul_scalar(a) + psi2.clone().mul_scalar(1.0 - a);
            self.running_psi2.update(r.detach());
        }
        let power = PowerStats {
            gamma_stat: gamma_stat.inner(),
            warmup,
            positions,
        };
        let stats = BatchStats::quadratic_mean(psi2.inner(), running.inner(), Some(power));
        (z * gamma + beta, Some(stats))
    }

    /// Updates `nu` from this step's backward pass. `Lambda = mean(g z)` with `g = gamma dL/dy`
    /// equals `gamma * dL/dgamma / N` per feature, since `dL/dgamma = sum(dL/dy z)` over the same
    /// `N` positions.
    fn after_backward(
        &self,
        grads: &Gradients,
        stats: &BatchStats,
        ctx: &NormCtx,
    ) -> Option<GradStats> {
        let m = 1.0 - self.config.alpha_bkw;
        update_nu(&self.gamma, &self.nu, m, grads, stats, ctx)
    }
}

/// `nu <- nu + m (Lambda - nu Gamma)` (on real training steps) with `Lambda = mean(g z) =
/// gamma dL/dgamma / N`; returns the backward probes' values.
pub(super) fn update_nu(
    gamma: &Param<Tensor<1>>,
    nu: &RunningState<Tensor<1>>,
    m: f64,
    grads: &Gradients,
    stats: &BatchStats,
    ctx: &NormCtx,
) -> Option<GradStats> {
    let power = stats.power.as_ref()?;
    let gamma = gamma.val();
    let dgamma = gamma.grad(grads)?;
    let lambda = (gamma.inner() * dgamma).div_scalar(power.positions as f64);
    let old = nu.value_sync().inner();
    let nu_new = old.clone() + (lambda.clone() - old * power.gamma_stat.clone()).mul_scalar(m);
    if ctx.update_running {
        nu.update(nu_new.clone());
    }
    Some(GradStats {
        d_mean: None,
        d_second: None,
        power: Some(PowerGrad {
            nu: nu_new,
            gamma_stat: power.gamma_stat.clone(),
            lambda,
        }),
    })
}
