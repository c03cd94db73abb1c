//! The scale ladder's section of REPORT.md: the ratio tables per measure and scope, the verdict
//! table and what each point's numbers say.

use super::*;
use crate::report::format::sig;

fn with_ci(r: &Option<Ratio>) -> String {
    match r {
        Some(r) => {
            let within = if r.spread == Spread::WithinRun {
                " (within run)"
            } else {
                ""
            };
            format!("{} [{}, {}]{within}", sig(r.value), sig(r.lo), sig(r.hi))
        }
        None => "n/a".into(),
    }
}

/// Points that share their image runs (their intervals are then not independent).
fn shared_images(points: &[Point]) -> Vec<String> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for p in points {
        let key: Vec<String> = p.images.iter().map(|r| r.config.id()).collect();
        let key = key.join(",");
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(p.label.clone()),
            None => out.push((key, vec![p.label.clone()])),
        }
    }
    out.into_iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(_, v)| v.join("; "))
        .collect()
}

fn table(s: &mut String, points: &[Point], measures: &[(&str, &str)]) {
    use std::fmt::Write;
    let names: Vec<&str> = measures.iter().map(|(m, _)| *m).collect();
    let _ = writeln!(
        s,
        "| text configuration | images | runs (text, images) | layers | {} |",
        names.join(" | ")
    );
    let _ = writeln!(s, "|---|---|---|---|{}", "---|".repeat(names.len()));
    for p in points {
        for scope in Scope::ALL {
            let r: Vec<Option<Ratio>> = names.iter().map(|m| p.ratio(m, scope)).collect();
            let runs = r
                .iter()
                .flatten()
                .next()
                .map(|r| format!("{}, {}", r.runs.0, r.runs.1))
                .unwrap_or_else(|| "-".into());
            let cells: Vec<String> = r.iter().map(with_ci).collect();
            let _ = writeln!(
                s,
                "| {} ({} updates) | {} | {runs} | {} | {} |",
                p.label,
                p.config().steps,
                p.image_label,
                scope.label(),
                cells.join(" | ")
            );
        }
    }
}

/// One verdict line in the format every report uses (`report::format::verdict_line`).
fn verdict_line(p: &Point, scope: Scope, measure: &str, meaning: &str) -> Option<String> {
    let r = p.ratio(measure, scope)?;
    Some(crate::report::format::verdict_line(
        r.verdict(),
        &format!(
            "{measure} ({meaning}), {} ({} updates) vs images {}, {}",
            p.label,
            p.config().steps,
            p.image_label,
            scope.label()
        ),
        &format!(
            "text/images ratio {} [95 % interval {}, {}]",
            sig(r.value),
            sig(r.lo),
            sig(r.hi)
        ),
        "whole interval at or above 10: reproduced; above 1.2: the paper's direction; below 1: the opposite; below 1.2: not reproduced; else not resolved; 3 runs a side at least",
        &r.runs_label(),
    ))
}

/// The verdicts at a glance: one row per point and layer scope, one column per measure that
/// gets a verdict (the paper's two, then two restatements).
fn verdict_table(s: &mut String, points: &[Point]) {
    use std::fmt::Write;
    let measures = [
        PAPER_MEASURES[0].0,
        PAPER_MEASURES[1].0,
        RESTATEMENTS[2].0,
        RESTATEMENTS[4].0,
    ];
    let _ = writeln!(
        s,
        "| text configuration | images | layers | {} (paper) | {} (paper) | {} | {} |",
        measures[0], measures[1], measures[2], measures[3]
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for p in points {
        for scope in Scope::ALL {
            let cells: Vec<String> = measures
                .iter()
                .map(|m| match p.ratio(m, scope) {
                    Some(r) => format!(
                        "{} ({})",
                        r.verdict().split(':').next().unwrap_or(""),
                        sig(r.value)
                    ),
                    None => "n/a".into(),
                })
                .collect();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                p.label,
                p.image_label,
                scope.label(),
                cells.join(" | ")
            );
        }
    }
}

