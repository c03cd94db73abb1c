//! Lines of means over seeds, and their legends: in the plot's corner or in a strip beside it.

use super::*;

pub(in crate::report) fn draw_legend<'a, DB, X, Y>(
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

/// `label (1 seed)`, `label (3 seeds)`.
pub(in crate::report) fn with_seeds(label: &str, seeds: usize) -> String {
    match seeds {
        1 => format!("{label} (1 seed)"),
        n => format!("{label} ({n} seeds)"),
    }
}

/// A line of means over seeds: its band (`band` holds `(x, low, high)`; filled when it has two
/// points or more), the line, a dot when the line is a single point, and triangles along it
/// when its colour is a repeat.
pub(in crate::report) fn draw_mean_line<'a, DB, X, Y>(
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
pub(in crate::report) fn split_common(labels: &[&str]) -> (String, Vec<String>) {
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
pub(in crate::report) struct LegendEntry {
    pub label: String,
    pub style: LineStyle,
}

/// Width in pixels of the legend strip beside line charts.
pub(in crate::report) const LEGEND_STRIP: u32 = 400;

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
pub(in crate::report) fn draw_legend_strip<DB: DrawingBackend>(
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
