//! Global gradient-norm clipping, computed on the device.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

/// Global L2 norm of the gradients of `model`'s parameters, scaled in place so that the
/// norm is at most `clip` (0: no clipping). Returns the norm before clipping, on the device.
pub fn clip_gradients<M: Module>(
    model: &M,
    grads: &mut GradientsParams,
    clip: f64,
) -> Option<Tensor<1>> {
    struct SumSquares<'a> {
        grads: &'a GradientsParams,
        total: Option<Tensor<1>>,
    }
    impl ModuleVisitor for SumSquares<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                let s = g.square().sum();
                self.total = Some(match self.total.take() {
                    Some(t) => t + s,
                    None => s,
                });
            }
        }
    }
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        factor: Tensor<1>,
    }
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.remove::<D>(param.id) {
                let f = self.factor.clone().reshape([1; D]);
                self.grads.register::<D>(param.id, g * f);
            }
        }
    }
    let mut sum = SumSquares { grads, total: None };
    model.visit(&mut sum);
    let norm = sum.total?.sqrt();
    if clip > 0.0 {
        // min(1, clip / norm), computed on the device: no host round trip in the step
        let factor = norm
            .clone()
            .add_scalar(1e-6)
            .recip()
            .mul_scalar(clip)
            .clamp_max(1.0);
        model.visit(&mut Scale { grads, factor });
    }
    Some(norm)
}
