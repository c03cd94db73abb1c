use super::charts::trajectory;
use super::*;
use crate::norm::NormKind;
use crate::results::Summary;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn summary(status: &str) -> Summary {
    serde_json::from_str(&format!(
        r#"{{"run_id":"x","status":"{status}","task":"text","norm":"batch","seed":1,"steps_planned":1,
            "steps_completed":1,"num_params":1,"wall_s":1.0,"backend":"flex","adapter":"cpu","crate_version":"0"}}"#
    ))
    .unwrap()
}

/// A run whose every probe of the ladder's measures, in each of its layers, is `value(layer index)` after
/// warm-up and 1000 during it.
fn run(config: RunConfig, layers: usize, status: &str, value: impl Fn(usize) -> f64) -> RunResult {
    let names: Vec<String> = (0..layers).map(|l| format!("layer{l}")).collect();
    let mut probes: BTreeMap<String, BTreeMap<String, Vec<(usize, f64)>>> = BTreeMap::new();
    for (l, name) in names.iter().enumerate() {
        for (measure, _) in PAPER_MEASURES.iter().chain(&RESTATEMENTS) {
            let series = (1..=config.steps)
                .map(|s| {
                    (
                        s,
                        if s <= config.warmup_steps {
                            1000.0
                        } else {
                            value(l)
                        },
                    )
                })
                .collect();
            probes
                .entry(name.clone())
                .or_default()
                .insert((*measure).into(), series);
        }
    }
    RunResult {
        dir: PathBuf::new(),
        summary: Some(summary(status)),
        steps: vec![],
        eval: vec![],
        probes,
        layers: names,
        config,
        warnings: vec![],
    }
}

fn text(layers: usize, seed: u64, steps: usize) -> RunConfig {
    RunConfig {
        task: Task::Text,
        norm: NormKind::ScaledBatch,
        layers,
        seed,
        steps,
        warmup_steps: steps / 5,
        ..Default::default()
    }
}

fn images(seed: u64, steps: usize) -> RunConfig {
    RunConfig {
        task: Task::Images,
        norm: NormKind::Batch,
        seed,
        steps,
        warmup_steps: steps / 5,
        ..Default::default()
    }
}

