//! `ablate [OPTIONS]`: one training run into a fresh folder.

use super::args::RunArgs;
use super::{EXIT_DIVERGED, EXIT_INTERRUPTED};
use crate::progress::{install_stop_handler, RunControl};
use crate::results::{RunStatus, Summary};
use crate::train;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Trains the run `args` describe; returns the exit code of its status.
pub fn run(args: &RunArgs) -> Result<i32> {
    let config = args.to_config()?;
    let data = train::load_data(&config)?;
    let dir = claim_fresh_dir(&args.out, &config.id())?;
    let stop = install_stop_handler();
    let control = RunControl::new(
        args.quiet,
        format!("{}/{}", config.task.name(), config.norm.name()),
        stop,
    );
    if config.steps <= config.warmup_steps {
        eprintln!(
            "ablate: warning: all {} steps are inside the {}-step learning-rate warm-up: the learning rate never reaches its peak (--lr {}); use more --steps or fewer --warmup-steps",
            config.steps, config.warmup_steps, config.lr
        );
    }
    eprintln!(
        "ablate: training {} with {} norm -> {}",
        config.task.name(),
        config.norm.name(),
        dir.display()
    );
    let summary = train::run(&config, &data, &dir, &control)?;
    control.progress.finish_and_clear();
    print_summary(&summary, &dir);
    Ok(exit_code(summary.status))
}

/// Creates `out/<id>` (or `out/<id>-2`, `-3`, ... if taken) atomically: two processes never
/// get the same folder, and an earlier run is never overwritten.
pub fn claim_fresh_dir(out: &Path, id: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create output folder {}", out.display()))?;
    for n in 1.. {
        let name = if n == 1 {
            id.to_string()
        } else {
            format!("{id}-{n}")
        };
        let dir = out.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot create run folder {}", dir.display()))
            }
        }
    }
    unreachable!()
}

fn print_summary(s: &Summary, dir: &Path) {
    crate::progress::say!(
        "run {} : {} after {} of {} steps",
        s.run_id,
        format!("{:?}", s.status).to_lowercase(),
        s.steps_completed,
        s.steps_planned
    );
    if let Some(l) = s.final_train_loss {
        crate::progress::say!("  final training loss   {l:.4}");
    }
    if let Some(e) = &s.final_eval {
        match (e.eval_ppl, e.eval_accuracy) {
            (Some(ppl), _) => crate::progress::say!(
                "  validation loss       {:.4} (perplexity {:.1}); training-mode {:.4} (perplexity {:.1})",
                e.eval_loss,
                ppl,
                e.train_mode_loss,
                e.train_mode_ppl.unwrap_or(f64::NAN)
            ),
            (_, Some(acc)) => crate::progress::say!(
                "  validation loss       {:.4}, accuracy {:.2} %; training-mode accuracy {:.2} %",
                e.eval_loss,
                acc * 100.0,
                e.train_mode_accuracy.unwrap_or(f64::NAN) * 100.0
            ),
            _ => {}
        }
    }
    if let Some(u) = s.unigram_valid_loss {
        crate::progress::say!("  unigram baseline      {u:.4} (perplexity {:.1})", u.exp());
    }
    if let (Some(ms), Some(tps)) = (s.median_step_ms, s.tokens_per_s) {
        let unit = if s.task == "text" { "tokens" } else { "images" };
        crate::progress::say!(
            "  speed                 {ms:.0} ms/step (median, second half), {tps:.0} {unit}/s"
        );
    }
    if let Some(d) = &s.divergence {
        let what = match d.value {
            Some(v) => format!("{} {v:.4e} above the divergence limit", d.quantity),
            None => format!("non-finite {}", d.quantity),
        };
        crate::progress::say!(
            "  diverged at step {}: {what}{}",
            d.step,
            d.layer
                .as_ref()
                .map(|l| format!(" in {l}"))
                .unwrap_or_default()
        );
    }
    crate::progress::say!("  results in            {}", dir.display());
}

/// Exit code for a finished run's status.
pub fn exit_code(status: RunStatus) -> i32 {
    match status {
        RunStatus::Finished => 0,
        RunStatus::Diverged => EXIT_DIVERGED,
        RunStatus::Interrupted => EXIT_INTERRUPTED,
        RunStatus::Running | RunStatus::Failed => 1,
    }
}
