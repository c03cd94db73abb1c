//! BatchNorm, naive and masked, against float64 references: outputs, gradients, statistics
//! and their gradients, running statistics.

use super::*;

pub(super) fn check_batch_norm(masked: bool) {
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
