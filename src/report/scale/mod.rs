//! The scale ladder: how the text/image ratio of BatchNorm's batch-statistic distances moves as
//! the text model grows toward the paper's regime.
//!
//! A *point* pairs the runs (seeds) of one text configuration whose norm keeps a batch variance
//! with the image runs (BatchNorm) of the same number of updates. Each measure is taken after
//! warm-up only: per run, the median over the window of the measure's values (one layer, or every
//! BN layer pooled); per point, the ratio of the text runs' geometric mean to the image runs'.
//! Its 95 % interval is between runs (Welch's t on the logarithms, `report::inference`) when
//! both sides have two runs or more; with one run on a side, the interval is that run's own
//! spread over steps (a block bootstrap), labelled so, and no verdict is given.

pub mod charts;

use super::inference::{welch_log_ratio, MIN_RUNS_FOR_VERDICT};
use super::RunResult;
use crate::config::{RunConfig, Task};
use crate::norm::StatKind;
use crate::results::RunStatus;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The paper's own measures (its Fig. 2 plots both): verdicts are given on these first.
pub const PAPER_MEASURES: [(&str, &str); 2] = [
    (crate::probe::DIST_MEAN, "(1/d)·‖μ_B − μ_r‖, the paper's"),
    (crate::probe::DIST_VAR, "(1/d)·‖σ²_B − σ²_r‖, the paper's"),
];

/// Restatements of the paper's measures: per-feature, scale-free, and per-feature medians (so
/// that a few wide features do not decide). `_r`: the running statistic before the step.
pub const RESTATEMENTS: [(&str, &str); 5] = [
    (
        crate::probe::RMS_DIST_VAR,
        "‖σ²_B − σ²_r‖/√d, per-feature RMS",
    ),
    (crate::probe::REL_DIST_MEAN, "‖μ_B − μ_r‖/‖σ_r‖, relative"),
    (crate::probe::REL_DIST_VAR, "‖σ²_B − σ²_r‖/‖σ²_r‖, relative"),
    (crate::probe::MED_REL_MEAN, "median_j |μ_B,j − μ_r,j|/σ_r,j"),
    (crate::probe::MED_REL_VAR, "median_j |σ²_B,j/σ²_r,j − 1|"),
];

/// The measures the ladder's charts draw, one panel each.
pub const MEASURES: [(&str, &str); 4] = [
    PAPER_MEASURES[0],
    PAPER_MEASURES[1],
    RESTATEMENTS[2],
    RESTATEMENTS[4],
];

/// Which BN layers a measure is taken over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    First,
    Last,
    Pooled,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::First, Scope::Last, Scope::Pooled];

    pub fn label(&self) -> &'static str {
        match self {
            Scope::First => "first BN layer",
            Scope::Last => "last BN layer (main path)",
            Scope::Pooled => "all BN layers",
        }
    }

    /// The label in a chart legend, where the caption says what the layers are.
    pub fn short(&self) -> &'static str {
        match self {
            Scope::First => "first layer",
            Scope::Last => "last layer",
            Scope::Pooled => "all layers",
        }
    }

    fn layers<'a>(&self, r: &'a RunResult) -> Vec<&'a str> {
        match self {
            Scope::First => r.layers.first().map(String::as_str).into_iter().collect(),
            // the main path's last norm: a ResNet's projection shortcut norms come after its
            // stage's second norm in the layer list but sit beside the main path
            Scope::Last => r
                .layers
                .iter()
                .rev()
                .find(|l| !l.contains("shortcut"))
                .map(String::as_str)
                .into_iter()
                .collect(),
            Scope::Pooled => r.layers.iter().map(String::as_str).collect(),
        }
    }
}

/// The smallest text/image ratio that counts as the paper's effect ("orders of magnitude" read
/// as at least one), and the smallest that counts as its direction.
pub const REPRODUCED: f64 = 10.0;
pub const DIRECTION: f64 = 1.2;

