//! Declared norms: each built-in norm's declared twin (`experiments/norms.toml`) against the
//! built-in norm, step by step across PowerNorm's warm-up, in training and evaluation mode, on
//! ndarray and flex: outputs, input and parameter gradients, batch and running statistics and
//! the statistics' gradients agree bit for bit. The parts no built-in norm has (statistics per
//! group of features, a running statistic in the forward pass, centring with a quadratic mean)
//! against float64 references; the rules between parts.

use super::*;
use crate::norm::composed::decl::{parse_decl, parse_norms, Axes, Forward, Means, Scale};
use crate::norm::composed::NormDecl;

const TWINS: &str = include_str!("../../../experiments/norms.toml");

/// The twin of `builtin` in `experiments/norms.toml`, fitted to the tests' width and warm-up
/// (2 GroupScaling groups over `D` features, 3 warm-up steps, as [`power_twin_config`]).
fn twin(builtin: &str) -> NormDecl {
    let table: toml::Table = toml::from_str(TWINS).unwrap();
    let mut decl = parse_norms(&table).unwrap()[&format!("{builtin}-twin")].clone();
    if decl.groups.is_some() {
        decl.groups = Some(2);
    }
    if decl.warmup.is_some() {
        decl.warmup = Some(3);
    }
    decl
}

fn declared(decl: NormDecl) -> NormLayer {
    let (g, be) = gamma_beta();
    let cfg = NormConfig {
        decl: Some(decl),
        ..test_config(NormKind::DECLARED)
    };
    cfg.validate(D).unwrap();
    set_affine(cfg.init(D, &device()), &g, &be)
}

/// PowerNorm as its twin declares it, at the tests' size.
fn power_twin_config() -> NormConfig {
    test_config(NormKind::Power)
        .with(&crate::norm::power::GROUPS, OptionValue::Count(2))
        .with(
            &crate::norm::power::BACKWARD_MEANS,
            OptionValue::Choice("real"),
        )
}

fn builtin(kind: NormKind) -> NormLayer {
    if kind == NormKind::Power {
        let (g, be) = gamma_beta();
        return set_affine(power_twin_config().init(D, &device()), &g, &be);
    }
    with_params(kind)
}

fn same(what: &str, a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(x.to_bits() == y.to_bits(), "{what}[{i}]: {x} != {y}");
    }
}

fn same_opt(what: &str, a: Option<Tensor<1>>, b: Option<Tensor<1>>) {
    assert_eq!(a.is_some(), b.is_some(), "{what}: present in one only");
    if let (Some(a), Some(b)) = (a, b) {
        same(what, &to_vec(a), &to_vec(b));
    }
}

fn same_stats(step: usize, a: &Run, b: &Run) {
    let at = |w: &str| format!("step {step}: {w}");
    assert_eq!(
        a.stats.is_some(),
        b.stats.is_some(),
        "{}",
        at("batch statistics")
    );
    if let (Some(s), Some(t)) = (&a.stats, &b.stats) {
        assert_eq!(s.kind, t.kind);
        same(
            &at("statistic"),
            &to_vec(s.second.clone()),
            &to_vec(t.second.clone()),
        );
        same(
            &at("running"),
            &to_vec(s.running_second.clone()),
            &to_vec(t.running_second.clone()),
        );
        same_opt(&at("mean"), s.mean.clone(), t.mean.clone());
        same_opt(
            &at("running mean"),
            s.running_mean.clone(),
            t.running_mean.clone(),
        );
        let gamma_stat = |s: &BatchStats| s.power.as_ref().map(|p| p.gamma_stat.clone());
        same_opt(&at("Gamma"), gamma_stat(s), gamma_stat(t));
    }
    assert_eq!(
        a.grad_stats.is_some(),
        b.grad_stats.is_some(),
        "{}",
        at("gradient statistics")
    );
    if let (Some(g), Some(h)) = (&a.grad_stats, &b.grad_stats) {
        same_opt(&at("dL/dmean"), g.d_mean.clone(), h.d_mean.clone());
        same_opt(&at("dL/dsecond"), g.d_second.clone(), h.d_second.clone());
        let nu = |g: &GradStats| g.power.as_ref().map(|p| p.nu.clone());
        let lambda = |g: &GradStats| g.power.as_ref().map(|p| p.lambda.clone());
        same_opt(&at("nu"), nu(g), nu(h));
        same_opt(&at("Lambda"), lambda(g), lambda(h));
    }
}

