//! PN-V against its float64 reference.

use super::*;

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
