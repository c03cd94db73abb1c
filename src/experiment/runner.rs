//! Running a study's configurations: skip finished runs, parallel jobs, a lock per run folder,
//! one failure does not stop the others.

use crate::config::RunConfig;
use crate::errors::one_line;
use crate::progress::RunControl;
use crate::results::{read_summary, RunLock, RunStatus, Summary};
use crate::train;
use crate::train::checkpoint::Checkpoint;
use anyhow::{Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What happened to one run of a study.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Already finished (or diverged) in an earlier invocation.
    Skipped(Summary),
    /// Another process holds the run's lock.
    Busy,
    /// Trained (to its end, or until stopped); resumed from the given step.
    Ran(Summary, Option<usize>),
    Failed(String),
    /// Not started: the study was stopped (Ctrl-C, a time limit) before its turn came.
    NotStarted,
}

/// State of a run folder.
pub fn existing_status(dir: &Path) -> Option<RunStatus> {
    read_summary(dir).ok().map(|s| s.status)
}

/// Runs one configuration of a study into its folder in `out` ([`RunConfig::run_dir`]). A run
/// interrupted with a checkpoint of this configuration and build continues from it; any other
/// incomplete run (or every run, with `force`) starts over.
pub fn run_one(config: &RunConfig, out: &Path, force: bool, control: &RunControl) -> Outcome {
    let dir = config.run_dir(out);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<Outcome> {
        if dir.is_symlink() {
            anyhow::bail!(
                "{} is a symbolic link: ablate writes only into real folders",
                dir.display()
            );
        }
        // a finished run is skipped without writing anything (no lock either): a study over
        // finished results works on a read-only copy of them
        if !force {
            if let Ok(s) = read_summary(&dir) {
                if matches!(s.status, RunStatus::Finished | RunStatus::Diverged) {
                    return Ok(Outcome::Skipped(s));
                }
            }
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create run folder {}", dir.display()))?;
        let Some(_lock) = RunLock::acquire(&dir)? else {
            return Ok(Outcome::Busy);
        };
        if !force {
            if let Ok(s) = read_summary(&dir) {
                if matches!(s.status, RunStatus::Finished | RunStatus::Diverged) {
                    return Ok(Outcome::Skipped(s));
                }
            }
            let latest = Checkpoint::latest(&dir)?;
            for note in latest.notes() {
                eprintln!("warning: {}: {}", config.id(), one_line(&note));
            }
            if let Some(c) = latest.checkpoint {
                match c.check_compatible(config) {
                    Ok(()) => {
                        let data = train::load_data_in(config, Some(out))?;
                        let summary = train::resume(config, &data, &dir, &c, control)?;
                        return Ok(Outcome::Ran(summary, Some(c.state.step)));
                    }
                    Err(e) => eprintln!(
                        "warning: {} starts over: {}",
                        config.id(),
                        one_line(&format!("{e:#}"))
                    ),
                }
            }
        }
        // an incomplete (interrupted, failed, crashed) or forced run starts over; entries are
        // removed, never followed (a symlink inside is deleted as a link)
        for f in std::fs::read_dir(&dir)? {
            let entry = f?;
            let p = entry.path();
            if p.file_name().is_some_and(|n| n != ".lock") {
                let removed = if entry.file_type()?.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
                removed.with_context(|| format!("cannot clear {}", p.display()))?;
            }
        }
        let data = train::load_data_in(config, Some(out))?;
        Ok(Outcome::Ran(
            train::run(config, &data, &dir, control)?,
            None,
        ))
    }))
    .unwrap_or_else(|panic| {
        Err(anyhow::anyhow!(
            "internal error: {}",
            train::panic_message(&*panic)
        ))
    });
    result.unwrap_or_else(|e| Outcome::Failed(one_line(&format!("{e:#}"))))
}

/// Runs `runs`, `jobs` at a time. Returns the outcomes in the order of `runs`.
///
/// The jobs are tasks in one rayon pool with a thread per core (more if `jobs` is larger), and
/// the runs' own parallel work (matrix products, dropout masks, the loss) goes to the same pool:
/// one job uses every core, and several jobs share them by work stealing. (A pool of `jobs`
/// threads would confine each run to it: with one job, one thread. Plain threads for the jobs
/// beside the global pool measured 12 % slower than this with two jobs on two cores.)
pub fn run_all(
    runs: &[RunConfig],
    out: &Path,
    jobs: usize,
    force: bool,
    quiet: bool,
    stop: Arc<AtomicBool>,
) -> Result<Vec<Outcome>> {
    let multi = MultiProgress::new();
    if quiet {
        multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let overall = multi.add(ProgressBar::new(runs.len() as u64));
    overall.set_style(
        ProgressStyle::with_template("study [{bar:30.green/white}] {pos}/{len} runs {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    let next = AtomicUsize::new(0);
    let outcomes: Vec<Mutex<Option<Outcome>>> = runs.iter().map(|_| Mutex::new(None)).collect();
    let run_at = |i: usize| {
        let config = &runs[i];
        if stop.load(Ordering::SeqCst) {
            return Outcome::NotStarted;
        }
        let mut control = RunControl::new(quiet, config.id(), config.steps, stop.clone());
        control.progress = multi.add(control.progress);
        let outcome = run_one(config, out, force, &control);
        control.progress.finish_and_clear();
        multi.remove(&control.progress);
        // the per-run line is always printed: above the bars on a terminal, on stdout otherwise
        let line = describe(config, &outcome);
        if multi.is_hidden() {
            crate::progress::say!("{line}");
        } else {
            let _ = multi.println(line);
        }
        overall.inc(1);
        outcome
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = jobs.clamp(1, runs.len().max(1));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(cores))
        .build()
        .context("cannot start worker threads")?;
    pool.scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|_| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= runs.len() {
                    break;
                }
                let outcome = run_at(i);
                *outcomes[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
            });
        }
    });
    overall.finish_and_clear();
    Ok(outcomes
        .into_iter()
        .map(|o| {
            o.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or_else(|| Outcome::Failed("the job thread panicked".into()))
        })
        .collect())
}

pub fn describe(config: &RunConfig, outcome: &Outcome) -> String {
    let id = config.id();
    match outcome {
        Outcome::Skipped(s) => format!(
            "  skip     {id} (already {})",
            format!("{:?}", s.status).to_lowercase()
        ),
        Outcome::Busy => format!("  busy     {id} (another ablate process is running it)"),
        Outcome::Ran(s, resumed) => {
            let metric = s
                .final_eval
                .as_ref()
                .map(|e| match (e.eval_ppl, e.eval_accuracy) {
                    (Some(p), _) => format!("valid ppl {p:.1}"),
                    (_, Some(a)) => format!("valid acc {:.1} %", a * 100.0),
                    _ => String::new(),
                });
            format!(
                "  {:<8} {id} {}{}",
                format!("{:?}", s.status).to_lowercase(),
                metric.unwrap_or_default(),
                resumed
                    .map(|step| format!(" (resumed from step {step})"))
                    .unwrap_or_default()
            )
        }
        Outcome::Failed(e) => format!("  failed   {id}: {e}"),
        Outcome::NotStarted => format!("  not run  {id} (the study was stopped before it)"),
    }
}
