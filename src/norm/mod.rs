//! The normalization family behind one trait.
//!
//! A norm sees activations `[batch, time, d]` and the padding mask, returns the normalized
//! tensor and the batch statistics it used (so probes never reach into the module). Adding a
//! norm is one new file plus one arm in [`NormKind`] / [`NormLayer`].
//!
//! Images use the same layout: a `[batch, channels, h, w]` feature map is viewed as
//! `[batch, h*w, channels]` with no padding.

mod batch;
mod identity;
mod layer;
mod pnv;
mod power;
pub mod power_op;
mod rms;
pub mod stats;

pub use batch::BatchNorm;
pub use identity::Identity;
pub use layer::LayerNorm;
pub use pnv::PnVNorm;
pub use power::{BackwardDivisor, BackwardMeans, PowerConfig, PowerNorm};
pub use rms::RmsNorm;
pub use stats::{BatchStats, GradStats, PowerGrad, PowerStats, StatKind};

use anyhow::{bail, Result};
use burn::module::Module;
use burn::tensor::{Device, Gradients, Tensor};
use serde::{Deserialize, Serialize};

/// What a norm needs to know besides the activations.
#[derive(Debug, Clone, Copy)]
pub struct NormCtx<'a> {
    /// `[batch, time, 1]`: 1.0 at real tokens, 0.0 at padding. `None`: every position is real.
    pub mask: Option<&'a Tensor<3>>,
    /// Number of real positions (batch * time when there is no mask).
    pub n_real: usize,
    /// `true`: batch statistics (training mode). `false`: running statistics (evaluation).
    pub training: bool,
    /// Update running statistics / internal state. Only on real training steps.
    pub update_running: bool,
    /// 1-based training step (PowerNorm's warm-up counter).
    pub step: usize,
}

/// The normalization interface every variant implements.
pub trait Norm {
    /// Normalizes `x` (`[batch, time, d]`); returns the output and, for norms that keep
    /// batch statistics, the statistics used at this call (detached).
    fn forward(&self, x: Tensor<3>, ctx: &NormCtx) -> (Tensor<3>, Option<BatchStats>);

    /// After `loss.backward()` on a training step: gradients of the loss with respect to the
    /// batch statistics (backward probes) and any state update that needs the backward pass
    /// (PowerNorm's `nu`). Norms without batch statistics return `None`.
    fn after_backward(
        &self,
        _grads: &Gradients,
        _stats: &BatchStats,
        _ctx: &NormCtx,
    ) -> Option<GradStats> {
        None
    }
}

/// The norms selectable by name (`--norm`, experiment files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum NormKind {
    /// Identity: the floor of the ablation.
    None,
    /// LayerNorm: per token over features, mean and variance, gain and bias.
    Layer,
    /// RMSNorm: per token, divide by the root mean square over features, gain only.
    Rms,
    /// BatchNorm over all batch x time positions, padding included (off-the-shelf BN).
    Batch,
    /// BatchNorm with statistics over real (non-pad) tokens only.
    MaskedBatch,
    /// PN-V: divide by the batch quadratic mean over real tokens, ordinary autograd.
    PnV,
    /// PowerNorm (Shen et al. 2020) with its custom backward, after the authors' code (see --pn-backward-means).
    Power,
}

impl NormKind {
    pub const ALL: [NormKind; 7] = [
        NormKind::None,
        NormKind::Layer,
        NormKind::Rms,
        NormKind::Batch,
        NormKind::MaskedBatch,
        NormKind::PnV,
        NormKind::Power,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            NormKind::None => "none",
            NormKind::Layer => "layer",
            NormKind::Rms => "rms",
            NormKind::Batch => "batch",
            NormKind::MaskedBatch => "masked-batch",
            NormKind::PnV => "pn-v",
            NormKind::Power => "power",
        }
    }

    /// Whether the norm keeps batch statistics (and so has probes).
    pub fn has_batch_stats(&self) -> bool {
        matches!(
            self,
            NormKind::Batch | NormKind::MaskedBatch | NormKind::PnV | NormKind::Power
        )
    }
}

impl std::fmt::Display for NormKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything needed to build any norm of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct NormConfig {
    pub kind: NormKind,
    /// Added to the variance / mean square inside the square root.
    pub eps: f64,
    /// Running-statistics momentum of BN and PN-V: `running = (1-m) running + m batch`.
    pub momentum: f64,
    pub power: PowerConfig,
}

