//! Matrix products of the model's dense layers and LM head.
//!
//! `matmul(a, b, ta, tb) = op(a) · op(b)` for 2-D tensors, where `op` transposes when its flag is
//! set, as a custom autodiff operation whose backward pass is again `matmul` with other flags:
//! every product, forward and backward, is one 2-D product over the flattened rows, with the
//! transposes given to the matrix-product kernel rather than materialized. Measured against
//! Burn's `Linear` and `matmul` on the default model (burn-flex, same sitting): 110 -> 97 ms a
//! training step (benches/RESULTS.md). The products themselves are the backend's own, except
//! in the opt-in bfloat16 mode (see [`with_bf16_products`]); on burn-flex the float32 ones,
//! and attention's batched products ([`batched_matmul`]), call the gemm crate directly as
//! burn-flex does, with the same bits, into outputs that are not zeroed and copied first.

use super::host::flex_f32;
use ablate_kernels::Shared;
use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::flex::FlexTensor;
use burn::backend::{tensor::FloatTensor, Autodiff, Backend, Dispatch, Flex};
use burn::nn::Linear;
use burn::tensor::{DType, Tensor, TensorData};
use std::cell::Cell;

thread_local! {
    /// Whether burn-flex products on this thread round their inputs to bfloat16.
    static BF16_PRODUCTS: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with this thread's burn-flex products in bfloat16 (`on`) or float32, then restores
/// the previous setting (also when `f` panics). Products are computed on the thread that runs
/// the training loop (autodiff's backward pass included), so a run's setting holds for exactly
/// its own products, while another run of a study on another thread keeps its own.
pub fn with_bf16_products<R>(on: bool, f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            BF16_PRODUCTS.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(BF16_PRODUCTS.with(|c| c.replace(on)));
    f()
}

custom_op! {
pub trait MatmulBackend: Backend {
    /// `op(a) · op(b)`: `a` is `[m, k]` (`[k, m]` when `ta`), `b` is `[k, n]` (`[n, k]` when `tb`).
    fn matmul(a: FloatTensor<Self>, b: FloatTensor<Self>, ta: bool, tb: bool) -> FloatTensor<Self> {
        builtin::<Self>(a, b, ta, tb)
    }
}
}

/// The backend's own matrix product.
fn builtin<B: Backend>(a: FloatTensor<B>, b: FloatTensor<B>, ta: bool, tb: bool) -> FloatTensor<B> {
    let a = if ta { B::float_swap_dims(a, 0, 1) } else { a };
    let b = if tb { B::float_swap_dims(b, 0, 1) } else { b };
    B::float_matmul(a, b)
}

composed_on_other_backends!(MatmulBackend);

impl MatmulBackend for Flex {
    fn matmul(a: FloatTensor<Self>, b: FloatTensor<Self>, ta: bool, tb: bool) -> FloatTensor<Self> {
        if !BF16_PRODUCTS.with(Cell::get) {
            return if a.dtype() == DType::F32 && b.dtype() == DType::F32 {
                gemm_f32(&a, &b, ta, tb)
            } else {
                builtin::<Self>(a, b, ta, tb)
            };
        }
        let (da, db) = (a.layout().shape().clone(), b.layout().shape().clone());
        let (m, k) = if ta { (da[1], da[0]) } else { (da[0], da[1]) };
        let n = if tb { db[0] } else { db[1] };
        let c = ablate_kernels::bf16::matmul_bf16(&flex_f32(&a), &flex_f32(&b), (m, k, n), ta, tb);
        FlexTensor::from_data(TensorData::new(c, [m, n]))
    }
}

/// Products at least this large (`m n k`) use every thread: burn-flex's threshold.
const PARALLEL_THRESHOLD: usize = 192 * 192 * 192;

/// `op(a) · op(b)` in float32 by the gemm crate, called exactly as burn-flex's 2-D product calls
/// it (same strides, same parallelism, hence the same kernels and the same bits), except that
/// the output is not allocated zeroed and then copied into an aligned buffer
/// (`FlexTensor::empty`): gemm writes every element of it without reading it (`read_dst`
/// false). Those two passes over every product's output ran on the step's thread alone.
fn gemm_f32(a: &FlexTensor, b: &FlexTensor, ta: bool, tb: bool) -> FlexTensor {
    // the transposes as views, as `builtin` gives them to burn-flex; a batch of one product
    // is computed as burn-flex computes a 2-D product (parallel from the same size)
    let view = |x: &FlexTensor, t: bool| if t { x.transpose(0, 1) } else { x.clone() };
    batched_gemm_f32(&view(a, ta), &view(b, tb))
}

impl<B: MatmulBackend, C: CheckpointStrategy> MatmulBackend for Autodiff<B, C> {
    fn matmul(a: FloatTensor<Self>, b: FloatTensor<Self>, ta: bool, tb: bool) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct MatmulGrad;

        impl<B: MatmulBackend> Backward<B, 2> for MatmulGrad {
            /// (a, b, ta, tb)
            type State = (FloatTensor<B>, FloatTensor<B>, bool, bool);

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                _ck: &mut Checkpointer,
            ) {
                let [node_a, node_b] = ops.parents;
                let g = grads.consume::<B>(&ops.node);
                let (a, b, ta, tb) = ops.state;
                // C = op(A) op(B), G = dL/dC:
                // dop(A) = G op(B)^T, dop(B) = op(A)^T G, transposed back where op transposed
                if let Some(node) = node_a {
                    let da = if ta {
                        B::matmul(b.clone(), g.clone(), tb, true)
                    } else {
                        B::matmul(g.clone(), b, false, !tb)
                    };
                    grads.register::<B>(node.id, da);
                }
                if let Some(node) = node_b {
                    let db = if tb {
                        B::matmul(g, a, true, ta)
                    } else {
                        B::matmul(a, g, !ta, false)
                    };
                    grads.register::<B>(node.id, db);
                }
            }
        }

        let (a, node_a) = a.into_parts();
        let (b, node_b) = b.into_parts();
        match MatmulGrad
            .prepare::<C>([node_a, node_b])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let c = B::matmul(a.clone(), b.clone(), ta, tb);
                prep.finish((a, b, ta, tb), c)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::matmul(a, b, ta, tb)),
        }
    }
}

