//! The image model's validation accuracy over training, in both modes.

use super::curves::{at_evaluations, AtStep};
use super::plot::*;
use super::stats::spread;
use super::{by_group, RunResult};
use anyhow::Result;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use std::path::Path;

/// Image classification accuracy on the validation split: evaluation mode (running statistics,
/// solid, band = min..max over seeds) and training mode (batch statistics, dashed), linear axis.
pub(super) fn accuracy(runs: &[RunResult], out: &Path) -> Result<Option<Chart>> {
    let groups: Vec<(String, Vec<&RunResult>)> = by_group(runs)
        .into_iter()
        .filter(|(_, rs)| {
            rs.iter()
                .any(|r| r.eval.iter().any(|e| e.eval_accuracy.is_some()))
        })
        .collect();
    if groups.is_empty() {
        return Ok(None);
    }
    let palette = GroupColors::of(runs);
    let lines = accuracy_lines(&groups);
    let max_step = lines
        .iter()
        .flat_map(|(_, _, r)| r.iter().map(|x| x.0))
        .fold(1.0, f64::max);
    let file = "images_accuracy.png";
    let labels: Vec<&str> = lines.iter().map(|l| l.0.as_str()).collect();
    let (common, short) = split_common(&labels);
    let legend: Vec<LegendEntry> = lines
        .iter()
        .zip(short)
        .map(|((label, seeds, _), short)| LegendEntry {
            label: with_seeds(&short, *seeds),
            style: palette.line(label),
        })
        .collect();
    png_and_svg!(&out.join(file), (1500, 650), |root| {
        let (plot, strip) = root.split_horizontally(1500 - LEGEND_STRIP);
        let mut chart = ChartBuilder::on(&plot)
            .caption(
                "Validation accuracy: evaluation mode (solid, band = min..max over seeds) vs training mode (dashed)",
                font(20),
            )
            .margin(12)
        // room for the last x label, centred on the axis end
        .margin_right(36)
            .x_label_area_size(45)
            .y_label_area_size(85)
            .build_cartesian_2d(0f64..max_step, 0f64..1.0)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{:.0} %", y * 100.0))
            .x_desc("training step")
            .y_desc("validation accuracy")
            .light_line_style(BLACK.mix(0.04))
            .label_style(font(18))
            .axis_desc_style(font(19))
            .draw()
            .map_err(err)?;
        draw_accuracy_lines(&mut chart, &lines, &legend)?;
        draw_legend_strip(&strip, &common, &legend)?;
    });
    Ok(Some(Chart {
        file: file.into(),
        title: "Image classification accuracy".into(),
        caption: "Accuracy on the validation images at each evaluation: evaluation mode (running statistics; solid, mean \
                  over seeds with the min..max band) and the same images in training mode (batch statistics; dashed)."
            .into(),
    }))
}

/// One line of the accuracy chart: its group, how many seeds reached an evaluation with an
/// accuracy, and per evaluation step the seeds' finite accuracies in both modes.
type AccuracyLine<'a> = (&'a String, usize, Vec<AtStep>);

fn accuracy_lines<'a>(groups: &'a [(String, Vec<&RunResult>)]) -> Vec<AccuracyLine<'a>> {
    groups
        .iter()
        .map(|(label, rs)| {
            let finite = |v: Vec<f64>| v.into_iter().filter(|a| a.is_finite()).collect();
            let rows: Vec<AtStep> =
                at_evaluations(rs, &|e| (e.eval_accuracy, e.train_mode_accuracy))
                    .into_iter()
                    .map(|(s, ev, tr)| (s, finite(ev), finite(tr)))
                    .filter(|(_, ev, _): &AtStep| !ev.is_empty())
                    .collect();
            let seeds = rs
                .iter()
                .filter(|r| r.eval.iter().any(|e| e.eval_accuracy.is_some()))
                .count();
            (label, seeds, rows)
        })
        .collect()
}

fn mean_of(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Evaluation-mode accuracy (solid, with the min..max band over seeds where there are several)
/// and training-mode accuracy (dashed), one pair of lines per group.
fn draw_accuracy_lines<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    lines: &[AccuracyLine],
    legend: &[LegendEntry],
) -> Result<()> {
    for ((_, seeds, rows), entry) in lines.iter().zip(legend) {
        let color = entry.style.color;
        let band: Vec<(f64, f64, f64)> = if *seeds > 1 {
            rows.iter()
                .map(|(s, e, _)| {
                    let (low, high) = spread(e);
                    (*s, low, high)
                })
                .collect()
        } else {
            vec![]
        };
        let line: Vec<(f64, f64)> = rows.iter().map(|(s, e, _)| (*s, mean_of(e))).collect();
        draw_mean_line(chart, &line, &band, entry.style)?;
        let train: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| !r.2.is_empty())
            .map(|(s, _, t)| (*s, mean_of(t)))
            .collect();
        chart
            .draw_series(DashedLineSeries::new(train, 8, 5, color.stroke_width(2)))
            .map_err(err)?;
    }
    Ok(())
}
