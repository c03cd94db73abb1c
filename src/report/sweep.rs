//! The learning-rate sweep's chart: final validation loss against the peak learning rate, one
//! line per norm, each rate's mean with its 95 % interval between seeds, diverged rates marked.

use super::charts::Chart;
use super::inference::one_sample;
use super::plot::*;
use super::{mean_std, RunResult};
use crate::config::Task;
use crate::results::RunStatus;
use anyhow::Result;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use std::path::Path;

/// One rate of one norm: its finished runs' final validation losses and its diverged runs.
struct Rate {
    lr: f64,
    losses: Vec<f64>,
    diverged: usize,
}

/// Per text norm with two rates or more, its rates in increasing order.
fn sweeps(runs: &[RunResult]) -> Vec<(String, Vec<Rate>)> {
    let mut out: Vec<(String, Vec<Rate>)> = Vec::new();
    for r in runs.iter().filter(|r| r.config.task == Task::Text) {
        let name = r.config.norm_label();
        let idx = match out.iter().position(|(n, _)| *n == name) {
            Some(i) => i,
            None => {
                out.push((name, Vec::new()));
                out.len() - 1
            }
        };
        let rates = &mut out[idx].1;
        let i = match rates.iter().position(|x| x.lr == r.config.lr) {
            Some(i) => i,
            None => {
                rates.push(Rate {
                    lr: r.config.lr,
                    losses: vec![],
                    diverged: 0,
                });
                rates.len() - 1
            }
        };
        match r.status() {
            RunStatus::Finished => {
                if let Some(l) = r
                    .summary
                    .as_ref()
                    .and_then(|s| s.final_eval.as_ref())
                    .map(|e| e.eval_loss)
                    .filter(|l| l.is_finite())
                {
                    rates[i].losses.push(l);
                }
            }
            RunStatus::Diverged => rates[i].diverged += 1,
            _ => {}
        }
    }
    for (_, rates) in &mut out {
        rates.sort_by(|a, b| a.lr.total_cmp(&b.lr));
    }
    out.retain(|(_, rates)| rates.len() >= 2);
    out
}

/// `lr_sweep.png`, when the text runs of some norm span two learning rates or more (and the
/// configurations differ in nothing else that matters to the chart: one line per norm).
pub fn chart(runs: &[RunResult], out: &Path) -> Result<Option<Chart>> {
    let sweeps = sweeps(runs);
    if sweeps.is_empty() {
        return Ok(None);
    }
    let ys: Vec<f64> = sweeps
        .iter()
        .flat_map(|(_, rs)| rs.iter().filter_map(rate_interval))
        .flat_map(|(m, lo, hi)| [m, lo, hi])
        .filter(|y| y.is_finite())
        .collect();
    let lrs: Vec<f64> = sweeps
        .iter()
        .flat_map(|(_, rs)| rs.iter().map(|r| r.lr))
        .collect();
    if ys.is_empty() {
        return Ok(None);
    }
    let (y0, y1) = super::stats::spread(&ys);
    let pad = ((y1 - y0) * 0.1).max(0.01);
    // room above the data for the legend and the "diverged" marks
    let (y0, y1) = (
        y0 - pad,
        y1 + pad + (y1 - y0 + pad) * 0.08 * (sweeps.len() + 1) as f64,
    );
    let (x0, x1) = super::stats::spread(&lrs);
    let (x0, x1) = (x0 / 1.4, x1 * 1.4);
    let file = "lr_sweep.png";
    register_font();
    png_and_svg!(&out.join(file), (1200, 720), |root| {
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Final validation loss against the peak learning rate",
                font(22),
            )
            .margin(12)
            .margin_right(36)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d((x0..x1).log_scale(), y0..y1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("peak learning rate (log scale)")
            .y_desc("final validation loss (nats)")
            .x_label_formatter(&|x| format!("{x}"))
            .y_label_formatter(&|y| format!("{y:.2}"))
            .light_line_style(BLACK.mix(0.04))
            .label_style(font(18))
            .axis_desc_style(font(19))
            .draw()
            .map_err(err)?;
        draw_sweep_lines(&mut chart, &sweeps, (y0, y1))?;
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    });
    Ok(Some(Chart {
        file: file.into(),
        title: "Learning-rate sweep".into(),
        caption: "Final validation loss (evaluation mode) at each peak learning rate, one line per norm: the mean over seeds \
                  with its 95 % interval between seeds (t); a cross at the top marks a rate whose runs all diverged, which \
                  counts as worse than any finished rate. A norm's best rate is bracketed when a worse rate lies on both sides."
            .into(),
    }))
}

