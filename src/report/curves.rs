//! Figures over training time: the per-step distance of the first layer's statistic and the
//! validation curves (training loss, gradient norm and PowerNorm's state: `training.rs`).

use super::plot::*;
use super::stats::spread;
use super::{by_group, RunResult};
use crate::config::Task;
use anyhow::Result;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use std::path::Path;

fn moving_average(v: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(v.len());
    let mut sum = 0.0;
    for i in 0..v.len() {
        sum += v[i].1;
        if i >= window {
            sum -= v[i - window].1;
        }
        out.push((v[i].0, sum / (i + 1).min(window) as f64));
    }
    out
}

/// A series of the distance chart: its group, its legend label, its points.
type Series = (String, String, Vec<(f64, f64)>);

/// The first layer's per-step distance of one run, against the share of its training (runs of
/// different lengths share the axis); only finite positive values.
fn first_layer_series(label: &str, r: &RunResult) -> Option<Series> {
    let layer = r.first_layer()?;
    let name = crate::probe::dist(r.second_name());
    // runs of different lengths share the axis as a share of their own training
    let total = r.config.steps.max(1) as f64;
    let pts: Vec<(f64, f64)> = r
        .probes
        .get(layer)?
        .get(&name)?
        .iter()
        .map(|&(s, v)| (100.0 * s as f64 / total, v))
        .filter(|p| p.1 > 0.0 && p.1.is_finite())
        .collect();
    Some((
        label.to_string(),
        format!("{label} (seed {}, {layer})", r.config.seed),
        pts,
    ))
}

/// Per-step distance of the first layer's statistic, raw and smoothed, one line per norm.
pub(super) fn timeseries(runs: &[RunResult], out: &Path) -> Result<Option<Chart>> {
    let groups: Vec<(String, Vec<&RunResult>)> = by_group(runs)
        .into_iter()
        .filter(|(_, rs)| rs[0].config.norm_info().statistic.is_some() && !rs[0].probes.is_empty())
        .collect();
    if groups.is_empty() {
        return Ok(None);
    }
    let file = "dist_timeseries.png";
    let palette = GroupColors::of(runs);
    let series: Vec<Series> = groups
        .iter()
        .filter_map(|(label, rs)| first_layer_series(label, rs[0]))
        .collect();
    let Some((lo, hi)) = log_range(series.iter().flat_map(|(_, _, p)| p.iter().map(|x| x.1)))
    else {
        return Ok(None);
    };
    let (common, short) = split_common(&series.iter().map(|s| s.1.as_str()).collect::<Vec<_>>());
    let legend: Vec<LegendEntry> = series
        .iter()
        .zip(short)
        .map(|((group, _, _), label)| LegendEntry {
            label,
            style: palette.line(group),
        })
        .collect();
    png_and_svg!(&out.join(file), (1500, 700), |root| {
        let (plot, strip) = root.split_horizontally(1500 - LEGEND_STRIP);
        let mut chart = log_chart(
            &plot,
            "Per-step distance of the batch statistic to the running one (first norm layer)",
            20,
            0f64..100f64,
            (lo, hi),
            "share of training (%)",
            "‖s_B − s_r‖/d (thin: raw, thick: 25-step average)",
            &sci,
            false,
        )?;
        for (group, _, pts) in &series {
            let color = palette.color(group);
            chart
                .draw_series(LineSeries::new(
                    pts.iter().copied(),
                    color.mix(0.25).stroke_width(1),
                ))
                .map_err(err)?;
            chart
                .draw_series(LineSeries::new(
                    moving_average(pts, 25),
                    color.stroke_width(3),
                ))
                .map_err(err)?;
        }
        draw_legend_strip(&strip, &common, &legend)?;
    });
    Ok(Some(Chart {
        file: file.into(),
        title: "Batch-statistic distance over training".into(),
        caption: "Distance of the first norm layer's batch statistic s_B (variance for BN, ψ² for PN-V / PowerNorm) to its \
                  running value s_r from before the step, at every step of the first seed of each configuration, against the \
                  share of that run's training (runs of different lengths share the axis, as in the paper's figures); thin \
                  lines are raw, thick lines a 25-step moving average. Log scale."
            .into(),
    }))
}

