//! RMSNorm (Zhang & Sennrich 2019): per token, divide by the root mean square over the
//! features, gain only. Not in the PowerNorm paper; today's LLMs use it.

use super::{no_checks, no_note, BatchStats, Norm, NormCtx, NormDef, NormInfo};
use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};

#[derive(Module, Debug)]
pub struct RmsNorm {
    pub gamma: Param<Tensor<1>>,
    pub eps: f64,
}

impl RmsNorm {
    pub fn new(d: usize, eps: f64, device: &Device) -> Self {
        Self {
            gamma: Param::from_tensor(Tensor::ones([d], device)),
            eps,
        }
    }
}

pub const RMS: NormDef<RmsNorm> = NormDef {
    info: NormInfo {
        name: "rms",
        help: "RMSNorm: per token, divide by the root mean square over features, gain only",
        statistic: None,
        params_per_feature: 1,
        buffers_per_feature: 0,
        buffers_per_position: false,
        buffers: "none",
        options: &[super::EPS],
    },
    build: |c, d, device| RmsNorm::new(d, c.eps(), device),
    validate: no_checks,
    note: no_note,
};

impl Norm for RmsNorm {
    fn forward(&self, x: Tensor<3>, _ctx: &NormCtx) -> (Tensor<3>, Option<BatchStats>) {
        let ms = x.clone().square().mean_dim(2);
        let y = x / ms.add_scalar(self.eps).sqrt() * super::per_feature(self.gamma.val());
        (y, None)
    }
}
