//! Drawing primitives for the report's charts (plotters; every chart as PNG and SVG): fonts,
//! colours, a log-scale chart, legends and grouped box plots. The font is embedded in the binary (DejaVu Sans), so a
//! machine without system fonts renders them the same.

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

static FONT: &[u8] = include_bytes!("../../../assets/DejaVuSans.ttf");
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

mod axes;
mod boxes;
mod lines;
pub(super) use axes::*;
pub(super) use boxes::*;
pub(super) use lines::*;
