//! Learning-rate schedules: linear warm-up to the peak, then inverse-square-root decay
//! (fairseq's `inverse_sqrt`, the PowerNorm paper's schedule, the default), cosine decay to zero
//! at the last step, or the peak held.

use crate::config::Schedule;

/// Learning rate at 1-based `step`: `peak * min(step / warmup, sqrt(warmup / step))`.
pub fn inverse_sqrt(peak: f64, warmup: usize, step: usize) -> f64 {
    let w = warmup.max(1) as f64;
    let s = step.max(1) as f64;
    peak * (s / w).min((w / s).sqrt())
}

/// Learning rate at 1-based `step` of `steps` under `schedule`, warm-up included.
pub fn learning_rate(
    schedule: Schedule,
    peak: f64,
    warmup: usize,
    steps: usize,
    step: usize,
) -> f64 {
    if schedule == Schedule::InverseSqrt {
        return inverse_sqrt(peak, warmup, step);
    }
    let w = warmup.max(1) as f64;
    let s = step.max(1) as f64;
    if s <= w {
        return peak * s / w;
    }
    match schedule {
        Schedule::Constant => peak,
        Schedule::Cosine => {
            let span = (steps as f64 - w).max(1.0);
            let done = ((s - w) / span).min(1.0);
            peak * 0.5 * (1.0 + (std::f64::consts::PI * done).cos())
        }
        Schedule::InverseSqrt => unreachable!("handled above"),
    }
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
        for step in [1, 50, 100, 400] {
            assert_eq!(
                learning_rate(Schedule::InverseSqrt, 1e-3, 100, 500, step),
                inverse_sqrt(1e-3, 100, step)
            );
        }
    }

    #[test]
    fn cosine_and_constant_by_hand() {
        // warm-up 100 of 500 steps, peak 1e-3: linear to the peak, then cos from 1 to -1
        let cos = |step| learning_rate(Schedule::Cosine, 1e-3, 100, 500, step);
        assert!((cos(50) - 5e-4).abs() < 1e-15);
        assert!((cos(100) - 1e-3).abs() < 1e-15);
        assert!((cos(300) - 5e-4).abs() < 1e-15); // half way: cos(pi/2) = 0
        assert!((cos(200) - 1e-3 * 0.5 * (1.0 + (std::f64::consts::PI / 4.0).cos())).abs() < 1e-15);
        assert!(cos(500).abs() < 1e-18);
        let constant = |step| learning_rate(Schedule::Constant, 1e-3, 100, 500, step);
        assert!((constant(10) - 1e-4).abs() < 1e-15);
        assert_eq!(constant(101), 1e-3);
        assert_eq!(constant(500), 1e-3);
    }
}
