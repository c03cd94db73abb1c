//! LayerNorm: per token, mean and variance over the features, gain and bias.

use super::{no_checks, no_note, BatchStats, Norm, NormCtx, NormDef, NormInfo};
use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};

#[derive(Module, Debug)]
pub struct LayerNorm {
    pub gamma: Param<Tensor<1>>,
    pub beta: Param<Tensor<1>>,
    pub eps: f64,
}

impl LayerNorm {
    pub fn new(d: usize, eps: f64, device: &Device) -> Self {
        Self {
            gamma: Param::from_tensor(Tensor::ones([d], device)),
            beta: Param::from_tensor(Tensor::zeros([d], device)),
            eps,
        }
    }
}

pub const LAYER: NormDef<LayerNorm> = NormDef {
    info: NormInfo {
        name: "layer",
        help: "LayerNorm: per token over features, mean and variance, gain and bias",
        statistic: None,
        params_per_feature: 2,
        buffers_per_feature: 0,
        buffers_per_position: false,
        buffers: "none",
        options: &[super::EPS],
    },
    build: |c, d, device| LayerNorm::new(d, c.eps(), device),
    validate: no_checks,
    note: no_note,
};

impl Norm for LayerNorm {
    fn forward(&self, x: Tensor<3>, _ctx: &NormCtx) -> (Tensor<3>, Option<BatchStats>) {
        let (var, mean) = x.clone().var_mean_bias(2);
        let z = (x - mean) / var.add_scalar(self.eps).sqrt();
        let y = z * super::per_feature(self.gamma.val()) + super::per_feature(self.beta.val());
        (y, None)
    }
}
