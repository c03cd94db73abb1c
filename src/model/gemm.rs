//! Matrix products of the model's dense layers, through OpenBLAS when it is installed.
//!
//! `gemm(a, b, ta, tb) = op(a) · op(b)` for 2-D tensors, where `op` transposes when its flag is
//! set, as a custom autodiff operation whose backward pass is again `gemm` with other flags (so
//! gradients take the same path). On burn-flex, when the system OpenBLAS can be loaded at run
//! time (`libopenblas.so.0`; Debian: `apt-get install libopenblas0`), the products go to it:
//! single-threaded calls on row blocks spread over the rayon pool. Measured on the 2-core
//! machine, OpenBLAS runs these shapes at about 190 GFLOP/s against 75 for the gemm crate that
//! burn-flex uses (benches/RESULTS.md). Without it, with `ABLATE_OPENBLAS=0`, and on every
//! other backend, `gemm` is the backend's own matrix product. `summary.json` records which.

// burn-ndarray is deprecated upstream but is this project's CPU baseline.
#![allow(deprecated)]

use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::{
    backend_extension, tensor::FloatTensor, Autodiff, Backend, Dispatch, Flex, NdArray,
};
use burn::nn::Linear;
use burn::tensor::Tensor;

#[backend_extension(Autodiff, NdArray, Flex, Cube: cfg(feature = "wgpu"))]
pub trait GemmBackend: Backend {
    /// `op(a) · op(b)`: `a` is `[m, k]` (`[k, m]` when `ta`), `b` is `[k, n]` (`[n, k]` when `tb`).
    fn gemm(a: FloatTensor<Self>, b: FloatTensor<Self>, ta: bool, tb: bool) -> FloatTensor<Self> {
        builtin::<Self>(a, b, ta, tb)
    }
}

/// The backend's own matrix product.
fn builtin<B: Backend>(a: FloatTensor<B>, b: FloatTensor<B>, ta: bool, tb: bool) -> FloatTensor<B> {
    let a = if ta { B::float_swap_dims(a, 0, 1) } else { a };
    let b = if tb { B::float_swap_dims(b, 0, 1) } else { b };
    B::float_matmul(a, b)
}

impl GemmBackend for NdArray {}
#[cfg(feature = "wgpu")]
impl GemmBackend for burn::backend::Cube {}

impl GemmBackend for Flex {
    fn gemm(a: FloatTensor<Self>, b: FloatTensor<Self>, ta: bool, tb: bool) -> FloatTensor<Self> {
        match blas::openblas() {
            Some(blas) => blas.gemm(a, b, ta, tb),
            None => builtin::<Self>(a, b, ta, tb),
        }
    }
}

/// The library that computes the dense layers' products on `backend`, for summaries.
pub fn matmul_library(backend: crate::config::BackendKind) -> String {
    use crate::config::BackendKind;
    match backend {
        BackendKind::Flex => match blas::openblas() {
            Some(blas) => blas.config.clone(),
            None => "gemm crate (burn-flex)".into(),
        },
        BackendKind::Ndarray => "matrixmultiply (burn-ndarray)".into(),
        BackendKind::Wgpu => "wgpu".into(),
    }
}

mod blas {
    use burn::backend::flex::FlexTensor;
    use burn::tensor::{Shape, TensorData};
    use rayon::prelude::*;
    use std::ffi::{c_char, CStr};
    use std::sync::OnceLock;

    type Sgemm = unsafe extern "C" fn(
        i32,
        i32,
        i32,
        i32,
        i32,
        i32,
        f32,
        *const f32,
        i32,
        *const f32,
        i32,
        f32,
        *mut f32,
        i32,
    );
    const ROW_MAJOR: i32 = 101;
    const NO_TRANS: i32 = 111;
    const TRANS: i32 = 112;

    pub struct OpenBlas {
        sgemm: Sgemm,
        /// `openblas_get_config()`, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64".
        pub config: String,
        _lib: libloading::Library,
    }

