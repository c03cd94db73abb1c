//! Every norm against an independent float64 reference written here with plain loops:
//! forward and backward, training and evaluation mode, plus finite differences and the
//! padding properties. PowerNorm's recursion is followed over several steps across the
//! end of its warm-up. Each newer norm has its tests in a file of its own beside this one.

#![allow(deprecated)] // Device::ndarray

use super::*;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Device, TensorData};

const B: usize = 3;
const T: usize = 4;
const D: usize = 6;
const EPS: f64 = 1e-5;
const LENGTHS: [usize; B] = [4, 2, 3];

thread_local! {
    /// Tests run each in their own thread: a test can switch its thread to the flex backend.
    static FLEX: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn device() -> Device {
    if FLEX.with(|f| f.get()) {
        Device::flex().autodiff()
    } else {
        Device::ndarray().autodiff()
    }
}

/// Deterministic pseudo-random values in [-scale, scale] + offset.
fn values(n: usize, seed: u64, scale: f64, offset: f64) -> Vec<f64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale + offset
        })
        .collect()
}

fn real() -> Vec<bool> {
    (0..B * T).map(|i| i % T < LENGTHS[i / T]).collect()
}

fn t1(v: &[f64]) -> Tensor<1> {
    Tensor::from_data(
        TensorData::new(v.iter().map(|&x| x as f32).collect::<Vec<_>>(), [v.len()]),
        &device(),
    )
}

fn t3(v: &[f64]) -> Tensor<3> {
    Tensor::from_data(
        TensorData::new(v.iter().map(|&x| x as f32).collect::<Vec<_>>(), [B, T, D]),
        &device(),
    )
}

fn mask() -> Tensor<3> {
    let m: Vec<f32> = real().iter().map(|&r| if r { 1.0 } else { 0.0 }).collect();
    Tensor::from_data(TensorData::new(m, [B, T, 1]), &device())
}

fn to_vec<const N: usize>(t: Tensor<N>) -> Vec<f64> {
    t.into_data().convert::<f64>().try_to_vec::<f64>().unwrap()
}

/// max |a - b| / max |b|
fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let den = b.iter().map(|y| y.abs()).fold(1e-12, f64::max);
    num / den
}

fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    let e = rel_err(got, want);
    assert!(
        e <= tol,
        "{what}: relative error {e:e} > {tol:e}\n got  {got:?}\n want {want:?}"
    );
}

fn ctx<'a>(mask: &'a Tensor<3>, training: bool, update: bool, step: usize) -> NormCtx<'a> {
    let n_real = real().iter().filter(|&&r| r).count();
    NormCtx {
        mask: Some(mask),
        n_real,
        training,
        update_running: update,
        step,
    }
}

/// What Burn computed for `L = sum(w * y)`.
struct Run {
    y: Vec<f64>,
    dx: Vec<f64>,
    dgamma: Vec<f64>,
    dbeta: Option<Vec<f64>>,
    stats: Option<BatchStats>,
    grad_stats: Option<GradStats>,
}

/// The ids of a norm layer's parameters named `gamma` and `beta` (the field names every norm
/// uses for its gain and bias), found by walking the module.
fn affine_ids(n: &NormLayer) -> (Option<ParamId>, Option<ParamId>) {
    #[derive(Default)]
    struct Ids {
        path: Vec<String>,
        gamma: Option<ParamId>,
        beta: Option<ParamId>,
    }
    impl ModuleVisitor for Ids {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const N: usize>(&mut self, p: &Param<Tensor<N>>) {
            match self.path.last().map(String::as_str) {
                Some("gamma") => self.gamma = Some(p.id),
                Some("beta") => self.beta = Some(p.id),
                _ => {}
            }
        }
    }
    let mut ids = Ids::default();
    n.visit(&mut ids);
    (ids.gamma, ids.beta)
}

fn run(norm: &NormLayer, x: &[f64], w: &[f64], ctx: &NormCtx) -> Run {
    let xt = t3(x).require_grad();
    let (y, stats) = norm.forward(xt.clone(), ctx);
    let loss = (y.clone() * t3(w)).sum();
    let grads = loss.backward();
    let grad_stats = stats
        .as_ref()
        .and_then(|s| norm.after_backward(&grads, s, ctx));
    let dx = to_vec(xt.grad(&grads).unwrap());
    let (gamma, beta) = affine_ids(norm);
    let params = GradientsParams::from_grads(grads, norm);
    let grad_of = |id: ParamId| to_vec(params.get::<1>(id).unwrap());
    Run {
        y: to_vec(y),
        dx,
        dgamma: gamma.map(grad_of).unwrap_or_default(),
        dbeta: beta.map(grad_of),
        stats,
        grad_stats,
    }
}

