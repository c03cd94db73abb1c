use super::*;

/// Points across the range, dense near 0.
fn points(lo: f32, hi: f32, n: usize) -> Vec<f32> {
    (0..=n)
        .map(|i| lo + (hi - lo) * i as f32 / n as f32)
        .collect()
}

fn ulps(a: f32, b: f64) -> f64 {
    let b32 = b as f32;
    let ulp = (f32::from_bits(b32.abs().to_bits() + 1) - b32.abs()) as f64;
    (a as f64 - b).abs() / ulp
}

#[test]
fn exp_is_within_two_ulp_on_the_normal_range() {
    let mut worst = 0.0f64;
    for x in points(-87.0, 88.0, 400_000) {
        let e = ulps(math::exp(x), (x as f64).exp());
        worst = worst.max(e);
        assert!(
            e <= 2.0,
            "exp({x}) = {} vs {}",
            math::exp(x),
            (x as f64).exp()
        );
    }
    assert!(worst > 0.0);
    assert_eq!(math::exp(0.0), 1.0);
    assert_eq!(math::exp(-1.0e4), 0.0);
    assert_eq!(math::exp(-100.0), 0.0);
    assert_eq!(math::exp(100.0), f32::INFINITY);
}

/// `math::exp` as first written (build 0c6c4ab, 2026-11-28), with `n as i32`: every committed
/// study was computed with it, so the vectorizable integer conversion must give the same bits.
fn exp_as_first_written(x: f32) -> f32 {
    let xc = x.clamp(-87.3, 88.7);
    let n = (xc * std::f32::consts::LOG2_E + 12_582_912.0) - 12_582_912.0;
    let r = xc - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    let ni = n as i32;
    let h = ni >> 1;
    let y = er
        * f32::from_bits(((h + 127) as u32) << 23)
        * f32::from_bits(((ni - h + 127) as u32) << 23);
    let y = if x < -87.3 { 0.0 } else { y };
    if x > 88.7 {
        f32::INFINITY
    } else {
        y
    }
}

#[test]
fn exp_gives_the_bits_it_always_gave() {
    // every 61st float32 bit pattern (70 million), infinities and the clamp's edges included
    let edges = [
        f32::INFINITY,
        f32::NEG_INFINITY,
        -87.3,
        88.7,
        -0.0,
        0.0,
        f32::MIN_POSITIVE,
    ];
    let sweep = (0..=u32::MAX).step_by(61).map(f32::from_bits);
    for x in sweep.chain(edges) {
        let (new, old) = (math::exp(x), exp_as_first_written(x));
        if x.is_nan() {
            assert!(new.is_nan() && old.is_nan(), "exp({x:?})");
        } else {
            assert_eq!(
                new.to_bits(),
                old.to_bits(),
                "exp({x:e}) = {new:e}, was {old:e}"
            );
        }
    }
}

#[test]
fn erf_is_within_its_bound_of_float64() {
    for x in points(-6.0, 6.0, 200_000) {
        let want = libm::erf(x as f64);
        let got = math::erf(x) as f64;
        assert!((got - want).abs() < 4e-7, "erf({x}) = {got} vs {want}");
    }
    assert_eq!(math::erf(0.0), 0.0);
    assert_eq!(math::erf(10.0), 1.0);
    assert_eq!(math::erf(-10.0), -1.0);
}

fn gelu64(x: f64) -> f64 {
    0.5 * x * (1.0 + libm::erf(x / 2f64.sqrt()))
}

#[test]
fn gelu_and_its_gradient_match_float64_and_finite_differences() {
    let x = points(-8.0, 8.0, 100_001); // several parallel chunks and a remainder
    let y = gelu(&x);
    assert_eq!(y.len(), x.len());
    let g: Vec<f32> = (0..x.len()).map(|i| 0.5 + (i % 7) as f32 * 0.25).collect();
    let mut dx = g.clone();
    gelu_backward(&x, &mut dx);
    for i in 0..x.len() {
        let xi = x[i] as f64;
        let want = gelu64(xi);
        assert!(
            (y[i] as f64 - want).abs() < 1e-6 * want.abs().max(1.0),
            "gelu({xi}) = {} vs {want}",
            y[i]
        );
        let h = 1e-4;
        let slope = (gelu64(xi + h) - gelu64(xi - h)) / (2.0 * h);
        let want = g[i] as f64 * slope;
        assert!(
            (dx[i] as f64 - want).abs() < 2e-6 * want.abs().max(1.0),
            "gelu'({xi}) * {} = {} vs {want}",
            g[i],
            dx[i]
        );
    }
}

