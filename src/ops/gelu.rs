//! GELU, `x Phi(x)` with the exact (erf) normal distribution function, as a custom autodiff
//! operation.
//!
//! burn-flex computes GELU and its gradient element by element on one thread with the C
//! library's scalar `erff` and `expf`: the largest single item of the default model's step
//! after the matrix products. Here, on burn-flex, both run in `ablate_kernels` (vectorizable
//! `erf`/`exp`, parallel over rayon); on the other backends they are the backend's own GELU
//! and the exact gradient in tensor operations.

use super::host::{flex_f32, flex_f32_in_place};
use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::flex::FlexTensor;
use burn::backend::{ops::ActivationOps, tensor::FloatTensor, Autodiff, Backend, Dispatch, Flex};
use burn::tensor::{Tensor, TensorData};

custom_op! {
pub trait GeluBackend: Backend {
    /// `0.5 x (1 + erf(x / sqrt 2))`.
    fn gelu_erf(x: FloatTensor<Self>) -> FloatTensor<Self> {
        <Self as ActivationOps<Self>>::gelu(x)
    }
    /// `grad * d gelu / dx` at `x`: `grad (Phi(x) + x phi(x))`. (Burn's default GELU gradient,
    /// which burn-ndarray uses, is the derivative of the tanh approximation instead.)
    fn gelu_erf_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        let half = |t| Self::float_mul_scalar(t, 0.5f32.into());
        let erf = Self::float_erf(Self::float_mul_scalar(
            x.clone(),
            std::f32::consts::FRAC_1_SQRT_2.into(),
        ));
        let cdf = half(Self::float_add_scalar(erf, 1.0f32.into()));
        let square = Self::float_mul(x.clone(), x.clone());
        let pdf = Self::float_mul_scalar(
            Self::float_exp(Self::float_mul_scalar(square, (-0.5f32).into())),
            0.398_942_3f32.into(),
        );
        let slope = Self::float_add(cdf, Self::float_mul(x, pdf));
        Self::float_mul(grad, slope)
    }
}
}

composed_on_other_backends!(GeluBackend);

impl GeluBackend for Flex {
    fn gelu_erf(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let shape = x.layout().shape().clone();
        FlexTensor::from_data(TensorData::new(ablate_kernels::gelu(&flex_f32(&x)), shape))
    }

    fn gelu_erf_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        flex_f32_in_place(grad, |g| ablate_kernels::gelu_backward(&flex_f32(&x), g))
    }
}

impl<B: GeluBackend, C: CheckpointStrategy> GeluBackend for Autodiff<B, C> {
    fn gelu_erf(x: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct GeluGrad;

        impl<B: GeluBackend> Backward<B, 1> for GeluGrad {
            /// The input.
            type State = FloatTensor<B>;

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _ck: &mut Checkpointer,
            ) {
                let [node] = ops.parents;
                let g = grads.consume::<B>(&ops.node);
                if let Some(node) = node {
                    grads.register::<B>(node.id, B::gelu_erf_backward(ops.state, g));
                }
            }
        }

        let (x, node) = x.into_parts();
        match GeluGrad.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(x.clone(), B::gelu_erf(x)),
            OpsKind::UnTracked(prep) => prep.finish(B::gelu_erf(x)),
        }
    }
}

/// GELU with the exact normal distribution function (as `burn::tensor::activation::gelu`).
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as GeluBackend>::gelu_erf(x.into_dispatch()))
}

#[cfg(test)]
mod tests {
    #![allow(deprecated)] // Device::ndarray (the reference backend), TensorData::to_vec
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn gelu_and_its_gradient_match_float64_on_every_cpu_backend() {
        let n = 40_003;
        let values: Vec<f32> = (0..n).map(|i| (i as f32 / n as f32 - 0.5) * 14.0).collect();
        let weights: Vec<f32> = (0..n).map(|i| 1.0 + (i % 5) as f32 * 0.5).collect();
        for device in [Device::ndarray().autodiff(), Device::flex().autodiff()] {
            let x = Tensor::<2>::from_data(TensorData::new(values.clone(), [1, n]), &device)
                .require_grad();
            let w = Tensor::<2>::from_data(TensorData::new(weights.clone(), [1, n]), &device);
            let y = gelu(x.clone());
            let grads = (y.clone() * w).sum().backward();
            let dx = x.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
            let y = y.into_data().to_vec::<f32>().unwrap();
            for i in 0..n {
                let v = values[i] as f64;
                let cdf = 0.5 * (1.0 + libm::erf(v / 2f64.sqrt()));
                let pdf = (-0.5 * v * v).exp() / (2.0 * std::f64::consts::PI).sqrt();
                let (want_y, want_dx) = (v * cdf, weights[i] as f64 * (cdf + v * pdf));
                let (got_y, got_dx) = (y[i] as f64, dx[i] as f64);
                assert!(
                    (got_y - want_y).abs() < 2e-6 * want_y.abs().max(1.0),
                    "{device:?} gelu({v}): {got_y} vs {want_y}"
                );
                assert!(
                    (got_dx - want_dx).abs() < 4e-6 * want_dx.abs().max(1.0),
                    "{device:?} gelu'({v}): {got_dx} vs {want_dx}"
                );
            }
        }
    }
}