custom_op! {
pub trait BatchedMatmulBackend: Backend {
    /// `a · b` over the last two dimensions, for each index of the others (the same in `a` and
    /// `b`): attention's scores and context.
    fn batched_matmul(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_matmul(a, b)
    }
}
}

composed_on_other_backends!(BatchedMatmulBackend);

impl BatchedMatmulBackend for Flex {
    fn batched_matmul(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        if a.dtype() == DType::F32 && b.dtype() == DType::F32 {
            batched_gemm_f32(&a, &b)
        } else {
            <Self as burn::backend::ops::FloatTensorOps<Self>>::float_matmul(a, b)
        }
    }
}

/// Total work (`batch m n k`) from which burn-flex computes a batch's products in parallel.
const BATCH_PARALLEL_THRESHOLD: usize = 128 * 128 * 128;

/// `a · b` per batch index in float32 by gemm, with burn-flex's strategy for batches (each
/// product parallel when large, else the batch in parallel when it is large in total, else
/// one after another) and its gemm arguments, hence its bits, into an uninitialized output
/// (see [`gemm_f32`]).
fn batched_gemm_f32(a: &FlexTensor, b: &FlexTensor) -> FlexTensor {
    let (la, lb) = (a.layout(), b.layout());
    let (da, db) = (la.shape(), lb.shape());
    let r = da.num_dims();
    assert!(
        r >= 2 && db.num_dims() == r,
        "batched matmul of {da:?} and {db:?}"
    );
    let batch_dims: Vec<usize> = (0..r - 2).map(|i| da[i]).collect();
    assert!(
        (0..r - 2).all(|i| db[i] == da[i]),
        "batched matmul: batch dimensions of {da:?} and {db:?} differ"
    );
    let (m, k, n) = (da[r - 2], da[r - 1], db[r - 1]);
    assert_eq!(k, db[r - 2], "matmul: inner dimensions differ");
    let (sa, sb) = (la.strides(), lb.strides());
    let batch: usize = batch_dims.iter().product();
    // element offset of batch index `i` (row-major over the batch dimensions) in x
    let offset = |i: usize, start: usize, strides: &[isize]| -> isize {
        let (mut rest, mut off) = (i, start as isize);
        for d in (0..r - 2).rev() {
            off += (rest % batch_dims[d]) as isize * strides[d];
            rest /= batch_dims[d];
        }
        off
    };
    let (a_all, b_all) = (a.storage::<f32>(), b.storage::<f32>());
    let mut c = Vec::<f32>::with_capacity(batch * m * n);
    let out = Shared(c.as_mut_ptr());
    // SAFETY: batch index i of a and b lies at these offsets and strides (their layouts say
    // so); the output has room for batch x m x n elements and product i writes its own m x n
    // block only, every element of it (read_dst false)
    let one = |i: usize, parallelism: gemm::Parallelism| unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.at(i * m * n),
            1,
            n as isize,
            false,
            a_all.as_ptr().offset(offset(i, la.start_offset(), sa)),
            sa[r - 1],
            sa[r - 2],
            b_all.as_ptr().offset(offset(i, lb.start_offset(), sb)),
            sb[r - 1],
            sb[r - 2],
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    };
    let per_matrix = m.saturating_mul(n).saturating_mul(k);
    let total = batch.saturating_mul(per_matrix);
    let batch_parallel = batch >= 4 && total >= BATCH_PARALLEL_THRESHOLD;
    if per_matrix >= PARALLEL_THRESHOLD && !batch_parallel {
        (0..batch).for_each(|i| one(i, gemm::Parallelism::Rayon(0)));
    } else if total >= BATCH_PARALLEL_THRESHOLD && batch > 1 {
        use rayon::prelude::*;
        (0..batch)
            .into_par_iter()
            .for_each(|i| one(i, gemm::Parallelism::None));
    } else {
        (0..batch).for_each(|i| one(i, gemm::Parallelism::None));
    }
    // SAFETY: the products wrote every element (above)
    unsafe { c.set_len(batch * m * n) };
    let mut shape = batch_dims;
    shape.extend([m, n]);
    FlexTensor::from_data(TensorData::new(c, shape))
}