#[test]
fn cross_entropy_rows_and_gradient_match_float64() {
    let (n, v) = (37, 1003);
    let logits: Vec<f32> = (0..n * v)
        .map(|i| ((i * 7919 % 1009) as f32 - 504.0) / 40.0)
        .collect();
    let targets: Vec<usize> = (0..n).map(|r| (r * 131 + 7) % v).collect();
    let (lse, loss) = cross_entropy_rows(&logits, v, &targets);
    let mut grad = logits.clone();
    cross_entropy_backward(&mut grad, v, &lse, &targets, 0.25);
    for r in 0..n {
        let row: Vec<f64> = logits[r * v..][..v].iter().map(|&z| z as f64).collect();
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let l = m + row.iter().map(|z| (z - m).exp()).sum::<f64>().ln();
        assert!(
            (lse[r] as f64 - l).abs() < 2e-6 * l.abs().max(1.0),
            "lse row {r}"
        );
        assert!(
            (loss[r] as f64 - (l - row[targets[r]])).abs() < 1e-5,
            "loss row {r}"
        );
        for j in 0..v {
            let onehot = if j == targets[r] { 1.0 } else { 0.0 };
            let want = 0.25 * ((row[j] - l).exp() - onehot);
            assert!(
                (grad[r * v + j] as f64 - want).abs() < 1e-7,
                "grad [{r},{j}]"
            );
        }
    }
}

#[test]
fn dropout_masks_keep_the_expected_share_independently_of_threads() {
    let draw = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| dropout_mask(42, 300_001, 0.25))
    };
    let a = draw(1);
    assert_eq!(a, draw(3));
    let kept = a.iter().filter(|&&v| v > 0.0).count() as f64 / a.len() as f64;
    assert!((kept - 0.75).abs() < 0.004, "{kept}");
    assert!(a.iter().all(|&v| v == 0.0 || v == (1.0f64 / 0.75) as f32));
}

#[test]
fn attention_softmax_and_gradient_match_float64() {
    let (b, h, t) = (3, 2, 21);
    let scores: Vec<f32> = (0..b * h * t * t)
        .map(|i| ((i * 7919 % 97) as f32 - 48.0) / 9.0)
        .collect();
    // causal bias with the last 5 keys of batch 1 masked
    let bias: Vec<f32> = (0..b * t * t)
        .map(|i| {
            let (bb, q, k) = (i / (t * t), (i / t) % t, i % t);
            if k > q || (bb == 1 && k >= t - 5 && q >= t - 5 && k != 0) {
                -1.0e4
            } else {
                0.0
            }
        })
        .collect();
    let scale = 0.35;
    let mut p = scores.clone();
    attention_softmax(&mut p, &bias, h, t, scale);
    let g: Vec<f32> = (0..p.len())
        .map(|i| ((i * 31 % 17) as f32 - 8.0) / 8.0)
        .collect();
    let mut ds = g.clone();
    attention_softmax_backward(&p, &mut ds, t, scale);
    for r in 0..b * h * t {
        let (bb, q) = (r / (h * t), r % t);
        let z: Vec<f64> = (0..t)
            .map(|k| scores[r * t + k] as f64 * scale as f64 + bias[(bb * t + q) * t + k] as f64)
            .collect();
        let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
        let sum: f64 = e.iter().sum();
        let want: Vec<f64> = e.iter().map(|v| v / sum).collect();
        let dot: f64 = (0..t).map(|k| g[r * t + k] as f64 * want[k]).sum();
        for k in 0..t {
            assert!(
                (p[r * t + k] as f64 - want[k]).abs() < 1e-6,
                "p row {r} key {k}"
            );
            let dw = scale as f64 * want[k] * (g[r * t + k] as f64 - dot);
            assert!(
                (ds[r * t + k] as f64 - dw).abs() < 1e-6,
                "ds row {r} key {k}"
            );
        }
    }
}

#[test]
fn dropout_multiplies_by_the_mask() {
    let x: Vec<f32> = (0..70_001).map(|i| (i % 13) as f32 - 6.0).collect();
    let mut y = x.clone();
    dropout(9, 0.3, &mut y);
    let mask = dropout_mask(9, x.len(), 0.3);
    assert!(mask.iter().all(|&m| m == 0.0 || m == (1.0 / 0.7f64) as f32));
    for i in 0..x.len() {
        assert_eq!(y[i], x[i] * mask[i], "element {i}");
    }
}

