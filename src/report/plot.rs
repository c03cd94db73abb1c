//! Drawing primitives for the report's charts (plotters; every chart as PNG and SVG): fonts,
//! colours, a log-scale chart, legends and grouped box plots. The font is embedded in the binary (DejaVu Sans), so a
//! machine without system fonts renders them the same.

use super::BoxStats;
use anyhow::{anyhow, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
pub(super) const FAMILY: &str = "sans-serif";

pub(super) fn register_font() {
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

impl Chart {
    /// The vector version drawn beside the PNG.
    pub fn svg(&self) -> String {
        std::path::Path::new(&self.file)
            .with_extension("svg")
            .to_string_lossy()
            .into_owned()
    }
}

/// The Okabe-Ito palette (Okabe & Ito 2008), which stays distinct for colour-blind readers;
/// its yellow, weak on white, comes last.
pub(super) const COLORS: [RGBColor; 8] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(230, 159, 0),   // orange
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(0, 0, 0),       // black
    RGBColor(240, 228, 66),  // yellow
];

/// A drawing area of any plotters backend: every chart is drawn by the same generic code into a
/// bitmap (PNG) and into a vector image (SVG).
pub(super) type Area<DB> = DrawingArea<DB, Shift>;

/// One colour per configuration, the same in every chart of a report: configurations take the
/// palette in the order of [`by_group`](super::by_group) over all the report's runs.
pub(super) struct GroupColors(Vec<String>);

impl GroupColors {
    pub(super) fn of(runs: &[super::RunResult]) -> Self {
        GroupColors(super::by_group(runs).into_iter().map(|(l, _)| l).collect())
    }

    fn index(&self, label: &str) -> usize {
        self.0
            .iter()
            .position(|l| l == label)
            .unwrap_or(self.0.len())
    }

    pub(super) fn color(&self, label: &str) -> RGBColor {
        COLORS[self.index(label) % COLORS.len()]
    }

    /// A line's colour, and whether it carries markers: beyond the palette's eight colours the
    /// colours repeat, and the repeats are told apart by triangles on the line.
    pub(super) fn line(&self, label: &str) -> LineStyle {
        let i = self.index(label);
        LineStyle {
            color: self.color(label),
            marked: i >= COLORS.len(),
            // configurations drawn first are drawn wider, so that a later line over an earlier
            // one (PN-V on LayerNorm) leaves the earlier one showing at its edges
            width: 6u32.saturating_sub(i as u32).max(2),
        }
    }
}

#[derive(Clone, Copy)]
pub(super) struct LineStyle {
    pub color: RGBColor,
    pub marked: bool,
    pub width: u32,
}

/// Draws a figure as a PNG at `$path` and as an SVG beside it (same name, `.svg`). `$body` is
/// written once and compiled for both backends; it draws on `$root`, filled white.
macro_rules! png_and_svg {
    ($path:expr, $size:expr, |$root:ident| $body:block) => {{
        let png: &std::path::Path = $path;
        let svg = png.with_extension("svg");
        {
            let $root = plotters::prelude::BitMapBackend::new(png, $size).into_drawing_area();
            $root.fill(&WHITE).map_err(err)?;
            $body
            $root.present().map_err(err)?;
        }
        {
            let $root = plotters::prelude::SVGBackend::new(&svg, $size).into_drawing_area();
            $root.fill(&WHITE).map_err(err)?;
            $body
            $root.present().map_err(err)?;
        }
    }};
}
pub(super) use png_and_svg;

pub(super) fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}

pub(super) fn font(size: u32) -> TextStyle<'static> {
    (FAMILY, size).into_font().into()
}

pub(super) type LogChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, LogCoord<f64>>>;

