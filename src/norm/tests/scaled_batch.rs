//! The authors' BatchNorm baseline (`scaled-batch`) against a float64 reference of their
//! `MaskSyncBatchNorm`: LayerScaling, pads filled with the real-token mean, BN over every
//! position, momentum 0.05 with an unbiased running variance.

use super::*;
use crate::norm::scaled_batch::{LAYER_SCALING_EPS, MOMENTUM};

/// LayerScaling of every row, then the padded rows replaced by the real rows' mean.
fn scaled_filled_ref(x: &[f64]) -> Vec<f64> {
    let real = real();
    let mut s = x.to_vec();
    for p in 0..B * T {
        let row = &x[p * D..(p + 1) * D];
        let rms = (row.iter().map(|v| v * v).sum::<f64>() / D as f64 + LAYER_SCALING_EPS).sqrt();
        for d in 0..D {
            s[p * D + d] = row[d] / rms;
        }
    }
    let n_real = real.iter().filter(|&&r| r).count() as f64;
    for d in 0..D {
        let mean = (0..B * T)
            .filter(|&p| real[p])
            .map(|p| s[p * D + d])
            .sum::<f64>()
            / n_real;
        for p in (0..B * T).filter(|&p| !real[p]) {
            s[p * D + d] = mean;
        }
    }
    s
}

/// Mean and biased variance over every position of the filled rows.
fn all_position_stats(f: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let n = (B * T) as f64;
    let mean: Vec<f64> = (0..D)
        .map(|d| (0..B * T).map(|p| f[p * D + d]).sum::<f64>() / n)
        .collect();
    let var = (0..D)
        .map(|d| {
            (0..B * T)
                .map(|p| (f[p * D + d] - mean[d]).powi(2))
                .sum::<f64>()
                / n
        })
        .collect();
    (mean, var)
}

#[test]
fn scaled_batch_norm_matches_float64_reference() {
    let (g, be) = gamma_beta();
    let norm = with_params(NormKind::ScaledBatch);
    let m = mask();
    let x = values(B * T * D, 31, 2.0, 0.5);
    let w = values(B * T * D, 32, 1.0, 0.0);
    let real = real();
    // training step with running update
    let r = run(&norm, &x, &w, &ctx(&m, true, true, 1));
    let f = |x: &[f64]| {
        let filled = scaled_filled_ref(x);
        let (mean, var) = all_position_stats(&filled);
        bn_apply(&filled, &mean, &var, &g, &be)
    };
    let filled = scaled_filled_ref(&x);
    let (mean, var) = all_position_stats(&filled);
    assert_close("scaled BN y", &r.y, &f(&x), 1e-5);
    assert_close("scaled BN dx", &r.dx, &finite_diff(&f, &x, &w), 1e-5);
    // padded positions output beta
    for p in (0..B * T).filter(|&p| !real[p]) {
        assert_close("scaled BN pad output", &r.y[p * D..(p + 1) * D], &be, 1e-5);
    }
    let z = bn_apply(&filled, &mean, &var, &[1.0; D], &[0.0; D]);
    assert_close("scaled BN dgamma", &r.dgamma, &dgamma_ref(&z, &w), 1e-5);
    assert_close(
        "scaled BN dbeta",
        r.dbeta.as_ref().unwrap(),
        &dbeta_ref(&w),
        1e-5,
    );
    // the batch mean is the real-token mean, the variance the real variance x N_real / N
    let stats = r.stats.unwrap();
    let (real_mean, real_var) = bn_stats(&filled, true);
    let n_real = real.iter().filter(|&&r| r).count() as f64;
    let diluted: Vec<f64> = real_var
        .iter()
        .map(|v| v * n_real / (B * T) as f64)
        .collect();
    assert_close(
        "scaled BN batch mean",
        &to_vec(stats.mean.unwrap()),
        &real_mean,
        1e-5,
    );
    assert_close("scaled BN batch var", &to_vec(stats.second), &diluted, 1e-5);
    assert_close(
        "scaled BN running before",
        &to_vec(stats.running_second),
        &[1.0; D],
        1e-7,
    );
    // backward probes by finite differences of the forward with injected statistics
    let grad = r.grad_stats.unwrap();
    let (dvar, dmean) = statistic_gradients_fd(&filled, &mean, &var, &g, &be, &w);
    assert_close(
        "scaled BN dL/dvar",
        &to_vec(grad.d_second.unwrap()),
        &dvar,
        1e-5,
    );
    assert_close(
        "scaled BN dL/dmu",
        &to_vec(grad.d_mean.unwrap()),
        &dmean,
        1e-5,
    );
    // running statistics: momentum 0.05, unbiased variance over all N positions
    let n = (B * T) as f64;
    let rm: Vec<f64> = mean.iter().map(|m| MOMENTUM * m).collect();
    let rv: Vec<f64> = var
        .iter()
        .map(|v| (1.0 - MOMENTUM) + MOMENTUM * v * n / (n - 1.0))
        .collect();
    // evaluation: LayerScaling and the fill as in training, running statistics, nothing updated
    let x2 = values(B * T * D, 33, 2.0, -0.3);
    let r = run(&norm, &x2, &w, &ctx(&m, false, false, 2));
    let f = |x: &[f64]| bn_apply(&scaled_filled_ref(x), &rm, &rv, &g, &be);
    assert_close("scaled BN eval y", &r.y, &f(&x2), 1e-5);
    assert_close("scaled BN eval dx", &r.dx, &finite_diff(&f, &x2, &w), 1e-5);
    assert!(r.stats.is_none());
    // a second evaluation gives the same: the running statistics were not touched
    let again = run(&norm, &x2, &w, &ctx(&m, false, false, 3));
    assert_close("scaled BN eval unchanged", &again.y, &r.y, 1e-7);
}

#[test]
fn scaled_batch_norm_without_padding_is_batch_norm_of_scaled_tokens() {
    let (g, be) = gamma_beta();
    let norm = with_params(NormKind::ScaledBatch);
    let x = values(B * T * D, 34, 1.5, 0.2);
    let w = values(B * T * D, 35, 1.0, 0.0);
    let no_mask = NormCtx {
        mask: None,
        n_real: B * T,
        training: true,
        update_running: false,
        step: 1,
    };
    let r = run(&norm, &x, &w, &no_mask);
    let scaled: Vec<f64> = (0..B * T)
        .flat_map(|p| {
            let row = &x[p * D..(p + 1) * D];
            let rms =
                (row.iter().map(|v| v * v).sum::<f64>() / D as f64 + LAYER_SCALING_EPS).sqrt();
            row.iter().map(move |v| v / rms).collect::<Vec<_>>()
        })
        .collect();
    let (mean, var) = all_position_stats(&scaled);
    assert_close(
        "scaled BN unpadded y",
        &r.y,
        &bn_apply(&scaled, &mean, &var, &g, &be),
        1e-5,
    );
}
