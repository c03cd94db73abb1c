//! Value axes: logarithmic charts and their labels, linear charts, and the choice between them.

use super::*;
use plotters::coord::types::RangedCoordf64;

pub(in crate::report) type LogChart<'a, DB> =
    ChartContext<'a, DB, Cartesian2d<RangedCoordf64, LogCoord<f64>>>;

/// A chart with a linear x axis and a logarithmic y axis, titled and labelled.
pub(in crate::report) fn log_chart<'a, DB: DrawingBackend>(
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
pub(in crate::report) fn sci(y: &f64) -> String {
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
pub(in crate::report) fn linear_chart<'a, DB: DrawingBackend>(
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
pub(in crate::report) fn value_range(
    values: impl Iterator<Item = f64>,
) -> Option<(f64, f64, bool)> {
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
pub(in crate::report) use value_chart;

/// The top of a log axis raised so that a legend of `entries` lines in the upper corner sits
/// above the data instead of over it: the legend's share of the height is left empty.
pub(in crate::report) fn legend_room(lo: f64, hi: f64, entries: usize) -> f64 {
    let share = (0.06 + 0.07 * entries as f64).min(0.5);
    lo * (hi / lo).powf(1.0 / (1.0 - share))
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
pub(in crate::report) fn log_labels<DB: DrawingBackend>(
    area: &Area<DB>,
    lo: f64,
    hi: f64,
) -> usize {
    let decades = (hi / lo).log10().max(1.0);
    match log_density(area, lo, hi) {
        LogDensity::PowersOfTen => decades.ceil() as usize + 1,
        _ => (decades.ceil() as usize) * 10 + 2,
    }
}

/// The label of log-axis tick `y`: `format(y)`, or nothing for the multiples of a power of ten
/// that the axis has no room for (see [`LogDensity`]).
pub(in crate::report) fn log_tick<'f, DB: DrawingBackend>(
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
pub(in crate::report) fn positive(v: &[f64]) -> impl Iterator<Item = f64> + '_ {
    v.iter().copied().filter(|x| x.is_finite() && *x > 0.0)
}

pub(in crate::report) fn log_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
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
