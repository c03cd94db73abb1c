//! The scale ladder's charts: the regime charts (text/image ratio of each measure against each
//! scale axis, with 95 % bands) and the per-layer box plots.

use super::{axes, ratio, Point, Ratio, Scope, DIRECTION, MEASURES, REPRODUCED};
use crate::report::plot::*;
use anyhow::Result;
use plotters::prelude::*;
use std::path::Path;

/// One line of a regime panel: label, colour and `(x, ratio)` points.
struct Line {
    label: String,
    color: RGBColor,
    points: Vec<(f64, Ratio)>,
}

/// One panel: x against the ratio (log), a 95 % band and markers per line, and the two
/// thresholds of the verdicts as grey rules.
fn regime_panel<DB: DrawingBackend>(
    area: &Area<DB>,
    title: &str,
    x_desc: &str,
    lines: &[Line],
) -> Result<()> {
    let values = lines
        .iter()
        .flat_map(|l| l.points.iter().flat_map(|(_, r)| [r.lo, r.value, r.hi]))
        .chain([DIRECTION, REPRODUCED]);
    let xs: Vec<f64> = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .collect();
    let (Some((lo, hi)), false) = (
        log_range(values.filter(|v| v.is_finite() && *v > 0.0)),
        xs.is_empty(),
    ) else {
        area.titled(&format!("{title}: no data"), font(18))
            .map_err(err)?;
        return Ok(());
    };
    let (x0, x1) = crate::report::stats::spread(&xs);
    let pad = ((x1 - x0) * 0.08).max(0.5);
    // what every line shares is in the figure's title (`regime_figure`), so that the legend
    // fits the panel
    let (_, short) = split_common(&lines.iter().map(|l| l.label.as_str()).collect::<Vec<_>>());
    let mut chart = log_chart(
        area,
        title,
        18,
        (x0 - pad)..(x1 + pad),
        // the legend (the two rules and the lines) sits above the data
        (lo, legend_room(lo, hi, lines.len() + 2)),
        x_desc,
        "text / images",
        &sci,
        xs.iter().all(|x| x.fract() == 0.0),
    )?;
    draw_rules(&mut chart, (x0 - pad)..(x1 + pad))?;
    for (line, label) in lines.iter().zip(short) {
        draw_regime_line(&mut chart, line, label)?;
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

/// The two rules of the verdicts (1.2: the direction; 10: the paper's size) across `x`.
fn draw_rules<DB: DrawingBackend>(
    chart: &mut LogChart<'_, DB>,
    x: std::ops::Range<f64>,
) -> Result<()> {
    for (y, what) in [
        (DIRECTION, "1.2: direction"),
        (REPRODUCED, "10: reproduced"),
    ] {
        chart
            .draw_series(LineSeries::new(
                [(x.start, y), (x.end, y)],
                BLACK.mix(0.35).stroke_width(1),
            ))
            .map_err(err)?
            .label(what)
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK.mix(0.35)));
    }
    Ok(())
}

/// One line of a regime panel: points with error bars, joined (with a band) from three on.
fn draw_regime_line<DB: DrawingBackend>(
    chart: &mut LogChart<'_, DB>,
    line: &Line,
    label: String,
) -> Result<()> {
    let c = line.color;
    // two points are not a line: points with error bars, joined only from three on
    if line.points.len() >= 3 {
        let mut band: Vec<(f64, f64)> = line.points.iter().map(|(x, r)| (*x, r.hi)).collect();
        band.extend(line.points.iter().rev().map(|(x, r)| (*x, r.lo)));
        chart
            .draw_series([Polygon::new(band, c.mix(0.15).filled())])
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                line.points.iter().map(|(x, r)| (*x, r.value)),
                c.stroke_width(2),
            ))
            .map_err(err)?;
    }
    chart
        .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
        .map_err(err)?
        .label(label)
        .legend(move |(x, y)| Circle::new((x + 8, y), 4, c.filled()));
    for (x, r) in &line.points {
        chart
            .draw_series([PathElement::new(
                [(*x, r.lo), (*x, r.hi)],
                c.stroke_width(1),
            )])
            .map_err(err)?;
        chart
            .draw_series([Circle::new((*x, r.value), 4, c.filled())])
            .map_err(err)?;
    }
    Ok(())
}

