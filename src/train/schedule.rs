//! Learning-rate schedule: linear warm-up, then inverse-square-root decay (fairseq's
//! `inverse_sqrt`, the PowerNorm paper's schedule).

/// Learning rate at 1-based `step`: `peak * min(step / warmup, sqrt(warmup / step))`.
pub fn inverse_sqrt(peak: f64, warmup: usize, step: usize) -> f64 {
    let w = warmup.max(1) as f64;
    let s = step.max(1) as f64;
    peak * (s / w).min((w / s).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_inverse_sqrt() {
        assert!((inverse_sqrt(1e-3, 100, 1) - 1e-5).abs() < 1e-15);
        assert!((inverse_sqrt(1e-3, 100, 50) - 5e-4).abs() < 1e-15);
        assert!((inverse_sqrt(1e-3, 100, 100) - 1e-3).abs() < 1e-15);
        assert!((inverse_sqrt(1e-3, 100, 400) - 5e-4).abs() < 1e-15);
        assert!((inverse_sqrt(1e-3, 0, 4) - 5e-4).abs() < 1e-15);
    }
}
