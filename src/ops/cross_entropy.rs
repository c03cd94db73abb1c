//! Mean cross-entropy of logits against target classes, as one fused autodiff operation.
//!
//! Composed from tensor operations, `log_softmax` + `gather` + `mean` walk the `[n, vocab]`
//! logits about ten times forward and backward (max, subtract, exp, sum, log, gather, a zero
//! tensor and a scatter for the gather's gradient, exp again for the softmax, ...), each pass on
//! one thread on the CPU backends; for the default model that was about a tenth of a training
//! step. Here the forward keeps each row's log-sum-exp, and the backward is the closed form
//! `d loss / d logits = (softmax(logits) - onehot(target)) * g / n`. On burn-flex both are one
//! pass per row, over rows in parallel; on the other backends they are the same formulas in
//! tensor operations.

use super::host::{flex_f32, flex_f32_in_place};
use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::flex::FlexTensor;
use burn::backend::{
    tensor::{FloatTensor, IntTensor},
    Autodiff, AutodiffBackend, Backend, Dispatch, Flex, TensorMetadata,
};
use burn::tensor::{FloatDType, IndexingUpdateOp, Int, Shape, Tensor, TensorData};

custom_op! {
pub trait CrossEntropyBackend: Backend {
    /// `logits` `[n, v]`, `targets` `[n]` -> (mean of `lse - logits[target]` `[1]`, `lse` `[n]`).
    fn cross_entropy(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let [n, _] = dims2(&logits.shape());
        let m = Self::float_max_dim(logits.clone(), 1);
        let shifted = Self::float_sub(logits.clone(), m.clone());
        let sum = Self::float_sum_dim(Self::float_exp(shifted), 1);
        let lse = Self::float_add(Self::float_log(sum), m);
        let targets = Self::int_reshape(targets, Shape::new([n, 1]));
        let picked = Self::float_gather(1, logits, targets);
        let loss = Self::float_mean(Self::float_sub(lse.clone(), picked));
        (
            Self::float_reshape(loss, Shape::new([1])),
            Self::float_reshape(lse, Shape::new([n])),
        )
    }

    /// Gradient of the mean cross-entropy with respect to `logits`, scaled by `grad` `[1]`.
    fn cross_entropy_backward(
        logits: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        targets: IntTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let [n, _] = dims2(&logits.shape());
        let device = logits.device();
        let lse = Self::float_reshape(lse, Shape::new([n, 1]));
        let softmax = Self::float_exp(Self::float_sub(logits.clone(), lse));
        let targets = Self::int_reshape(targets, Shape::new([n, 1]));
        let ones = Self::float_from_data(TensorData::new(vec![1.0f32; n], [n, 1]), &device);
        let onehot = Self::float_scatter(
            1,
            Self::float_zeros(softmax.shape(), &device, FloatDType::F32),
            targets,
            ones,
            IndexingUpdateOp::Add,
        );
        let scale = Self::float_div_scalar(
            Self::float_reshape(grad, Shape::new([1, 1])),
            (n as f32).into(),
        );
        Self::float_mul(Self::float_sub(softmax, onehot), scale)
    }
}
}

fn dims2(shape: &Shape) -> [usize; 2] {
    [shape[0], shape[1]]
}

// burn-ndarray: the composed operations. Its matrix product returns the logits in a strided
// layout that is slow to read element by element on the host (measured: slower than the
// composed operations), while its elementwise kernels handle any layout.
composed_on_other_backends!(CrossEntropyBackend);

impl CrossEntropyBackend for Flex {
    fn cross_entropy(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let [n, v] = dims2(&logits.shape());
        let targets = flex_indices(targets);
        let (lse, losses) = ablate_kernels::cross_entropy_rows(&flex_f32(&logits), v, &targets);
        let mean = losses.iter().map(|&l| l as f64).sum::<f64>() / n.max(1) as f64;
        (
            FlexTensor::from_data(TensorData::new(vec![mean as f32], [1])),
            FlexTensor::from_data(TensorData::new(lse, [n])),
        )
    }

    fn cross_entropy_backward(
        logits: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        targets: IntTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let [n, v] = dims2(&logits.shape());
        let targets = flex_indices(targets);
        let scale = flex_f32(&grad)[0] / n as f32;
        // the logits are not needed after this: their buffer becomes the gradient
        flex_f32_in_place(logits, |x| {
            ablate_kernels::cross_entropy_backward(x, v, &flex_f32(&lse), &targets, scale)
        })
    }
}

/// Class indices of an integer burn-flex tensor.
fn flex_indices(t: FlexTensor) -> Vec<usize> {
    t.into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .expect("converted to i64")
        .into_iter()
        .map(|t| t as usize)
        .collect()
}

