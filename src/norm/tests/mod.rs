//! The norms' tests: each norm's in its own file beside this one (against an independent float64
//! reference written with plain loops: forward and backward, training and evaluation mode, finite
//! differences); here the shared helpers and references, and the properties every norm must
//! have (padding values never change masked statistics or real outputs; bad options refused).

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
    .with(&crate::norm::power::WARMUP, OptionValue::Count(3))
    .with(&crate::norm::power::GROUPS, OptionValue::Count(0))
    .with(
        &crate::norm::power::BACKWARD_MEANS,
        OptionValue::Choice("all"),
    )
}

fn with_params(kind: NormKind) -> NormLayer {
    let (g, be) = gamma_beta();
    set_affine(test_config(kind).init(D, &device()), &g, &be)
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
    let cfg = test_config(NormKind::Power).with(&crate::norm::power::GROUPS, OptionValue::Count(4));
    assert!(cfg.validate(6).unwrap_err().to_string().contains("groups"));
    let cfg = cfg.with(&crate::norm::power::GROUPS, OptionValue::Count(3));
    cfg.validate(6).unwrap();
    let momentum = cfg
        .clone()
        .with(&crate::norm::batch::MOMENTUM, OptionValue::Number(-0.5));
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

mod batch;
mod composed;
mod layer;
mod pnv;
mod position_batch;
mod power;
mod rms;
mod scaled_batch;