/// Along one long trajectory: the ratio in each fifth of training after warm-up (x: the step at
/// the end of that fifth).
pub(super) fn trajectory(p: &Point, measure: &str, scope: Scope) -> Vec<(f64, Ratio)> {
    let steps = p.config().steps as f64;
    crate::report::BUCKETS
        .iter()
        .filter_map(|&(lo, hi)| {
            ratio(&p.text, &p.images, measure, scope, Some((lo, hi))).map(|r| (hi * steps, r))
        })
        .collect()
}

/// One figure: a row of panels, one per measure.
fn regime_figure(
    out: &Path,
    file: &str,
    title: &str,
    x_desc: &str,
    lines_of: &dyn Fn(&str) -> Vec<Line>,
) -> Result<()> {
    register_font();
    let lines: Vec<Vec<Line>> = MEASURES.iter().map(|(m, _)| lines_of(m)).collect();
    let labels: Vec<&str> = lines
        .first()
        .map(|ls| ls.iter().map(|l| l.label.as_str()).collect())
        .unwrap_or_default();
    let (common, _) = split_common(&labels);
    let title = if common.is_empty() {
        title.to_string()
    } else {
        format!("{title}; {common}")
    };
    png_and_svg!(&out.join(file), (1800, 620), |root| {
        let root = root.titled(&title, font(22)).map_err(err)?;
        let panels = root.split_evenly((1, MEASURES.len()));
        for ((panel, (measure, meaning)), lines) in panels.iter().zip(MEASURES).zip(&lines) {
            regime_panel(panel, &format!("{measure}: {meaning}"), x_desc, lines)?;
        }
    });
    Ok(())
}

/// The regime charts: one per scale axis, and one along the longest trajectory.
pub fn regime(points: &[Point], out: &Path) -> Result<Vec<Chart>> {
    let mut charts = Vec::new();
    for axis in axes(points) {
        let file = format!("regime_{}.png", axis.key);
        let lines_of = |measure: &str| -> Vec<Line> {
            let mut lines = Vec::new();
            for (li, (image, pts)) in axis.lines.iter().enumerate() {
                for (si, scope) in Scope::ALL.iter().enumerate() {
                    lines.push(Line {
                        label: format!("{}, {image}", scope.short()),
                        color: COLORS[(li * Scope::ALL.len() + si) % COLORS.len()],
                        points: pts
                            .iter()
                            .filter_map(|(x, p)| Some((*x, p.ratio(measure, *scope)?)))
                            .collect(),
                    });
                }
            }
            lines
        };
        let title = format!(
            "BatchNorm batch-statistic distance, text / images, against {}",
            axis.key
        );
        regime_figure(out, &file, &title, &axis.key, &lines_of)?;
        charts.push(Chart {
            file,
            title: format!("Regime: the text/image ratio against {}", axis.key),
            caption: format!(
                "Text/image ratio of each measure (after warm-up; geometric mean over seeds, bars: 95 % interval between runs, \
                 Welch t on the logarithms) against `{}`, for the first, the last (main path) and all BN layers; grey rules at 1.2 \
                 (direction) and 10 (reproduced).",
                axis.key
            ),
        });
    }
    let longest = points.iter().map(|p| p.config().steps).max().unwrap_or(0);
    let long: Vec<&Point> = points
        .iter()
        .filter(|p| p.config().steps == longest)
        .collect();
    let lines_of = |measure: &str| -> Vec<Line> {
        let mut lines = Vec::new();
        for (pi, p) in long.iter().enumerate() {
            for (si, scope) in Scope::ALL.iter().enumerate() {
                lines.push(Line {
                    label: format!("{}, images {}", scope.short(), p.image_label),
                    color: COLORS[(pi * Scope::ALL.len() + si) % COLORS.len()],
                    points: trajectory(p, measure, *scope),
                });
            }
        }
        lines
    };
    let has_trajectory = long
        .iter()
        .any(|p| trajectory(p, crate::probe::DIST_VAR, Scope::First).len() >= 2);
    if has_trajectory {
        let file = "regime_length.png".to_string();
        let title =
            format!("BatchNorm batch-statistic distance, text / images, over {longest} updates");
        regime_figure(
            out,
            &file,
            &title,
            "update (end of each fifth of training)",
            &lines_of,
        )?;
        charts.push(Chart {
            file,
            title: "Regime: the text/image ratio over training".into(),
            caption: format!(
                "Text/image ratio of each measure in each fifth of the {longest}-update runs after warm-up \
                 (95 % band from a bootstrap over blocks of steps when a side has one run)."
            ),
        });
    }
    Ok(charts)
}