/// One evaluation step: the step, and the values of the seeds evaluated there in evaluation mode
/// and in training mode.
pub(super) type AtStep = (f64, Vec<f64>, Vec<f64>);

/// What a chart takes from an evaluation: its value in evaluation mode and in training mode.
type Pick<'a> = &'a dyn Fn(&crate::results::EvalRow) -> (Option<f64>, Option<f64>);

/// Per evaluation step of any seed, over the seeds evaluated there, the two values `pick` takes
/// from each evaluation where present.
pub(super) fn at_evaluations(rs: &[&RunResult], pick: Pick) -> Vec<AtStep> {
    let mut steps: Vec<usize> = rs
        .iter()
        .flat_map(|r| r.eval.iter().map(|e| e.step))
        .collect();
    steps.sort();
    steps.dedup();
    steps
        .into_iter()
        .map(|s| {
            let picked: Vec<_> = rs
                .iter()
                .filter_map(|r| r.eval.iter().find(|e| e.step == s))
                .map(pick)
                .collect();
            let ev = picked.iter().filter_map(|p| p.0).collect();
            let tr = picked.iter().filter_map(|p| p.1).collect();
            (s as f64, ev, tr)
        })
        .collect()
}

/// Validation curves: mean over seeds with a min-max band; training mode vs evaluation mode.
pub(super) fn curves(runs: &[RunResult], out: &Path, task: Task) -> Result<Option<Chart>> {
    let groups: Vec<(String, Vec<&RunResult>)> = by_group(runs)
        .into_iter()
        .filter(|(_, rs)| rs[0].config.task == task && rs.iter().any(|r| !r.eval.is_empty()))
        .collect();
    if groups.is_empty() {
        return Ok(None);
    }
    let file = format!("{}_validation.png", task.name());
    let palette = GroupColors::of(runs);
    let text = task == Task::Text;
    // per group: step -> (eval values over seeds, train-mode values over seeds)
    let per_group: Vec<(String, Vec<AtStep>)> = groups
        .iter()
        .map(|(label, rs)| {
            let pts = at_evaluations(rs, &|e| (Some(e.eval_loss), Some(e.train_mode_loss)));
            (label.clone(), pts)
        })
        .collect();
    let all = finite_values(&per_group);
    if all.is_empty() {
        return Ok(None);
    }
    // from a power of ten below the data, so that the log axis has labels even when the values
    // span less than a decade (plotters labels powers of ten and their multiples)
    let to_axis = |l: f64| if text { l.exp() } else { l };
    let Some(range) = value_range(all.iter().map(|&l| to_axis(l))) else {
        return Ok(None);
    };
    let (common, short) = split_common(&per_group.iter().map(|g| g.0.as_str()).collect::<Vec<_>>());
    let legend = validation_legend(&groups, &short, &palette);
    let max_step = per_group
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.0))
        .fold(1.0, f64::max);
    let y_desc = if text {
        "validation perplexity"
    } else {
        "validation loss"
    };
    let to_y = |l: f64| if text { l.exp() } else { l };
    png_and_svg!(&out.join(&file), (1500 + LEGEND_STRIP, 650), |root| {
        let (plots, strip) = root.split_horizontally(1500);
        let panels = plots.split_evenly((1, 2));
        for (pi, panel) in panels.iter().enumerate() {
            let title = if pi == 0 {
                "Evaluation mode (running statistics): mean over seeds, band = min..max"
            } else {
                "Training mode (batch statistics, solid) vs evaluation mode (dashed)"
            };
            let y_format = |y: &f64| {
                if *y >= 10.0 {
                    format!("{y:.0}")
                } else {
                    format!("{y:.2}")
                }
            };
            value_chart!(
                panel,
                title,
                18,
                0f64..max_step,
                range,
                "training step",
                y_desc,
                &y_format,
                |chart| {
                    draw_validation_lines(&mut chart, &per_group, &legend, pi == 0, &to_y)?;
                }
            );
        }
        draw_legend_strip(&strip, &common, &legend)?;
    });
    Ok(Some(validation_chart(file, task)))
}