mod bf16 {
    use crate::bf16::*;

    #[test]
    fn rounding_to_bfloat16_is_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        assert_eq!(to_bf16(-2.0), 0xc000);
        // 1 + 2^-8 lies halfway between 1 (even) and 1 + 2^-7: down to 1
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
        // 1 + 3 * 2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): up
        assert_eq!(to_bf16(1.0 + 3.0 / 256.0), 0x3f82);
        // just above the halfway point rounds up
        assert_eq!(to_bf16(f32::from_bits(0x3f80_8001)), 0x3f81);
        assert_eq!(to_bf16(f32::INFINITY), 0x7f80);
        assert_eq!(to_bf16(f32::MAX), 0x7f80, "overflows to infinity");
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
        assert_eq!(from_bf16(to_bf16(0.1)), 0.100_097_656);
    }

    fn values(n: usize, salt: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + salt * 104_729) % 1013) as f32 - 506.0) / 97.0)
            .collect()
    }

    /// `op(a) op(b)` in float64 of `a`, `b` as given (`round`: first rounded to bfloat16), and
    /// the sum of the absolute products (the scale of float32 accumulation error).
    #[allow(clippy::too_many_arguments)]
    fn reference(
        a: &[f32],
        b: &[f32],
        (m, k, n): (usize, usize, usize),
        ta: bool,
        tb: bool,
        round: bool,
    ) -> (Vec<f64>, Vec<f64>) {
        let r = |x: f32| {
            if round {
                from_bf16(to_bf16(x)) as f64
            } else {
                x as f64
            }
        };
        let (mut c, mut scale) = (vec![0.0; m * n], vec![0.0; m * n]);
        for i in 0..m {
            for j in 0..n {
                for kk in 0..k {
                    let x = r(if ta { a[kk * m + i] } else { a[i * k + kk] });
                    let y = r(if tb { b[j * k + kk] } else { b[kk * n + j] });
                    c[i * n + j] += x * y;
                    scale[i * n + j] += (x * y).abs();
                }
            }
        }
        (c, scale)
    }

    #[test]
    fn products_match_float64_of_the_rounded_inputs_for_every_kernel_shape_and_transpose() {
        let mut kernels = vec![Kernel::Portable];
        if native_available() {
            kernels.push(Kernel::Native);
        } else {
            eprintln!("no AVX512_BF16 on this CPU: the native kernel is not tested here");
        }
        // shapes smaller than a panel, odd k, k over several KCP blocks, several tiles each way
        for (m, k, n) in [(1, 1, 1), (37, 19, 23), (130, 515, 70), (200, 64, 300)] {
            for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                let (a, b) = (values(m * k, 1), values(k * n, 2));
                let (want, scale) = reference(&a, &b, (m, k, n), ta, tb, true);
                let (exact, _) = reference(&a, &b, (m, k, n), ta, tb, false);
                for &kernel in &kernels {
                    let got = matmul_bf16_with(kernel, &a, &b, (m, k, n), ta, tb);
                    assert_eq!(got.len(), m * n);
                    let mut off_exact = 0.0f64;
                    for i in 0..m * n {
                        let err = (got[i] as f64 - want[i]).abs();
                        assert!(
                            err <= 2e-6 * scale[i] + 1e-30,
                            "{kernel:?} {m}x{k}x{n} ta {ta} tb {tb} c[{i}] = {} vs {}",
                            got[i],
                            want[i]
                        );
                        off_exact = off_exact.max((got[i] as f64 - exact[i]).abs() / scale[i]);
                    }
                    // the inputs really were rounded to 8 significant bits
                    if k > 1 {
                        assert!(off_exact > 1e-4, "{kernel:?} {m}x{k}x{n}: {off_exact}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_dispatching_entry_point_uses_a_kernel_and_empty_shapes_give_zeros() {
        let (a, b) = (values(5 * 3, 1), values(3 * 4, 2));
        let got = matmul_bf16(&a, &b, (5, 3, 4), false, false);
        let want = matmul_bf16_with(Kernel::Portable, &a, &b, (5, 3, 4), false, false);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0));
        }
        assert_eq!(matmul_bf16(&[], &[], (2, 0, 3), false, false), vec![0.0; 6]);
    }
}
