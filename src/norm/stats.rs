//! The batch statistics a norm reports, for the probes.

use burn::tensor::Tensor;

/// Which second-order statistic a norm divides by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatKind {
    /// BatchNorm: mean and (biased) variance.
    Variance,
    /// PN-V and PowerNorm: quadratic mean `psi2 = mean(x^2)`, no mean.
    QuadraticMean,
}

/// Statistics used by one norm layer at one call, all detached, shape `[d]`.
#[derive(Debug, Clone)]
pub struct BatchStats {
    pub kind: StatKind,
    /// Batch mean `mu_B` (BatchNorm only).
    pub mean: Option<Tensor<1>>,
    /// Batch variance `sigma2_B` or quadratic mean `psi2_B`.
    pub second: Tensor<1>,
    /// Running mean before this call's update.
    pub running_mean: Option<Tensor<1>>,
    /// Running variance / quadratic mean before this call's update.
    pub running_second: Tensor<1>,
    /// PowerNorm's internal state at this call.
    pub power: Option<PowerStats>,
}

impl BatchStats {
    /// The statistics of a BatchNorm-like layer (detached): batch mean and variance, and the
    /// running values from before this call's update.
    pub fn variance(
        mean: Tensor<1>,
        var: Tensor<1>,
        running_mean: Tensor<1>,
        running_var: Tensor<1>,
    ) -> Self {
        Self {
            kind: StatKind::Variance,
            mean: Some(mean),
            second: var,
            running_mean: Some(running_mean),
            running_second: running_var,
            power: None,
        }
    }
}

impl BatchStats {
    /// The statistics of a layer that divides by a quadratic mean (PN-V, PowerNorm), detached:
    /// the batch's and the running value from before this call's update.
    pub fn quadratic_mean(psi2: Tensor<1>, running: Tensor<1>, power: Option<PowerStats>) -> Self {
        Self {
            kind: StatKind::QuadraticMean,
            mean: None,
            second: psi2,
            running_mean: None,
            running_second: running,
            power,
        }
    }
}

/// `(1 - momentum) running + momentum batch`, detached: a running-statistic update.
pub fn moving_average<const D: usize>(
    running: Tensor<D>,
    batch: Tensor<D>,
    momentum: f64,
) -> Tensor<D> {
    (running.mul_scalar(1.0 - momentum) + batch.mul_scalar(momentum)).detach()
}

/// PowerNorm internals recorded in the forward pass.
#[derive(Debug, Clone)]
pub struct PowerStats {
    /// `Gamma = mean(z^2)` per feature over the positions the backward means use (real
    /// tokens by default, every position with `BackwardMeans::All`).
    pub gamma_stat: Tensor<1>,
    /// Whether this step was in warm-up (normalized by batch statistics).
    pub warmup: bool,
    /// Positions (padding included) the backward means are taken over.
    pub positions: usize,
}

/// What the backward pass tells about the batch statistics of one layer.
#[derive(Debug, Clone)]
pub struct GradStats {
    /// `dL/dmu_B` (BatchNorm).
    pub d_mean: Option<Tensor<1>>,
    /// `dL/dsigma2_B` or `dL/dpsi2_B` (BN, PN-V). PowerNorm's statistic gets no gradient.
    pub d_second: Option<Tensor<1>>,
    /// PowerNorm: `nu` after this step's update, `Gamma`, `Lambda = mean(g z)`.
    pub power: Option<PowerGrad>,
}

#[derive(Debug, Clone)]
pub struct PowerGrad {
    pub nu: Tensor<1>,
    pub gamma_stat: Tensor<1>,
    pub lambda: Tensor<1>,
}

impl StatKind {
    /// How probes and reports name the statistic: `var` or `psi2`.
    pub fn probe_name(&self) -> &'static str {
        match self {
            StatKind::Variance => "var",
            StatKind::QuadraticMean => "psi2",
        }
    }
}