    /// The system OpenBLAS, loaded once; `None` when it is absent or `ABLATE_OPENBLAS=0`.
    pub fn openblas() -> Option<&'static OpenBlas> {
        static LOADED: OnceLock<Option<OpenBlas>> = OnceLock::new();
        LOADED.get_or_init(load).as_ref()
    }

    fn load() -> Option<OpenBlas> {
        if std::env::var("ABLATE_OPENBLAS").is_ok_and(|v| v == "0") {
            return None;
        }
        let names = [
            "libopenblas.so.0",
            "libopenblas.so",
            "libopenblas.dylib",
            "libopenblas.dll",
        ];
        // SAFETY: loading OpenBLAS runs only its own initializers.
        let lib = names
            .iter()
            .find_map(|n| unsafe { libloading::Library::new(n) }.ok())?;
        // SAFETY: the symbols have these C signatures in every OpenBLAS release.
        unsafe {
            let sgemm = *lib.get::<Sgemm>(b"cblas_sgemm\0").ok()?;
            // OpenBLAS's own threads would compete with rayon's: the rows are split instead.
            if let Ok(threads) = lib.get::<unsafe extern "C" fn(i32)>(b"openblas_set_num_threads\0")
            {
                threads(1);
            }
            let config = lib
                .get::<unsafe extern "C" fn() -> *const c_char>(b"openblas_get_config\0")
                .ok()
                .map(|f| CStr::from_ptr(f()).to_string_lossy().trim().to_string())
                .unwrap_or_else(|| "OpenBLAS".into());
            Some(OpenBlas {
                sgemm,
                config,
                _lib: lib,
            })
        }
    }

    /// Row-major f32 contents of `t` (without copying when it is contiguous).
    fn contiguous(t: FlexTensor) -> FlexTensor {
        if t.as_slice::<f32>().is_some() {
            t
        } else {
            FlexTensor::from_data(t.into_data().convert::<f32>())
        }
    }

    impl OpenBlas {
        pub fn gemm(&self, a: FlexTensor, b: FlexTensor, ta: bool, tb: bool) -> FlexTensor {
            let (sa, sb) = (a.layout().shape().clone(), b.layout().shape().clone());
            let (a, b) = (contiguous(a), contiguous(b));
            let (a, b) = (a.as_slice::<f32>().unwrap(), b.as_slice::<f32>().unwrap());
            let (m, k) = if ta { (sa[1], sa[0]) } else { (sa[0], sa[1]) };
            let (k2, n) = if tb { (sb[1], sb[0]) } else { (sb[0], sb[1]) };
            assert_eq!(
                k, k2,
                "gemm: inner dimensions {sa:?} x {sb:?} (ta {ta}, tb {tb})"
            );
            let (lda, ldb) = (if ta { m } else { k }, if tb { k } else { n });
            let mut c = vec![0.0f32; m * n];
            // one row block per thread, at least 16 rows each
            let blocks = rayon::current_num_threads().min(m.div_ceil(16)).max(1);
            let rows = m.div_ceil(blocks).max(1);
            if n > 0 && k > 0 {
                c.par_chunks_mut(rows * n)
                    .enumerate()
                    .for_each(|(i, block)| {
                        let r0 = i * rows;
                        // row r0 of op(a): row r0 of a, or column r0 of a when transposed
                        let a0 = if ta { r0 } else { r0 * k };
                        // SAFETY: the block has (block.len() / n) rows of n; a and b hold op(a) and
                        // op(b) with the leading dimensions given.
                        unsafe {
                            (self.sgemm)(
                                ROW_MAJOR,
                                if ta { TRANS } else { NO_TRANS },
                                if tb { TRANS } else { NO_TRANS },
                                (block.len() / n) as i32,
                                n as i32,
                                k as i32,
                                1.0,
                                a.as_ptr().add(a0),
                                lda as i32,
                                b.as_ptr(),
                                ldb as i32,
                                0.0,
                                block.as_mut_ptr(),
                                n as i32,
                            )
                        }
                    });
            }
            FlexTensor::from_data(TensorData::new(c, Shape::new([m, n])))
        }
    }
}

impl<B: GemmBackend, C: CheckpointStrategy> GemmBackend for Autodiff<B, C> {
    fn gemm(a: FloatTensor<Self>, b: FloatTensor<Self>, ta: bool, tb: bool) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct GemmGrad;

        impl<B: GemmBackend> Backward<B, 2> for GemmGrad {
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
                        B::gemm(b.clone(), g.clone(), tb, true)
                    } else {
                        B::gemm(g.clone(), b, false, !tb)
                    };
                    grads.register::<B>(node.id, da);
                }
                if let Some(node) = node_b {
                    let db = if tb {
                        B::gemm(g, a, true, ta)
                    } else {
                        B::gemm(a, g, !ta, false)
                    };
                    grads.register::<B>(node.id, db);
                }
            }
        }

        let (a, node_a) = a.into_parts();
        let (b, node_b) = b.into_parts();
        match GemmGrad
            .prepare::<C>([node_a, node_b])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let c = B::gemm(a.clone(), b.clone(), ta, tb);
                prep.finish((a, b, ta, tb), c)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::gemm(a, b, ta, tb)),
        }
    }
}

/// `op(a) · op(b)` (see the module documentation).
pub fn gemm(a: Tensor<2>, b: Tensor<2>, ta: bool, tb: bool) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as GemmBackend>::gemm(
        a.into_dispatch(),
        b.into_dispatch(),
        ta,
        tb,
    ))
}

/// A Burn `Linear` layer applied to `[.., d_in]` through [`gemm`]: `x W + b`.
pub fn linear<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    let dims = x.dims();
    let d_in = dims[D - 1];
    let rows = x.shape().num_elements() / d_in.max(1);
    let y = gemm(x.reshape([rows, d_in]), layer.weight.val(), false, false);
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
                let c = gemm(a.clone(), b.clone(), ta, tb);
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
    fn openblas_is_used_where_it_is_installed() {
        let installed = [
            "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
            "/usr/lib/libopenblas.so.0",
        ]
        .iter()
        .any(|p| std::path::Path::new(p).exists());
        let library = matmul_library(crate::config::BackendKind::Flex);
        if std::env::var("ABLATE_OPENBLAS").is_ok_and(|v| v == "0") || !installed {
            assert_eq!(library, "gemm crate (burn-flex)");
        } else {
            assert!(library.starts_with("OpenBLAS"), "{library}");
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
