//! Dropout masks from a counter-based generator, drawn on the host in parallel.
//!
//! Burn's `Dropout` samples its Bernoulli mask element by element from the backend's ChaCha
//! generator on one thread: on the CPU backends that was 15-18 % of a training step (about
//! 4.5 million draws a step for the default model). Here the mask element `i` of the `c`-th
//! dropout of a training step is a pure function of `(run seed, step, c, i)` (a SplitMix64
//! hash), so masks are drawn in parallel, do not depend on the number of threads, are the same
//! on every backend, and a run's masks depend on nothing but its seed and the step.

use ablate_kernels::{dropout_mask, mix, GOLDEN};
use burn::tensor::{Tensor, TensorData};
use std::cell::Cell;

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
        let mask = self.mask(&x.dims(), prob);
        let mask = Tensor::<D>::from_data(TensorData::new(mask, x.dims()), &x.device());
        x * mask
    }

    /// The next mask: `0` (dropped) or `1 / (1 - prob)` (kept) for each of `dims`' elements.
    pub fn mask(&self, dims: &[usize], prob: f64) -> Vec<f32> {
        let draw = self.draws.get();
        self.draws.set(draw + 1);
        let key = mix(self.key.wrapping_add(draw.wrapping_mul(GOLDEN)));
        dropout_mask(key, dims.iter().product(), prob)
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