/// A chart with a linear x axis and a logarithmic y axis, titled and labelled.
pub(super) fn log_chart<'a, DB: DrawingBackend>(
    area: &'a Area<DB>,
    caption: &str,
    caption_size: u32,
    x: std::ops::Range<f64>,
    (lo, hi): (f64, f64),
    x_desc: &str,
    y_desc: &str,
    y_format: &dyn Fn(&f64) -> String,
    x_whole: bool,
) -> Result<LogChart<'a, DB>> {
    // steps are whole numbers; fractions need decimals; an axis of whole settings (layers)
    // labels its whole values only
    let x_decimals = if x.end > 10.0 { 0 } else { 1 };
    let x_label = move |x: &f64| {
        if !x_whole {
            format!("{x:.x_decimals$}")
        } else if (x - x.round()).abs() < 1e-9 {
            format!("{x:.0}")
        } else {
            String::new()
        }
    };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, font(caption_size))
        .margin(12)
        // room for the last x label, centred on the axis end
        .margin_right(36)
        .x_label_area_size(45)
        .y_label_area_size(85)
        .build_cartesian_2d(x, (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_label_formatter(&x_label)
        .x_desc(x_desc)
        .y_desc(y_desc)
        .y_labels(log_labels(area, lo, hi))
        .light_line_style(BLACK.mix(0.04))
        .y_label_formatter(&log_tick(area, (lo, hi), y_format))
        .label_style(font(18))
        .axis_desc_style(font(19))
        .draw()
        .map_err(err)?;
    Ok(chart)
}

/// A log-axis tick: plain decimals between 0.001 and 10,000 (`0.03`, `2`, `150`), powers of ten
/// in scientific notation outside.
pub(super) fn sci(y: &f64) -> String {
    let a = y.abs();
    if a == 0.0 || !(1e-3..1e4).contains(&a) {
        return format!("{y:.0e}");
    }
    let decimals = (-a.log10().floor()).max(0.0) as usize + 1;
    let s = format!("{y:.decimals$}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// A chart with a linear x axis and a linear y axis from `lo` to `hi`, titled and labelled.
pub(super) fn linear_chart<'a, DB: DrawingBackend>(
    area: &'a Area<DB>,
    caption: &str,
    caption_size: u32,
    x: std::ops::Range<f64>,
    (lo, hi): (f64, f64),
    x_desc: &str,
    y_desc: &str,
) -> Result<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>> {
    // enough decimals to tell neighbouring ticks apart (about ten ticks over the range)
    let decimals = (-((hi - lo) / 10.0).log10().floor()).max(0.0) as usize;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, font(caption_size))
        .margin(12)
        .margin_right(36)
        .x_label_area_size(45)
        .y_label_area_size(85)
        .build_cartesian_2d(x, lo..hi)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_label_formatter(&|x| format!("{x:.0}"))
        .x_desc(x_desc)
        .y_desc(y_desc)
        .light_line_style(BLACK.mix(0.04))
        .y_label_formatter(&|y| format!("{y:.decimals$}"))
        .label_style(font(18))
        .axis_desc_style(font(19))
        .draw()
        .map_err(err)?;
    Ok(chart)
}

/// The y range of a value chart: logarithmic when the positive values span a decade or more,
/// linear (with a 5 % margin) when they span less, where a log axis only squeezes the lines.
pub(super) fn value_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64, bool)> {
    let v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    let (lo, hi) = v
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    if v.is_empty() {
        return None;
    }
    if lo > 0.0 && hi / lo >= 10.0 {
        let (l, h) = log_range(v.into_iter())?;
        return Some((l, h, true));
    }
    let margin = if hi > lo {
        0.05 * (hi - lo)
    } else {
        0.05 * hi.abs().max(1e-12)
    };
    Some((lo - margin, hi + margin, false))
}

