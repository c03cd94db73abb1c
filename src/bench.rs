//! `ablate bench`: training-step time of the configured model per norm, with the share of
//! each phase, and the cost of the probes (the same run with probes off).

use crate::config::RunConfig;
use crate::progress::RunControl;
use crate::results::Summary;
use crate::train;
use anyhow::Result;

pub struct BenchRow {
    /// The norm's name (a declared norm's own).
    pub norm: String,
    pub probes: bool,
    pub summary: Summary,
}

/// Trains `steps` steps of each configuration of `norms` (one per norm, in order), with probes
/// on and (if `probe_overhead`) off; with probes off only when they have them off
/// (`--no-probes`). Timings are medians over the second half of the steps (the first half is
/// warm-up).
pub fn run(norms: &[RunConfig], steps: usize, probe_overhead: bool) -> Result<Vec<BenchRow>> {
    let Some(base) = norms.first() else {
        return Ok(vec![]);
    };
    let data = train::load_data(base)?;
    let mut rows = Vec::new();
    for base in norms {
        let norm = base.norm_label();
        for probes in [true, false] {
            let wanted = if probes {
                base.probes
            } else {
                probe_overhead || !base.probes
            };
            if !wanted {
                continue;
            }
            let config = RunConfig {
                probes,
                steps,
                eval_every: steps,
                eval_batches: 1,
                checkpoint_every: 0,
                ..base.clone()
            };
            config.validate()?;
            let dir = std::env::temp_dir().join(format!(
                "ablate-bench-{}-{}-{probes}",
                std::process::id(),
                norm
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            let summary = train::run(&config, &data, &dir, &RunControl::hidden());
            let _ = std::fs::remove_dir_all(&dir);
            let summary = summary?;
            // timings of a run that broke down would pass for a norm's speed
            if summary.status != crate::results::RunStatus::Finished {
                let why = summary
                    .divergence
                    .as_ref()
                    .map(|d| format!(" at step {} ({})", d.step, d.quantity))
                    .unwrap_or_default();
                anyhow::bail!(
                    "{} {}{why} during the benchmark, so its step times would not be a speed; use a smaller --lr or fewer --steps",
                    norm,
                    format!("{:?}", summary.status).to_lowercase()
                );
            }
            rows.push(BenchRow {
                norm: norm.clone(),
                probes,
                summary,
            });
        }
    }
    Ok(rows)
}

/// The table `ablate bench` prints.
pub fn table(rows: &[BenchRow]) -> String {
    let mut out = format!(
        "{:<13} {:>6} {:>9} {:>8} {:>9}   {:>8} {:>8} {:>8} {:>8} {:>8}   {}\n",
        "norm",
        "probes",
        "ms/step",
        "steps/s",
        "tokens/s",
        "forward",
        "backward",
        "norms",
        "optim",
        "probes",
        "probe overhead"
    );
    for r in rows {
        let s = &r.summary;
        let ms = s.median_step_ms.unwrap_or(f64::NAN);
        let p = s.phase_ms;
        let share = |x: Option<f64>| {
            x.map(|x| format!("{:.0}%", 100.0 * x / ms))
                .unwrap_or_default()
        };
        let overhead = if r.probes {
            rows.iter()
                .find(|o| o.norm == r.norm && !o.probes)
                .and_then(|o| o.summary.median_step_ms)
                .map(|off| format!("{:+.1} % ({:.0} ms off)", 100.0 * (ms - off) / off, off))
                .unwrap_or_default()
        } else {
            String::new()
        };
        out += &format!(
            "{:<13} {:>6} {:>9.1} {:>8.2} {:>9.0}   {:>8} {:>8} {:>8} {:>8} {:>8}   {}\n",
            r.norm,
            if r.probes { "on" } else { "off" },
            ms,
            1e3 / ms,
            s.tokens_per_s.unwrap_or(f64::NAN),
            share(p.map(|p| p.forward)),
            share(p.map(|p| p.backward)),
            share(p.map(|p| p.norms_and_clip)),
            share(p.map(|p| p.optimizer)),
            share(p.map(|p| p.probes_and_read)),
            overhead
        );
    }
    out
}