fn gamma_beta() -> (Vec<f64>, Vec<f64>) {
    (values(D, 11, 0.5, 1.0), values(D, 12, 0.3, 0.0))
}

fn loss_of(y: &[f64], w: &[f64]) -> f64 {
    y.iter().zip(w).map(|(a, b)| a * b).sum()
}

/// Central finite differences of `L(x) = sum(w * f(x))` in float64.
fn finite_diff(f: &dyn Fn(&[f64]) -> Vec<f64>, x: &[f64], w: &[f64]) -> Vec<f64> {
    let h = 1e-6;
    (0..x.len())
        .map(|k| {
            let mut xp = x.to_vec();
            let mut xm = x.to_vec();
            xp[k] += h;
            xm[k] -= h;
            (loss_of(&f(&xp), w) - loss_of(&f(&xm), w)) / (2.0 * h)
        })
        .collect()
}

// ---------- float64 references ----------

fn ln_ref(x: &[f64], g: &[f64], be: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for p in 0..B * T {
        let row = &x[p * D..(p + 1) * D];
        let mean = row.iter().sum::<f64>() / D as f64;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / D as f64;
        for d in 0..D {
            y[p * D + d] = g[d] * (row[d] - mean) / (var + EPS).sqrt() + be[d];
        }
    }
    y
}

fn rms_ref(x: &[f64], g: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for p in 0..B * T {
        let row = &x[p * D..(p + 1) * D];
        let ms = row.iter().map(|v| v * v).sum::<f64>() / D as f64;
        for d in 0..D {
            y[p * D + d] = g[d] * row[d] / (ms + EPS).sqrt();
        }
    }
    y
}

/// Per-feature mean and biased variance over real positions (`masked`) or all positions.
fn bn_stats(x: &[f64], masked: bool) -> (Vec<f64>, Vec<f64>) {
    let real = real();
    let use_pos: Vec<usize> = (0..B * T).filter(|&p| !masked || real[p]).collect();
    let n = use_pos.len() as f64;
    let mut mean = vec![0.0; D];
    let mut var = vec![0.0; D];
    for d in 0..D {
        mean[d] = use_pos.iter().map(|&p| x[p * D + d]).sum::<f64>() / n;
        var[d] = use_pos
            .iter()
            .map(|&p| (x[p * D + d] - mean[d]).powi(2))
            .sum::<f64>()
            / n;
    }
    (mean, var)
}

fn bn_apply(x: &[f64], mean: &[f64], var: &[f64], g: &[f64], be: &[f64]) -> Vec<f64> {
    (0..x.len())
        .map(|i| {
            let d = i % D;
            g[d] * (x[i] - mean[d]) / (var[d] + EPS).sqrt() + be[d]
        })
        .collect()
}

fn psi2_ref(x: &[f64]) -> Vec<f64> {
    let real = real();
    let n = real.iter().filter(|&&r| r).count() as f64;
    (0..D)
        .map(|d| {
            (0..B * T)
                .filter(|&p| real[p])
                .map(|p| x[p * D + d].powi(2))
                .sum::<f64>()
                / n
        })
        .collect()
}

fn scale_apply(x: &[f64], s: &[f64], g: &[f64], be: &[f64]) -> Vec<f64> {
    (0..x.len())
        .map(|i| {
            let d = i % D;
            g[d] * x[i] / (s[d] + EPS).sqrt() + be[d]
        })
        .collect()
}

fn dgamma_ref(z: &[f64], w: &[f64]) -> Vec<f64> {
    (0..D)
        .map(|d| (0..B * T).map(|p| w[p * D + d] * z[p * D + d]).sum())
        .collect()
}

fn dbeta_ref(w: &[f64]) -> Vec<f64> {
    (0..D)
        .map(|d| (0..B * T).map(|p| w[p * D + d]).sum())
        .collect()
}