/// Builds the chart of [`value_range`]'s kind (log: [`log_chart`], with " (log)" added to the
/// axis title; linear: [`linear_chart`]) and runs `$body` on it as `$chart`; the body is compiled
/// for both kinds.
macro_rules! value_chart {
    ($area:expr, $caption:expr, $size:expr, $x:expr, $range:expr, $x_desc:expr, $y_desc:expr, $fmt:expr,
     |$chart:ident| $body:block) => {{
        let (lo, hi, log) = $range;
        if log {
            let y_desc = format!("{} (log)", $y_desc);
            #[allow(unused_mut)]
            let mut $chart = log_chart(
                $area,
                $caption,
                $size,
                $x,
                (lo, hi),
                $x_desc,
                &y_desc,
                $fmt,
                false,
            )?;
            $body
        } else {
            #[allow(unused_mut)]
            let _ = $fmt;
            let mut $chart = linear_chart($area, $caption, $size, $x, (lo, hi), $x_desc, $y_desc)?;
            $body
        }
    }};
}
pub(super) use value_chart;

/// The top of a log axis raised so that a legend of `entries` lines in the upper corner sits
/// above the data instead of over it: the legend's share of the height is left empty.
pub(super) fn legend_room(lo: f64, hi: f64, entries: usize) -> f64 {
    let share = (0.06 + 0.07 * entries as f64).min(0.5);
    lo * (hi / lo).powf(1.0 / (1.0 - share))
}

pub(super) fn draw_legend<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(font(17))
        .draw()
        .map_err(err)
}

/// One series of a box chart: label, and for each x category (a 20 % bucket of training, a
/// layer) the values.
pub struct BoxSeries {
    pub label: String,
    pub color: RGBColor,
    pub buckets: Vec<Vec<f64>>,
}

/// Which labels a log axis has room for: every multiple within a decade (but 7 and 9, which would
/// touch 8 and 10), 1-2-5 or the powers of ten only, by its height per decade (a label about 18 px
/// high; 5 and 6 sit 0.08 of a decade apart, 1 and 2 0.3).
#[derive(Clone, Copy, PartialEq)]
enum LogDensity {
    Multiples,
    OneTwoFive,
    PowersOfTen,
}

fn log_density<DB: DrawingBackend>(area: &Area<DB>, lo: f64, hi: f64) -> LogDensity {
    let decades = (hi / lo).log10().max(1.0);
    // the plot takes about three quarters of the area's height
    let per_decade = area.dim_in_pixel().1 as f64 * 0.75 / decades;
    if per_decade >= 162.0 {
        LogDensity::Multiples
    } else if per_decade >= 67.0 {
        LogDensity::OneTwoFive
    } else {
        LogDensity::PowersOfTen
    }
}

/// How many labels to ask plotters for on a log axis from `lo` to `hi`: the multiples within each
/// decade where some of them fit (see [`log_tick`]), only the powers of ten where none do.
pub(super) fn log_labels<DB: DrawingBackend>(area: &Area<DB>, lo: f64, hi: f64) -> usize {
    let decades = (hi / lo).log10().max(1.0);
    match log_density(area, lo, hi) {
        LogDensity::PowersOfTen => decades.ceil() as usize + 1,
        _ => (decades.ceil() as usize) * 10 + 2,
    }
}

/// The label of log-axis tick `y`: `format(y)`, or nothing for the multiples of a power of ten
/// that the axis has no room for (see [`LogDensity`]).
pub(super) fn log_tick<'f, DB: DrawingBackend>(
    area: &Area<DB>,
    (lo, hi): (f64, f64),
    format: &'f dyn Fn(&f64) -> String,
) -> impl Fn(&f64) -> String + 'f {
    let density = log_density(area, lo, hi);
    move |y: &f64| {
        let mantissa = (y / 10f64.powf(y.log10().floor())).round() as i64;
        let shown = match density {
            LogDensity::Multiples => mantissa != 7 && mantissa != 9,
            LogDensity::OneTwoFive => matches!(mantissa, 1 | 2 | 5 | 10),
            LogDensity::PowersOfTen => true,
        };
        if shown {
            format(y)
        } else {
            String::new()
        }
    }
}

