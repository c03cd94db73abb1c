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
mod tests {
    #![allow(deprecated)] // Device::ndarray (the reference backend), TensorData::to_vec
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn values(n: usize, salt: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + salt * 104_729) % 211) as f32 - 105.0) / 50.0)
            .collect()
    }

    /// `op(x)[i][j]` for a row-major `rows x cols` matrix `x` (`op` transposes when `t`).
    fn at(x: &[f32], cols: usize, t: bool, i: usize, j: usize) -> f64 {
        (if t { x[j * cols + i] } else { x[i * cols + j] }) as f64
    }

    /// `x` rounded to bfloat16 and back.
    fn bf16(x: f32) -> f64 {
        ablate_kernels::bf16::from_bf16(ablate_kernels::bf16::to_bf16(x)) as f64
    }

    #[test]
    fn bf16_products_and_their_gradients_round_the_inputs_on_flex_only_inside_the_scope() {
        let (m, k, n) = (37, 19, 23);
        let device = Device::flex().autodiff();
        let (va, vb) = (values(m * k, 1), values(k * n, 2));
        // dL/dC = w (L = sum(C * w)), so dA = w B^T and dB = A^T w, each a bf16 product too
        let vw = values(m * n, 3);
        let run = || {
            let a =
                Tensor::<2>::from_data(TensorData::new(va.clone(), [m, k]), &device).require_grad();
            let b =
                Tensor::<2>::from_data(TensorData::new(vb.clone(), [k, n]), &device).require_grad();
            let w = Tensor::<2>::from_data(TensorData::new(vw.clone(), [m, n]), &device);
            let c = matmul(a.clone(), b.clone(), false, false);
            let grads = (c.clone() * w).sum().backward();
            let v = |t: Tensor<2>| t.into_data().to_vec::<f32>().unwrap();
            (v(c), v(a.grad(&grads).unwrap()), v(b.grad(&grads).unwrap()))
        };
        let (c, da, db) = with_bf16_products(true, run);
        // float64 references of the rounded operands of each product
        let check = |got: &[f32],
                     rows: usize,
                     cols: usize,
                     depth: usize,
                     x: &dyn Fn(usize, usize) -> f32,
                     y: &dyn Fn(usize, usize) -> f32| {
            for i in 0..rows {
                for j in 0..cols {
                    let (mut want, mut scale) = (0.0, 0.0);
                    for l in 0..depth {
                        let p = bf16(x(i, l)) * bf16(y(l, j));
                        want += p;
                        scale += p.abs();
                    }
                    let g = got[i * cols + j] as f64;
                    assert!(
                        (g - want).abs() <= 2e-6 * scale,
                        "[{i}, {j}]: {g} vs {want}"
                    );
                }
            }
        };
        check(&c, m, n, k, &|i, l| va[i * k + l], &|l, j| vb[l * n + j]);
        check(&da, m, k, n, &|i, l| vw[i * n + l], &|l, j| vb[j * n + l]);
        check(&db, k, n, m, &|i, l| va[l * k + i], &|l, j| vw[l * n + j]);
        // outside the scope the products are float32 again: different from the bf16 ones
        let (c32, _, _) = run();
        assert!(c32
            .iter()
            .zip(&c)
            .any(|(x, y)| (x - y).abs() > 1e-3 * x.abs().max(1.0)));
        let (again, _, _) = with_bf16_products(true, run);
        assert_eq!(again, c, "deterministic");
    }

    #[test]
    fn products_and_gradients_match_float64_for_every_transpose() {
        // shapes that do not divide the row blocks
        let (m, k, n) = (37, 19, 23);
        for device in [Device::ndarray().autodiff(), Device::flex().autodiff()] {
            for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                let sa = if ta { [k, m] } else { [m, k] };
                let sb = if tb { [n, k] } else { [k, n] };
                let (va, vb) = (values(m * k, 1), values(k * n, 2));
                let a =
                    Tensor::<2>::from_data(TensorData::new(va.clone(), sa), &device).require_grad();
                let b =
                    Tensor::<2>::from_data(TensorData::new(vb.clone(), sb), &device).require_grad();
                let c = matmul(a.clone(), b.clone(), ta, tb);
                assert_eq!(c.dims(), [m, n]);
                let got = c.clone().into_data().to_vec::<f32>().unwrap();
                let op_a = |i, j| at(&va, sa[1], ta, i, j);
                let op_b = |i, j| at(&vb, sb[1], tb, i, j);
                for i in 0..m {
                    for j in 0..n {
                        let want: f64 = (0..k).map(|p| op_a(i, p) * op_b(p, j)).sum();
                        let g = got[i * n + j] as f64;
                        assert!(
                            (g - want).abs() < 1e-4,
                            "{device:?} ta {ta} tb {tb} [{i},{j}]: {g} vs {want}"
                        );
                    }
                }
                // L = sum(C * W): dL/dop(A) = W op(B)^T, dL/dop(B) = op(A)^T W
                let vw = values(m * n, 3);
                let w = Tensor::<2>::from_data(TensorData::new(vw.clone(), [m, n]), &device);
                let grads = (c * w).sum().backward();
                let da = a.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
                let db = b.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
                for i in 0..m {
                    for p in 0..k {
                        let want: f64 = (0..n).map(|j| vw[i * n + j] as f64 * op_b(p, j)).sum();
                        // element (i, p) of op(A) is stored at [p, i] when ta
                        let g = if ta { da[p * m + i] } else { da[i * k + p] } as f64;
                        assert!(
                            (g - want).abs() < 1e-4,
                            "{device:?} ta {ta} tb {tb} dA[{i},{p}]: {g} vs {want}"
                        );
                    }
                }
                for p in 0..k {
                    for j in 0..n {
                        let want: f64 = (0..m).map(|i| op_a(i, p) * vw[i * n + j] as f64).sum();
                        let g = if tb { db[j * k + p] } else { db[p * n + j] } as f64;
                        assert!(
                            (g - want).abs() < 1e-4,
                            "{device:?} ta {ta} tb {tb} dB[{p},{j}]: {g} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn float32_products_are_burn_flex_s_bit_for_bit() {
        // the direct gemm call must give burn-flex's own products exactly (the committed
        // studies' numbers depend on it), for every transpose, for views that start inside
        // their buffer, for sizes on both sides of the parallel threshold, and for k = 0
        for (m, k, n) in [(37, 19, 23), (200, 190, 210), (5, 0, 3)] {
            for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                let sa = if ta { [k, m] } else { [m, k] };
                let sb = if tb { [n, k] } else { [k, n] };
                // a view of rows 1.. of a matrix with one more row: a non-zero start offset
                let a = FlexTensor::from_data(TensorData::new(
                    values((sa[0] + 1) * sa[1], 1),
                    [sa[0] + 1, sa[1]],
                ))
                .narrow(0, 1, sa[0]);
                let b = FlexTensor::from_data(TensorData::new(values(k * n, 2), sb));
                let want = builtin::<Flex>(a.clone(), b.clone(), ta, tb);
                let got = gemm_f32(&a, &b, ta, tb);
                assert_eq!(got.layout().shape(), want.layout().shape());
                let bits = |t: &FlexTensor| -> Vec<u32> {
                    flex_f32(t).iter().map(|x| x.to_bits()).collect()
                };
                assert_eq!(bits(&got), bits(&want), "{m}x{k}x{n} ta {ta} tb {tb}");
            }
        }
    }

    #[test]
    fn batched_products_and_gradients_are_burns_bit_for_bit() {
        // attention's products through batched_matmul must give what Burn's matmul gave (the
        // committed studies' numbers depend on it): on flex bit for bit, forward and both
        // gradients, with a transposed view as b (as q k^T is), for each of burn-flex's three
        // batch strategies (one after another, the batch in parallel, each product parallel)
        let device = Device::flex().autodiff();
        for [b, h, m, k, n] in [[1, 2, 5, 3, 4], [4, 4, 64, 32, 64], [1, 1, 200, 190, 210]] {
            let a = || {
                Tensor::<4>::from_data(
                    TensorData::new(values(b * h * m * k, 1), [b, h, m, k]),
                    &device,
                )
                .require_grad()
            };
            let bt = || {
                Tensor::<4>::from_data(
                    TensorData::new(values(b * h * n * k, 2), [b, h, n, k]),
                    &device,
                )
                .require_grad()
            };
            let w = Tensor::<4>::from_data(
                TensorData::new(values(b * h * m * n, 3), [b, h, m, n]),
                &device,
            );
            let run = |ours: bool| {
                let (x, y) = (a(), bt());
                let c = if ours {
                    batched_matmul(x.clone(), y.clone().transpose())
                } else {
                    x.clone().matmul(y.clone().transpose())
                };
                let grads = (c.clone() * w.clone()).sum().backward();
                let bits = |t: Tensor<4>| -> Vec<u32> {
                    let v = t.into_data().to_vec::<f32>().unwrap();
                    v.iter().map(|x| x.to_bits()).collect()
                };
                (
                    bits(c),
                    bits(x.grad(&grads).unwrap()),
                    bits(y.grad(&grads).unwrap()),
                )
            };
            assert_eq!(run(true), run(false), "[{b}, {h}, {m}, {k}] x [{k}, {n}]");
        }
    }

    #[test]
    fn linear_matches_burns_linear_on_3d_input() {
        let device = Device::flex();
        device.seed(5);
        let layer = burn::nn::LinearConfig::new(6, 4).init(&device);
        let x = Tensor::<3>::from_data(TensorData::new(values(2 * 3 * 6, 4), [2, 3, 6]), &device);
        let want = layer
            .forward(x.clone())
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let got = linear(&layer, x).into_data().to_vec::<f32>().unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
    }
}
