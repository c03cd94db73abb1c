//! LayerNorm against its float64 reference and finite differences.

use super::*;

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
