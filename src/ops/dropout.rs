//! Dropout masks from a counter-based generator, drawn on the host in parallel.
//!
//! Burn's `Dropout` samples its Bernoulli mask element by element from the backend's ChaCha
//! generator on one thread: on the CPU backends that was 15-18 % of a training step (about
//! 4.5 million draws a step for the default model). Here the mask element `i` of the `c`-th
//! dropout of a training step is a pure function of `(run seed, step, c, i)` (a SplitMix64
//! hash), so masks are drawn in parallel, do not depend on the number of threads, are the same
//! on every backend, and a run's masks depend on nothing but its seed and the step.

//!
//! Dropout is a custom autodiff operation: on burn-flex the forward pass multiplies by the mask
//! as it draws it and the backward pass draws it again, so no mask tensor is built or kept; on
//! the other backends the mask is drawn on the host and multiplied in.

use super::host::flex_f32_in_place;
use ablate_kernels::{dropout_mask, mix, GOLDEN};
use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::{tensor::FloatTensor, Autodiff, Backend, Dispatch, Flex, TensorMetadata};
use burn::tensor::{Tensor, TensorData};
use std::cell::Cell;

custom_op! {
pub trait DropoutBackend: Backend {
    /// `x` times the mask `(key, prob)` (see [`ablate_kernels::dropout_mask`]); also the
    /// gradient, which is the incoming gradient times the same mask.
    fn dropout_masked(x: FloatTensor<Self>, key: u64, prob: f64) -> FloatTensor<Self> {
        let shape = x.shape();
        let mask = dropout_mask(key, shape.num_elements(), prob);
        let mask = Self::float_from_data(TensorData::new(mask, shape), &x.device());
        Self::float_mul(x, mask)
    }
}
}

composed_on_other_backends!(DropoutBackend);

impl DropoutBackend for Flex {
    fn dropout_masked(x: FloatTensor<Self>, key: u64, prob: f64) -> FloatTensor<Self> {
        // in x's buffer when nothing else holds x (a block's output, a gradient)
        flex_f32_in_place(x, |x| ablate_kernels::dropout(key, prob, x))
    }
}

impl<B: DropoutBackend, C: CheckpointStrategy> DropoutBackend for Autodiff<B, C> {
    fn dropout_masked(x: FloatTensor<Self>, key: u64, prob: f64) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct DropoutGrad;

        impl<B: DropoutBackend> Backward<B, 1> for DropoutGrad {
            /// (key, prob): the mask is drawn again.
            type State = (u64, f64);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _ck: &mut Checkpointer,
            ) {
                let [node] = ops.parents;
                let g = grads.consume::<B>(&ops.node);
                let (key, prob) = ops.state;
                if let Some(node) = node {
                    grads.register::<B>(node.id, B::dropout_masked(g, key, prob));
                }
            }
        }

        let (x, node) = x.into_parts();
        match DropoutGrad.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((key, prob), B::dropout_masked(x, key, prob)),
            OpsKind::UnTracked(prep) => prep.finish(B::dropout_masked(x, key, prob)),
        }
    }
}

/// The dropout masks of one forward pass (one training step).
#[derive(Debug)]
pub struct DropoutRng {
    key: u64,
    /// How many masks this pass has drawn: the index of the next one.
    draws: Cell<u64>,
}

impl DropoutRng {
    /// The masks of training step `step` of a run seeded with `seed`.
    pub fn new(seed: u64, step: usize) -> Self {
        Self {
            key: mix(mix(seed ^ 0x6a09_e667_f3bc_c908).wrapping_add(step as u64)),
            draws: Cell::new(0),
        }
    }

    /// Zeroes each element of `x` with probability `prob` and scales the rest by
    /// `1 / (1 - prob)`, so the expectation is unchanged. Gradients flow through the kept
    /// elements with the same scale.
    pub fn apply<const D: usize>(&self, x: Tensor<D>, prob: f64) -> Tensor<D> {
        if prob <= 0.0 {
            return x;
        }
        let key = self.next_key();
        Tensor::from_dispatch(<Dispatch as DropoutBackend>::dropout_masked(
            x.into_dispatch(),
            key,
            prob,
        ))
    }