/// dL/dvar and dL/dmu of `L = sum(w * bn_apply(x, mean, var))`, each with the other statistic
/// held fixed, by central finite differences in float64.
fn statistic_gradients_fd(
    x: &[f64],
    mean: &[f64],
    var: &[f64],
    g: &[f64],
    be: &[f64],
    w: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let h = 1e-6;
    let fd = |perturb_var: bool, d: usize| {
        let (mut mp, mut vp, mut mm, mut vm) =
            (mean.to_vec(), var.to_vec(), mean.to_vec(), var.to_vec());
        if perturb_var {
            vp[d] += h;
            vm[d] -= h;
        } else {
            mp[d] += h;
            mm[d] -= h;
        }
        (loss_of(&bn_apply(x, &mp, &vp, g, be), w) - loss_of(&bn_apply(x, &mm, &vm, g, be), w))
            / (2.0 * h)
    };
    (
        (0..D).map(|d| fd(true, d)).collect(),
        (0..D).map(|d| fd(false, d)).collect(),
    )
}

// ---------- tests ----------

/// `n` with its `gamma` and `beta` parameters (where it has them) set to `g` and `be`.
fn set_affine(n: NormLayer, g: &[f64], be: &[f64]) -> NormLayer {
    struct Set<'a> {
        path: Vec<String>,
        g: &'a [f64],
        be: &'a [f64],
    }
    impl ModuleMapper for Set<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn map_float<const N: usize>(&mut self, p: Param<Tensor<N>>) -> Param<Tensor<N>> {
            let v = match self.path.last().map(String::as_str) {
                Some("gamma") => self.g,
                Some("beta") => self.be,
                _ => return p,
            };
            let data: Vec<f32> = v.iter().map(|&x| x as f32).collect();
            let dims = p.val().dims();
            Param::from_tensor(Tensor::from_data(TensorData::new(data, dims), &device()))
        }
    }
    n.map(&mut Set {
        path: Vec::new(),
        g,
        be,
    })
}

/// The configuration the tests build norms from: width `D`, at most `T` positions, PowerNorm
/// with a 3-step warm-up, no GroupScaling and the authors' all-positions means.
fn test_config(kind: NormKind) -> NormConfig {
    NormConfig {
        max_positions: Some(T),
        ..NormConfig::new(kind)
    }
    .with(&super::EPS, OptionValue::Number(EPS))
    .with(&power::WARMUP, OptionValue::Count(3))
    .with(&power::GROUPS, OptionValue::Count(0))
    .with(&power::BACKWARD_MEANS, OptionValue::Choice("all"))
}

fn with_params(kind: NormKind) -> NormLayer {
    let (g, be) = gamma_beta();
    set_affine(test_config(kind).init(D, &device()), &g, &be)
}

#[test]
fn layer_norm_matches_float64_reference_and_finite_differences() {
    let (g, be) = gamma_beta();
    let x = values(B * T * D, 1, 2.0, 0.5);
    let w = values(B * T * D, 2, 1.0, 0.0);
    let norm = with_params(NormKind::Layer);
    let m = mask();
    for training in [true, false] {
        let r = run(&norm, &x, &w, &ctx(&m, training, false, 1));
        let f = |x: &[f64]| ln_ref(x, &g, &be);
        assert_close("LN y", &r.y, &f(&x), 1e-5);
        assert_close("LN dx", &r.dx, &finite_diff(&f, &x, &w), 1e-5);
        let (gone, zero) = (vec![1.0; D], vec![0.0; D]);
        let z = ln_ref(&x, &gone, &zero);
        assert_close("LN dgamma", &r.dgamma, &dgamma_ref(&z, &w), 1e-5);
        assert_close("LN dbeta", r.dbeta.as_ref().unwrap(), &dbeta_ref(&w), 1e-5);
        assert!(r.stats.is_none());
    }
}

#[test]
fn rms_norm_matches_float64_reference_and_finite_differences() {
    let (g, _) = gamma_beta();
    let x = values(B * T * D, 3, 2.0, 0.3);
    let w = values(B * T * D, 4, 1.0, 0.0);
    let norm = with_params(NormKind::Rms);
    let m = mask();
    let r = run(&norm, &x, &w, &ctx(&m, true, false, 1));
    let f = |x: &[f64]| rms_ref(x, &g);
    assert_close("RMS y", &r.y, &f(&x), 1e-5);
    assert_close("RMS dx", &r.dx, &finite_diff(&f, &x, &w), 1e-5);
    assert_close(
        "RMS dgamma",
        &r.dgamma,
        &dgamma_ref(&rms_ref(&x, &[1.0; D]), &w),
        1e-5,
    );
    assert!(r.dbeta.is_none());
}