/// Whether the paper's measure shows "orders of magnitude" only because the text model's
/// activations grow: its interval at or above 10 while the scale-free one stays below 3.
fn scale_reading(p: &Point) -> Option<String> {
    let mut parts = Vec::new();
    for scope in [Scope::Last, Scope::Pooled] {
        let (paper, rel) = (
            p.ratio(crate::probe::DIST_VAR, scope)?,
            p.ratio(crate::probe::REL_DIST_VAR, scope)?,
        );
        // a reading is a verdict: the same gate (runs a side, an interval between runs)
        if paper.verdict().starts_with("no verdict") || rel.verdict().starts_with("no verdict") {
            return None;
        }
        let holds = paper.lo >= REPRODUCED && rel.hi < 3.0;
        parts.push(format!(
            "{}: dist_var {} [{}, {}], rel_dist_var {} [{}, {}]: {}",
            scope.label(),
            sig(paper.value),
            sig(paper.lo),
            sig(paper.hi),
            sig(rel.value),
            sig(rel.lo),
            sig(rel.hi),
            if holds {
                "holds (the paper's measure at or above 10 over its whole interval, the relative one below 3: the gap is the scale of the text activations, not noisier statistics)"
            } else if paper.lo >= REPRODUCED {
                "the paper's measure reaches 10, and the relative one does not stay below 3: the statistics themselves are noisier on text"
            } else {
                "the paper's measure does not reach 10 over its whole interval"
            }
        ));
    }
    Some(format!(
        "- {} ({} updates): {}.",
        p.label,
        p.config().steps,
        parts.join("; ")
    ))
}

/// One verdict line per point, scope and measure: the paper's measures, then the two
/// scale-free restatements that carry verdicts.
fn verdict_lines(s: &mut String, points: &[Point]) {
    use std::fmt::Write;
    for p in points {
        for scope in Scope::ALL {
            for (m, d) in PAPER_MEASURES {
                if let Some(line) = verdict_line(p, scope, m, d) {
                    let _ = writeln!(s, "{line}");
                }
            }
        }
    }
    let _ = writeln!(s);
    for p in points {
        for scope in Scope::ALL {
            for (m, d) in [RESTATEMENTS[2], RESTATEMENTS[4]] {
                if let Some(line) = verdict_line(p, scope, m, &format!("restatement: {d}")) {
                    let _ = writeln!(s, "{line}");
                }
            }
        }
    }
}

/// The ladder's section of REPORT.md: the paper's measures, then their restatements, as tables of
/// ratios with intervals; then one verdict line per point, layer scope and measure.
pub fn markdown(points: &[Point], verdicts: bool) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Each ratio is text / images of a distance between BatchNorm's batch statistics and its running statistics \
         (`_r`: the running value before the step), measured after warm-up only (steps after `warmup_steps`): per run \
         the median over those steps (the BN layers of the scope pooled), per side the geometric mean over runs. \
         Brackets: 95 % interval between runs (Welch's t on the logarithms of the per-run values) when both sides \
         have two runs or more; \"(within run)\" marks an interval that is one run's own spread over blocks of {BLOCK} \
         steps, which carries no verdict. Unfinished runs are left out. The last BN layer is the last one on the main \
         path (the text model's final norm; the image model's last stage's second norm, not its shortcut's).\n"
    );
    for shared in shared_images(points) {
        let _ = writeln!(
            s,
            "These points share their image runs, so their intervals are not independent: {shared}.\n"
        );
    }
    let _ = writeln!(s, "### The paper's measures\n");
    table(&mut s, points, &PAPER_MEASURES);
    let _ = writeln!(s, "\n### Restatements\n");
    let meanings: Vec<String> = RESTATEMENTS
        .iter()
        .map(|(m, d)| format!("`{m}` = {d}"))
        .collect();
    let _ = writeln!(s, "{}.\n", meanings.join("; "));
    table(&mut s, points, &RESTATEMENTS);
    let _ = writeln!(
        s,
        "\n### Verdicts\n\nRule: {RATIO_RULE}. The paper's own measures first, then the scale-free restatements \
         (labelled so).\n"
    );
    if verdicts {
        verdict_table(&mut s, points);
        let _ = writeln!(s);
    }
    verdict_lines(&mut s, points);
    let readings: Vec<String> = if verdicts {
        points.iter().filter_map(scale_reading).collect()
    } else {
        vec![]
    };
    if !readings.is_empty() {
        let _ = writeln!(
            s,
            "\nWhat the paper's \"orders of magnitude\" is here (it is the text activations' growing scale when the \
             paper's measure has its whole interval at or above 10 while the relative measure's lies below 3):\n"
        );
        for r in readings {
            let _ = writeln!(s, "{r}");
        }
    }
    s
}
