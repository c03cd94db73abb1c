//! PN-V (Shen et al. 2020, section 3): BatchNorm with the mean removed from the statistic.
//! Divide by the batch quadratic mean `psi2_B = mean(x^2)` over real tokens, ordinary
//! autograd (gradients flow through `psi2_B`), running `psi2` for evaluation.

use super::{
    no_checks, no_note, per_feature, BatchStats, GradStats, Norm, NormCtx, NormDef, NormInfo,
    StatKind,
};
use burn::module::{Module, Param, RunningState};
use burn::tensor::{Device, Gradients, Tensor};

#[derive(Module, Debug)]
pub struct PnVNorm {
    pub gamma: Param<Tensor<1>>,
    pub beta: Param<Tensor<1>>,
    pub running_psi2: RunningState<Tensor<1>>,
    pub eps: f64,
    pub momentum: f64,
}

impl PnVNorm {
    pub fn new(d: usize, eps: f64, momentum: f64, device: &Device) -> Self {
        Self {
            gamma: Param::from_tensor(Tensor::ones([d], device)),
            beta: Param::from_tensor(Tensor::zeros([d], device)),
            running_psi2: RunningState::new(Tensor::ones([d], device)),
            eps,
            momentum,
        }
    }

    /// `gamma * x / sqrt(psi2 + eps) + beta` for any statistic.
    pub fn apply(&self, x: Tensor<3>, psi2: Tensor<1>) -> Tensor<3> {
        let scale = per_feature(self.gamma.val() / psi2.add_scalar(self.eps).sqrt());
        x * scale + per_feature(self.beta.val())
    }
}

pub const PN_V: NormDef<PnVNorm> = NormDef {
    info: NormInfo {
        name: "pn-v",
        help: "PN-V: divide by the batch quadratic mean over real tokens, ordinary autograd",
        statistic: Some(StatKind::QuadraticMean),
        params_per_feature: 2,
        buffers_per_feature: 1,
        buffers_per_position: false,
        buffers: "running quadratic mean",
        options: &[super::EPS, super::batch::MOMENTUM],
    },
    build: |c, d, device| PnVNorm::new(d, c.eps(), c.number(&super::batch::MOMENTUM), device),
    validate: no_checks,
    note: no_note,
};

impl Norm for PnVNorm {
    fn forward(&self, x: Tensor<3>, ctx: &NormCtx) -> (Tensor<3>, Option<BatchStats>) {
        let running = self.running_psi2.value_sync().to_device(&x.device());
        if !ctx.training {
            return (self.apply(x, running), None);
        }
        let psi2 = super::masked_feature_mean(x.clone().square(), ctx);
        let psi2_d = psi2.clone().detach();
        if ctx.update_running {
            let m = self.momentum;
            self.running_psi2.update(
                (running.clone().mul_scalar(1.0 - m) + psi2_d.clone().mul_scalar(m)).detach(),
            );
        }
        let stats = BatchStats::quadratic_mean(psi2_d.inner(), running.inner(), None);
        (self.apply(x, psi2), Some(stats))
    }

    /// `dL/dpsi2 = -sum(g x/sqrt(psi2+eps)) / (2 (psi2 + eps)) = -gamma dgamma / (2 (psi2 + eps))`.
    fn after_backward(
        &self,
        grads: &Gradients,
        stats: &BatchStats,
        _ctx: &NormCtx,
    ) -> Option<GradStats> {
        let d_second = super::batch::second_statistic_gradient(&self.gamma, grads, stats, self.eps)?;
        Some(GradStats {
            d_mean: None,
            d_second: Some(d_second),
            power: None,
        })
    }
}
