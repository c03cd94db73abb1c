//! The report's figures, each from the result files of a set of runs.

pub use super::plot::Chart;
use super::plot::*;
use super::{accuracy, curves};
use super::{by_group, RunResult, BUCKETS};
use crate::config::Task;
use crate::norm::{NormKind, StatKind};
use anyhow::Result;
use plotters::prelude::*;
use std::path::Path;

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

pub(super) fn first_layer(r: &RunResult) -> Option<String> {
    r.first_layer().map(String::from)
}

/// BatchNorm-like: the norm keeps a batch variance (the paper's BN measures apply).
fn keeps_variance(r: &RunResult) -> bool {
    r.config.norm_info().statistic == Some(StatKind::Variance)
}

fn has_probe(r: &RunResult, name: &str) -> bool {
    r.probes.values().any(|p| p.contains_key(name))
}

/// The panels of the oscillation figure: probe, axis label, title (the paper's absolute
/// distances on top, the scale-free ones below).
const OSCILLATION_PANELS: [(&str, &str, &str); 4] = [
    (
        crate::probe::DIST_MEAN,
        "||mu_B - mu|| / d",
        "Distance of the batch mean to the running one",
    ),
    (
        crate::probe::DIST_VAR,
        "||sigma2_B - sigma2|| / d",
        "Distance of the batch variance to the running one",
    ),
    (
        crate::probe::REL_DIST_MEAN,
        "||mu_B - mu|| / ||sqrt(sigma2)||",
        "Same for the mean, relative (scale-free)",
    ),
    (
        crate::probe::REL_DIST_VAR,
        "||sigma2_B - sigma2|| / ||sigma2||",
        "Same for the variance, relative (scale-free)",
    ),
];

