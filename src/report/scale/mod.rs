//! The scale ladder: how the text/image ratio of BatchNorm's batch-statistic distances moves as
//! the text model grows toward the paper's regime.
//!
//! A *point* pairs the runs (seeds) of one text configuration whose norm keeps a batch variance
//! with the image runs (BatchNorm) of the same number of updates. Each measure is taken after
//! warm-up only: per run, the median over the window of the measure's values (one layer, or every
//! BN layer pooled); per point, the ratio of the text runs' mean to the image runs' mean. Its 95 %
//! confidence interval comes from a bootstrap over seeds when both sides have several, otherwise
//! over steps (blocks of consecutive steps, which keeps their correlation).

pub mod charts;

use super::RunResult;
use crate::config::{RunConfig, Task};
use crate::norm::StatKind;
use crate::results::RunStatus;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The measures of the batch variance's distance to the running variance, with their meaning.
pub const MEASURES: [(&str, &str); 3] = [
    ("dist_var", "(1/d)·‖σ²_B − σ²_r‖, the paper's"),
    ("rms_dist_var", "‖σ²_B − σ²_r‖/√d, per-feature RMS"),
    ("rel_dist_var", "‖σ²_B − σ²_r‖/‖σ²_r‖, relative"),
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
            Scope::Last => "last BN layer",
            Scope::Pooled => "all BN layers",
        }
    }

    fn layers<'a>(&self, r: &'a RunResult) -> Vec<&'a str> {
        match self {
            Scope::First => r.layers.first().map(String::as_str).into_iter().collect(),
            Scope::Last => r.layers.last().map(String::as_str).into_iter().collect(),
            Scope::Pooled => r.layers.iter().map(String::as_str).collect(),
        }
    }
}

/// The smallest text/image ratio that counts as the paper's effect ("orders of magnitude" read
/// as at least one), and the smallest that counts as its direction.
pub const REPRODUCED: f64 = 10.0;
pub const DIRECTION: f64 = 1.2;

/// A ratio with its 95 % confidence interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Ratio {
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
    /// Text and image runs behind it.
    pub runs: (usize, usize),
    /// "seeds" or "steps": what the bootstrap resampled.
    pub resampled: &'static str,
}

