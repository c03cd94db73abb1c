//! Progress bars and stop handling, shared by the commands, the study runner and the training
//! loop (it imports none of them).

use indicatif::{ProgressBar, ProgressStyle};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
}

impl RunControl {
    /// No progress bar, never stopped from outside.
    pub fn hidden() -> Self {
        Self {
            progress: ProgressBar::hidden(),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// A run's progress bar (hidden when `quiet`).
pub fn progress_bar(quiet: bool, prefix: String) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
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