/// Every finite value of the evaluations both modes have (the y axis spans them).
fn finite_values(per_group: &[(String, Vec<AtStep>)]) -> Vec<f64> {
    per_group
        .iter()
        .flat_map(|(_, p)| {
            p.iter()
                .filter(|x| all_finite(&x.1) && all_finite(&x.2))
                .flat_map(|x| x.1.iter().chain(&x.2).copied())
        })
        .collect()
}

/// The legend: each group's short label with the seeds behind its line, the runs that reached
/// an evaluation (a run that diverged before its first one adds nothing to it).
fn validation_legend(
    groups: &[(String, Vec<&RunResult>)],
    short: &[String],
    palette: &GroupColors,
) -> Vec<LegendEntry> {
    groups
        .iter()
        .zip(short)
        .map(|((label, rs), short)| LegendEntry {
            label: with_seeds(short, rs.iter().filter(|r| !r.eval.is_empty()).count()),
            style: palette.line(label),
        })
        .collect()
}

/// The validation chart's title and caption.
fn validation_chart(file: String, task: Task) -> Chart {
    let what = if task == Task::Text {
        "perplexity"
    } else {
        "loss"
    };
    Chart {
        file,
        title: format!("Validation {what} by norm ({})", task.name()),
        caption: format!(
            "Left: validation {what} in evaluation mode (running statistics), mean over seeds with the min..max band. Right: \
             the same batches evaluated in training mode (batch statistics; solid) against evaluation mode (dashed): \
             the gap is what switching to running statistics costs a batch-statistics norm."
        ),
    }
}

fn all_finite(v: &[f64]) -> bool {
    v.iter().all(|x| x.is_finite())
}

/// The lines of one panel of the validation chart: in evaluation mode, the mean over seeds with
/// its min..max band; in training mode, the training-mode mean (solid) against the
/// evaluation-mode one (dashed). Evaluations where a seed's value is not finite are left out.
fn draw_validation_lines<'a, DB, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    per_group: &[(String, Vec<AtStep>)],
    legend: &[LegendEntry],
    eval_panel: bool,
    to_y: &dyn Fn(f64) -> f64,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    Y: Ranged<ValueType = f64>,
{
    for ((_, pts), entry) in per_group.iter().zip(legend) {
        let color = entry.style.color;
        let pts: Vec<_> = pts
            .iter()
            .filter(|x| all_finite(&x.1) && all_finite(&x.2))
            .collect();
        let mean = |v: &[f64]| to_y(v.iter().sum::<f64>() / v.len() as f64);
        if eval_panel {
            let band: Vec<(f64, f64, f64)> = pts
                .iter()
                .map(|(s, e, _)| {
                    let (low, high) = spread(e);
                    (*s, to_y(low), to_y(high))
                })
                .collect();
            let line: Vec<(f64, f64)> = pts.iter().map(|(s, e, _)| (*s, mean(e))).collect();
            draw_mean_line(chart, &line, &band, entry.style)?;
        } else {
            let line: Vec<(f64, f64)> = pts.iter().map(|(s, _, t)| (*s, mean(t))).collect();
            draw_mean_line(chart, &line, &[], entry.style)?;
            chart
                .draw_series(DashedLineSeries::new(
                    pts.iter().map(|(s, e, _)| (*s, mean(e))),
                    8,
                    5,
                    color.stroke_width(2),
                ))
                .map_err(err)?;
        }
    }
    Ok(())
}
