//! PNG charts with plotters. The font is embedded in the binary (DejaVu Sans), so a machine
//! without system fonts renders them the same.

use super::{by_group, BoxStats, RunResult, BUCKETS};
use crate::config::Task;
use crate::norm::NormKind;
use anyhow::{anyhow, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// A chart written to the report folder.
#[derive(Debug, Clone)]
pub struct Chart {
    pub file: String,
    pub title: String,
    /// What the chart shows, for REPORT.md.
    pub caption: String,
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}

fn font(size: u32) -> TextStyle<'static> {
    (FAMILY, size).into_font().into()
}

type LogChart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, LogCoord<f64>>>;

/// A chart with a linear x axis and a logarithmic y axis, titled and labelled.
fn log_chart<'a, 'b>(
    area: &'a Area<'b>,
    caption: &str,
    caption_size: u32,
    x: std::ops::Range<f64>,
    (lo, hi): (f64, f64),
    x_desc: &str,
    y_desc: &str,
    y_format: &dyn Fn(&f64) -> String,
) -> Result<LogChart<'a, 'b>> {
    // steps are whole numbers; fractions need decimals
    let x_decimals = if x.end > 10.0 { 0 } else { 1 };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, font(caption_size))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(85)
        .build_cartesian_2d(x, (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_label_formatter(&|x| format!("{x:.x_decimals$}"))
        .x_desc(x_desc)
        .y_desc(y_desc)
        .y_label_formatter(y_format)
        .label_style(font(14))
        .axis_desc_style(font(15))
        .draw()
        .map_err(err)?;
    Ok(chart)
}

fn sci(y: &f64) -> String {
    format!("{y:.1e}")
}

fn draw_legend<'a, 'b: 'a>(
    chart: &mut LogChart<'a, 'b>,
    position: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(font(14))
        .draw()
        .map_err(err)
}

/// One series of a box chart: label, and for each 20 % bucket the values.
pub struct BoxSeries {
    pub label: String,
    pub buckets: Vec<Vec<f64>>,
}

/// Positive finite values (for log axes).
fn positive(v: &[f64]) -> impl Iterator<Item = f64> + '_ {
    v.iter().copied().filter(|x| x.is_finite() && *x > 0.0)
}

fn log_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    (lo.is_finite() && hi > 0.0).then(|| {
        let hi = if hi <= lo { lo * 10.0 } else { hi };
        (lo / 1.5, hi * 1.5)
    })
}

/// Grouped box plots by 20 % bucket of training, log y axis.
fn draw_boxes(area: &Area, title: &str, y_label: &str, series: &[BoxSeries]) -> Result<()> {
    let all = series
        .iter()
        .flat_map(|s| s.buckets.iter().flat_map(|b| positive(b)));
    let Some((lo, hi)) = log_range(all) else {
        area.titled(&format!("{title}: no data"), font(18))
            .map_err(err)?;
        return Ok(());
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title, font(20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.5f64..4.5f64, (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(5)
        .x_label_formatter(&|x| {
            let i = x.round() as i64;
            if (x - i as f64).abs() < 1e-6 && (0..5).contains(&i) {
                format!("{}-{} %", i * 20, i * 20 + 20)
            } else {
                String::new()
            }
        })
        .y_label_formatter(&sci)
        .x_desc("share of training (box: quartiles, whiskers: 1.5 IQR, dots: outliers)")
        .y_desc(y_label)
        .label_style(font(14))
        .axis_desc_style(font(15))
        .draw()
        .map_err(err)?;
    let n = series.len().max(1) as f64;
    let width = 0.8 / n;
    for (si, s) in series.iter().enumerate() {
        let color = COLORS[si % COLORS.len()];
        for (bi, values) in s.buckets.iter().enumerate() {
            let vals: Vec<f64> = positive(values).collect();
            let Some(b) = BoxStats::of(&vals) else {
                continue;
            };
            let center = bi as f64 - 0.4 + width * (si as f64 + 0.5);
            let (x0, x1) = (center - width * 0.4, center + width * 0.4);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x0, b.q1), (x1, b.q3)],
                    color.mix(0.35).filled(),
                )))
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x0, b.q1), (x1, b.q3)],
                    color.stroke_width(1),
                )))
                .map_err(err)?;
            let lines = vec![
                vec![(x0, b.median), (x1, b.median)],
                vec![(center, b.q3), (center, b.high)],
                vec![(center, b.q1), (center, b.low)],
                vec![
                    (center - width * 0.2, b.high),
                    (center + width * 0.2, b.high),
                ],
                vec![(center - width * 0.2, b.low), (center + width * 0.2, b.low)],
            ];
            for (i, l) in lines.into_iter().enumerate() {
                let style = if i == 0 {
                    color.stroke_width(3)
                } else {
                    color.stroke_width(1)
                };
                chart
                    .draw_series(std::iter::once(PathElement::new(l, style)))
                    .map_err(err)?;
            }
            chart
                .draw_series(
                    b.outliers
                        .iter()
                        .map(|&y| Circle::new((center, y), 2, color.mix(0.6).filled())),
                )
                .map_err(err)?;
        }
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(-10.0, lo), (-10.0, lo)],
                color.filled(),
            )))
            .map_err(err)?
            .label(s.label.clone())
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.mix(0.6).filled())
            });
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}

