//! RMSNorm against its float64 reference and finite differences.

use super::*;

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
