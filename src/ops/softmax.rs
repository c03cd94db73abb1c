//! Attention weights `softmax(scale * scores + bias)` as one custom autodiff operation.
//!
//! Composed, the scaling, the bias, the softmax (max, subtract, exp, sum, divide) and their
//! gradients are about ten passes over `[batch, heads, t, t]`, each on one thread on burn-flex
//! and with the C library's scalar `expf`. On burn-flex they run as one pass per row forward and
//! one backward in `ablate_kernels`; on the other backends as the same formulas in tensor
//! operations. The bias (`[batch, 1, t, t]`, padding and causal masks) receives no gradient.

use super::host::{flex_f32, flex_f32_in_place};
use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::{tensor::FloatTensor, Autodiff, Backend, Dispatch, Flex, TensorMetadata};
use burn::tensor::Tensor;

custom_op! {
pub trait AttentionSoftmaxBackend: Backend {
    /// `softmax(scale * scores + bias)` over the last dimension.
    fn attention_softmax(
        scores: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        let z = Self::float_add(Self::float_mul_scalar(scores, scale.into()), bias);
        let m = Self::float_max_dim(z.clone(), 3);
        let e = Self::float_exp(Self::float_sub(z, m));
        let sum = Self::float_sum_dim(e.clone(), 3);
        Self::float_div(e, sum)
    }

    /// `scale * p * (grad - sum(grad * p))`: the gradient with respect to the scores.
    fn attention_softmax_backward(
        p: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        let dot = Self::float_sum_dim(Self::float_mul(grad.clone(), p.clone()), 3);
        let g = Self::float_mul(p, Self::float_sub(grad, dot));
        Self::float_mul_scalar(g, scale.into())
    }
}
}

composed_on_other_backends!(AttentionSoftmaxBackend);

impl AttentionSoftmaxBackend for Flex {
    fn attention_softmax(
        scores: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        let shape = scores.shape();
        let (heads, t) = (shape[1], shape[3]);
        // in the scores' buffer: the product q kᵀ that made them has no other user
        flex_f32_in_place(scores, |s| {
            ablate_kernels::attention_softmax(s, &flex_f32(&bias), heads, t, scale)
        })
    }

    fn attention_softmax_backward(
        p: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        let t = p.shape()[3];
        flex_f32_in_place(grad, |g| {
            ablate_kernels::attention_softmax_backward(&flex_f32(&p), g, t, scale)
        })
    }
}

impl<B: AttentionSoftmaxBackend, C: CheckpointStrategy> AttentionSoftmaxBackend for Autodiff<B, C> {
    fn attention_softmax(
        scores: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct SoftmaxGrad;

        impl<B: AttentionSoftmaxBackend> Backward<B, 1> for SoftmaxGrad {
            /// (the weights, scale)
            type State = (FloatTensor<B>, f32);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _ck: &mut Checkpointer,
            ) {
                let [node] = ops.parents;
                let g = grads.consume::<B>(&ops.node);
                let (p, scale) = ops.state;
                if let Some(node) = node {
                    grads.register::<B>(node.id, B::attention_softmax_backward(p, g, scale));
                }
            }
        }

        // the bias is a constant of the batch: its graph node is dropped
        let bias = bias.into_primitive();
        let (scores, node) = scores.into_parts();
        match SoftmaxGrad.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let p = B::attention_softmax(scores, bias, scale);
                prep.finish((p.clone(), scale), p)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::attention_softmax(scores, bias, scale)),
        }
    }
}

/// `softmax(scale * scores + bias)` over the last dimension: `scores` `[batch, heads, t, t]`,
/// `bias` `[batch, 1, t, t]`.
pub fn attention_softmax(scores: Tensor<4>, bias: Tensor<4>, scale: f32) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as AttentionSoftmaxBackend>::attention_softmax(
        scores.into_dispatch(),
        bias.into_dispatch(),
        scale,
    ))
}