#[test]
fn identity_passes_through() {
    let x = values(B * T * D, 5, 1.0, 0.0);
    let w = values(B * T * D, 6, 1.0, 0.0);
    let r = run(
        &with_params(NormKind::None),
        &x,
        &w,
        &ctx(&mask(), true, true, 1),
    );
    assert_close("identity y", &r.y, &x, 1e-7);
    assert_close("identity dx", &r.dx, &w, 1e-7);
}

fn check_batch_norm(masked: bool) {
    let (g, be) = gamma_beta();
    let kind = if masked {
        NormKind::MaskedBatch
    } else {
        NormKind::Batch
    };
    let norm = with_params(kind);
    let m = mask();
    let x = values(B * T * D, 7, 2.0, 0.7);
    let w = values(B * T * D, 8, 1.0, 0.0);
    // training step with running update
    let r = run(&norm, &x, &w, &ctx(&m, true, true, 1));
    let f = |x: &[f64]| {
        let (mean, var) = bn_stats(x, masked);
        bn_apply(x, &mean, &var, &g, &be)
    };
    let (mean, var) = bn_stats(&x, masked);
    assert_close("BN y", &r.y, &f(&x), 1e-5);
    assert_close("BN dx", &r.dx, &finite_diff(&f, &x, &w), 1e-5);
    let z = bn_apply(&x, &mean, &var, &[1.0; D], &[0.0; D]);
    assert_close("BN dgamma", &r.dgamma, &dgamma_ref(&z, &w), 1e-5);
    assert_close("BN dbeta", r.dbeta.as_ref().unwrap(), &dbeta_ref(&w), 1e-5);
    let stats = r.stats.unwrap();
    assert_close("BN batch mean", &to_vec(stats.mean.unwrap()), &mean, 1e-5);
    assert_close("BN batch var", &to_vec(stats.second), &var, 1e-5);
    assert_close(
        "BN running before",
        &to_vec(stats.running_second),
        &[1.0; D],
        1e-7,
    );
    // backward probes: dL/dvar and dL/dmu with the other statistic held fixed, by finite
    // differences of the float64 forward with injected statistics
    let grad = r.grad_stats.unwrap();
    let (dvar, dmean) = statistic_gradients_fd(&x, &mean, &var, &g, &be, &w);
    assert_close("BN dL/dvar", &to_vec(grad.d_second.unwrap()), &dvar, 1e-5);
    assert_close("BN dL/dmu", &to_vec(grad.d_mean.unwrap()), &dmean, 1e-5);
    // evaluation with the updated running statistics
    let rm: Vec<f64> = mean.iter().map(|m| 0.1 * m).collect();
    let rv: Vec<f64> = var.iter().map(|v| 0.9 + 0.1 * v).collect();
    let x2 = values(B * T * D, 9, 2.0, -0.2);
    let r = run(&norm, &x2, &w, &ctx(&m, false, false, 2));
    let f = |x: &[f64]| bn_apply(x, &rm, &rv, &g, &be);
    assert_close("BN eval y", &r.y, &f(&x2), 1e-5);
    assert_close("BN eval dx", &r.dx, &finite_diff(&f, &x2, &w), 1e-5);
    assert!(r.stats.is_none());
}

#[test]
fn batch_norm_naive_matches_float64_reference() {
    check_batch_norm(false);
}

#[test]
fn batch_norm_masked_matches_float64_reference() {
    check_batch_norm(true);
}

