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
        let a = Tensor::<2>::from_data(TensorData::new(va.clone(), [m, k]), &device).require_grad();
        let b = Tensor::<2>::from_data(TensorData::new(vb.clone(), [k, n]), &device).require_grad();
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
            let a = Tensor::<2>::from_data(TensorData::new(va.clone(), sa), &device).require_grad();
            let b = Tensor::<2>::from_data(TensorData::new(vb.clone(), sb), &device).require_grad();
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
            let bits =
                |t: &FlexTensor| -> Vec<u32> { flex_f32(t).iter().map(|x| x.to_bits()).collect() };
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
