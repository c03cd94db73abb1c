use super::*;
use crate::norm::{NormKind, OptionValue};
use crate::results::{Divergence, EvalRow, ProbeRow, RunStatus, RunWriter, StepRow, Summary};

/// Writes a synthetic run whose probe `dist_var` / `dist_psi2` at step s equals `scale * s`.
fn synthetic_run(
    out: &Path,
    task: Task,
    norm: NormKind,
    seed: u64,
    scale: f64,
    status: RunStatus,
) -> RunConfig {
    let config = RunConfig {
        task,
        norm,
        seed,
        steps: 50,
        warmup_steps: 10,
        eval_every: 10,
        ..Default::default()
    };
    synthetic_run_of(out, config, scale, status)
}

/// [`synthetic_run`] of a given configuration (50 steps).
fn synthetic_run_of(out: &Path, config: RunConfig, scale: f64, status: RunStatus) -> RunConfig {
    let (task, norm, seed) = (config.task, config.norm, config.seed);
    let dir = out.join(config.id());
    std::fs::create_dir_all(&dir).unwrap();
    let mut w = RunWriter::create(&dir, &config).unwrap();
    let second = if matches!(norm, NormKind::PnV | NormKind::Power) {
        "psi2"
    } else {
        "var"
    };
    for step in 1..=50 {
        w.step(&StepRow {
            step,
            loss: 6.0 - step as f64 * 0.01,
            lr: 1e-3,
            grad_norm: 1.0,
            tokens: 500,
            batch: 32,
            time: 40,
            padding_fraction: 0.3 + (step % 5) as f64 * 0.1,
            step_ms: 10.0,
            wall_s: step as f64,
        })
        .unwrap();
        for layer in ["first", "second"] {
            let mult = if layer == "first" { 1.0 } else { 3.0 };
            let mut probes = vec![
                (format!("dist_{second}"), scale * mult * step as f64),
                (format!("rel_dist_{second}"), 0.5),
                (format!("grad_{second}"), scale * 0.1),
            ];
            if second == "var" {
                probes.push(("dist_mean".into(), scale * 0.2 * step as f64));
                probes.push(("rel_dist_mean".into(), 0.1));
            }
            for (name, value) in probes {
                w.probe(&ProbeRow {
                    step,
                    layer: layer.into(),
                    name,
                    value,
                })
                .unwrap();
            }
        }
        if step % 10 == 0 {
            w.eval(&EvalRow {
                step,
                eval_loss: 5.0 - step as f64 * 0.01 + seed as f64 * 0.1,
                eval_ppl: Some(100.0),
                train_mode_loss: 4.9,
                train_mode_ppl: Some(90.0),
                eval_accuracy: None,
                train_mode_accuracy: None,
                tokens: 100,
            })
            .unwrap();
        }
    }
    let final_eval = EvalRow {
        step: 50,
        eval_loss: 4.5 + seed as f64 * 0.1,
        eval_ppl: Some((4.5 + seed as f64 * 0.1f64).exp()),
        train_mode_loss: 4.4,
        train_mode_ppl: None,
        eval_accuracy: None,
        train_mode_accuracy: None,
        tokens: 100,
    };
    w.summary(&Summary {
        run_id: config.id(),
        status,
        task: task.name().into(),
        norm: norm.name().into(),
        seed,
        steps_planned: 50,
        steps_completed: 50,
        final_train_loss: Some(5.5),
        final_eval: Some(final_eval),
        unigram_valid_loss: None,
        vocab_size: None,
        truncated_train_sentences: None,
        train_examples: None,
        num_params: 1,
        median_step_ms: None,
        phase_ms: None,
        tokens_per_s: None,
        wall_s: 1.0,
        backend: "ndarray".into(),
        adapter: "cpu".into(),
        crate_version: "0".into(),
        git_revision: None,
        divergence: (status == RunStatus::Diverged).then(|| Divergence {
            step: 40,
            quantity: "loss".into(),
            layer: None,
            value: None,
        }),
        error: None,
    })
    .unwrap();
    config
}