/// Per-bucket values of a probe, pooled over the runs (seeds) of a group.
fn bucketed(
    runs: &[&RunResult],
    layer: Option<&dyn Fn(&RunResult) -> Option<String>>,
    name: &str,
) -> Vec<Vec<f64>> {
    BUCKETS
        .iter()
        .map(|&(lo, hi)| {
            runs.iter()
                .flat_map(|r| {
                    let l = layer.and_then(|f| f(r));
                    r.probe_window(l.as_deref(), name, lo, hi)
                })
                .collect()
        })
        .collect()
}

fn first_layer(r: &RunResult) -> Option<String> {
    r.first_layer().map(String::from)
}

fn save(root: &Area) -> Result<()> {
    root.present().map_err(err)
}

/// The paper's figure: BN batch-statistics distances, text beside images, by 20 % bucket.
fn oscillation(runs: &[RunResult], out: &Path, all_layers: bool) -> Result<Option<Chart>> {
    let groups: Vec<(String, Vec<&RunResult>)> = by_group(runs)
        .into_iter()
        .filter(|(_, rs)| matches!(rs[0].config.norm, NormKind::Batch | NormKind::MaskedBatch))
        .collect();
    let has_text = groups.iter().any(|(_, r)| r[0].config.task == Task::Text);
    let has_images = groups.iter().any(|(_, r)| r[0].config.task == Task::Images);
    if !(has_text && has_images) {
        return Ok(None);
    }
    let file = if all_layers {
        "oscillation_all_layers.png"
    } else {
        "oscillation.png"
    };
    let path = out.join(file);
    let root = BitMapBackend::new(&path, (1500, 1000)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let which = if all_layers {
        "all BN layers pooled"
    } else {
        "first BN layer of each model"
    };
    let root = root
        .titled(
            &format!("BatchNorm batch statistics vs running statistics: text vs images ({which})"),
            font(24),
        )
        .map_err(err)?;
    let panels = root.split_evenly((2, 2));
    let layer_fn: Option<&dyn Fn(&RunResult) -> Option<String>> =
        if all_layers { None } else { Some(&first_layer) };
    let specs = [
        (
            "dist_mean",
            "||mu_B - mu|| / d",
            "Distance of the batch mean to the running one",
        ),
        (
            "dist_var",
            "||sigma2_B - sigma2|| / d",
            "Distance of the batch variance to the running one",
        ),
        (
            "rel_dist_mean",
            "||mu_B - mu|| / ||sqrt(sigma2)||",
            "Same for the mean, relative (scale-free)",
        ),
        (
            "rel_dist_var",
            "||sigma2_B - sigma2|| / ||sigma2||",
            "Same for the variance, relative (scale-free)",
        ),
    ];
    for (panel, (name, axis, what)) in panels.iter().zip(specs) {
        let series: Vec<BoxSeries> = groups
            .iter()
            .map(|(label, rs)| BoxSeries {
                label: label.clone(),
                buckets: bucketed(rs, layer_fn, name),
            })
            .collect();
        draw_boxes(panel, what, axis, &series)?;
    }
    save(&root)?;
    Ok(Some(Chart {
        file: file.into(),
        title: format!("BatchNorm statistics on text vs images ({which})"),
        caption: format!(
            "Per training step, the distance between the batch statistics of BatchNorm and its running statistics \
             (running value from before the step's update), grouped in 20 % buckets of training, {which}, all seeds \
             pooled. Top: the paper's absolute distances (divided by the number of features d); bottom: scale-free \
             distances. Log scale."
        ),
    }))
}

/// BN vs PN-V (and PN): forward distance of the statistic, backward gradient of the statistic.
fn bn_vs_pn(runs: &[RunResult], out: &Path) -> Result<Option<Chart>> {
    let groups: Vec<(String, Vec<&RunResult>)> = by_group(runs)
        .into_iter()
        .filter(|(_, rs)| rs[0].config.task == Task::Text)
        .filter(|(_, rs)| {
            matches!(
                rs[0].config.norm,
                NormKind::Batch | NormKind::MaskedBatch | NormKind::PnV | NormKind::Power
            )
        })
        .collect();
    let has = |k: NormKind| groups.iter().any(|(_, r)| r[0].config.norm == k);
    if !(has(NormKind::Batch) && (has(NormKind::PnV) || has(NormKind::Power))) {
        return Ok(None);
    }
    let file = "bn_vs_pn.png";
    let path = out.join(file);
    let root = BitMapBackend::new(&path, (1500, 620)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let root = root
        .titled(
            "Text: BatchNorm vs PN-V / PowerNorm (all norm layers pooled)",
            font(24),
        )
        .map_err(err)?;
    let panels = root.split_evenly((1, 2));
    let forward: Vec<BoxSeries> = groups
        .iter()
        .map(|(label, rs)| BoxSeries {
            label: label.clone(),
            buckets: bucketed(rs, None, &format!("dist_{}", rs[0].second_name())),
        })
        .collect();
    draw_boxes(
        &panels[0],
        "Forward: ||s_B - s|| / d (s = sigma2 for BN, psi2 for PN)",
        "distance to running statistic",
        &forward,
    )?;
    let backward: Vec<BoxSeries> = groups
        .iter()
        .filter(|(_, rs)| rs[0].config.norm != NormKind::Power)
        .map(|(label, rs)| BoxSeries {
            label: label.clone(),
            buckets: bucketed(rs, None, &format!("grad_{}", rs[0].second_name())),
        })
        .collect();
    draw_boxes(
        &panels[1],
        "Backward: ||dL/ds_B|| / d",
        "gradient of the loss w.r.t. the statistic",
        &backward,
    )?;
    save(&root)?;
    Ok(Some(Chart {
        file: file.into(),
        title: "BatchNorm vs PN-V and PowerNorm on text".into(),
        caption: "Left: distance of the batch second-order statistic to its running value (variance for BN, quadratic \
                  mean psi2 for PN-V and PowerNorm). Right: norm of the gradient of the loss with respect to that batch \
                  statistic (PowerNorm's approximate backward gives its statistic no gradient, so it is absent). All \
                  norm layers and seeds pooled, 20 % buckets of training, log scale."
            .into(),
    }))
}

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

/// Per-step distance of the first layer's statistic, raw and smoothed, one line per norm.
fn timeseries(runs: &[RunResult], out: &Path) -> Result<Option<Chart>> {
    let groups: Vec<(String, Vec<&RunResult>)> = by_group(runs)
        .into_iter()
        .filter(|(_, rs)| rs[0].config.norm.has_batch_stats() && !rs[0].probes.is_empty())
        .collect();
    if groups.is_empty() {
        return Ok(None);
    }
    let file = "dist_timeseries.png";
    let path = out.join(file);
    let root = BitMapBackend::new(&path, (1500, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let series: Vec<(String, Vec<(f64, f64)>)> = groups
        .iter()
        .filter_map(|(label, rs)| {
            let r = rs[0];
            let layer = r.first_layer()?;
            let name = format!("dist_{}", r.second_name());
            let pts: Vec<(f64, f64)> = r
                .probes
                .get(layer)?
                .get(&name)?
                .iter()
                .map(|&(s, v)| (s as f64, v))
                .filter(|p| p.1 > 0.0 && p.1.is_finite())
                .collect();
            Some((format!("{label} (seed {}, {layer})", r.config.seed), pts))
        })
        .collect();
    let Some((lo, hi)) = log_range(series.iter().flat_map(|(_, p)| p.iter().map(|x| x.1))) else {
        return Ok(None);
    };
    let max_step = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.0))
        .fold(1.0, f64::max);
    let mut chart = log_chart(
        &root,
        "Per-step distance of the batch statistic to the running one (first norm layer)",
        22,
        0f64..max_step,
        (lo, hi),
        "training step",
        "||s_B - s|| / d (thin: raw, thick: 25-step moving average)",
        &sci,
    )?;
    for (i, (label, pts)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
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
            .map_err(err)?
            .label(label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    save(&root)?;
    Ok(Some(Chart {
        file: file.into(),
        title: "Batch-statistic distance over training".into(),
        caption: "Distance of the first norm layer's batch statistic (variance for BN, psi2 for PN-V / PowerNorm) to its \
                  running value at every step of the first seed of each configuration; thin lines are raw, thick lines \
                  a 25-step moving average. Log scale."
            .into(),
    }))
}

/// Validation curves: mean over seeds with a min-max band; training mode vs evaluation mode.
fn curves(runs: &[RunResult], out: &Path, task: Task) -> Result<Option<Chart>> {
    let groups: Vec<(String, Vec<&RunResult>)> = by_group(runs)
        .into_iter()
        .filter(|(_, rs)| rs[0].config.task == task && rs.iter().any(|r| !r.eval.is_empty()))
        .collect();
    if groups.is_empty() {
        return Ok(None);
    }
    let file = format!("{}_validation.png", task.name());
    let path = out.join(&file);
    let root = BitMapBackend::new(&path, (1500, 650)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let panels = root.split_evenly((1, 2));
    let text = task == Task::Text;
    // per group: step -> (eval values over seeds, train-mode values over seeds)
    let per_group: Vec<(String, Vec<(f64, Vec<f64>, Vec<f64>)>)> = groups
        .iter()
        .map(|(label, rs)| {
            let mut steps: Vec<usize> = rs
                .iter()
                .flat_map(|r| r.eval.iter().map(|e| e.step))
                .collect();
            steps.sort();
            steps.dedup();
            let pts = steps
                .into_iter()
                .map(|s| {
                    let rows: Vec<_> = rs
                        .iter()
                        .filter_map(|r| r.eval.iter().find(|e| e.step == s))
                        .collect();
                    let (ev, tr): (Vec<f64>, Vec<f64>) = rows
                        .iter()
                        .map(|e| (e.eval_loss, e.train_mode_loss))
                        .unzip();
                    (s as f64, ev, tr)
                })
                .collect();
            (label.clone(), pts)
        })
        .collect();
    let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
    let all: Vec<f64> = per_group
        .iter()
        .flat_map(|(_, p)| {
            p.iter()
                .filter(|x| finite(&x.1) && finite(&x.2))
                .flat_map(|x| x.1.iter().chain(&x.2).copied())
        })
        .collect();
    if all.is_empty() {
        return Ok(None);
    }
    let (lo, hi) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    let (lo, hi) = if text {
        (lo.exp() * 0.9, hi.exp() * 1.1)
    } else {
        (lo * 0.9, hi * 1.1)
    };
    let max_step = per_group
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.0))
        .fold(1.0, f64::max);
    let y_desc = if text {
        "validation perplexity (log)"
    } else {
        "validation loss (log)"
    };
    let to_y = |l: f64| if text { l.exp() } else { l };
    for (pi, panel) in panels.iter().enumerate() {
        let title = if pi == 0 {
            "Evaluation mode (running statistics): mean over seeds, band = min..max"
        } else {
            "Training mode (batch statistics, solid) vs evaluation mode (dashed)"
        };
        let mut chart = log_chart(
            panel,
            title,
            18,
            0f64..max_step,
            (lo.max(1e-3), hi),
            "training step",
            y_desc,
            &|y| {
                if *y >= 10.0 {
                    format!("{y:.0}")
                } else {
                    format!("{y:.2}")
                }
            },
        )?;
        for (i, (label, pts)) in per_group.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let pts: Vec<_> = pts
                .iter()
                .filter(|x| finite(&x.1) && finite(&x.2))
                .collect();
            let mean = |v: &[f64]| to_y(v.iter().sum::<f64>() / v.len() as f64);
            if pi == 0 {
                let upper: Vec<(f64, f64)> = pts
                    .iter()
                    .map(|(s, e, _)| (*s, to_y(e.iter().cloned().fold(f64::MIN, f64::max))))
                    .collect();
                let lower: Vec<(f64, f64)> = pts
                    .iter()
                    .rev()
                    .map(|(s, e, _)| (*s, to_y(e.iter().cloned().fold(f64::MAX, f64::min))))
                    .collect();
                let band: Vec<(f64, f64)> = upper.into_iter().chain(lower).collect();
                if band.len() > 2 {
                    chart
                        .draw_series(std::iter::once(Polygon::new(band, color.mix(0.2).filled())))
                        .map_err(err)?;
                }
                chart
                    .draw_series(LineSeries::new(
                        pts.iter().map(|(s, e, _)| (*s, mean(e))),
                        color.stroke_width(3),
                    ))
                    .map_err(err)?
                    .label(match groups[i].1.len() {
                        1 => format!("{label} (1 seed)"),
                        n => format!("{label} ({n} seeds)"),
                    })
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                    });
            } else {
                chart
                    .draw_series(LineSeries::new(
                        pts.iter().map(|(s, _, t)| (*s, mean(t))),
                        color.stroke_width(3),
                    ))
                    .map_err(err)?
                    .label(label.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                    });
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
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    }
    save(&root)?;
    Ok(Some(Chart {
        file: file.clone(),
        title: format!("Validation {} by norm ({})", if text { "perplexity" } else { "loss" }, task.name()),
        caption: format!(
            "Left: validation {} in evaluation mode (running statistics), mean over seeds with the min..max band. Right: \
             the same batches evaluated in training mode (batch statistics; solid) against evaluation mode (dashed): \
             the gap is what switching to running statistics costs a batch-statistics norm.",
            if text { "perplexity" } else { "loss" }
        ),
    }))
}

/// Padding fraction of each batch against the first BN layer's variance distance.
fn padding(runs: &[RunResult], out: &Path) -> Result<Option<Chart>> {
    let groups: Vec<(String, Vec<&RunResult>)> = by_group(runs)
        .into_iter()
        .filter(|(_, rs)| {
            rs[0].config.task == Task::Text
                && matches!(rs[0].config.norm, NormKind::Batch | NormKind::MaskedBatch)
        })
        .collect();
    let bucketing_varies = groups.iter().any(|(_, r)| r[0].config.bucket_pool > 0)
        && groups.iter().any(|(_, r)| r[0].config.bucket_pool == 0);
    if groups.is_empty() || !bucketing_varies {
        return Ok(None);
    }
    let file = "padding.png";
    let path = out.join(file);
    let root = BitMapBackend::new(&path, (1300, 750)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let series: Vec<(String, Vec<(f64, f64)>)> = groups
        .iter()
        .map(|(label, rs)| {
            let pts = rs
                .iter()
                .flat_map(|r| {
                    let pad: std::collections::HashMap<usize, f64> = r
                        .steps
                        .iter()
                        .map(|s| (s.step, s.padding_fraction))
                        .collect();
                    let layer = r.first_layer().unwrap_or_default().to_string();
                    r.probes
                        .get(&layer)
                        .and_then(|p| p.get("dist_var"))
                        .map(|v| {
                            v.iter()
                                .filter_map(|(s, d)| Some((*pad.get(s)?, *d)))
                                .collect::<Vec<_>>()
                        })
                        .unwrap_or_default()
                })
                .filter(|p| p.1 > 0.0 && p.1.is_finite())
                .collect();
            (label.clone(), pts)
        })
        .collect();
    let Some((lo, hi)) = log_range(series.iter().flat_map(|(_, p)| p.iter().map(|x| x.1))) else {
        return Ok(None);
    };
    let mut chart = log_chart(
        &root,
        "Padding fraction of the batch vs BatchNorm variance distance (first norm layer)",
        22,
        0f64..1f64,
        (lo, hi),
        "padding fraction of the batch (pads / (batch x time))",
        "||sigma2_B - sigma2|| / d",
        &sci,
    )?;
    for (i, (label, pts)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(
                pts.iter()
                    .map(|&p| Circle::new(p, 2, color.mix(0.45).filled())),
            )
            .map_err(err)?
            .label(label.clone())
            .legend(move |(x, y)| Circle::new((x + 8, y), 5, color.filled()));
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    save(&root)?;
    Ok(Some(Chart {
        file: file.into(),
        title: "Padding and BatchNorm statistics".into(),
        caption: "Each dot is one training step: the padding fraction of its batch against the distance of the first \
                  BatchNorm layer's batch variance to the running variance. Naive BN takes its statistics over the pads, \
                  masked BN over real tokens only; bucketing by length lowers the padding fraction."
            .into(),
    }))
}

/// Draws every chart the runs have data for.
pub fn draw_all(runs: &[RunResult], out: &Path) -> Result<Vec<Chart>> {
    register_font();
    let mut charts = Vec::new();
    charts.extend(oscillation(runs, out, false)?);
    charts.extend(oscillation(runs, out, true)?);
    charts.extend(bn_vs_pn(runs, out)?);
    charts.extend(timeseries(runs, out)?);
    charts.extend(curves(runs, out, Task::Text)?);
    charts.extend(curves(runs, out, Task::Images)?);
    charts.extend(padding(runs, out)?);
    Ok(charts)
}
