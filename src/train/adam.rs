//! Adam, as burn-optim 0.22's `Adam` (no weight decay, no AMSGrad), with each parameter's update
//! as one operation ([`crate::ops::adam_step`]).
//!
//! Its state is burn-optim's own [`AdamState`], so checkpoints read and write exactly what they
//! did with `AdamConfig::init()`, and the numbers are the same bits (tested against Burn's Adam).

use ablate_kernels::AdamScalars;
use burn::optim::{AdamState, AdaptiveMomentumState, LearningRate, ModuleOptimizer, Optimizer};
use burn::tensor::{Device, Tensor};

/// Adam's hyper-parameters.
#[derive(Clone, Debug)]
pub struct Adam {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
}

impl Adam {
    /// A module optimizer over every parameter.
    pub fn init(self) -> ModuleOptimizer {
        ModuleOptimizer::from(self)
    }

    /// The step's scalars at step `time` (from 1), computed in float32 as Burn computes them.
    fn scalars(&self, time: usize, lr: LearningRate) -> AdamScalars {
        let time_i = time as i32;
        let bias_correction2_sqrt = (1.0 - self.beta_2.powi(time_i)).sqrt();
        AdamScalars {
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            one_minus_beta_1: 1.0 - self.beta_1,
            one_minus_beta_2: 1.0 - self.beta_2,
            combined_factor: bias_correction2_sqrt / (1.0 - self.beta_1.powi(time_i)),
            epsilon: self.epsilon * bias_correction2_sqrt,
            lr: lr as f32,
            first: time == 1,
        }
    }
}

impl Optimizer for Adam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let (time, m, v) = match state {
            Some(s) => (
                s.momentum.time + 1,
                s.momentum.moment_1,
                s.momentum.moment_2,
            ),
            // ignored on the first step (the moments start from the gradient)
            None => (1, grad.zeros_like(), grad.zeros_like()),
        };
        let (tensor, m, v) = crate::ops::adam_step(tensor, grad, m, v, self.scalars(time, lr));
        let state = AdamState::new(AdaptiveMomentumState::new(time, m, v));
        (tensor, Some(state))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.momentum = state.momentum.to_device(device);
        state
    }
}

#[cfg(test)]
mod tests {
    #![allow(deprecated)] // Device::ndarray
    use super::*;
    use burn::optim::{AdamConfig, GradientsParams};
    use burn::tensor::TensorData;

    /// A parameter and a gradient for each of `steps` steps, with zeros, negative zeros, tiny
    /// and large values among them.
    fn data(n: usize, step: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let x = ((i * 7919 + step * 104_729) % 2003) as f32 / 1001.0 - 1.0;
                match i % 11 {
                    0 => 0.0,
                    1 => -0.0,
                    2 => x * 1e-30,
                    3 => x * 1e4,
                    _ => x,
                }
            })
            .collect()
    }

    #[test]
    fn steps_give_the_bits_of_burns_adam_on_every_cpu_backend() {
        #[derive(burn::module::Module, Debug)]
        struct One {
            w: burn::module::Param<Tensor<2>>,
        }
        let (rows, cols) = (37, 1001); // several parallel chunks and a remainder
        for device in [Device::ndarray(), Device::flex()] {
            let device = device.autodiff();
            let init = Tensor::<2>::from_data(
                TensorData::new(data(rows * cols, 0), [rows, cols]),
                &device,
            );
            let mut ours = One {
                w: burn::module::Param::from_tensor(init.clone()),
            };
            let mut burns = One {
                w: burn::module::Param::from_tensor(init),
            };
            let mut ours_optim = Adam {
                beta_1: 0.9,
                beta_2: 0.98,
                epsilon: 1e-8,
            }
            .init();
            let mut burns_optim = AdamConfig::new()
                .with_beta_1(0.9)
                .with_beta_2(0.98)
                .with_epsilon(1e-8)
                .init();
            for step in 1..=4 {
                let weights = Tensor::<2>::from_data(
                    TensorData::new(data(rows * cols, step), [rows, cols]),
                    &device,
                );
                let lr = 1e-3 * step as f64;
                let grads = (ours.w.val() * weights.clone()).sum().backward();
                let grads = GradientsParams::from_grads(grads, &ours);
                ours = ours_optim.step(lr, ours, grads);
                let grads = (burns.w.val() * weights).sum().backward();
                let grads = GradientsParams::from_grads(grads, &burns);
                burns = burns_optim.step(lr, burns, grads);
                let bits = |m: &One| {
                    m.w.val()
                        .into_data()
                        .to_vec::<f32>()
                        .unwrap()
                        .into_iter()
                        .map(f32::to_bits)
                        .collect::<Vec<_>>()
                };
                assert_eq!(bits(&ours), bits(&burns), "{device:?} step {step}");
            }
        }
    }
}
