//! No normalization: the floor of the ablation.

use super::{no_checks, no_note, BatchStats, Norm, NormCtx, NormDef, NormInfo};
use burn::module::Module;
use burn::tensor::Tensor;

#[derive(Module, Debug, Default)]
pub struct Identity {}

impl Identity {
    pub fn new() -> Self {
        Self {}
    }
}

pub const NONE: NormDef<Identity> = NormDef {
    info: NormInfo {
        name: "none",
        help: "Identity: the floor of the ablation",
        statistic: None,
        params_per_feature: 0,
        buffers_per_feature: 0,
        buffers_per_position: false,
        buffers: "none",
        options: &[],
    },
    build: |_, _, _| Identity::new(),
    validate: no_checks,
    note: no_note,
};

impl Norm for Identity {
    fn forward(&self, x: Tensor<3>, _ctx: &NormCtx) -> (Tensor<3>, Option<BatchStats>) {
        (x, None)
    }
}