    /// The key of the next mask.
    fn next_key(&self) -> u64 {
        let draw = self.draws.get();
        self.draws.set(draw + 1);
        mix(self.key.wrapping_add(draw.wrapping_mul(GOLDEN)))
    }

    /// The next mask: `0` (dropped) or `1 / (1 - prob)` (kept) for each of `dims`' elements
    /// (what [`Self::apply`] multiplies by).
    pub fn mask(&self, dims: &[usize], prob: f64) -> Vec<f32> {
        dropout_mask(self.next_key(), dims.iter().product(), prob)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_the_expected_share_and_scale() {
        let rng = DropoutRng::new(7, 3);
        for prob in [0.1, 0.5, 0.9] {
            let n = 200_000;
            let m = rng.mask(&[n], prob);
            let kept = m.iter().filter(|&&v| v > 0.0).count() as f64 / n as f64;
            // binomial standard deviation is at most sqrt(0.25 / n) ~ 0.0011: 5 sigma
            assert!(
                (kept - (1.0 - prob)).abs() < 0.0056,
                "prob {prob}: kept {kept}"
            );
            let scale = (1.0 / (1.0 - prob)) as f32;
            assert!(m.iter().all(|&v| v == 0.0 || v == scale));
            let mean = m.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
            assert!((mean - 1.0).abs() < 0.06, "prob {prob}: mean {mean}");
        }
    }

    #[test]
    fn masks_depend_on_seed_step_and_draw_only() {
        let a = DropoutRng::new(1, 5);
        let b = DropoutRng::new(1, 5);
        let (a0, a1) = (a.mask(&[100_000], 0.1), a.mask(&[100_000], 0.1));
        let (b0, b1) = (b.mask(&[100_000], 0.1), b.mask(&[100_000], 0.1));
        assert_eq!(a0, b0);
        assert_eq!(a1, b1);
        let same = |x: &[f32], y: &[f32]| x.iter().zip(y).filter(|(p, q)| p == q).count();
        // two different masks agree where both keep or both drop: 0.9^2 + 0.1^2 = 82 %
        assert!(same(&a0, &a1) < 84_000, "successive draws must differ");
        let other_step = DropoutRng::new(1, 6).mask(&[100_000], 0.1);
        assert!(same(&a0, &other_step) < 84_000, "steps must differ");
        let other_seed = DropoutRng::new(2, 5).mask(&[100_000], 0.1);
        assert!(same(&a0, &other_seed) < 84_000, "seeds must differ");
        // neighbouring elements are independent: P(both dropped) ~ 0.01
        let pairs = a0.windows(2).filter(|w| w[0] == 0.0 && w[1] == 0.0).count();
        assert!((pairs as f64 / 100_000.0 - 0.01).abs() < 0.003, "{pairs}");
    }

    #[test]
    fn apply_and_its_gradient_multiply_by_the_mask_on_every_cpu_backend() {
        #![allow(deprecated)]
        use burn::tensor::Device;
        let n = 50_001;
        let x: Vec<f32> = (0..n).map(|i| (i % 11) as f32 - 5.0).collect();
        let mask = DropoutRng::new(4, 2).mask(&[n], 0.2);
        for device in [Device::ndarray().autodiff(), Device::flex().autodiff()] {
            let t = Tensor::<1>::from_data(TensorData::new(x.clone(), [n]), &device).require_grad();
            let y = DropoutRng::new(4, 2).apply(t.clone(), 0.2);
            let w: Vec<f32> = (0..n).map(|i| 1.0 + (i % 3) as f32).collect();
            let loss = (y.clone()
                * Tensor::<1>::from_data(TensorData::new(w.clone(), [n]), &device))
            .sum();
            let grad = t
                .grad(&loss.backward())
                .unwrap()
                .into_data()
                .to_vec::<f32>()
                .unwrap();
            let y = y.into_data().to_vec::<f32>().unwrap();
            for i in 0..n {
                assert_eq!(y[i], x[i] * mask[i], "{device:?} y[{i}]");
                assert_eq!(grad[i], w[i] * mask[i], "{device:?} grad[{i}]");
            }
        }
    }

    #[test]
    fn masks_do_not_depend_on_the_thread_count() {
        let draw = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| DropoutRng::new(3, 9).mask(&[3, 50_000], 0.3))
        };
        assert_eq!(draw(1), draw(2));
    }
}