impl NormConfig {
    pub fn validate(&self, d: usize) -> Result<()> {
        if !(self.eps.is_finite() && self.eps > 0.0) {
            bail!("norm eps must be a positive number (got {})", self.eps);
        }
        if !(self.momentum.is_finite() && (0.0..=1.0).contains(&self.momentum)) {
            bail!(
                "norm momentum must be within [0, 1] (got {})",
                self.momentum
            );
        }
        if self.kind == NormKind::Power {
            self.power.validate(d)?;
        }
        Ok(())
    }

    /// Builds a norm over `d` features.
    pub fn init(&self, d: usize, device: &Device) -> NormLayer {
        match self.kind {
            NormKind::None => NormLayer::None(Identity::new()),
            NormKind::Layer => NormLayer::Layer(LayerNorm::new(d, self.eps, device)),
            NormKind::Rms => NormLayer::Rms(RmsNorm::new(d, self.eps, device)),
            NormKind::Batch => {
                NormLayer::Batch(BatchNorm::new(d, self.eps, self.momentum, false, device))
            }
            NormKind::MaskedBatch => {
                NormLayer::Batch(BatchNorm::new(d, self.eps, self.momentum, true, device))
            }
            NormKind::PnV => NormLayer::PnV(PnVNorm::new(d, self.eps, self.momentum, device)),
            NormKind::Power => {
                NormLayer::Power(PowerNorm::new(d, self.eps, self.power.clone(), device))
            }
        }
    }
}

/// A norm chosen at run time. Models hold this and use it through [`Norm`] only.
#[derive(Module, Debug)]
pub enum NormLayer {
    None(Identity),
    Layer(LayerNorm),
    Rms(RmsNorm),
    Batch(BatchNorm),
    PnV(PnVNorm),
    Power(PowerNorm),
}

impl Norm for NormLayer {
    fn forward(&self, x: Tensor<3>, ctx: &NormCtx) -> (Tensor<3>, Option<BatchStats>) {
        match self {
            NormLayer::None(n) => n.forward(x, ctx),
            NormLayer::Layer(n) => n.forward(x, ctx),
            NormLayer::Rms(n) => n.forward(x, ctx),
            NormLayer::Batch(n) => n.forward(x, ctx),
            NormLayer::PnV(n) => n.forward(x, ctx),
            NormLayer::Power(n) => n.forward(x, ctx),
        }
    }

    fn after_backward(
        &self,
        grads: &Gradients,
        stats: &BatchStats,
        ctx: &NormCtx,
    ) -> Option<GradStats> {
        match self {
            NormLayer::None(n) => n.after_backward(grads, stats, ctx),
            NormLayer::Layer(n) => n.after_backward(grads, stats, ctx),
            NormLayer::Rms(n) => n.after_backward(grads, stats, ctx),
            NormLayer::Batch(n) => n.after_backward(grads, stats, ctx),
            NormLayer::PnV(n) => n.after_backward(grads, stats, ctx),
            NormLayer::Power(n) => n.after_backward(grads, stats, ctx),
        }
    }
}

/// Per-feature mean over the real positions of `x` (`[batch, time, d]` -> `[d]`).
pub(crate) fn masked_feature_mean(x: Tensor<3>, ctx: &NormCtx) -> Tensor<1> {
    let [b, t, d] = x.dims();
    let summed = match ctx.mask {
        Some(mask) => (x * mask.clone()).reshape([b * t, d]).sum_dim(0),
        None => x.reshape([b * t, d]).sum_dim(0),
    };
    summed.reshape([d]).div_scalar(ctx.n_real as f64)
}

/// Per-feature mean over every position, padding included.
pub(crate) fn feature_mean(x: Tensor<3>) -> Tensor<1> {
    let [b, t, d] = x.dims();
    x.reshape([b * t, d]).mean_dim(0).reshape([d])
}

/// `[d]` -> `[1, 1, d]` for broadcasting over `[batch, time, d]`.
pub(crate) fn per_feature(v: Tensor<1>) -> Tensor<3> {
    let [d] = v.dims();
    v.reshape([1, 1, d])
}

#[cfg(test)]
mod tests;