#[test]
fn pn_v_matches_float64_reference() {
    let (g, be) = gamma_beta();
    let norm = with_params(NormKind::PnV);
    let m = mask();
    let x = values(B * T * D, 13, 2.0, 0.4);
    let w = values(B * T * D, 14, 1.0, 0.0);
    let r = run(&norm, &x, &w, &ctx(&m, true, true, 1));
    let f = |x: &[f64]| scale_apply(x, &psi2_ref(x), &g, &be);
    let psi2 = psi2_ref(&x);
    assert_close("PN-V y", &r.y, &f(&x), 1e-5);
    assert_close("PN-V dx", &r.dx, &finite_diff(&f, &x, &w), 1e-5);
    let z = scale_apply(&x, &psi2, &[1.0; D], &[0.0; D]);
    assert_close("PN-V dgamma", &r.dgamma, &dgamma_ref(&z, &w), 1e-5);
    assert_close("PN-V psi2", &to_vec(r.stats.unwrap().second), &psi2, 1e-5);
    let h = 1e-6;
    let dpsi2: Vec<f64> = (0..D)
        .map(|d| {
            let (mut p, mut q) = (psi2.clone(), psi2.clone());
            p[d] += h;
            q[d] -= h;
            (loss_of(&scale_apply(&x, &p, &g, &be), &w)
                - loss_of(&scale_apply(&x, &q, &g, &be), &w))
                / (2.0 * h)
        })
        .collect();
    assert_close(
        "PN-V dL/dpsi2",
        &to_vec(r.grad_stats.unwrap().d_second.unwrap()),
        &dpsi2,
        1e-5,
    );
    // evaluation uses the running quadratic mean 0.9 * 1 + 0.1 * psi2
    let running: Vec<f64> = psi2.iter().map(|p| 0.9 + 0.1 * p).collect();
    let r = run(&norm, &x, &w, &ctx(&m, false, false, 2));
    let f = |x: &[f64]| scale_apply(x, &running, &g, &be);
    assert_close("PN-V eval y", &r.y, &f(&x), 1e-5);
    assert_close("PN-V eval dx", &r.dx, &finite_diff(&f, &x, &w), 1e-5);
}

/// Float64 PowerNorm state following the authors' recursion.
struct PnRef {
    running: Vec<f64>,
    nu: Vec<f64>,
    warmup: usize,
    groups: usize,
    divisor: BackwardDivisor,
    /// Gamma and Lambda over real tokens only (`BackwardMeans::Real`).
    real_only: bool,
}

struct PnStep {
    y: Vec<f64>,
    dx: Vec<f64>,
    dgamma: Vec<f64>,
    dbeta: Vec<f64>,
}

impl PnRef {
    fn group_scale(&self, x: &[f64]) -> Vec<f64> {
        if self.groups == 0 {
            return x.to_vec();
        }
        let size = D / self.groups;
        let mut out = x.to_vec();
        for p in 0..B * T {
            for gi in 0..self.groups {
                let r = p * D + gi * size..p * D + (gi + 1) * size;
                let ms = x[r.clone()].iter().map(|v| v * v).sum::<f64>() / size as f64;
                for i in r {
                    out[i] = x[i] / (ms + 1e-5).sqrt();
                }
            }
        }
        out
    }

    /// One training step; `dxs` is the gradient with respect to the group-scaled input.
    fn step(&mut self, step: usize, x: &[f64], w: &[f64], g: &[f64], be: &[f64]) -> PnStep {
        assert_eq!(
            self.groups, 0,
            "input gradient reference without GroupScaling"
        );
        let x = self.group_scale(x);
        let psi2 = psi2_ref(&x);
        let fwd = if step <= self.warmup {
            psi2.clone()
        } else {
            self.running.clone()
        };
        let bwd = match self.divisor {
            BackwardDivisor::Batch => psi2.clone(),
            BackwardDivisor::Running => self.running.clone(),
        };
        let z: Vec<f64> = (0..x.len())
            .map(|i| x[i] / (fwd[i % D] + EPS).sqrt())
            .collect();
        let y: Vec<f64> = (0..x.len()).map(|i| g[i % D] * z[i] + be[i % D]).collect();
        // running update
        let s = step as f64;
        for d in 0..D {
            if step < self.warmup {
                self.running[d] = self.running[d] * (s - 1.0) / s + psi2[d] / s;
            }
            self.running[d] = 0.9 * self.running[d] + 0.1 * psi2[d];
        }
        // approximate backward, means over all B*T positions (padding included) or real ones
        let real = real();
        let counted = |i: usize| !self.real_only || real[i / D];
        let n = (0..B * T).filter(|&p| counted(p * D)).count() as f64;
        let mut dx = vec![0.0; x.len()];
        let mut gz = vec![0.0; D];
        let mut zz = vec![0.0; D];
        for i in 0..x.len() {
            let d = i % D;
            let gi = g[d] * w[i];
            dx[i] = (gi - self.nu[d] * z[i]) / (bwd[d] + EPS).sqrt();
            if counted(i) {
                gz[d] += gi * z[i] / n;
                zz[d] += z[i] * z[i] / n;
            }
        }
        // the code's form: ema_gz += mean(a z), nu = 0.1 ema_gz
        for d in 0..D {
            let az = gz[d] - self.nu[d] * zz[d];
            self.nu[d] += 0.1 * az;
        }
        PnStep {
            y,
            dx,
            dgamma: dgamma_ref(&z, w),
            dbeta: dbeta_ref(w),
        }
    }
}

