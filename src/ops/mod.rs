//! Every custom operation of the tool, with its backward pass and its burn-flex host path, and
//! the one list of backends they support. All are autodiff operations but one: Adam's update of a
//! parameter (`adam_step`), which the optimizer runs on inner tensors.
//!
//! Models, norms and the optimizer call the tensor-level functions re-exported here; nothing
//! above this module touches a backend type. Each operation is a Burn backend extension: a trait
//! declared with [`custom_op!`] (which names the supported backends once), a default body
//! composed of backend operations (used by burn-ndarray and the GPU, see
//! [`composed_on_other_backends!`]), a host kernel for burn-flex where one pays, and a
//! hand-written `Autodiff` implementation.

// burn-ndarray is deprecated upstream but is this project's CPU baseline.
#![allow(deprecated)]

/// Declares a custom operation's backend trait for every backend the tool supports: autodiff
/// over burn-ndarray, burn-flex and (with the `wgpu` feature) the CubeCL GPU backend. This is
/// the one place that list is written.
macro_rules! custom_op {
    ($($item:tt)*) => {
        #[burn::backend::backend_extension(Autodiff, NdArray, Flex, Cube: cfg(feature = "wgpu"))]
        $($item)*
    };
}

/// The backends on which an operation runs its trait's default (composed) body: every
/// supported backend but burn-flex, which gets host kernels where they pay.
macro_rules! composed_on_other_backends {
    ($op:ident) => {
        impl $op for burn::backend::NdArray {}
        #[cfg(feature = "wgpu")]
        impl $op for burn::backend::Cube {}
    };
}

mod adam;
mod cross_entropy;
mod dropout;
mod gelu;
mod host;
mod matmul;
mod power;
mod softmax;

pub use adam::adam_step;
pub use cross_entropy::cross_entropy;
pub use dropout::DropoutRng;
pub use gelu::gelu;
pub use matmul::{batched_matmul, linear, matmul, with_bf16_products};
pub use power::power_scale;
pub use softmax::attention_softmax;