/// Six training steps (across the 3-step warm-up), then evaluation: everything bit for bit.
fn check_twin(kind: NormKind) {
    let (a, b) = (builtin(kind), declared(twin(kind.name())));
    let m = mask();
    for step in 1..=6 {
        let x = values(B * T * D, 100 + step as u64, 2.0, 0.3);
        let w = values(B * T * D, 200 + step as u64, 1.0, 0.0);
        let c = ctx(&m, true, true, step);
        let (ra, rb) = (run(&a, &x, &w, &c), run(&b, &x, &w, &c));
        let at = |w: &str| format!("{kind} step {step}: {w}");
        same(&at("output"), &ra.y, &rb.y);
        same(&at("dL/dx"), &ra.dx, &rb.dx);
        same(&at("dL/dgamma"), &ra.dgamma, &rb.dgamma);
        assert_eq!(ra.dbeta, rb.dbeta, "{}", at("dL/dbeta"));
        same_stats(step, &ra, &rb);
    }
    let x = values(B * T * D, 300, 2.0, 0.3);
    let w = values(B * T * D, 301, 1.0, 0.0);
    let c = ctx(&m, false, false, 7);
    same(
        &format!("{kind} evaluation"),
        &run(&a, &x, &w, &c).y,
        &run(&b, &x, &w, &c).y,
    );
}

const EXPRESSED: [NormKind; 8] = [
    NormKind::Layer,
    NormKind::Rms,
    NormKind::Batch,
    NormKind::MaskedBatch,
    NormKind::ScaledBatch,
    NormKind::PositionBatch,
    NormKind::PnV,
    NormKind::Power,
];

#[test]
fn every_declared_twin_matches_its_built_in_norm_bit_for_bit() {
    for kind in EXPRESSED {
        check_twin(kind);
    }
}

#[test]
fn declared_twins_match_on_the_flex_backend_too() {
    FLEX.with(|f| f.set(true));
    for kind in EXPRESSED {
        check_twin(kind);
    }
}

#[test]
fn declared_facts_match_the_built_in_norms() {
    for kind in EXPRESSED {
        let cfg = NormConfig {
            decl: Some(twin(kind.name())),
            ..test_config(NormKind::DECLARED)
        };
        let (got, want) = (cfg.info(), kind.info());
        assert_eq!(got.statistic, want.statistic, "{kind}");
        assert_eq!(got.params_per_feature, want.params_per_feature, "{kind}");
        assert_eq!(got.buffers_per_feature, want.buffers_per_feature, "{kind}");
        assert_eq!(
            got.buffers_per_position, want.buffers_per_position,
            "{kind}"
        );
    }
}

fn decl(text: &str) -> anyhow::Result<NormDecl> {
    parse_decl("n", toml::from_str::<toml::Value>(text).unwrap())
}

/// Group statistics: mean and biased variance over the real tokens and the `D / G` features of
/// each group, in float64.
#[test]
fn group_statistics_match_a_float64_reference() {
    let d = decl("axes = \"group\"\ngroups = 2\nscale = \"variance\"").unwrap();
    assert_eq!(d.axes, Axes::Group);
    let norm = declared(d);
    let x = values(B * T * D, 7, 2.0, 0.5);
    let w = values(B * T * D, 8, 1.0, 0.0);
    let m = mask();
    let r = run(&norm, &x, &w, &ctx(&m, true, true, 1));
    let real = real();
    let (g, be) = gamma_beta();
    let per = D / 2;
    let mut want = x.clone();
    for group in 0..2 {
        let vals: Vec<f64> = (0..B * T)
            .filter(|&p| real[p])
            .flat_map(|p| (0..per).map(move |f| (p, group * per + f)))
            .map(|(p, f)| x[p * D + f])
            .collect();
        let mean = vals.iter().sum::<f64>() / vals.len() as f64;
        let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64;
        for p in 0..B * T {
            for f in group * per..(group + 1) * per {
                want[p * D + f] = g[f] * (x[p * D + f] - mean) / (var + EPS).sqrt() + be[f];
            }
        }
    }
    assert_close("group-normalized output", &r.y, &want, 1e-5);
}

/// `forward = "running"`: the running quadratic mean from before the step normalizes, and
/// moves by the momentum toward the batch's.
#[test]
fn a_running_statistic_in_the_forward_pass_follows_a_float64_reference() {
    let d = "axes = \"batch\"\ncentre = false\nscale = \"quadratic-mean\"\nforward = \"running\"\nmomentum = 0.2";
    let d = decl(d).unwrap();
    assert_eq!(d.forward, Some(Forward::Running));
    let norm = declared(d);
    let (g, be) = gamma_beta();
    let m = mask();
    let mut running = vec![1.0; D];
    for step in 1..=3 {
        let x = values(B * T * D, 40 + step as u64, 2.0, 0.2);
        let w = values(B * T * D, 50 + step as u64, 1.0, 0.0);
        let r = run(&norm, &x, &w, &ctx(&m, true, true, step));
        let want = scale_apply(&x, &running, &g, &be);
        assert_close(&format!("step {step} output"), &r.y, &want, 1e-5);
        // the statistic is a constant of the step: the gradient is gamma w / sqrt(running + eps)
        let dx: Vec<f64> = (0..B * T * D)
            .map(|i| g[i % D] * w[i] / (running[i % D] + EPS).sqrt())
            .collect();
        assert_close(&format!("step {step} dL/dx"), &r.dx, &dx, 1e-5);
        assert!(r.grad_stats.is_none(), "no batch statistic was used");
        let psi2 = psi2_ref(&x);
        for f in 0..D {
            running[f] = 0.8 * running[f] + 0.2 * psi2[f];
        }
    }
}