/// What a ratio's interval describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spread {
    /// Variation between independent runs: Welch's t on the logarithms of the per-run values.
    BetweenRuns,
    /// One run on a side: that run's spread over steps (block bootstrap). Not a basis for a
    /// verdict.
    WithinRun,
}

/// A ratio with its 95 % interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Ratio {
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
    /// Text and image runs behind it.
    pub runs: (usize, usize),
    pub spread: Spread,
}

/// The rule of the ratio verdicts, as the reports state it.
pub const RATIO_RULE: &str = "reproduced when the whole 95 % interval between runs is at or above 10; the paper's direction when it lies above 1.2; the opposite direction when it lies below 1; not reproduced when it lies below 1.2; not resolved otherwise (an interval too wide to decide); no verdict with fewer than 3 runs a side or an interval of zero width";

impl Ratio {
    /// The verdict under [`RATIO_RULE`], or why there is none.
    pub fn verdict(&self) -> &'static str {
        if !(self.lo.is_finite() && self.value.is_finite() && self.hi.is_finite()) {
            "could not be measured"
        } else if self.spread == Spread::WithinRun {
            "no verdict: single run on a side (the interval is one run's spread over steps)"
        } else if self.runs.0 < MIN_RUNS_FOR_VERDICT || self.runs.1 < MIN_RUNS_FOR_VERDICT {
            "no verdict: fewer than 3 runs a side"
        } else if self.hi <= self.lo {
            "no verdict: the runs do not differ (an interval of zero width)"
        } else if self.lo >= REPRODUCED {
            "reproduced"
        } else if self.lo >= DIRECTION {
            "the paper's direction, smaller effect"
        } else if self.hi < 1.0 {
            "the opposite direction"
        } else if self.hi < DIRECTION {
            "not reproduced"
        } else {
            "not resolved"
        }
    }

    /// How the interval was made and on how many runs, for a verdict line.
    pub fn runs_label(&self) -> String {
        match self.spread {
            Spread::BetweenRuns => format!(
                "{} text runs, {} image runs (Welch t on the logarithms, between runs)",
                self.runs.0, self.runs.1
            ),
            Spread::WithinRun => format!(
                "{} text runs, {} image runs (within-run spread over {BLOCK}-step blocks, not between runs)",
                self.runs.0, self.runs.1
            ),
        }
    }
}

/// One scale point.
pub struct Point<'a> {
    /// What sets the text configuration apart from the other points (`layers = 4, steps = 2000`).
    pub label: String,
    pub text: Vec<&'a RunResult>,
    pub images: Vec<&'a RunResult>,
    /// The image runs' channels, e.g. `16/32/64`.
    pub image_label: String,
    /// Ratios already computed (the table, the verdicts and the charts ask for the same ones).
    cache: std::cell::RefCell<std::collections::HashMap<(String, Scope), Option<Ratio>>>,
}

impl Point<'_> {
    pub fn config(&self) -> &RunConfig {
        &self.text[0].config
    }

    /// The ratio of `measure` over `scope` after warm-up.
    pub fn ratio(&self, measure: &str, scope: Scope) -> Option<Ratio> {
        self.cache
            .borrow_mut()
            .entry((measure.to_string(), scope))
            .or_insert_with(|| ratio(&self.text, &self.images, measure, scope, None))
            .clone()
    }
}

fn keeps_variance(r: &RunResult) -> bool {
    r.config.norm_info().statistic == Some(StatKind::Variance)
}

fn finished(r: &RunResult) -> bool {
    r.status() == RunStatus::Finished
}

pub use crate::config::varying_keys;

/// The value of `key` in `c`'s config.toml, as written there.
pub fn key_value(c: &RunConfig, key: &str) -> String {
    c.value_of(key)
        .map(|v| v.to_string())
        .unwrap_or_else(|| "default".into())
}