/// Positive finite values (for log axes).
pub(super) fn positive(v: &[f64]) -> impl Iterator<Item = f64> + '_ {
    v.iter().copied().filter(|x| x.is_finite() && *x > 0.0)
}

pub(super) fn log_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    (lo.is_finite() && hi > 0.0).then(|| {
        let hi = if hi <= lo { lo * 10.0 } else { hi };
        // plotters labels a log axis from the first power of ten inside it: the axis starts at a
        // 1-2-5 value under the data when the data's own power of ten lies above that start
        // (87-520 is drawn from 50, labelled from 100), else at the power of ten below the data,
        // so that the smallest values have labels below them (3e-3-9e-3 from 1e-3)
        // (a hair below it, so that rounding in plotters' log10 keeps that value)
        let below = lo / 1.5;
        let power = 10f64.powf(below.log10().floor());
        let nice = [5.0, 2.0, 1.0]
            .into_iter()
            .map(|m| m * power)
            .find(|&v| v <= below)
            .unwrap_or(power);
        let data_power = 10f64.powf(lo.log10().floor());
        let start = if nice <= data_power { nice } else { power };
        (start * 0.999, hi * 1.5)
    })
}

/// The x categories of box plots by 20 % bucket of training, and their axis description.
pub(super) fn bucket_axis() -> (Vec<String>, &'static str) {
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
pub(super) fn draw_boxes<DB: DrawingBackend>(
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
    // layer names too long for their slot (about 10 px a character) are abbreviated, and the
    // axis title says how
    let slot = (area.dim_in_pixel().0.saturating_sub(130)) as usize / categories.len().max(1);
    let longest = categories
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(0);
    let (categories, x_desc) = if longest * 10 > slot {
        let short: Vec<String> = categories.iter().map(|c| abbreviate_layer(c)).collect();
        (
            short,
            format!("{x_desc}; b = block, n = norm, sc = shortcut"),
        )
    } else {
        (categories, x_desc.to_string())
    };
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

/// `label (1 seed)`, `label (3 seeds)`.
pub(super) fn with_seeds(label: &str, seeds: usize) -> String {
    match seeds {
        1 => format!("{label} (1 seed)"),
        n => format!("{label} ({n} seeds)"),
    }
}

/// A line of means over seeds: its band (`band` holds `(x, low, high)`; filled when it has two
/// points or more), the line, a dot when the line is a single point, and triangles along it
/// when its colour is a repeat.
pub(super) fn draw_mean_line<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    points: &[(f64, f64)],
    band: &[(f64, f64, f64)],
    style: LineStyle,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let color = style.color;
    if band.len() >= 2 {
        // the upper edge forward, then the lower edge back
        let outline: Vec<(f64, f64)> = band
            .iter()
            .map(|&(x, _, high)| (x, high))
            .chain(band.iter().rev().map(|&(x, low, _)| (x, low)))
            .collect();
        chart
            .draw_series([Polygon::new(outline, color.mix(0.2).filled())])
            .map_err(err)?;
    }
    if let [p] = points {
        chart
            .draw_series([Circle::new(*p, 6, color.filled())])
            .map_err(err)?;
    } else if points.len() <= 12 && !style.marked {
        // a sparse series (a few evaluations) shows where its values are
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(err)?;
    }
    if style.marked {
        // about 12 markers along the line
        let every = (points.len() / 12).max(1);
        chart
            .draw_series(
                points
                    .iter()
                    .step_by(every)
                    .map(|&p| TriangleMarker::new(p, 7, color.filled())),
            )
            .map_err(err)?;
    }
    chart
        .draw_series(LineSeries::new(
            points.iter().copied(),
            color.stroke_width(style.width),
        ))
        .map_err(err)?;
    Ok(())
}

/// Group labels without the comma-separated parts that all of them share (`text scaled-batch
/// bucketed, layers 2, steps 600` and `..., layers 4, steps 600` -> `layers 2`, `layers 4`),
/// and those shared parts: long labels do not fit the legend of a half-width panel. A label
/// left with nothing keeps its whole text.
pub(super) fn split_common(labels: &[&str]) -> (String, Vec<String>) {
    let parts: Vec<Vec<&str>> = labels.iter().map(|l| top_level_parts(l)).collect();
    if parts.len() < 2 {
        return (
            String::new(),
            labels.iter().map(|l| l.to_string()).collect(),
        );
    }
    let common: Vec<&str> = parts[0]
        .iter()
        .copied()
        .filter(|p| parts.iter().all(|ps| ps.contains(p)))
        .collect();
    let short = parts
        .iter()
        .zip(labels)
        .map(|(ps, whole)| {
            let rest: Vec<&str> = ps.iter().copied().filter(|p| !common.contains(p)).collect();
            if rest.is_empty() {
                whole.to_string()
            } else {
                rest.join(", ")
            }
        })
        .collect();
    (common.join(", "), short)
}

/// `label` cut at its `", "` separators outside parentheses: `a, b (c, d)` is `a` and `b (c, d)`,
/// so that a parenthesized note is never torn in two.
fn top_level_parts(label: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    let bytes = label.as_bytes();
    for (i, &c) in bytes.iter().enumerate() {
        match c {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b',' if depth == 0 && bytes.get(i + 1) == Some(&b' ') => {
                parts.push(&label[start..i]);
                start = i + 2;
            }
            _ => {}
        }
    }
    parts.push(&label[start..]);
    parts
}

/// One line of a legend strip: its label and how its line is drawn.
pub(super) struct LegendEntry {
    pub label: String,
    pub style: LineStyle,
}

/// Width in pixels of the legend strip beside line charts.
pub(super) const LEGEND_STRIP: u32 = 400;

/// `text` cut at its commas into lines of at most about `max` characters.
fn wrap_at_commas(text: &str, max: usize) -> Vec<String> {
    // whole comma-separated parts where they fit; a part longer than a line breaks at spaces
    let pieces: Vec<&str> = text
        .split_inclusive(", ")
        .flat_map(|part| {
            if part.len() > max {
                part.split_inclusive(' ').collect::<Vec<_>>()
            } else {
                vec![part]
            }
        })
        .collect();
    let mut lines: Vec<String> = Vec::new();
    for piece in pieces {
        match lines.last_mut() {
            Some(last) if last.len() + piece.trim_end().len() <= max => last.push_str(piece),
            _ => lines.push(piece.to_string()),
        }
    }
    lines.iter().map(|l| l.trim_end().to_string()).collect()
}

/// A legend beside the plots rather than over the data: the settings every line shares (`note`,
/// when not empty), then a line sample and the label of each entry, long labels wrapped at their
/// commas.
pub(super) fn draw_legend_strip<DB: DrawingBackend>(
    area: &Area<DB>,
    note: &str,
    entries: &[LegendEntry],
) -> Result<()> {
    // about 9 px a character at 16 px
    let max_chars = ((area.dim_in_pixel().0 as usize).saturating_sub(70) / 9).max(12);
    let mut y = 48;
    if !note.is_empty() {
        for line in wrap_at_commas(&format!("all: {note}"), max_chars + 5) {
            area.draw(&Text::new(line, (12, y), font(16)))
                .map_err(err)?;
            y += 22;
        }
        y += 10;
    }
    for e in entries {
        let c = e.style.color;
        area.draw(&PathElement::new(
            vec![(12, y + 9), (44, y + 9)],
            c.stroke_width(e.style.width),
        ))
        .map_err(err)?;
        if e.style.marked {
            area.draw(&TriangleMarker::new((28, y + 9), 7, c.filled()))
                .map_err(err)?;
        }
        for line in wrap_at_commas(&e.label, max_chars) {
            area.draw(&Text::new(line, (54, y), font(16)))
                .map_err(err)?;
            y += 22;
        }
        y += 8;
    }
    Ok(())
}