impl<B: CrossEntropyBackend, C: CheckpointStrategy> CrossEntropyBackend for Autodiff<B, C> {
    fn cross_entropy(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        #[derive(Debug)]
        struct CrossEntropyGrad;

        impl<B: CrossEntropyBackend> Backward<B, 1> for CrossEntropyGrad {
            /// (logits, lse, targets)
            type State = (FloatTensor<B>, FloatTensor<B>, IntTensor<B>);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _ck: &mut Checkpointer,
            ) {
                let [node_logits] = ops.parents;
                let g = grads.consume::<B>(&ops.node);
                let (logits, lse, targets) = ops.state;
                if let Some(node) = node_logits {
                    let d = B::cross_entropy_backward(logits, lse, targets, g);
                    grads.register::<B>(node.id, d);
                }
            }
        }

        let (logits, node) = logits.into_parts();
        let (loss, lse) = B::cross_entropy(logits.clone(), targets.clone());
        let lse_out = Self::from_inner(lse.clone());
        let loss = match CrossEntropyGrad
            .prepare::<C>([node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((logits, lse, targets), loss),
            OpsKind::UnTracked(prep) => prep.finish(loss),
        };
        (loss, lse_out)
    }
}

/// Mean over rows of `-log softmax(logits)[row, target]`: `logits` `[n, v]`, `targets` `[n]`.
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let (loss, _lse) = <Dispatch as CrossEntropyBackend>::cross_entropy(
        logits.into_dispatch(),
        targets.into_dispatch(),
    );
    Tensor::from_dispatch(loss)
}

#[cfg(test)]
mod tests {
    #![allow(deprecated)] // Device::ndarray (the reference backend), TensorData::to_vec
    use super::*;
    use burn::tensor::Device;

    /// Loss and gradient in float64 by the textbook formulas.
    fn reference(x: &[f32], targets: &[usize], v: usize, g: f64) -> (f64, Vec<f64>) {
        let n = targets.len();
        let mut loss = 0.0;
        let mut grad = vec![0.0; n * v];
        for r in 0..n {
            let row: Vec<f64> = x[r * v..][..v].iter().map(|&z| z as f64).collect();
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + row.iter().map(|z| (z - m).exp()).sum::<f64>().ln();
            loss += (lse - row[targets[r]]) / n as f64;
            for j in 0..v {
                let onehot = if j == targets[r] { 1.0 } else { 0.0 };
                grad[r * v + j] = g * ((row[j] - lse).exp() - onehot) / n as f64;
            }
        }
        (loss, grad)
    }

    #[test]
    fn loss_and_gradient_match_float64_on_the_cpu_backends() {
        let (n, v) = (37, 23); // rows that do not divide the parallel chunk
        let x: Vec<f32> = (0..n * v)
            .map(|i| ((i * 7919 % 101) as f32 / 10.0 - 5.0) * if i % 5 == 0 { 3.0 } else { 1.0 })
            .collect();
        let targets: Vec<usize> = (0..n).map(|r| (r * 13 + 5) % v).collect();
        let (loss_ref, grad_ref) = reference(&x, &targets, v, 3.0);
        for device in [Device::ndarray().autodiff(), Device::flex().autodiff()] {
            let logits =
                Tensor::<2>::from_data(TensorData::new(x.clone(), [n, v]), &device).require_grad();
            let t: Vec<i64> = targets.iter().map(|&t| t as i64).collect();
            let t = Tensor::<1, Int>::from_data(TensorData::new(t, [n]), &device);
            let loss = cross_entropy(logits.clone(), t);
            let got = loss.clone().into_scalar::<f64>();
            assert!(
                (got - loss_ref).abs() < 1e-5,
                "{device:?}: {got} vs {loss_ref}"
            );
            let grads = loss.mul_scalar(3.0).backward();
            let grad = logits
                .grad(&grads)
                .unwrap()
                .into_data()
                .to_vec::<f32>()
                .unwrap();
            for (i, (a, b)) in grad.iter().zip(&grad_ref).enumerate() {
                assert!(
                    (*a as f64 - b).abs() < 1e-6,
                    "{device:?} element {i}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn huge_logits_stay_finite() {
        let device = Device::flex().autodiff();
        let logits = Tensor::<2>::from_data(
            TensorData::new(vec![1.0e4f32, -1.0e4, 0.0, 8.0e3], [2, 2]),
            &device,
        )
        .require_grad();
        let t = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 0], [2]), &device);
        let loss = cross_entropy(logits.clone(), t);
        // row 0: lse = 1e4, loss 2e4; row 1: lse = 8e3, loss 8e3
        assert_eq!(loss.clone().into_scalar::<f64>(), 14_000.0);
        let grad = logits
            .grad(&loss.backward())
            .unwrap()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(grad, vec![0.5, -0.5, -0.5, 0.5]);
    }
}
