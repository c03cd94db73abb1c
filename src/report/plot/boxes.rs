//! Grouped box plots (per 20 % of training, per layer).

use super::*;
use crate::report::BoxStats;
use plotters::coord::types::RangedCoordf64;

/// One series of a box chart: label, and for each x category (a 20 % bucket of training, a
/// layer) the values.
pub struct BoxSeries {
    pub label: String,
    pub color: RGBColor,
    pub buckets: Vec<Vec<f64>>,
}

/// The x categories of box plots by 20 % bucket of training, and their axis description.
pub(in crate::report) fn bucket_axis() -> (Vec<String>, &'static str) {
    (
        (0..5)
            .map(|i| format!("{}-{} %", i * 20, i * 20 + 20))
            .collect(),
        "share of training (box: quartiles, whiskers: 1.5 IQR, dots: outliers)",
    )
}

/// A layer name in a few characters: `block1.shortcut_norm` -> `b1.sc`, `block0.attn_norm` ->
/// `b0.attn`, `stem.norm` -> `stem`.
fn abbreviate_layer(name: &str) -> String {
    name.replace("shortcut_norm", "sc")
        .replace("attn_norm", "attn")
        .replace("ffn_norm", "ffn")
        .replace("final_norm", "final")
        .replace("stem.norm", "stem")
        .replace("block", "b")
        .replace("norm", "n")
}

/// Grouped box plots, one group per x category (`series[i].buckets[category]`), log y axis.
pub(in crate::report) fn draw_boxes<DB: DrawingBackend>(
    area: &Area<DB>,
    title: &str,
    y_label: &str,
    (categories, x_desc): (Vec<String>, &str),
    series: &[BoxSeries],
    shared_range: Option<(f64, f64)>,
) -> Result<()> {
    let all = series
        .iter()
        .flat_map(|s| s.buckets.iter().flat_map(|b| positive(b)));
    let Some((lo, hi)) = shared_range.or_else(|| log_range(all)) else {
        area.titled(&format!("{title}: no data"), font(18))
            .map_err(err)?;
        return Ok(());
    };
    let hi = legend_room(lo, hi, series.len());
    let (categories, x_desc) = fit_categories(area, categories, x_desc);
    let x_desc = x_desc.as_str();
    // room for the last x label, centred half a category from the axis end (about 10 px a
    // character at this size)
    let last = categories.last().map_or(0, |c| c.chars().count()) as u32;
    let mut chart = ChartBuilder::on(area)
        .caption(title, font(20))
        .margin(12)
        .margin_right((last * 5).max(36))
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(
            -0.5f64..(categories.len() as f64 - 0.5),
            (lo..hi).log_scale(),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(categories.len())
        .x_label_formatter(&|x| {
            let i = x.round() as i64;
            match usize::try_from(i).ok().and_then(|i| categories.get(i)) {
                Some(c) if (x - i as f64).abs() < 1e-6 => c.clone(),
                _ => String::new(),
            }
        })
        .y_labels(log_labels(area, lo, hi))
        .light_line_style(BLACK.mix(0.04))
        .y_label_formatter(&log_tick(area, (lo, hi), &sci))
        .x_desc(x_desc)
        .y_desc(y_label)
        .label_style(font(18))
        .axis_desc_style(font(19))
        .draw()
        .map_err(err)?;
    let n = series.len().max(1) as f64;
    let width = 0.8 / n;
    for (si, s) in series.iter().enumerate() {
        let color = s.color;
        for (bi, values) in s.buckets.iter().enumerate() {
            let vals: Vec<f64> = positive(values).collect();
            let Some(b) = BoxStats::of(&vals) else {
                continue;
            };
            let center = bi as f64 - 0.4 + width * (si as f64 + 0.5);
            draw_box(&mut chart, &b, center, width, color)?;
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

/// Layer names too long for their slot (about 10 px a character) are abbreviated, and the axis
/// title says how.
fn fit_categories<DB: DrawingBackend>(
    area: &Area<DB>,
    categories: Vec<String>,
    x_desc: &str,
) -> (Vec<String>, String) {
    let slot = (area.dim_in_pixel().0.saturating_sub(130)) as usize / categories.len().max(1);
    let longest = categories
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(0);
    if longest * 10 > slot {
        let short: Vec<String> = categories.iter().map(|c| abbreviate_layer(c)).collect();
        (
            short,
            format!("{x_desc}; b = block, n = norm, sc = shortcut"),
        )
    } else {
        (categories, x_desc.to_string())
    }
}

type BoxChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, LogCoord<f64>>>;

/// One box at `center`: the quartile box, the median (thick), whiskers with caps, outliers.
fn draw_box<DB: DrawingBackend>(
    chart: &mut BoxChart<'_, DB>,
    b: &BoxStats,
    center: f64,
    width: f64,
    color: RGBColor,
) -> Result<()> {
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
    // outliers one per 1/500 of a decade (well under a pixel): thousands of identical
    // dots would only swell the SVG
    let mut seen = std::collections::HashSet::new();
    chart
        .draw_series(
            b.outliers
                .iter()
                .filter(|y| seen.insert((y.log10() * 500.0).round() as i64))
                .map(|&y| Circle::new((center, y), 2, color.mix(0.6).filled())),
        )
        .map_err(err)?;
    Ok(())
}
