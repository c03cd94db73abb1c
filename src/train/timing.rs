//! Step timings of a run: kept per step, summarized over its second half into the summary.

use crate::results::{PhaseTimes, Summary};

/// Step times over the second half of a run: the first steps warm caches (and compile GPU
/// kernels).
#[derive(Default)]
pub(super) struct Timings {
    pub(super) step_ms: Vec<f64>,
    /// forward, backward, norms and clipping, optimizer, probes and read
    phases: Vec<[f64; 5]>,
    tokens: Vec<usize>,
    /// Running totals, for the progress line's rate at every step.
    total_ms: f64,
    total_tokens: usize,
}

impl Timings {
    pub(super) fn push(&mut self, step_ms: f64, phases: [f64; 5], tokens: usize) {
        self.step_ms.push(step_ms);
        self.phases.push(phases);
        self.tokens.push(tokens);
        self.total_ms += step_ms;
        self.total_tokens += tokens;
    }

    /// Tokens (or images) per second over every step so far.
    pub(super) fn rate(&self) -> f64 {
        self.total_tokens as f64 / (self.total_ms / 1e3).max(1e-9)
    }

    /// Median step time, phase times and tokens/s over the second half, into the summary (once,
    /// when the run stops: sorting the second half at every step would grow with the run).
    pub(super) fn summarize(&self, summary: &mut Summary) {
        if self.step_ms.is_empty() {
            return;
        }
        let half = self.step_ms.len() / 2;
        summary.median_step_ms = upper_median(self.step_ms[half..].to_vec());
        let late = &self.phases[half..];
        let phase =
            |i: usize| upper_median(late.iter().map(|p| p[i]).collect()).unwrap_or(f64::NAN);
        summary.phase_ms = Some(PhaseTimes {
            forward: phase(0),
            backward: phase(1),
            norms_and_clip: phase(2),
            optimizer: phase(3),
            probes_and_read: phase(4),
        });
        let late_s: f64 = self.step_ms[half..].iter().sum::<f64>() / 1e3;
        let late_tokens: usize = self.tokens[half..].iter().sum();
        summary.tokens_per_s = Some(late_tokens as f64 / late_s.max(1e-9));
    }
}

/// The upper median (the middle element, or the larger of the two middle ones): a time that
/// was actually measured.
pub(super) fn upper_median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Some(v[v.len() / 2])
}