/// The scale points among `runs` (finished runs only), in the order of the runs.
pub fn points(runs: &[RunResult]) -> Vec<Point<'_>> {
    let groups = super::by_group(runs);
    let of_task = |task: Task| -> Vec<Vec<&RunResult>> {
        groups
            .iter()
            .filter(|(_, rs)| rs[0].config.task == task && keeps_variance(rs[0]))
            .map(|(_, rs)| {
                rs.iter()
                    .copied()
                    .filter(|r| finished(r))
                    .collect::<Vec<_>>()
            })
            .filter(|rs| !rs.is_empty())
            .collect()
    };
    let (texts, images) = (of_task(Task::Text), of_task(Task::Images));
    let configs: Vec<&RunConfig> = texts.iter().map(|rs| &rs[0].config).collect();
    let keys: Vec<String> = varying_keys(&configs)
        .into_iter()
        .filter(|k| k != "warmup_steps")
        .collect();
    let mut out = Vec::new();
    for text in &texts {
        let label = keys
            .iter()
            .map(|k| format!("{k} = {}", key_value(&text[0].config, k)))
            .collect::<Vec<_>>()
            .join(", ");
        for imgs in images
            .iter()
            .filter(|i| i[0].config.steps == text[0].config.steps)
        {
            let channels = imgs[0].config.cnn_channels.iter().map(|c| c.to_string());
            out.push(Point {
                label: if label.is_empty() {
                    "text".into()
                } else {
                    label.clone()
                },
                text: text.clone(),
                images: imgs.clone(),
                image_label: channels.collect::<Vec<_>>().join("/"),
                cache: Default::default(),
            });
        }
    }
    out
}

/// The after-warm-up window of a run as fractions of its training, optionally narrowed to `part`
/// (a fraction range of the whole training).
fn window(r: &RunResult, part: Option<(f64, f64)>) -> (f64, f64) {
    let warm = r.config.warmup_steps as f64 / r.config.steps.max(1) as f64;
    match part {
        Some((lo, hi)) => (lo.max(warm), hi),
        None => (warm, 1.0),
    }
}

/// Per window step of `r`, the values of `measure` in the layers of `scope`.
fn step_values(
    r: &RunResult,
    measure: &str,
    scope: Scope,
    part: Option<(f64, f64)>,
) -> Vec<Vec<f64>> {
    let (lo, hi) = window(r, part);
    let total = r.config.steps as f64;
    let inside = |step: usize| {
        let f = step as f64 / total;
        f > lo && f <= hi
    };
    let mut by_step: std::collections::BTreeMap<usize, Vec<f64>> = Default::default();
    for layer in scope.layers(r) {
        if let Some(series) = r.probes.get(layer).and_then(|p| p.get(measure)) {
            for &(s, v) in series.iter().filter(|(s, v)| inside(*s) && v.is_finite()) {
                by_step.entry(s).or_default().push(v);
            }
        }
    }
    by_step.into_values().collect()
}

fn median_of(steps: &[&Vec<f64>]) -> f64 {
    let mut v: Vec<f64> = steps.iter().flat_map(|s| s.iter().copied()).collect();
    super::median_in_place(&mut v)
}

const RESAMPLES: usize = 2000;
/// Consecutive steps resampled together when a run's own spread is shown.
const BLOCK: usize = 50;