fn power_norm(divisor: BackwardDivisor, groups: usize) -> NormLayer {
    power_norm_with(divisor, groups, BackwardMeans::All)
}

fn power_norm_with(divisor: BackwardDivisor, groups: usize, means: BackwardMeans) -> NormLayer {
    let (g, be) = gamma_beta();
    let cfg = PowerConfig {
        alpha_fwd: 0.9,
        alpha_bkw: 0.9,
        warmup: 3,
        groups,
        backward_divisor: divisor,
        backward_means: means,
    };
    let mut n = PowerNorm::new(D, EPS, cfg, &device());
    n.gamma = Param::from_tensor(t1(&g));
    n.beta = Param::from_tensor(t1(&be));
    NormLayer::Power(n)
}

#[test]
fn power_norm_follows_the_float64_recursion_across_warmup() {
    check_power_norm_recursion();
}

#[test]
fn power_norm_custom_backward_runs_on_the_flex_backend_too() {
    FLEX.with(|f| f.set(true));
    check_power_norm_recursion();
    check_batch_norm(true);
}

#[test]
fn power_norm_real_token_backward_means_follow_their_recursion() {
    // padded positions get no gradient in the models; the reference then averages over real tokens
    check_power_norm_recursion_with(BackwardMeans::Real);
}

fn check_power_norm_recursion() {
    check_power_norm_recursion_with(BackwardMeans::All);
}

fn check_power_norm_recursion_with(means: BackwardMeans) {
    let real_only = means == BackwardMeans::Real;
    for divisor in [BackwardDivisor::Batch, BackwardDivisor::Running] {
        let (g, be) = gamma_beta();
        let norm = power_norm_with(divisor, 0, means);
        let NormLayer::Power(pn) = &norm else {
            unreachable!()
        };
        let mut reference = PnRef {
            running: vec![1.0; D],
            nu: vec![0.0; D],
            warmup: 3,
            groups: 0,
            divisor,
            real_only,
        };
        let m = mask();
        for step in 1..=6 {
            let x = values(B * T * D, 100 + step as u64, 2.0, 0.3 * step as f64);
            let mut w = values(B * T * D, 200 + step as u64, 1.0, 0.1);
            if real_only {
                let real = real();
                for (i, wi) in w.iter_mut().enumerate() {
                    if !real[i / D] {
                        *wi = 0.0;
                    }
                }
            }
            let r = run(&norm, &x, &w, &ctx(&m, true, true, step));
            let want = reference.step(step, &x, &w, &g, &be);
            let tag = format!("{divisor:?} step {step}");
            assert_close(&format!("{tag} y"), &r.y, &want.y, 1e-5);
            assert_close(&format!("{tag} dx"), &r.dx, &want.dx, 1e-5);
            assert_close(&format!("{tag} dgamma"), &r.dgamma, &want.dgamma, 1e-5);
            assert_close(
                &format!("{tag} dbeta"),
                r.dbeta.as_ref().unwrap(),
                &want.dbeta,
                1e-5,
            );
            assert_close(
                &format!("{tag} running"),
                &to_vec(pn.running_psi2.value_sync()),
                &reference.running,
                1e-5,
            );
            assert_close(
                &format!("{tag} nu"),
                &to_vec(pn.nu.value_sync()),
                &reference.nu,
                1e-5,
            );
            let stats = r.stats.unwrap();
            assert_eq!(stats.power.as_ref().unwrap().warmup, step <= 3);
        }
        // evaluation: running statistic, nothing updated
        let x = values(B * T * D, 300, 1.0, 0.0);
        let w = values(B * T * D, 301, 1.0, 0.0);
        let before = (
            to_vec(pn.running_psi2.value_sync()),
            to_vec(pn.nu.value_sync()),
        );
        let r = run(&norm, &x, &w, &ctx(&m, false, false, 7));
        let f = |x: &[f64]| scale_apply(x, &reference.running, &g, &be);
        assert_close("PN eval y", &r.y, &f(&x), 1e-5);
        assert_close("PN eval dx", &r.dx, &finite_diff(&f, &x, &w), 1e-5);
        assert_eq!(
            before,
            (
                to_vec(pn.running_psi2.value_sync()),
                to_vec(pn.nu.value_sync())
            )
        );
    }
}

