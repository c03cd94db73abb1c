//! Per-step quantities over training, one line per configuration (mean over seeds of 1 % bins,
//! band = min..max over seeds): training loss and gradient norm, PowerNorm's internal state.

use super::plot::*;
use super::stats::spread;
use super::{by_group, RunResult};
use crate::config::Task;
use anyhow::Result;
use plotters::prelude::*;
use std::path::Path;

/// One per-step series per run (`(step, value)`), binned over training: per bin the mean over
/// seeds of each seed's bin mean, and the min..max over seeds. Non-positive or non-finite values
/// are left out (the charts are logarithmic).
fn binned(
    rs: &[&RunResult],
    series: &dyn Fn(&RunResult) -> Vec<(usize, f64)>,
    bins: usize,
) -> Vec<(f64, f64, f64, f64)> {
    let steps = rs.iter().map(|r| r.config.steps).max().unwrap_or(1).max(1);
    let width = steps.div_ceil(bins).max(1);
    let n_bins = steps.div_ceil(width);
    let per_seed: Vec<Vec<Option<f64>>> = rs
        .iter()
        .map(|r| {
            let mut sums = vec![(0.0, 0usize); n_bins];
            for (step, v) in series(r) {
                if v.is_finite() && v > 0.0 {
                    let b = ((step.max(1) - 1) / width).min(n_bins - 1);
                    sums[b].0 += v;
                    sums[b].1 += 1;
                }
            }
            sums.iter()
                .map(|&(s, n)| (n > 0).then(|| s / n as f64))
                .collect()
        })
        .collect();
    (0..n_bins)
        .filter_map(|b| {
            let v: Vec<f64> = per_seed.iter().filter_map(|s| s[b]).collect();
            if v.is_empty() {
                return None;
            }
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let (lo, hi) = spread(&v);
            Some((((b + 1) * width).min(steps) as f64, mean, lo, hi))
        })
        .collect()
}

/// A panel of [`over_training`]: title, y axis, the per-run series.
type Panel<'a> = (
    &'a str,
    &'a str,
    &'a dyn Fn(&RunResult) -> Vec<(usize, f64)>,
);

/// Panels side by side of per-step quantities over training, one line per configuration
/// (mean over seeds of 1 %-of-training bins, band = min..max over seeds), log y.
fn over_training(
    groups: &[(String, Vec<&RunResult>)],
    palette: &GroupColors,
    path: &Path,
    panels: &[Panel],
) -> Result<()> {
    let max_step = groups
        .iter()
        .flat_map(|(_, rs)| rs.iter().map(|r| r.config.steps as f64))
        .fold(1.0, f64::max);
    let (common, short) = split_common(&groups.iter().map(|g| g.0.as_str()).collect::<Vec<_>>());
    let legend: Vec<LegendEntry> = groups
        .iter()
        .zip(short)
        .map(|((label, rs), short)| LegendEntry {
            label: with_seeds(&short, rs.len()),
            style: palette.line(label),
        })
        .collect();
    png_and_svg!(path, (1500 + LEGEND_STRIP, 650), |root| {
        let (plots, strip) = root.split_horizontally(1500);
        let areas = plots.split_evenly((1, panels.len()));
        for (area, (title, y_desc, series)) in areas.iter().zip(panels) {
            // (label, seeds, bins)
            type Binned = (String, usize, Vec<(f64, f64, f64, f64)>);
            let lines: Vec<Binned> = groups
                .iter()
                .map(|(label, rs)| (label.clone(), rs.len(), binned(rs, *series, 100)))
                .collect();
            let Some(range) = value_range(
                lines
                    .iter()
                    .flat_map(|(_, _, p)| p.iter().flat_map(|x| [x.2, x.3])),
            ) else {
                area.titled(&format!("{title}: no data"), font(18))
                    .map_err(err)?;
                continue;
            };
            value_chart!(
                area,
                title,
                18,
                0f64..max_step,
                range,
                "training step",
                *y_desc,
                &sci,
                |chart| {
                    for ((_, seeds, pts), entry) in lines.iter().zip(&legend) {
                        // a band only spans seeds
                        let band: Vec<(f64, f64, f64)> = if *seeds > 1 {
                            pts.iter().map(|p| (p.0, p.2, p.3)).collect()
                        } else {
                            vec![]
                        };
                        let line: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, p.1)).collect();
                        draw_mean_line(&mut chart, &line, &band, entry.style)?;
                    }
                }
            );
        }
        draw_legend_strip(&strip, &common, &legend)?;
    });
    Ok(())
}

