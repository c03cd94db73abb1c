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
    /// Decoupled weight decay (AdamW, as PyTorch's): the parameter is multiplied by
    /// `1 - lr * weight_decay` before Adam's update; 0 leaves the update untouched.
    pub weight_decay: f32,
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
        let tensor = if self.weight_decay > 0.0 {
            tensor.mul_scalar(1.0 - lr as f32 * self.weight_decay)
        } else {
            tensor
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
    fn decoupled_weight_decay_by_hand() {
        // p = 2, g = 0.5, lr 0.1, weight decay 0.01, betas 0.9 / 0.98: the decay makes
        // p = 2 (1 - 0.001) = 1.998; Adam's first step is lr * m_hat / (sqrt(v_hat) + eps) with
        // m_hat = g and v_hat = g^2, so 0.1; p = 1.898. A second step with g = 0: p shrinks by
        // 1 - 0.001 and moves by lr * m_hat / sqrt(v_hat) with m = 0.045, v = 0.0049.
        let device = Device::ndarray();
        let p = Tensor::<1>::from_data(TensorData::new(vec![2.0f32], [1]), &device);
        let g = Tensor::<1>::from_data(TensorData::new(vec![0.5f32], [1]), &device);
        let adam = Adam {
            beta_1: 0.9,
            beta_2: 0.98,
            epsilon: 1e-8,
            weight_decay: 0.01,
        };
        let (p, state) = adam.step(0.1, p, g.clone(), None);
        let got: Vec<f32> = p.clone().into_data().try_to_vec().unwrap();
        assert!((got[0] - 1.898).abs() < 1e-6, "{got:?}");
        let (p, _) = adam.step(0.1, p, g.zeros_like(), state);
        let got: Vec<f32> = p.into_data().try_to_vec().unwrap();
        let (m_hat, v_hat) = (0.045 / (1.0 - 0.81), 0.0049 / (1.0 - 0.98f64 * 0.98));
        let want = 1.898 * 0.999 - 0.1 * m_hat / (v_hat.sqrt() + 1e-8);
        assert!((got[0] as f64 - want).abs() < 1e-5, "{got:?} vs {want}");
        // no decay: the plain Adam step
        let plain = Adam {
            weight_decay: 0.0,
            ..adam
        };
        let p = Tensor::<1>::from_data(TensorData::new(vec![2.0f32], [1]), &device);
        let (p, _) = plain.step(0.1, p, g, None);
        let got: Vec<f32> = p.into_data().try_to_vec().unwrap();
        assert!((got[0] - 1.9).abs() < 1e-6, "{got:?}");
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
                weight_decay: 0.0,
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