impl Ratio {
    /// The verdict and the rule that gave it.
    pub fn verdict(&self) -> &'static str {
        if !(self.lo.is_finite() && self.value.is_finite()) {
            "could not be measured"
        } else if self.lo >= REPRODUCED {
            "reproduced (the whole interval at or above 10)"
        } else if self.lo >= DIRECTION {
            "the paper's direction, smaller effect (interval above 1.2, not all above 10)"
        } else {
            "not reproduced (interval reaches below 1.2)"
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
    r.config.norm.info().statistic == Some(StatKind::Variance)
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
/// Consecutive steps resampled together when the bootstrap runs over steps.
const BLOCK: usize = 50;

/// Text/image ratio of the runs' window medians (mean over runs on each side), with a 95 %
/// bootstrap interval. `part` narrows the window to a range of training (fractions).
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
    // each run's median once: the bootstrap over seeds resamples these
    let (t_med, i_med): (Vec<f64>, Vec<f64>) = (
        t.iter().map(run_median).collect(),
        i.iter().map(run_median).collect(),
    );
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let value = mean(&t_med) / mean(&i_med);
    let mut rng = StdRng::seed_from_u64(0x5ca1e);
    let by_seeds = t.len() > 1 && i.len() > 1;
    let mut draws: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            if by_seeds {
                let pick = |medians: &[f64], rng: &mut StdRng| {
                    (0..medians.len())
                        .map(|_| medians[rng.random_range(0..medians.len())])
                        .sum::<f64>()
                        / medians.len() as f64
                };
                pick(&t_med, &mut rng) / pick(&i_med, &mut rng)
            } else {
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
                blocks(&t, &mut rng) / blocks(&i, &mut rng)
            }
        })
        .filter(|x| x.is_finite())
        .collect();
    draws.sort_by(|a, b| a.total_cmp(b));
    Some(Ratio {
        value,
        lo: super::quantile(&draws, 0.025),
        hi: super::quantile(&draws, 0.975),
        runs: (t.len(), i.len()),
        resampled: if by_seeds { "seeds" } else { "steps" },
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
                (format!("images {}", v[0].1.image_label), v)
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

/// Along one long trajectory: the ratio in each fifth of training after warm-up (x: the step at
/// the end of that fifth).
pub fn trajectory(p: &Point, measure: &str, scope: Scope) -> Vec<(f64, Ratio)> {
    let steps = p.config().steps as f64;
    super::BUCKETS
        .iter()
        .filter_map(|&(lo, hi)| {
            ratio(&p.text, &p.images, measure, scope, Some((lo, hi))).map(|r| (hi * steps, r))
        })
        .collect()
}

fn fmt(x: f64) -> String {
    if !x.is_finite() {
        "n/a".into()
    } else if x != 0.0 && (x.abs() < 1e-2 || x.abs() >= 1e3) {
        format!("{x:.2e}")
    } else {
        format!("{x:.3}")
    }
}

fn with_ci(r: &Option<Ratio>) -> String {
    match r {
        Some(r) => format!("{} [{}, {}]", fmt(r.value), fmt(r.lo), fmt(r.hi)),
        None => "n/a".into(),
    }
}

/// The ladder's section of REPORT.md: a table of every point's ratios with their intervals, and
/// one verdict per point and layer scope on the scale-free measure, each naming its rule.
pub fn markdown(points: &[Point]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Each ratio is text / images of a distance between BatchNorm's batch variance and its running variance, \
         measured after warm-up only (steps after `warmup_steps`): per run the median over those steps (the BN \
         layers of the scope pooled), per side the mean over runs. Brackets: 95 % bootstrap interval, over seeds when \
         both sides have several runs, otherwise over blocks of {BLOCK} consecutive steps. Unfinished runs are left out.\n"
    );
    let _ = writeln!(
        s,
        "| text configuration | images | runs (text, images) | layers | {} | {} | {} |",
        MEASURES[0].0, MEASURES[1].0, MEASURES[2].0
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for p in points {
        for scope in Scope::ALL {
            let r: Vec<Option<Ratio>> = MEASURES.iter().map(|(m, _)| p.ratio(m, scope)).collect();
            let runs = r
                .iter()
                .flatten()
                .next()
                .map(|r| format!("{}, {} ({})", r.runs.0, r.runs.1, r.resampled))
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                s,
                "| {} ({} updates) | {} | {runs} | {} | {} | {} | {} |",
                p.label,
                p.config().steps,
                p.image_label,
                scope.label(),
                with_ci(&r[0]),
                with_ci(&r[1]),
                with_ci(&r[2])
            );
        }
    }
    let _ = writeln!(
        s,
        "\nVerdicts on the paper's finding (BatchNorm's batch statistics vary far more on text than on images), on the \
         scale-free relative distance `rel_dist_var`. Rule: reproduced when the whole 95 % interval of the ratio is at \
         or above {REPRODUCED}; the paper's direction when it is above {DIRECTION}; not reproduced otherwise.\n"
    );
    let mut reaches = Vec::new();
    for p in points {
        for scope in Scope::ALL {
            let Some(r) = p.ratio("rel_dist_var", scope) else {
                let _ = writeln!(s, "- {} vs images {}, {}: could not be measured (no post-warm-up steps on one side).", p.label, p.image_label, scope.label());
                continue;
            };
            let _ = writeln!(
                s,
                "- {} ({} updates) vs images {}, {}: ratio {} (95 % interval {} to {}, {} text and {} image runs, bootstrap over {}, \
                 steps {} to {}): **{}**.",
                p.label,
                p.config().steps,
                p.image_label,
                scope.label(),
                fmt(r.value),
                fmt(r.lo),
                fmt(r.hi),
                r.runs.0,
                r.runs.1,
                r.resampled,
                p.config().warmup_steps + 1,
                p.config().steps,
                r.verdict()
            );
            if scope == Scope::First && r.lo >= REPRODUCED {
                reaches.push(format!("{} vs images {}", p.label, p.image_label));
            }
        }
    }
    let _ = writeln!(
        s,
        "\nWhere the first BN layer's ratio reaches {REPRODUCED} (whole interval): {}.",
        if reaches.is_empty() {
            "nowhere in these runs".to_string()
        } else {
            reaches.join("; ")
        }
    );
    s
}

#[cfg(test)]
mod tests;
