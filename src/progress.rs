//! Progress bars and stop handling, shared by the commands, the study runner and the training
//! loop (it imports none of them).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `println!` to stdout, except that a closed pipe (`ablate run ... | head`) is ignored: the
/// work goes on and the exit code still reports its outcome.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` with the same closed-pipe rule as [`say!`].
#[macro_export]
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

pub use crate::{say, say_raw};

/// Exit code of a run stopped by Ctrl-C / SIGTERM (the shell convention for SIGINT).
pub const EXIT_INTERRUPTED: i32 = 130;

/// How a caller watches and controls a run.
#[derive(Clone)]
pub struct RunControl {
    pub progress: ProgressBar,
    /// Set (e.g. by a Ctrl-C handler) to stop the run cleanly after the current step.
    pub stop: Arc<AtomicBool>,
    /// Plain periodic log lines on stderr (`None`: the bar says it all, or nothing is wanted).
    pub log: Option<PlainLog>,
    /// Stop as Ctrl-C would once this many steps are done (`--stop-at-step`).
    pub stop_at: Option<usize>,
}

/// Periodic plain lines for logs that are files (a batch system's job output), where a progress
/// bar draws nothing: step, loss, learning rate, ms/step, tokens/s and ETA, at most every
/// `every`, and at the first and the last step.
#[derive(Clone)]
pub struct PlainLog {
    pub label: String,
    pub every: Duration,
    started: Instant,
    last: Arc<Mutex<Option<Instant>>>,
    /// The first step this process reported and when (a resumed run starts late): the ETA is
    /// the rate since then, not since the process started loading data.
    first: Arc<Mutex<Option<(usize, Instant)>>>,
}

impl PlainLog {
    pub fn new(label: String, every: Duration) -> Self {
        Self {
            label,
            every,
            started: Instant::now(),
            last: Arc::new(Mutex::new(None)),
            first: Arc::new(Mutex::new(None)),
        }
    }

    /// The line for `step` if one is due.
    pub fn line(&self, s: &StepReport) -> Option<String> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let (first_step, first_at) = *self
            .first
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert((s.step, now));
        let due =
            s.step == first_step || s.step == s.steps || last.is_none_or(|t| now - t >= self.every);
        if !due {
            return None;
        }
        *last = Some(now);
        let elapsed = (now - self.started).as_secs_f64();
        let left = (s.steps - s.step) as f64;
        let eta = if s.step > first_step {
            (now - first_at).as_secs_f64() / (s.step - first_step) as f64 * left
        } else {
            s.step_ms / 1e3 * left
        };
        Some(format!(
            "{} step {}/{} loss {:.4} lr {:.3e} {:.0} ms/step {:.0} {}/s elapsed {} eta {}",
            self.label,
            s.step,
            s.steps,
            s.loss,
            s.lr,
            s.step_ms,
            s.tokens_per_s,
            s.unit,
            clock(elapsed),
            clock(eta)
        ))
    }
}

/// Beyond this many seconds left, a run says how long it will take ([`long_run_warning`]).
pub const LONG_RUN_S: f64 = 7.0 * 24.0 * 3600.0;

/// The warning for a run whose `left` of `steps` steps take more than [`LONG_RUN_S`] at
/// `step_ms` a step (`None` when they take less): `--steps 1000000000000` is more likely a
/// typo than a plan. `resumed`: the run went on from a checkpoint; `checkpoints`: whether a
/// stop saves a checkpoint to resume from.
pub fn long_run_warning(
    step_ms: f64,
    left: usize,
    steps: usize,
    resumed: bool,
    checkpoints: bool,
) -> Option<String> {
    let seconds = step_ms / 1e3 * left as f64;
    if seconds.is_nan() || seconds <= LONG_RUN_S {
        return None;
    }
    let days = seconds / 86400.0;
    let years = days / 365.25;
    let how_long = if years >= 1e6 {
        format!("{years:.1e} years")
    } else if years >= 2.0 {
        format!("{years:.0} years")
    } else {
        format!("{days:.0} days")
    };
    let ms = if step_ms >= 10.0 {
        format!("{step_ms:.0}")
    } else {
        format!("{step_ms:.2}")
    };
    let what = if !resumed {
        format!("{steps} steps take")
    } else {
        format!("the {left} steps left of {steps} take")
    };
    let stop = if checkpoints {
        "Ctrl-C stops the run with a checkpoint (ablate --resume continues it)"
    } else {
        "Ctrl-C stops the run (without checkpoints: checkpoint-every is 0)"
    };
    Some(format!(
        "ablate: warning: at {ms} ms/step, {what} about {how_long}; {stop}"
    ))
}