#[test]
fn report_renders_charts_and_tables_that_match_the_csv_numbers() {
    let root = std::env::temp_dir().join(format!("ablate-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let results = root.join("results");
    for seed in [1, 2, 3] {
        synthetic_run(
            &results,
            Task::Text,
            NormKind::Batch,
            seed,
            1e-2,
            RunStatus::Finished,
        );
        // the image runs differ a little between seeds: an interval of some width
        synthetic_run(
            &results,
            Task::Images,
            NormKind::Batch,
            seed,
            1e-4 * (1.0 + 0.02 * seed as f64),
            RunStatus::Finished,
        );
    }
    for seed in [1, 2] {
        synthetic_run(
            &results,
            Task::Text,
            NormKind::PnV,
            seed,
            1e-3,
            RunStatus::Finished,
        );
        synthetic_run(
            &results,
            Task::Text,
            NormKind::Layer,
            seed,
            1.0,
            RunStatus::Finished,
        );
    }
    synthetic_run(
        &results,
        Task::Text,
        NormKind::Power,
        1,
        1e-3,
        RunStatus::Diverged,
    );
    let (_, runs) = load_inputs(&[results.clone()], &[]).unwrap();
    assert_eq!(runs.len(), 11);
    let out = root.join("report");
    let charts = write_report(None, &runs, &out).unwrap();
    let names: Vec<String> = charts
        .iter()
        .map(|c| c.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "oscillation.png",
        "oscillation_all_layers.png",
        "bn_vs_pn.png",
        "dist_timeseries.png",
        "text_validation.png",
    ] {
        assert!(
            names.contains(&want.to_string()),
            "missing {want} in {names:?}"
        );
    }
    for c in &charts {
        let bytes = std::fs::read(c).unwrap();
        assert_eq!(
            &bytes[..8],
            b"\x89PNG\r\n\x1a\n",
            "{} is a PNG",
            c.display()
        );
        assert!(
            bytes.len() > 20_000 && bytes.len() < 5_000_000,
            "{}: {} bytes",
            c.display(),
            bytes.len()
        );
    }
    let md = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
    // after warm-up (steps 11..=50) the first layer's dist_var is 0.01 * step for text and
    // about 1e-4 * step for images: per-run medians 0.305 and about 0.00317, a ratio near 96
    // over 3 runs a side
    assert!(
        md.contains("- **reproduced** — BatchNorm's batch statistics vary far more on text than on images: dist_var"),
        "{md}"
    );
    let gm = (1.02f64 * 1.04 * 1.06).powf(1.0 / 3.0);
    assert!(
        md.contains(&format!(
            "text/images ratio {:.1} [95 % interval",
            100.0 / gm
        )),
        "{md}"
    );
    assert!(
        md.contains("Runs: 3 text runs, 3 image runs (Welch t"),
        "{md}"
    );
    // every verdict line has the common shape, or says why it gives no verdict
    for line in md.lines().filter(|l| l.starts_with("- **")) {
        assert!(
            super::format::is_complete_verdict_line(line) || line.contains("no verdict"),
            "{line}"
        );
    }
    // PN-V has 2 seeds: numbers, no verdict
    assert!(
        md.contains("- **no verdict: fewer than 3 runs a side** — PN-V tames"),
        "{md}"
    );
    // last 20 % of 50 steps = steps 41..=50: dist_mean = 0.002 * step -> 0.091; grad_var = 1e-3
    assert!(
        md.contains("| text batch | first | 0.0910 | 0.455 | 0.500 | 0.00100 |"),
        "{md}"
    );
    // all layers pooled: 0.01 s and 0.03 s for s in 41..=50 -> middle values 0.5 and 1.23 -> 0.865
    assert!(
        md.contains("| text batch | all | 0.0910 | 0.865 | 0.500 | 0.00100 |"),
        "{md}"
    );
    // final metrics: seeds 1, 2 and 3 -> eval loss 4.6, 4.7 and 4.8
    assert!(
        md.contains("| text batch | 3 | 3 finished | 50 | n/a | 4.70 ± 0.100 |"),
        "{md}"
    );
    assert!(md.contains("1 diverged at step 40 (loss)"), "{md}");
    assert!(md.contains(
        "![BatchNorm statistics on text vs images (first BN layer of each model)](oscillation.png)"
    ));
}

#[test]
fn box_statistics_by_hand() {
    let b = BoxStats::of(&[1.0, 2.0, 3.0, 4.0, 100.0]).unwrap();
    assert_eq!((b.q1, b.median, b.q3), (2.0, 3.0, 4.0));
    assert_eq!((b.low, b.high), (1.0, 4.0));
    assert_eq!(b.outliers, vec![100.0]);
    assert_eq!(mean_std(&[1.0, 3.0]), (2.0, 2f64.sqrt()));
}

#[test]
fn log_axes_start_at_a_power_of_ten_and_ticks_read_plainly() {
    use super::plot::{log_range, sci};
    let (lo, hi) = log_range([0.0034, 0.009].into_iter()).unwrap();
    // the first labelled tick (a power of ten) lies below the smallest value
    assert!((lo / 1e-3 - 0.999).abs() < 1e-9, "{lo}");
    assert!(hi > 0.009);
    let (lo, _) = log_range([4.6, 5.8].into_iter()).unwrap();
    assert!((lo - 0.999).abs() < 1e-9, "{lo}");
    // a range whose own power of ten (100) is labelled starts at a 1-2-5 value under it
    let (lo, _) = log_range([130.0, 520.0].into_iter()).unwrap();
    assert!((lo / 50.0 - 0.999).abs() < 1e-9, "{lo}");
    for (y, want) in [
        (0.03, "0.03"),
        (2.0, "2"),
        (150.0, "150"),
        (0.005, "0.005"),
        (1e-5, "1e-5"),
        (2e5, "2e5"),
    ] {
        assert_eq!(sci(&y), want);
    }
}

/// Chart edge cases, checked in the SVG twin of each chart: its text elements are the titles,
/// axis labels and legend entries that the PNG shows.
mod chart_edge_cases {
    use super::*;
    use crate::report::charts::draw_all;

    /// A run in memory: `steps` steps of `loss(step)`, first-layer probe `dist_var` of
    /// `dist(step)`, evaluations at `evals` (loss `eval_loss`, accuracy for images).
    fn run(
        task: Task,
        norm: NormKind,
        seed: u64,
        steps: usize,
        evals: &[usize],
        loss: impl Fn(usize) -> f64,
        dist: impl Fn(usize) -> f64,
    ) -> RunResult {
        let config = RunConfig {
            task,
            norm,
            seed,
            steps,
            ..Default::default()
        };
        let rows = (1..=steps)
            .map(|step| StepRow {
                step,
                loss: loss(step),
                lr: 1e-3,
                grad_norm: 0.5,
                tokens: 100,
                batch: 8,
                time: 10,
                padding_fraction: 0.2,
                step_ms: 1.0,
                wall_s: step as f64,
            })
            .collect();
        let eval = evals
            .iter()
            .map(|&step| EvalRow {
                step,
                eval_loss: loss(step) + 0.1,
                eval_ppl: (task == Task::Text).then(|| (loss(step) + 0.1).exp()),
                train_mode_loss: loss(step),
                train_mode_ppl: (task == Task::Text).then(|| loss(step).exp()),
                eval_accuracy: (task == Task::Images).then_some(0.4 + 0.01 * seed as f64),
                train_mode_accuracy: (task == Task::Images).then_some(0.35),
                tokens: 10,
            })
            .collect();
        let layer = "blocks.0.norm1".to_string();
        let probes = [(
            layer.clone(),
            [(
                "dist_var".to_string(),
                (1..=steps).map(|s| (s, dist(s))).collect(),
            )]
            .into_iter()
            .collect(),
        )]
        .into_iter()
        .collect();
        RunResult {
            dir: Default::default(),
            config,
            summary: None,
            steps: rows,
            eval,
            probes,
            layers: vec![layer],
            warnings: vec![],
        }
    }

    /// The text elements of an SVG file, trimmed.
    fn svg_texts(path: &Path) -> Vec<String> {
        let svg = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("{} not drawn: {e}", path.display()));
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let body = &t[t.find('>')? + 1..t.find("</text>")?];
                Some(body.trim().to_string())
            })
            .collect()
    }

    fn numbers(texts: &[String]) -> Vec<f64> {
        texts
            .iter()
            .filter_map(|t| t.trim_end_matches(" %").parse().ok())
            .collect()
    }

    /// Draws every chart of `runs`; returns the folder, checking that each chart has its PNG
    /// and its SVG.
    fn draw(name: &str, runs: &[RunResult]) -> (PathBuf, Vec<String>) {
        let dir = std::env::temp_dir().join(format!("ablate-edge-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let charts = draw_all(runs, &dir).unwrap();
        for c in &charts {
            let png = std::fs::read(dir.join(&c.file)).unwrap();
            assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{} is a PNG", c.file);
            assert!(
                std::fs::read_to_string(dir.join(c.svg()))
                    .unwrap()
                    .starts_with("<svg"),
                "{} has an SVG twin",
                c.file
            );
        }
        (dir, charts.into_iter().map(|c| c.file).collect())
    }

    #[test]
    fn one_evaluation_and_one_seed_give_a_labelled_chart_with_a_dot() {
        // perplexities around e^5.6 = 270: the y labels (100s) cannot be mistaken for steps (<= 40)
        let runs = [
            run(Task::Text, NormKind::Batch, 1, 40, &[40], |_| 5.5, |_| 0.1),
            run(Task::Text, NormKind::Layer, 1, 40, &[40], |_| 5.6, |_| 0.1),
        ];
        let (dir, files) = draw("one-eval", &runs);
        assert!(
            files.contains(&"text_validation.png".to_string()),
            "{files:?}"
        );
        let texts = svg_texts(&dir.join("text_validation.svg"));
        let y_labels: Vec<f64> = numbers(&texts).into_iter().filter(|&y| y > 60.0).collect();
        assert!(y_labels.len() >= 2, "y axis labels: {texts:?}");
        assert!(
            texts.iter().any(|t| t == "text batch (1 seed)"),
            "{texts:?}"
        );
        let svg = std::fs::read_to_string(dir.join("text_validation.svg")).unwrap();
        assert!(svg.contains("<circle"), "the single evaluation is a dot");
        // one seed: the training chart has labels too, and no band (a band is a polygon)
        let training = std::fs::read_to_string(dir.join("text_training.svg")).unwrap();
        assert!(!training.contains("<polygon"), "one seed draws no band");
        assert!(numbers(&svg_texts(&dir.join("text_training.svg"))).len() >= 4);
    }

    #[test]
    fn values_below_a_hundredth_get_log_axis_labels() {
        // distances between 3e-3 and 9e-3: labels below 1e-2 are needed to read them
        let runs = [run(
            Task::Text,
            NormKind::Batch,
            1,
            60,
            &[30, 60],
            |s| 6.0 - s as f64 * 0.01,
            |s| 3e-3 + 1e-4 * s as f64,
        )];
        let (dir, _) = draw("small", &runs);
        let small: Vec<f64> = numbers(&svg_texts(&dir.join("dist_timeseries.svg")))
            .into_iter()
            .filter(|&y| y > 0.0 && y < 1e-2)
            .collect();
        assert!(small.len() >= 3, "labels below 1e-2: {small:?}");
    }

    #[test]
    fn a_diverged_seed_is_drawn_where_it_has_data_and_not_counted_where_it_has_none() {
        let runs = [
            run(
                Task::Text,
                NormKind::Batch,
                1,
                40,
                &[20, 40],
                |s| 6.0 - 0.01 * s as f64,
                |_| 0.1,
            ),
            run(
                Task::Text,
                NormKind::Batch,
                2,
                40,
                &[20, 40],
                |s| 6.1 - 0.01 * s as f64,
                |_| 0.1,
            ),
            // diverged at step 8, before the first evaluation: its rows end there
            {
                let mut r = run(
                    Task::Text,
                    NormKind::Batch,
                    3,
                    40,
                    &[],
                    |s| if s < 8 { 6.0 } else { f64::NAN },
                    |s| if s < 8 { 0.1 } else { f64::INFINITY },
                );
                r.steps.truncate(8);
                for p in r.probes.values_mut().flat_map(|p| p.values_mut()) {
                    p.truncate(8);
                }
                r
            },
        ];
        let (dir, files) = draw("diverged", &runs);
        for f in [
            "text_validation.png",
            "text_training.png",
            "dist_timeseries.png",
        ] {
            assert!(files.contains(&f.to_string()), "{f} missing: {files:?}");
        }
        let texts = svg_texts(&dir.join("text_validation.svg"));
        assert!(
            texts.iter().any(|t| t == "text batch (2 seeds)"),
            "{texts:?}"
        );
        let training = svg_texts(&dir.join("text_training.svg"));
        assert!(
            training.iter().any(|t| t == "text batch (3 seeds)"),
            "{training:?}"
        );
        assert!(numbers(&training).iter().any(|&y| y > 0.0 && y < 10.0));
    }

    #[test]
    fn image_accuracy_is_drawn_in_percent() {
        let runs: Vec<RunResult> = (1..=2)
            .map(|seed| {
                run(
                    Task::Images,
                    NormKind::Batch,
                    seed,
                    30,
                    &[10, 20, 30],
                    |_| 1.5,
                    |_| 0.05,
                )
            })
            .collect();
        let (dir, files) = draw("accuracy", &runs);
        assert!(
            files.contains(&"images_accuracy.png".to_string()),
            "{files:?}"
        );
        let texts = svg_texts(&dir.join("images_accuracy.svg"));
        for want in ["0 %", "40 %", "100 %", "images batch (2 seeds)"] {
            assert!(texts.iter().any(|t| t == want), "{want} in {texts:?}");
        }
    }
}

#[test]
fn shared_label_parts_are_cut_outside_parentheses_only() {
    // a seed and layer note in parentheses stays whole (it was torn into `(seed 1` and `block0)`)
    let (common, short) = plot::split_common(&[
        "text batch, lr 0.001 (seed 1, block0.attn_norm)",
        "text batch, lr 0.002 (seed 1, block0.attn_norm)",
    ]);
    assert_eq!(common, "text batch");
    assert_eq!(
        short,
        [
            "lr 0.001 (seed 1, block0.attn_norm)",
            "lr 0.002 (seed 1, block0.attn_norm)"
        ]
    );
    let (common, short) = plot::split_common(&[
        "text scaled-batch bucketed, layers 2, steps 600",
        "text scaled-batch bucketed, layers 4, steps 600",
    ]);
    assert_eq!(common, "text scaled-batch bucketed, steps 600");
    assert_eq!(short, ["layers 2", "layers 4"]);
    let (common, short) =
        plot::split_common(&["text batch (seed 1, b0)", "text pn-v (seed 1, b0)"]);
    assert_eq!(common, "");
    assert_eq!(short, ["text batch (seed 1, b0)", "text pn-v (seed 1, b0)"]);
}

/// A study of three norms of the user's choosing, none of them the paper's pair: the report
/// opens with each against the baseline, with Welch intervals computed by hand, and names no
/// section it does not have.
#[test]
fn a_study_of_three_norms_opens_with_each_against_the_baseline() {
    let root = std::env::temp_dir().join(format!("ablate-headtohead-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let results = root.join("results");
    // the synthetic final loss is 4.5 + seed / 10: seeds 1-3 give 4.6, 4.7, 4.8, and so on
    for (norm, seeds) in [
        (NormKind::Rms, [1, 2, 3]),
        (NormKind::PnV, [4, 5, 6]),
        (NormKind::MaskedBatch, [7, 8, 9]),
    ] {
        for seed in seeds {
            synthetic_run(&results, Task::Text, norm, seed, 1e-2, RunStatus::Finished);
        }
    }
    let (_, runs) = load_inputs(&[results.clone()], &[]).unwrap();
    let study = Study {
        name: "mine".into(),
        description: String::new(),
        path: "experiments/mine.toml".into(),
        runs: vec![],
        overrides: vec![],
        baseline: Some(NormKind::PnV),
    };
    let md = markdown::report(Some(&study), &runs, &[]);
    let first = md.lines().find(|l| l.starts_with("## ")).unwrap();
    assert_eq!(first, "## Each configuration against the baseline", "{md}");
    assert!(
        md.contains("Baseline: `pn-v` (named by the study file)"),
        "{md}"
    );
    // means 4.7 against 5.0 and 5.3 against 5.0, sd 0.1 a side: Welch's half-width is
    // t(0.975, 4) * sqrt(0.01/3 + 0.01/3) = 2.7764 * 0.08165 = 0.2267
    assert!(
        md.contains("| text rms | text pn-v | 3 of 3 | 4.70 ± 0.100 | -0.300 [-0.527, -0.0733] | 110 ± 11.0 | — |"),
        "{md}"
    );
    assert!(
        md.contains(
            "| text masked-batch | text pn-v | 3 of 3 | 5.30 ± 0.100 | 0.300 [0.0733, 0.527] |"
        ),
        "{md}"
    );
    assert!(md.contains("| 0.500 / 0.500 |"), "{md}");
    for absent in [
        "PowerNorm paper",
        "scale ladder",
        "claims, measured",
        "paper's setting",
        "Text against images",
    ] {
        assert!(
            !md.contains(absent),
            "{absent} in a report without such runs:\n{md}"
        );
    }
    // without a named baseline and without LayerNorm: the task's first configuration
    let md = markdown::report(None, &runs, &[]);
    assert!(
        md.contains("## Each configuration against the baseline"),
        "{md}"
    );
    // the folder lists masked-batch first
    assert!(
        md.contains("Baseline: `masked-batch` (LayerNorm where"),
        "{md}"
    );
    assert_eq!(
        md.matches("| text masked-batch | 3 of 3 |").count(),
        2,
        "{md}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// No text of a committed chart runs off its image: each `<text>` of every SVG in `reports/`,
/// measured with the embedded font the PNGs are drawn with, lies inside the picture (rotated
/// axis titles are checked along their own direction).
#[test]
fn no_label_of_a_committed_chart_is_clipped() {
    use plotters::style::{FontDesc, FontFamily, FontStyle};
    super::plot::register_font();
    let reports = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports");
    let attr = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        Some(tag[start..].split('"').next()?.to_string())
    };
    let mut checked = 0;
    let mut clipped = Vec::new();
    for study in std::fs::read_dir(&reports).unwrap() {
        let study = study.unwrap().path();
        let Ok(files) = std::fs::read_dir(&study) else {
            continue;
        };
        for file in files {
            let path = file.unwrap().path();
            if path.extension().is_none_or(|e| e != "svg") {
                continue;
            }
            let svg = std::fs::read_to_string(&path).unwrap();
            let head = &svg[..svg.find('>').unwrap()];
            let width: f64 = attr(head, "width").unwrap().parse().unwrap();
            let height: f64 = attr(head, "height").unwrap().parse().unwrap();
            for piece in svg.split("<text").skip(1) {
                let (tag, rest) = piece.split_once('>').unwrap();
                let text = rest.split("</text>").next().unwrap().trim();
                let text = text
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&quot;", "\"")
                    .replace("&apos;", "'")
                    .replace("&amp;", "&");
                let num = |n: &str| attr(tag, n).and_then(|v| v.parse::<f64>().ok());
                // plotters writes SVG font sizes in points (x 0.806); the PNG draws them in pixels
                let (x, y, size) = (
                    num("x").unwrap(),
                    num("y").unwrap(),
                    num("font-size").unwrap() * 1.24,
                );
                let font = FontDesc::new(
                    FontFamily::Name(super::plot::FAMILY),
                    size,
                    FontStyle::Normal,
                );
                let (w, _) = font.box_size(&text).unwrap();
                let w = w as f64;
                // the span along the text's direction: x for horizontal text, y for rotated titles
                let (pos, limit) = if attr(tag, "transform").is_some() {
                    (y, height)
                } else {
                    (x, width)
                };
                let (lo, hi) = match attr(tag, "text-anchor").as_deref() {
                    Some("middle") => (pos - w / 2.0, pos + w / 2.0),
                    Some("end") => (pos - w, pos),
                    _ => (pos, pos + w),
                };
                checked += 1;
                if lo < -1.0 || hi > limit + 1.0 {
                    clipped.push(format!(
                        "{}: {text:?} spans {lo:.0}..{hi:.0} of 0..{limit}",
                        path.strip_prefix(&reports).unwrap().display()
                    ));
                }
            }
        }
    }
    assert!(checked > 1000, "only {checked} texts found in reports/");
    assert!(clipped.is_empty(), "clipped texts:\n{}", clipped.join("\n"));
}

/// Configurations that differ in a norm option both norms read are compared only with the
/// baseline of the same option; one the baseline does not read does not stand in the way.
#[test]
fn the_baseline_matches_on_the_norm_options_both_norms_read() {
    let root = std::env::temp_dir().join(format!("ablate-baseline-eps-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let results = root.join("results");
    for norm in [NormKind::Layer, NormKind::Rms, NormKind::Batch] {
        for eps in [1e-5, 1e-6] {
            for seed in [1, 2, 3] {
                let config = RunConfig {
                    task: Task::Text,
                    norm,
                    seed,
                    steps: 50,
                    warmup_steps: 10,
                    eval_every: 10,
                    ..Default::default()
                }
                .with_norm_option("norm_eps", OptionValue::Number(eps))
                // BatchNorm's momentum: an option LayerNorm does not read
                .with_norm_option(
                    "norm_momentum",
                    OptionValue::Number(if norm == NormKind::Batch { 0.05 } else { 0.1 }),
                );
                synthetic_run_of(&results, config, 1e-2, RunStatus::Finished);
            }
        }
    }
    let (_, runs) = load_inputs(&[results.clone()], &[]).unwrap();
    let md = markdown::report(None, &runs, &[]);
    let rows: Vec<&str> = md
        .lines()
        .filter(|l| l.starts_with("| text ") && l.contains(" | text layer"))
        .collect();
    assert_eq!(rows.len(), 4, "{md}");
    for row in rows {
        let cells: Vec<&str> = row.split(" | ").collect();
        let eps = |label: &str| label.contains("norm_eps 0.000001") || label.contains("1e-6");
        assert_eq!(
            eps(cells[0]),
            eps(cells[1]),
            "compared across norm_eps: {row}"
        );
    }
    assert!(!md.contains("Not compared"), "{md}");
    let _ = std::fs::remove_dir_all(&root);
}