/// The paper's figure: BN batch-statistics distances, text beside images, by 20 % bucket.
fn oscillation(runs: &[RunResult], out: &Path, all_layers: bool) -> Result<Option<Chart>> {
    let groups: Vec<(String, Vec<&RunResult>)> = by_group(runs)
        .into_iter()
        .filter(|(_, rs)| keeps_variance(rs[0]))
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
    let palette = GroupColors::of(runs);
    let which = if all_layers {
        "all BN layers pooled"
    } else {
        "first BN layer of each model"
    };
    let layer_fn: Option<&dyn Fn(&RunResult) -> Option<String>> =
        if all_layers { None } else { Some(&first_layer) };
    let panel_series: Vec<Vec<BoxSeries>> = OSCILLATION_PANELS
        .iter()
        .map(|(name, _, _)| {
            groups
                .iter()
                .map(|(label, rs)| BoxSeries {
                    label: label.clone(),
                    color: palette.color(label),
                    buckets: bucketed(rs, layer_fn, name),
                })
                .collect()
        })
        .collect();
    png_and_svg!(&out.join(file), (1500, 1000), |root| {
        let root = root
            .titled(
                &format!(
                    "BatchNorm batch statistics vs running statistics: text vs images ({which})"
                ),
                font(24),
            )
            .map_err(err)?;
        let panels = root.split_evenly((2, 2));
        for ((panel, (_, axis, what)), series) in
            panels.iter().zip(OSCILLATION_PANELS).zip(&panel_series)
        {
            draw_boxes(panel, what, axis, bucket_axis(), series, None)?;
        }
    });
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
        .filter(|(_, rs)| rs[0].config.norm_info().statistic.is_some())
        .collect();
    let has = |k: NormKind| groups.iter().any(|(_, r)| r[0].config.norm == k);
    if !(has(NormKind::Batch) && (has(NormKind::PnV) || has(NormKind::Power))) {
        return Ok(None);
    }
    let file = "bn_vs_pn.png";
    let palette = GroupColors::of(runs);
    let forward: Vec<BoxSeries> = groups
        .iter()
        .map(|(label, rs)| BoxSeries {
            label: label.clone(),
            color: palette.color(label),
            buckets: bucketed(rs, None, &crate::probe::dist(rs[0].second_name())),
        })
        .collect();
    let backward: Vec<BoxSeries> = groups
        .iter()
        // PowerNorm's statistic gets no gradient, so it has no such probe
        .filter(|(_, rs)| has_probe(rs[0], &crate::probe::grad(rs[0].second_name())))
        .map(|(label, rs)| BoxSeries {
            label: label.clone(),
            color: palette.color(label),
            buckets: bucketed(rs, None, &crate::probe::grad(rs[0].second_name())),
        })
        .collect();
    png_and_svg!(&out.join(file), (1500, 620), |root| {
        let root = root
            .titled(
                "Text: BatchNorm vs PN-V / PowerNorm (all norm layers pooled)",
                font(24),
            )
            .map_err(err)?;
        let panels = root.split_evenly((1, 2));
        draw_boxes(
            &panels[0],
            "Forward: ||s_B - s|| / d (s = sigma2 for BN, psi2 for PN)",
            "distance to running statistic",
            bucket_axis(),
            &forward,
            None,
        )?;
        draw_boxes(
            &panels[1],
            "Backward: ||dL/ds_B|| / d",
            "gradient of the loss w.r.t. the statistic",
            bucket_axis(),
            &backward,
            None,
        )?;
    });
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

/// A group label without its `eval_batching` setting.
fn without_eval_batching(label: &str) -> String {
    label
        .split(", ")
        .filter(|p| !p.starts_with("eval_batching"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every training step of the runs with a finite positive variance distance in the first layer:
/// (padding fraction of its batch, that distance).
fn padding_points(rs: &[&RunResult]) -> Vec<(f64, f64)> {
    rs.iter()
        .flat_map(|r| {
            let pad: std::collections::HashMap<usize, f64> = r
                .steps
                .iter()
                .map(|s| (s.step, s.padding_fraction))
                .collect();
            let layer = r.first_layer().unwrap_or_default().to_string();
            r.probes
                .get(&layer)
                .and_then(|p| p.get(crate::probe::DIST_VAR))
                .map(|v| {
                    v.iter()
                        .filter_map(|(s, d)| Some((*pad.get(s)?, *d)))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .filter(|p| p.1 > 0.0 && p.1.is_finite())
        .collect()
}

/// Padding fraction of each batch against the first BN layer's variance distance.
fn padding(runs: &[RunResult], out: &Path) -> Result<Option<Chart>> {
    let groups: Vec<(String, Vec<&RunResult>)> = by_group(runs)
        .into_iter()
        .filter(|(_, rs)| rs[0].config.task == Task::Text && keeps_variance(rs[0]))
        .collect();
    let bucketing_varies = groups.iter().any(|(_, r)| r[0].config.bucket_pool > 0)
        && groups.iter().any(|(_, r)| r[0].config.bucket_pool == 0);
    if groups.is_empty() || !bucketing_varies {
        return Ok(None);
    }
    let file = "padding.png";
    let palette = GroupColors::of(runs);
    let series: Vec<(String, Vec<(f64, f64)>)> = groups
        .iter()
        .map(|(label, rs)| (label.clone(), padding_points(rs)))
        .collect();
    // how validation batches are formed does not change training: configurations that differ only
    // in it trained alike, so each such set is drawn once, under a label without it
    let mut series = series;
    let mut seen = std::collections::HashSet::new();
    series.retain(|(label, _)| seen.insert(without_eval_batching(label)));
    let Some((lo, hi)) = log_range(series.iter().flat_map(|(_, p)| p.iter().map(|x| x.1))) else {
        return Ok(None);
    };
    png_and_svg!(&out.join(file), (1300, 750), |root| {
        let mut chart = log_chart(
            &root,
            "Padding fraction of the batch vs BatchNorm variance distance (first norm layer)",
            22,
            0f64..1f64,
            (lo, legend_room(lo, hi, series.len())),
            "padding fraction of the batch (pads / (batch x time))",
            "||sigma2_B - sigma2|| / d",
            &sci,
            false,
        )?;
        for (label, pts) in &series {
            // colours repeat beyond the palette's eight: the repeats are triangles
            let LineStyle { color, marked, .. } = palette.line(label);
            let label = without_eval_batching(label);
            let dot = color.mix(0.45).filled();
            if marked {
                chart
                    .draw_series(pts.iter().map(|&p| TriangleMarker::new(p, 3, dot)))
                    .map_err(err)?
                    .label(label)
                    .legend(move |(x, y)| TriangleMarker::new((x + 8, y), 6, color.filled()));
            } else {
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 2, dot)))
                    .map_err(err)?
                    .label(label)
                    .legend(move |(x, y)| Circle::new((x + 8, y), 5, color.filled()));
            }
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    });
    Ok(Some(Chart {
        file: file.into(),
        title: "Padding and BatchNorm statistics".into(),
        caption: "Each dot is one training step: the padding fraction of its batch against the distance of the first \
                  BatchNorm layer's batch variance to the running variance. Naive BN takes its statistics over the pads, \
                  masked BN over real tokens only; bucketing by length lowers the padding fraction. \
                  Configurations that differ only in how validation batches are formed trained alike and are drawn once."
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
    charts.extend(curves::timeseries(runs, out)?);
    charts.extend(curves::curves(runs, out, Task::Text)?);
    charts.extend(curves::curves(runs, out, Task::Images)?);
    charts.extend(accuracy::accuracy(runs, out)?);
    charts.extend(super::training::training(runs, out, Task::Text)?);
    charts.extend(super::training::training(runs, out, Task::Images)?);
    charts.extend(super::training::powernorm_state(runs, out)?);
    charts.extend(padding(runs, out)?);
    charts.extend(super::sweep::chart(runs, out)?);
    let points = super::scale::points(runs);
    charts.extend(super::scale::charts::regime(&points, out)?);
    charts.extend(super::scale::charts::per_layer(&points, out)?);
    Ok(charts)
}