/// `1h02m03s`, `4m05s`, `6s`.
pub fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec:02}s"),
        (h, m, sec) => format!("{h}h{m:02}m{sec:02}s"),
    }
}

/// What a training step reports.
pub struct StepReport {
    pub step: usize,
    pub steps: usize,
    pub loss: f64,
    pub lr: f64,
    pub step_ms: f64,
    /// Real tokens (text) or images per second.
    pub tokens_per_s: f64,
    /// What `tokens_per_s` counts: "tokens" or "images".
    pub unit: &'static str,
}

/// Whether stderr is a terminal (where progress bars draw).
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

impl RunControl {
    /// No progress bar, never stopped from outside.
    pub fn hidden() -> Self {
        Self {
            progress: ProgressBar::hidden(),
            stop: Arc::new(AtomicBool::new(false)),
            log: None,
            stop_at: None,
        }
    }

    /// A bar on a terminal; plain lines every 30 s when stderr is a file; nothing when `quiet`.
    pub fn new(quiet: bool, label: String, steps: usize, stop: Arc<AtomicBool>) -> Self {
        let plain = !quiet && !stderr_is_terminal();
        Self {
            progress: progress_bar(quiet || plain, label.clone(), steps as u64),
            stop,
            log: plain.then(|| PlainLog::new(label, Duration::from_secs(30))),
            stop_at: None,
        }
    }

    /// Whether the run must stop before training step `step`.
    pub fn stopped_before(&self, step: usize) -> bool {
        self.stop.load(Ordering::SeqCst) || self.stop_at.is_some_and(|s| step > s)
    }

    /// After each training step: the bar's position and message, or a plain line when due.
    pub fn report(&self, s: &StepReport) {
        self.progress.set_position(s.step as u64);
        self.progress.set_message(format!(
            "loss {:.3} | {:.1} steps/s",
            s.loss,
            1e3 / s.step_ms
        ));
        if let Some(line) = self.log.as_ref().and_then(|l| l.line(s)) {
            eprintln!("{line}");
        }
    }

    /// A warning that must be seen even with `--quiet`: above the bar, else on stderr.
    pub fn warn(&self, msg: String) {
        if self.progress.is_hidden() {
            eprintln!("{msg}");
        } else {
            self.progress.println(msg);
        }
    }

    /// A message that must be seen: above the bar, or as a plain line.
    pub fn println(&self, msg: String) {
        if self.progress.is_hidden() {
            if self.log.is_some() {
                eprintln!("{msg}");
            }
        } else {
            self.progress.println(msg);
        }
    }
}

/// A run's progress bar over `steps` (hidden when `quiet`); it knows its length from the start,
/// so it never shows a `0/0` line.
pub fn progress_bar(quiet: bool, prefix: String, steps: u64) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30.cyan/blue}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(prefix);
    bar
}

/// The stop flag that Ctrl-C and SIGTERM set; a second Ctrl-C exits at once.
pub fn install_stop_handler() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(EXIT_INTERRUPTED);
        }
        eprintln!("ablate: stopping after the current step (Ctrl-C again to quit at once)");
    });
    stop
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_longer_than_a_week_is_told_how_long() {
        assert_eq!(long_run_warning(23.0, 1000, 1000, false, true), None);
        // just under and over a week
        assert_eq!(
            long_run_warning(1000.0, 604_800, 604_800, false, true),
            None
        );
        let w = long_run_warning(1000.0, 604_801 * 2, 604_801 * 2, false, true).unwrap();
        assert!(
            w.contains("at 1000 ms/step, 1209602 steps take about 14 days"),
            "{w}"
        );
        let w = long_run_warning(23.0, 1_000_000_000_000, 1_000_000_000_000, false, true).unwrap();
        assert_eq!(
            w,
            "ablate: warning: at 23 ms/step, 1000000000000 steps take about 729 years; Ctrl-C stops the run with a checkpoint (ablate --resume continues it)"
        );
        let w = long_run_warning(0.5, usize::MAX, usize::MAX, true, false).unwrap();
        assert!(
            w.contains("at 0.50 ms/step, the 18446744073709551615 steps left of 18446744073709551615 take about 2.9e8 years; Ctrl-C stops the run (without checkpoints"),
            "{w}"
        );
    }
}