#[test]
fn ratios_over_seeds_along_an_axis_with_verdicts() {
    let mut runs = Vec::new();
    for seed in 1..=3 {
        let noise = seed as f64 * 0.01;
        // text: 5 (first layer) and 7 (others) at 2 blocks, 20 and 28 at 4
        runs.push(run(
            text(2, seed, 100),
            5,
            "finished",
            |l| if l == 0 { 5.0 } else { 7.0 } + noise,
        ));
        runs.push(run(
            text(4, seed, 100),
            9,
            "finished",
            |l| if l == 0 { 20.0 } else { 28.0 } + noise,
        ));
        runs.push(run(images(seed, 100), 3, "finished", |_| 1.0 + noise));
    }
    // an unfinished run is left out
    runs.push(run(text(2, 9, 100), 5, "running", |_| 1e6));
    let points = points(&runs);
    assert_eq!(points.len(), 2);
    let (two, four) = (&points[0], &points[1]);
    assert_eq!(two.label, "layers = 2");
    assert_eq!((two.text.len(), two.images.len()), (3, 3));
    assert_eq!(two.image_label, "16/32/64");
    let r = two.ratio("dist_var", Scope::First).unwrap();
    // geometric means over seeds: (5.01 5.02 5.03)^(1/3) / (1.01 1.02 1.03)^(1/3); warm-up
    // values (1000) are outside the window
    let gm = |v: [f64; 3]| (v[0] * v[1] * v[2]).powf(1.0 / 3.0);
    let want = gm([5.01, 5.02, 5.03]) / gm([1.01, 1.02, 1.03]);
    assert!((r.value - want).abs() < 1e-9, "{r:?}");
    assert!(
        r.lo <= r.value && r.value <= r.hi && r.hi / r.lo < 1.05,
        "{r:?}"
    );
    assert_eq!((r.runs, r.spread), ((3, 3), Spread::BetweenRuns));
    assert_eq!(r.verdict(), "the paper's direction, smaller effect");
    let pooled = two.ratio("rms_dist_var", Scope::Pooled).unwrap();
    // pooled median over 5 layers of 5.0x, 7.0x, 7.0x, 7.0x, 7.0x
    let want = gm([7.01, 7.02, 7.03]) / gm([1.01, 1.02, 1.03]);
    assert!((pooled.value - want).abs() < 1e-9, "{pooled:?}");
    let last = four.ratio("rel_dist_var", Scope::Last).unwrap();
    assert!((last.value - gm([28.01, 28.02, 28.03]) / gm([1.01, 1.02, 1.03])).abs() < 1e-9);
    assert_eq!(last.verdict(), "reproduced");
    // two seeds a side: an interval between runs, but no verdict
    let two_seeds: Vec<&RunResult> = two.text.iter().take(2).copied().collect();
    let two_images: Vec<&RunResult> = two.images.iter().take(2).copied().collect();
    let r = ratio(&two_seeds, &two_images, "dist_var", Scope::First, None).unwrap();
    assert!(r.verdict().starts_with("no verdict"), "{}", r.verdict());
    // every verdict line of the section has the common shape
    let md = markdown(&points, true);
    let lines: Vec<&str> = md.lines().filter(|l| l.starts_with("- **")).collect();
    assert_eq!(lines.len(), 2 * 3 * 2 + 2 * 3 * 2);
    for l in lines {
        assert!(crate::report::format::is_complete_verdict_line(l), "{l}");
    }
    let axes = axes(&points);
    assert_eq!(axes.len(), 1);
    assert_eq!(axes[0].key, "layers");
    let xs: Vec<f64> = axes[0].lines[0].1.iter().map(|(x, _)| *x).collect();
    assert_eq!(xs, vec![2.0, 4.0]);
}

#[test]
fn a_single_trajectory_gives_its_own_spread_and_no_verdict_and_warm_up_gives_no_ratio() {
    // the text distance grows over training: step / 100 after warm-up
    let t = {
        let mut r = run(text(2, 1, 1000), 3, "finished", |_| 0.0);
        for layer in r.probes.values_mut() {
            for series in layer.values_mut() {
                for (s, v) in series.iter_mut().filter(|(s, _)| *s > 200) {
                    *v = *s as f64 / 100.0;
                }
            }
        }
        r
    };
    let i = run(images(1, 1000), 3, "finished", |_| 0.5);
    let runs = vec![t, i];
    let points = points(&runs);
    assert_eq!(points.len(), 1);
    let r = points[0].ratio("dist_var", Scope::First).unwrap();
    assert_eq!(r.spread, Spread::WithinRun);
    assert!(r.lo < r.value && r.value < r.hi, "{r:?}");
    assert!(
        r.verdict().starts_with("no verdict: single run"),
        "{}",
        r.verdict()
    );
    let traj = trajectory(&points[0], "dist_var", Scope::First);
    // the first fifth is all warm-up: no ratio there; then it grows
    assert_eq!(
        traj.iter().map(|(x, _)| *x).collect::<Vec<_>>(),
        vec![400.0, 600.0, 800.0, 1000.0]
    );
    assert!(traj.windows(2).all(|w| w[1].1.value > w[0].1.value));
    // a run still in warm-up has no window, so no ratio and no verdict
    let short = vec![
        run(text(2, 1, 10), 3, "finished", |_| 1.0),
        run(images(1, 10), 3, "finished", |_| 1.0),
    ];
    let mut cfg = short[0].config.clone();
    cfg.warmup_steps = 10;
    let in_warmup = vec![
        run(cfg, 3, "finished", |_| 1.0),
        run(images(1, 10), 3, "finished", |_| 1.0),
    ];
    assert!(super::points(&in_warmup)[0]
        .ratio("dist_var", Scope::First)
        .is_none());
    assert!(super::points(&short)[0]
        .ratio("dist_var", Scope::First)
        .is_some());
}