/// Training loss and gradient norm over training per configuration of `task`.
pub(super) fn training(runs: &[RunResult], out: &Path, task: Task) -> Result<Option<Chart>> {
    let groups: Vec<(String, Vec<&RunResult>)> = by_group(runs)
        .into_iter()
        .filter(|(_, rs)| rs[0].config.task == task && rs.iter().any(|r| r.steps.len() > 1))
        .collect();
    if groups.is_empty() {
        return Ok(None);
    }
    let file = format!("{}_training.png", task.name());
    let loss = |r: &RunResult| r.steps.iter().map(|s| (s.step, s.loss)).collect();
    let grad = |r: &RunResult| r.steps.iter().map(|s| (s.step, s.grad_norm)).collect();
    over_training(
        &groups,
        &GroupColors::of(runs),
        &out.join(&file),
        &[
            ("Training loss (nats)", "training loss", &loss),
            (
                "Gradient norm before clipping",
                "global L2 gradient norm",
                &grad,
            ),
        ],
    )?;
    Ok(Some(Chart {
        file,
        title: format!("Training loss and gradient norm ({})", task.name()),
        caption: "Left: training loss; right: global gradient norm before clipping. Each line is the mean over seeds \
                  of the per-seed mean in bins of 1 % of training; the band spans the seeds (min..max). A y axis is logarithmic where \
                  its values span a decade or more, linear otherwise."
            .into(),
    }))
}

/// PowerNorm's internal state over training: the norm of its backward statistic nu and its
/// forward statistic Gamma = mean(z²), first PowerNorm layer, per PowerNorm configuration.
pub(super) fn powernorm_state(runs: &[RunResult], out: &Path) -> Result<Option<Chart>> {
    let groups: Vec<(String, Vec<&RunResult>)> = by_group(runs)
        .into_iter()
        .filter(|(_, rs)| {
            rs.iter().any(|r| {
                r.probes
                    .values()
                    .any(|p| p.contains_key(crate::probe::NU_NORM))
            })
        })
        .collect();
    if groups.is_empty() {
        return Ok(None);
    }
    let probe = |name: &'static str| {
        move |r: &RunResult| -> Vec<(usize, f64)> {
            r.first_layer()
                .and_then(|l| r.probes.get(l))
                .and_then(|p| p.get(name))
                .cloned()
                .unwrap_or_default()
        }
    };
    let (nu, gamma) = (probe(crate::probe::NU_NORM), probe(crate::probe::PN_GAMMA));
    let file = "powernorm_state.png".to_string();
    over_training(
        &groups,
        &GroupColors::of(runs),
        &out.join(&file),
        &[
            (
                "PowerNorm's ν (backward state), first layer",
                "‖ν‖ (L2 over features)",
                &nu,
            ),
            (
                "PowerNorm's Γ = mean(z²), first layer",
                "Γ, mean over features",
                &gamma,
            ),
        ],
    )?;
    Ok(Some(Chart {
        file,
        title: "PowerNorm's internal state over training".into(),
        caption: "Left: the L2 norm of PowerNorm's backward running statistic nu; right: \
                  its forward statistic Gamma = mean over the batch of z², averaged over features; first PowerNorm \
                  layer, mean over seeds of 1 % bins, band = min..max over seeds. A y axis is logarithmic where its values span a \
                  decade or more, linear otherwise."
            .into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RunConfig;

    fn run(steps: usize, values: &[(usize, f64)]) -> RunResult {
        RunResult {
            dir: Default::default(),
            config: RunConfig {
                steps,
                ..Default::default()
            },
            summary: None,
            steps: vec![],
            eval: vec![],
            probes: [(
                "l".to_string(),
                [("x".to_string(), values.to_vec())].into_iter().collect(),
            )]
            .into_iter()
            .collect(),
            layers: vec!["l".into()],
            warnings: vec![],
        }
    }

    #[test]
    fn bins_average_each_seed_then_span_the_seeds() {
        // 4 steps in 2 bins of 2 steps; a non-positive value is left out
        let a = run(4, &[(1, 1.0), (2, 3.0), (3, 4.0), (4, -1.0)]);
        let b = run(4, &[(1, 5.0), (2, 7.0), (3, 8.0), (4, 10.0)]);
        let series = |r: &RunResult| r.probes["l"]["x"].clone();
        let got = binned(&[&a, &b], &series, 2);
        // bin 1: seed means 2 and 6; bin 2: 4 and 9
        assert_eq!(got, vec![(2.0, 4.0, 2.0, 6.0), (4.0, 6.5, 4.0, 9.0)]);
    }
}