/// Centring with a quadratic mean: `(x - mu) / sqrt(mean(x^2) + eps)` per token.
#[test]
fn centring_with_a_quadratic_mean_per_token_follows_a_float64_reference() {
    let d = decl("axes = \"token\"\nscale = \"quadratic-mean\"\naffine = \"none\"").unwrap();
    assert_eq!(d.scale, Scale::QuadraticMean);
    let norm = declared(d);
    let x = values(B * T * D, 9, 2.0, 0.5);
    let w = values(B * T * D, 10, 1.0, 0.0);
    let m = mask();
    let r = run(&norm, &x, &w, &ctx(&m, true, true, 1));
    let mut want = x.clone();
    for p in 0..B * T {
        let row = &x[p * D..(p + 1) * D];
        let mean = row.iter().sum::<f64>() / D as f64;
        let ms = row.iter().map(|v| v * v).sum::<f64>() / D as f64;
        for f in 0..D {
            want[p * D + f] = (row[f] - mean) / (ms + EPS).sqrt();
        }
    }
    assert_close("output", &r.y, &want, 1e-5);
    assert!(
        r.dgamma.is_empty() && r.dbeta.is_none(),
        "affine = none has no parameters"
    );
}

#[test]
fn conflicting_parts_are_refused_in_one_line_that_names_them() {
    let refused = [
        ("axes = \"batch\"\nscale = \"variance\"\nbackward = \"approximate\"", "backward = \"approximate\" needs scale = \"quadratic-mean\""),
        ("axes = \"token\"\ncentre = false\nscale = \"quadratic-mean\"\nbackward = \"approximate\"", "needs axes = \"batch\""),
        ("axes = \"batch\"\ncentre = false\nscale = \"quadratic-mean\"\nbackward = \"approximate\"\naffine = \"none\"", "needs affine with a gain"),
        ("axes = \"token\"\nscale = \"variance\"\nmomentum = 0.1", "momentum does not apply"),
        ("axes = \"token\"\nscale = \"variance\"\nforward = \"running\"", "forward does not apply"),
        ("axes = \"batch\"\nscale = \"variance\"\nforward = \"warmup-then-running\"", "need warmup = STEPS"),
        ("axes = \"group\"\nscale = \"variance\"", "need groups = G"),
        ("axes = \"batch\"\nscale = \"variance\"\ngroups = 2", "groups does not apply"),
        ("axes = \"batch\"\ncentre = false\nscale = \"none\"", "normalizes nothing"),
        ("axes = \"position\"\nscale = \"variance\"\npositions = \"filled\"", "positions = \"filled\" needs axes = \"batch\""),
        ("axes = \"batch\"\nscale = \"quadratic-mean\"\nrunning-variance = \"unbiased\"", "running-variance does not apply"),
        ("axes = \"batch\"\nscale = \"variance\"\nnu-momentum = 0.1", "nu-momentum does not apply"),
        ("axes = \"batch\"\nscale = \"variance\"\nmomentum = 1.5", "momentum must be between 0 and 1"),
        ("axes = \"batch\"\nscale = \"variance\"\neps = 0", "eps must be a finite number > 0"),
        ("axes = \"diagonal\"\nscale = \"variance\"", "unknown value `diagonal`"),
        ("axes = \"batch\"\nscale = \"variance\"\ncenter = true", "`center`"),
    ];
    for (text, want) in refused {
        let e = decl(text).unwrap_err().to_string();
        assert!(e.contains(want) && !e.contains('\n'), "{text:?}: {e}");
        assert!(e.starts_with("norms.n: "), "{e}");
    }
    // the model's width and task
    let groups = decl("axes = \"group\"\ngroups = 4\nscale = \"variance\"").unwrap();
    assert!(groups
        .check_model(6, Some(4))
        .unwrap_err()
        .to_string()
        .contains("groups (4) must divide"));
    let position = decl("axes = \"position\"\nscale = \"variance\"").unwrap();
    assert!(position
        .check_model(6, None)
        .unwrap_err()
        .to_string()
        .contains("--task text"));
    // a built-in norm's name is not a declaration's
    let e = parse_decl(
        "layer",
        toml::from_str("axes = \"token\"\nscale = \"variance\"").unwrap(),
    );
    assert!(e.unwrap_err().to_string().contains("built-in norm"));
}

#[test]
fn a_declaration_resolves_to_its_content_whatever_it_leaves_to_defaults() {
    let short = decl("axes = \"batch\"\nscale = \"variance\"").unwrap();
    let long = decl(
        "axes = \"batch\"\nscale = \"variance\"\npositions = \"real\"\ncentre = true\nforward = \"batch\"\nrunning = \"ema\"\nmomentum = 0.1\nrunning-variance = \"biased\"\naffine = \"gain-bias\"\neps = 1e-5",
    )
    .unwrap();
    assert_eq!(short, long);
    assert_eq!(short.inline(), long.inline());
    let power = twin("power");
    assert_eq!(power.backward_means, Some(Means::Real));
    // resolving twice changes nothing
    assert_eq!(power.clone().resolve().unwrap(), power);
}