/// Layer names short enough to sit side by side under a box each: beyond 9 layers
/// `block3.attn_norm` becomes `b3.attn` (and `final_norm` `final`).
fn short_layer_names(layers: &[String]) -> Vec<String> {
    if layers.len() <= 9 {
        return layers.to_vec();
    }
    layers
        .iter()
        .map(|l| l.replace("block", "b").replace("_norm", ""))
        .collect()
}

/// Box plots of the per-feature RMS distance in every BN layer after warm-up, one panel per
/// configuration (seeds pooled).
/// The text and image configurations of the points, each once, with their runs.
fn layer_groups<'a>(points: &'a [Point<'a>]) -> Vec<(String, Vec<&'a crate::report::RunResult>)> {
    let mut groups: Vec<(String, Vec<&crate::report::RunResult>)> = Vec::new();
    for p in points {
        for (label, runs) in [
            (
                if p.label == "text" {
                    "text".to_string()
                } else {
                    format!("text, {}", p.label)
                },
                &p.text,
            ),
            (
                format!(
                    "images {}, {} updates",
                    p.image_label, p.images[0].config.steps
                ),
                &p.images,
            ),
        ] {
            if !groups.iter().any(|(l, _)| *l == label) {
                groups.push((label, runs.clone()));
            }
        }
    }
    groups
}

/// A per-layer panel: label, layers, values per layer, runs.
type LayerPanel = (String, Vec<String>, Vec<Vec<f64>>, usize);

/// One configuration's per-layer distances after warm-up, its runs pooled.
fn layer_panel(label: &str, runs: &[&crate::report::RunResult]) -> LayerPanel {
    let layers = runs[0].layers.clone();
    let values: Vec<Vec<f64>> = layers
        .iter()
        .map(|layer| {
            runs.iter()
                .flat_map(|r| {
                    let lo = r.config.warmup_steps as f64 / r.config.steps.max(1) as f64;
                    r.probe_window(Some(layer), crate::probe::RMS_DIST_VAR, lo, 1.0)
                })
                .collect()
        })
        .collect();
    (label.to_string(), layers, values, runs.len())
}

pub fn per_layer(points: &[Point], out: &Path) -> Result<Option<Chart>> {
    let groups = layer_groups(points);
    if groups.is_empty() {
        return Ok(None);
    }
    register_font();
    let file = "per_layer.png";
    let panels: Vec<LayerPanel> = groups.iter().map(|(l, rs)| layer_panel(l, rs)).collect();
    // one y axis for every panel, text and images side by side, so heights compare
    let shared = log_range(
        panels
            .iter()
            .flat_map(|(_, _, values, _)| values.iter().flat_map(|v| positive(v))),
    );
    let rows = groups.len().div_ceil(2);
    png_and_svg!(&out.join(file), (1800, 440 * rows as u32), |root| {
        let areas = root.split_evenly((rows, 2));
        for (area, (label, layers, values, n)) in areas.iter().zip(&panels) {
            let series = [BoxSeries {
                label: format!("{n} run(s)"),
                color: COLORS[0],
                buckets: values.clone(),
            }];
            draw_boxes(
                area,
                &format!("{label}: ‖σ²_B − σ²_r‖/√d per layer, after warm-up"),
                "per-feature RMS distance",
                (
                    short_layer_names(layers),
                    "BN layer, in model order (box: quartiles, whiskers: 1.5 IQR)",
                ),
                &series,
                shared.map(|(lo, hi)| (lo, legend_room(lo, hi, 1))),
            )?;
        }
    });
    Ok(Some(Chart {
        file: file.into(),
        title: "Every BN layer: the per-feature RMS distance".into(),
        caption: "Per configuration (seeds pooled), the distribution over post-warm-up steps of ‖σ²_B − σ²_r‖/√d in every BN layer \
                  (σ²_r: the running variance before the step; one y axis for all panels; models with more than 9 BN \
                  layers name them short: b3.attn for block3.attn_norm)."
            .into(),
    }))
}