impl<B: BatchedMatmulBackend, C: CheckpointStrategy> BatchedMatmulBackend for Autodiff<B, C> {
    fn batched_matmul(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct BatchedMatmulGrad;

        impl<B: BatchedMatmulBackend> Backward<B, 2> for BatchedMatmulGrad {
            /// (a, b)
            type State = (FloatTensor<B>, FloatTensor<B>);

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                _ck: &mut Checkpointer,
            ) {
                let [node_a, node_b] = ops.parents;
                let g = grads.consume::<B>(&ops.node);
                let (a, b) = ops.state;
                // as Burn's own matmul: dA = G B^T, dB = A^T G, the transposes as views
                if let Some(node) = node_a {
                    let da = B::batched_matmul(g.clone(), B::float_transpose(b));
                    grads.register::<B>(node.id, da);
                }
                if let Some(node) = node_b {
                    let db = B::batched_matmul(B::float_transpose(a), g);
                    grads.register::<B>(node.id, db);
                }
            }
        }

        let (a, node_a) = a.into_parts();
        let (b, node_b) = b.into_parts();
        match BatchedMatmulGrad
            .prepare::<C>([node_a, node_b])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let c = B::batched_matmul(a.clone(), b.clone());
                prep.finish((a, b), c)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::batched_matmul(a, b)),
        }
    }
}

/// `a · b` over the last two dimensions (see [`BatchedMatmulBackend`]).
pub fn batched_matmul<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as BatchedMatmulBackend>::batched_matmul(
        a.into_dispatch(),
        b.into_dispatch(),
    ))
}

/// `op(a) · op(b)` (see the module documentation).
pub fn matmul(a: Tensor<2>, b: Tensor<2>, ta: bool, tb: bool) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as MatmulBackend>::matmul(
        a.into_dispatch(),
        b.into_dispatch(),
        ta,
        tb,
    ))
}

/// A Burn `Linear` layer applied to `[.., d_in]` through [`matmul`]: `x W + b`.
pub fn linear<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    let dims = x.dims();
    let d_in = dims[D - 1];
    let rows = x.shape().num_elements() / d_in.max(1);
    let y = matmul(x.reshape([rows, d_in]), layer.weight.val(), false, false);
    let y = match &layer.bias {
        Some(bias) => y + bias.val().unsqueeze::<2>(),
        None => y,
    };
    let mut out = dims;
    out[D - 1] = y.dims()[1];
    y.reshape(out)
}

#[cfg(test)]
mod tests;