/// A rate's mean final loss with its 95 % interval between seeds (the mean alone for one seed);
/// none when all its runs diverged.
fn rate_interval(r: &Rate) -> Option<(f64, f64, f64)> {
    if r.losses.is_empty() {
        return None;
    }
    Some(match one_sample(&r.losses) {
        Some(i) => (i.value, i.lo, i.hi),
        None => {
            let m = mean_std(&r.losses).0;
            (m, m, m)
        }
    })
}

type SweepChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<LogCoord<f64>, RangedCoordf64>>;

/// One line per norm through its rates' means, with interval bars, and a cross at the top for a
/// rate whose runs all diverged (one row of crosses per norm).
fn draw_sweep_lines<DB: DrawingBackend>(
    chart: &mut SweepChart<'_, DB>,
    sweeps: &[(String, Vec<Rate>)],
    (y0, y1): (f64, f64),
) -> Result<()> {
    for (k, (name, rates)) in sweeps.iter().enumerate() {
        let c = COLORS[k % COLORS.len()];
        let pts: Vec<(f64, (f64, f64, f64))> = rates
            .iter()
            .filter_map(|r| Some((r.lr, rate_interval(r)?)))
            .collect();
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|(x, (m, _, _))| (*x, *m)),
                c.stroke_width(2),
            ))
            .map_err(err)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], c.stroke_width(2)));
        for (x, (m, lo, hi)) in &pts {
            chart
                .draw_series([PathElement::new([(*x, *lo), (*x, *hi)], c.stroke_width(2))])
                .map_err(err)?;
            chart
                .draw_series([Circle::new((*x, *m), 5, c.filled())])
                .map_err(err)?;
        }
        // a rate whose runs all diverged: a cross at the top, one row per norm
        let top = y1 - (y1 - y0) * 0.03 * (k + 1) as f64;
        for r in rates
            .iter()
            .filter(|r| r.losses.is_empty() && r.diverged > 0)
        {
            chart
                .draw_series([Cross::new((r.lr, top), 7, c.stroke_width(2))])
                .map_err(err)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RunConfig;
    use crate::norm::NormKind;

    fn run(norm: NormKind, lr: f64, seed: u64, loss: Option<f64>) -> RunResult {
        let status = if loss.is_some() {
            "finished"
        } else {
            "diverged"
        };
        let summary = serde_json::from_str(&format!(
            r#"{{"run_id":"x","status":"{status}","task":"text","norm":"x","seed":1,"steps_planned":1,
                "steps_completed":1,"num_params":1,"wall_s":1.0,"backend":"flex","adapter":"cpu","crate_version":"0",
                "final_eval":{{"step":1,"eval_loss":{},"eval_ppl":1.0,"train_mode_loss":1.0,"train_mode_ppl":1.0,
                "eval_accuracy":null,"train_mode_accuracy":null,"tokens":1}}}}"#,
            loss.unwrap_or(1e9)
        ))
        .unwrap();
        RunResult {
            dir: Default::default(),
            summary: Some(summary),
            steps: vec![],
            eval: vec![],
            probes: Default::default(),
            layers: vec![],
            config: RunConfig {
                norm,
                lr,
                seed,
                ..Default::default()
            },
            warnings: vec![],
        }
    }

    #[test]
    fn sweeps_group_rates_per_norm_and_count_diverged_runs() {
        let mut runs = Vec::new();
        for seed in 1..=3 {
            for (lr, loss) in [(1e-3, 5.0), (2e-3, 4.8)] {
                runs.push(run(
                    NormKind::Layer,
                    lr,
                    seed,
                    Some(loss + seed as f64 * 0.01),
                ));
            }
            runs.push(run(NormKind::Batch, 1e-3, seed, Some(5.1)));
            runs.push(run(NormKind::Batch, 8e-3, seed, None));
        }
        let s = sweeps(&runs);
        assert_eq!(s.len(), 2);
        let (name, rates) = &s[0];
        assert_eq!(name, "layer");
        assert_eq!(
            rates.iter().map(|r| r.lr).collect::<Vec<_>>(),
            vec![1e-3, 2e-3]
        );
        assert_eq!(rates[1].losses.len(), 3);
        let batch = &s[1].1;
        assert_eq!((batch[1].losses.len(), batch[1].diverged), (0, 3));
        let dir = std::env::temp_dir().join(format!("ablate-sweep-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let c = chart(&runs, &dir).unwrap().unwrap();
        let png = std::fs::read(dir.join(&c.file)).unwrap();
        assert_eq!(&png[..4], b"\x89PNG");
        let svg = std::fs::read_to_string(dir.join(c.svg())).unwrap();
        assert!(svg.contains("layer") && svg.contains("batch"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