#[test]
fn power_norm_group_scaling_matches_reference_forward() {
    let (g, be) = gamma_beta();
    let norm = power_norm(BackwardDivisor::Batch, 2);
    let reference = PnRef {
        running: vec![1.0; D],
        nu: vec![0.0; D],
        warmup: 3,
        groups: 2,
        divisor: BackwardDivisor::Batch,
        real_only: false,
    };
    let x = values(B * T * D, 400, 3.0, 0.5);
    let w = values(B * T * D, 401, 1.0, 0.0);
    let m = mask();
    let r = run(&norm, &x, &w, &ctx(&m, true, true, 1));
    let xs = reference.group_scale(&x);
    let want = scale_apply(&xs, &psi2_ref(&xs), &g, &be);
    assert_close("GroupScaling y", &r.y, &want, 1e-5);
    // the gradient flows through GroupScaling by ordinary autograd: finite differences of
    // (group scale -> fixed-statistic PowerNorm z) with the PN part's approximate gradient
    // would not be a true derivative, so check the non-approximate path at nu = 0, where
    // dx_scaled = g w / sqrt(psi2 + eps) exactly, chained through GroupScaling by FD.
    let psi2 = psi2_ref(&xs);
    let f = |x: &[f64]| scale_apply(&reference.group_scale(x), &psi2, &g, &be);
    assert_close("GroupScaling dx", &r.dx, &finite_diff(&f, &x, &w), 1e-4);
}

fn pad_perturbed(x: &[f64]) -> Vec<f64> {
    let real = real();
    let mut out = x.to_vec();
    for p in 0..B * T {
        if !real[p] {
            for d in 0..D {
                out[p * D + d] = 50.0 + 7.0 * d as f64;
            }
        }
    }
    out
}

#[test]
fn padding_values_do_not_change_masked_statistics_or_real_outputs() {
    let x = values(B * T * D, 21, 2.0, 0.5);
    let x_pad = pad_perturbed(&x);
    let w = values(B * T * D, 22, 1.0, 0.0);
    let real = real();
    let real_rows =
        |v: &[f64]| -> Vec<f64> { (0..v.len()).filter(|i| real[i / D]).map(|i| v[i]).collect() };
    // every registered norm that keeps batch statistics: only the naive BatchNorm sees padding
    for &kind in NormKind::ALL.iter().filter(|k| k.has_batch_stats()) {
        let a_norm = with_params(kind);
        let b_norm = with_params(kind);
        let m = mask();
        let a = run(&a_norm, &x, &w, &ctx(&m, true, true, 1));
        let b = run(&b_norm, &x_pad, &w, &ctx(&m, true, true, 1));
        let (sa, sb) = (
            to_vec(a.stats.unwrap().second),
            to_vec(b.stats.unwrap().second),
        );
        let stats_same = rel_err(&sa, &sb) < 1e-6;
        let out_same = rel_err(&real_rows(&a.y), &real_rows(&b.y)) < 1e-6;
        if kind == NormKind::Batch {
            assert!(
                !stats_same && !out_same,
                "naive BatchNorm must see the padding"
            );
        } else {
            assert!(stats_same, "{kind}: statistics changed with padding values");
            assert!(out_same, "{kind}: real outputs changed with padding values");
        }
    }
}

#[test]
fn invalid_norm_options_are_rejected() {
    let cfg = test_config(NormKind::Power).with(&power::GROUPS, OptionValue::Count(4));
    assert!(cfg.validate(6).unwrap_err().to_string().contains("groups"));
    let cfg = cfg.with(&power::GROUPS, OptionValue::Count(3));
    cfg.validate(6).unwrap();
    let momentum = cfg
        .clone()
        .with(&batch::MOMENTUM, OptionValue::Number(-0.5));
    assert!(momentum
        .validate(6)
        .unwrap_err()
        .to_string()
        .contains("momentum"));
    assert!(cfg
        .with(&super::EPS, OptionValue::Number(0.0))
        .validate(6)
        .is_err());
}

mod composed;
mod position_batch;
mod scaled_batch;