/// Text/image ratio of the runs' window medians, with a 95 % interval: between runs (Welch's t
/// on the logarithms; the ratio of geometric means) when both sides have two runs or more,
/// otherwise the runs' own spread over steps (block bootstrap; the ratio of means). `part`
/// narrows the window to a range of training (fractions).
pub fn ratio(
    text: &[&RunResult],
    images: &[&RunResult],
    measure: &str,
    scope: Scope,
    part: Option<(f64, f64)>,
) -> Option<Ratio> {
    let series = |runs: &[&RunResult]| -> Vec<Vec<Vec<f64>>> {
        runs.iter()
            .map(|r| step_values(r, measure, scope, part))
            .filter(|s| !s.is_empty())
            .collect()
    };
    let (t, i) = (series(text), series(images));
    if t.is_empty() || i.is_empty() {
        return None;
    }
    let run_median = |s: &Vec<Vec<f64>>| median_of(&s.iter().collect::<Vec<_>>());
    let (t_med, i_med): (Vec<f64>, Vec<f64>) = (
        t.iter().map(run_median).collect(),
        i.iter().map(run_median).collect(),
    );
    if t.len() > 1 && i.len() > 1 {
        let w = welch_log_ratio(&t_med, &i_med)?;
        return Some(Ratio {
            value: w.value,
            lo: w.lo,
            hi: w.hi,
            runs: w.runs,
            spread: Spread::BetweenRuns,
        });
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let value = mean(&t_med) / mean(&i_med);
    let mut rng = StdRng::seed_from_u64(0x5ca1e);
    let blocks = |runs: &[Vec<Vec<f64>>], rng: &mut StdRng| {
        runs.iter()
            .map(|steps| {
                let n = steps.len();
                let b = BLOCK.min(n);
                let mut chosen: Vec<f64> = Vec::new();
                let mut taken = 0;
                while taken < n {
                    let start = rng.random_range(0..=n - b);
                    for step in &steps[start..start + b] {
                        chosen.extend_from_slice(step);
                    }
                    taken += b;
                }
                super::median_in_place(&mut chosen)
            })
            .sum::<f64>()
            / runs.len() as f64
    };
    let mut draws: Vec<f64> = (0..RESAMPLES)
        .map(|_| blocks(&t, &mut rng) / blocks(&i, &mut rng))
        .filter(|x| x.is_finite())
        .collect();
    draws.sort_by(|a, b| a.total_cmp(b));
    Some(Ratio {
        value,
        lo: super::quantile(&draws, 0.025),
        hi: super::quantile(&draws, 0.975),
        runs: (t.len(), i.len()),
        spread: Spread::WithinRun,
    })
}

/// An axis along which points differ in one key only: its name and, per image width, the
/// points in increasing order of the key's value.
pub struct Axis<'a, 'b> {
    pub key: String,
    pub lines: Vec<(String, Vec<(f64, &'b Point<'a>)>)>,
}

/// The axes of `points`: each varying key (warm-up aside) along which at least two points agree
/// in every other key.
pub fn axes<'a, 'b>(points: &'b [Point<'a>]) -> Vec<Axis<'a, 'b>> {
    let configs: Vec<&RunConfig> = points.iter().map(|p| p.config()).collect();
    let keys: Vec<String> = varying_keys(&configs)
        .into_iter()
        .filter(|k| k != "warmup_steps")
        .collect();
    let mut out = Vec::new();
    for key in &keys {
        let rest = |p: &Point| -> String {
            keys.iter()
                .filter(|k| *k != key)
                .map(|k| key_value(p.config(), k))
                .collect::<Vec<_>>()
                .join("|")
                + "|"
                + &p.image_label
        };
        let mut lines: Vec<(String, Vec<(f64, &Point)>)> = Vec::new();
        for p in points {
            let Ok(x) = key_value(p.config(), key).parse::<f64>() else {
                continue;
            };
            let id = rest(p);
            match lines.iter_mut().find(|(k, _)| *k == id) {
                Some((_, v)) => v.push((x, p)),
                None => lines.push((id, vec![(x, p)])),
            }
        }
        let lines: Vec<(String, Vec<(f64, &Point)>)> = lines
            .into_iter()
            .filter(|(_, v)| v.len() >= 2)
            .map(|(_, mut v)| {
                v.sort_by(|a, b| a.0.total_cmp(&b.0));
                // the other keys that vary between lines name them (e.g. the norm)
                let others: Vec<String> = keys
                    .iter()
                    .filter(|k| *k != key)
                    .map(|k| key_value(v[0].1.config(), k).trim_matches('"').to_string())
                    .collect();
                let mut label = others.join(", ");
                if !label.is_empty() {
                    label.push_str(", ");
                }
                (format!("{label}images {}", v[0].1.image_label), v)
            })
            .collect();
        if !lines.is_empty() {
            out.push(Axis {
                key: key.clone(),
                lines,
            });
        }
    }
    out
}

mod markdown;
pub use markdown::markdown;

#[cfg(test)]
mod tests;
