//! PowerNorm's approximate backward pass as a custom autodiff operation.
//!
//! Forward: `z = x * s_fwd`. Backward (Shen et al. 2020, authors' `PowerFunction`):
//! with `g = dL/dz`, `a = g - nu * z`, `dx = a * s_bwd`. The statistic inside `s_fwd` and
//! `s_bwd` receives no gradient: that is the approximation. `s_fwd`, `s_bwd` and `nu`
//! have shape `[1, 1, d]` and broadcast over `[batch, time, d]`.
//!
//! Implemented as a Burn backend extension so it runs on every backend the tool supports;
//! the forward body is plain backend arithmetic, the backward is hand-written.

use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::{tensor::FloatTensor, Autodiff, Backend, Dispatch, Flex};
use burn::tensor::Tensor;

custom_op! {
pub trait PowerScaleBackend: Backend {
    fn power_scale(
        x: FloatTensor<Self>,
        s_fwd: FloatTensor<Self>,
        s_bwd: FloatTensor<Self>,
        nu: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let _ = (s_bwd, nu);
        Self::float_mul(x, s_fwd)
    }
}
}

composed_on_other_backends!(PowerScaleBackend);
impl PowerScaleBackend for Flex {}

impl<B: PowerScaleBackend, C: CheckpointStrategy> PowerScaleBackend for Autodiff<B, C> {
    fn power_scale(
        x: FloatTensor<Self>,
        s_fwd: FloatTensor<Self>,
        s_bwd: FloatTensor<Self>,
        nu: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct PowerBackward;

        impl<B: Backend> Backward<B, 1> for PowerBackward {
            /// (z, s_bwd, nu)
            type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _ck: &mut Checkpointer,
            ) {
                let [node_x] = ops.parents;
                let g = grads.consume::<B>(&ops.node);
                let (z, s_bwd, nu) = ops.state;
                let a = B::float_sub(g, B::float_mul(nu, z));
                let dx = B::float_mul(a, s_bwd);
                if let Some(node) = node_x {
                    grads.register::<B>(node.id, dx);
                }
            }
        }

        // The scales and nu are constants of this step: their graph nodes are dropped.
        let s_fwd = s_fwd.into_primitive();
        let s_bwd = s_bwd.into_primitive();
        let nu = nu.into_primitive();
        let (x, x_node) = x.into_parts();
        match PowerBackward
            .prepare::<C>([x_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let z = B::power_scale(x, s_fwd, s_bwd.clone(), nu.clone());
                prep.finish((z.clone(), s_bwd, nu), z)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::power_scale(x, s_fwd, s_bwd, nu)),
        }
    }
}

/// `z = x * s_fwd` with PowerNorm's approximate gradient `dx = (dL/dz - nu * z) * s_bwd`.
pub fn power_scale(x: Tensor<3>, s_fwd: Tensor<3>, s_bwd: Tensor<3>, nu: Tensor<3>) -> Tensor<3> {
    Tensor::from_dispatch(<Dispatch as PowerScaleBackend>::power_scale(
        x.into_dispatch(),
        s_fwd.into_dispatch(),
        s_bwd.into_dispatch(),
        nu.into_dispatch(),
    ))
}
