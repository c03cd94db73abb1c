//! Checkpoints and exact resume: a run stopped (as by Ctrl-C) and continued with `--resume`
//! writes the same numbers as the same run left alone; checkpoints of another configuration
//! are refused; a study continues its interrupted runs.

mod common;

use common::{ablate, args_with, numeric_rows, stderr, temp_dir, TINY_TEXT};
use std::path::{Path, PathBuf};

fn only_run(out: &Path) -> PathBuf {
    let dirs = common::run_dirs(out);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

/// Trains `args` once straight through and once stopped after each of `stops` and resumed;
/// the CSV files must agree byte for byte outside the timing columns.
fn resume_matches(name: &str, args: &[&str], stops: &[usize]) {
    let dir = temp_dir(name);
    let (whole, parts) = (dir.join("whole"), dir.join("parts"));
    let o = ablate(&args_with(
        args,
        &["--quiet", "--results", whole.to_str().unwrap()],
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    let stop = stops[0].to_string();
    let o = ablate(&args_with(
        args,
        &[
            "--quiet",
            "--results",
            parts.to_str().unwrap(),
            "--stop-at-step",
            &stop,
        ],
    ));
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let run = only_run(&parts);
    // a temporary file left by a killed writer (a pid above Linux's maximum: never alive)
    let stale = run.join("summary.json.tmp.4194305");
    std::fs::write(&stale, "half").unwrap();
    for (i, at) in stops.iter().enumerate() {
        let ckpt = run.join("checkpoints").join(format!("step-{at:09}"));
        assert!(ckpt.join("model.bpk").is_file(), "no checkpoint at {at}");
        let mut more = vec!["--resume", run.to_str().unwrap(), "--quiet"];
        let next = stops.get(i + 1).map(|s| s.to_string());
        if let Some(n) = &next {
            more.extend(["--stop-at-step", n]);
        }
        let o = ablate(&more);
        let expected = if next.is_some() { 130 } else { 0 };
        assert_eq!(o.status.code(), Some(expected), "{}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("from step {at}")),
            "{}",
            stderr(&o)
        );
    }
    let straight = only_run(&whole);
    for file in ["steps.csv", "probes.csv", "eval.csv"] {
        let (a, b) = (
            numeric_rows(&straight.join(file)),
            numeric_rows(&run.join(file)),
        );
        assert!(!a.is_empty());
        assert_eq!(a, b, "{name}: {file} differs after resuming at {stops:?}");
    }
    assert!(!stale.exists(), "stale temporary file left behind");
    // a finished run keeps its weights, not its checkpoints
    assert!(run.join("model.bpk").is_file());
    assert!(!run.join("checkpoints").exists());
    let summary = std::fs::read_to_string(run.join("summary.json")).unwrap();
    assert!(summary.contains("\"status\": \"finished\""), "{summary}");
    assert!(summary.contains("\"steps_completed\": 40"), "{summary}");
}

const STEPS: &[&str] = &["--steps", "40", "--eval-every", "10", "--warmup-steps", "8"];

#[test]
fn batch_norm_resumes_inside_warmup_after_an_evaluation_and_late() {
    let args = args_with(&args_with(TINY_TEXT, STEPS), &["--norm", "batch"]);
    // step 5: inside the learning-rate warm-up; 20: right after an evaluation; 33: late
    resume_matches("resume-batch", &args, &[5, 20, 33]);
}

#[test]
fn power_norm_resumes_across_its_warmup_boundary() {
    let args = args_with(
        &args_with(TINY_TEXT, STEPS),
        &["--norm", "power", "--pn-warmup", "12"],
    );
    // 11 and 13: either side of PowerNorm's own warm-up (ν, the running quadratic mean)
    resume_matches("resume-power", &args, &[11, 13, 27]);
}

#[test]
fn the_image_model_resumes() {
    let args = args_with(
        STEPS,
        &[
            "--task",
            "images",
            "--batch-size",
            "16",
            "--cnn-channels",
            "4,8",
            "--eval-batches",
            "2",
        ],
    );
    resume_matches("resume-images", &args, &[9, 21]);
}

#[test]
fn checkpoints_of_another_configuration_or_a_finished_run_are_refused() {
    let dir = temp_dir("resume-refused");
    let args = args_with(
        &args_with(TINY_TEXT, STEPS),
        &["--norm", "batch", "--quiet"],
    );
    let out = dir.join("a");
    let o = ablate(&args_with(
        &args,
        &["--results", out.to_str().unwrap(), "--stop-at-step", "10"],
    ));
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let run = only_run(&out);
    let r = run.to_str().unwrap();
    // an interrupted run says how to continue it
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains(&format!("continue it with      ablate --resume {r}")),
        "{stdout}"
    );

    // options beside --resume would change the configuration
    let o = ablate(&["--resume", r, "--lr", "0.01"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("give no other run options"),
        "{}",
        stderr(&o)
    );

    // another configuration's checkpoint (config.toml edited after the fact)
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    let edited = config.replace("lr = 0.001", "lr = 0.002");
    assert_ne!(config, edited);
    std::fs::write(run.join("config.toml"), &edited).unwrap();
    let before = std::fs::read(run.join("steps.csv")).unwrap();
    let o = ablate(&["--resume", r]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("is a checkpoint of run") && e.contains("not of this configuration"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
    assert_eq!(
        std::fs::read(run.join("steps.csv")).unwrap(),
        before,
        "results touched"
    );
    std::fs::write(run.join("config.toml"), &config).unwrap();

    // another build's checkpoint
    let ckpt = run
        .join("checkpoints")
        .join(format!("step-{:09}", 10))
        .join("state.json");
    let state = std::fs::read_to_string(&ckpt).unwrap();
    let other = state.replace(
        "\"git_revision\": ",
        "\"git_revision\": \"0000000\", \"x\": ",
    );
    std::fs::write(&ckpt, &other).unwrap();
    let digest = ckpt.with_file_name("state.sha256");
    let recorded = std::fs::read_to_string(&digest).unwrap();
    std::fs::write(
        &digest,
        ablate::results::digest::sha256_hex(other.as_bytes()),
    )
    .unwrap();
    let o = ablate(&["--resume", r]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("was written by build"),
        "{}",
        stderr(&o)
    );
    std::fs::write(&ckpt, state).unwrap();
    std::fs::write(&digest, recorded).unwrap();

    // resumed to the end: nothing left to resume
    let o = ablate(&["--resume", r, "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = ablate(&["--resume", r]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("nothing to resume"), "{}", stderr(&o));

    // a folder without checkpoints
    let o = ablate(&["--resume", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is not a run folder"), "{}", stderr(&o));
}

#[test]
fn a_study_continues_an_interrupted_run_from_its_checkpoint() {
    let dir = temp_dir("resume-study");
    let out = dir.join("results");
    let study = dir.join("s.toml");
    std::fs::write(
        &study,
        format!(
            "name = \"s\"\n[base]\n{}steps = 30\neval_every = 10\nwarmup_steps = 5\n[[grid]]\nnorm = \"batch\"\n",
            common::TINY_TEXT_TOML
        ),
    )
    .unwrap();
    // the same run trained straight through, for reference
    let whole = dir.join("whole");
    common::run_study(&study, &whole);
    // stopped by a single run into the study's folder (same id), then the study goes on
    let args = args_with(
        TINY_TEXT,
        &[
            "--norm",
            "batch",
            "--steps",
            "30",
            "--eval-every",
            "10",
            "--warmup-steps",
            "5",
        ],
    );
    let o = ablate(&args_with(
        &args,
        &[
            "--results",
            out.to_str().unwrap(),
            "--stop-at-step",
            "14",
            "--quiet",
        ],
    ));
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let o = common::run_study(&study, &out);
    let said = String::from_utf8_lossy(&o.stdout).to_string() + &stderr(&o);
    assert!(said.contains("from step 14"), "{said}");
    let (a, b) = (only_run(&whole), only_run(&out));
    assert_eq!(a.file_name(), b.file_name());
    for file in ["steps.csv", "probes.csv", "eval.csv"] {
        assert_eq!(
            numeric_rows(&a.join(file)),
            numeric_rows(&b.join(file)),
            "{file}"
        );
    }
}

#[test]
fn logging_keys_do_not_change_the_run_id() {
    let dir = temp_dir("resume-ids");
    let mut names = Vec::new();
    for extra in [
        &["--eval-every", "1"][..],
        &[
            "--eval-every",
            "2",
            "--no-probes",
            "--checkpoint-every",
            "0",
        ][..],
    ] {
        let out = dir.join(format!("o{}", names.len()));
        let o = ablate(&args_with(
            &args_with(
                TINY_TEXT,
                &[
                    "--steps",
                    "2",
                    "--quiet",
                    "--results",
                    out.to_str().unwrap(),
                ],
            ),
            extra,
        ));
        assert!(o.status.success(), "{}", stderr(&o));
        names.push(only_run(&out).file_name().unwrap().to_owned());
    }
    assert_eq!(names[0], names[1]);
    // a key that changes the trajectory does change it
    let out = dir.join("lr");
    let o = ablate(&args_with(
        TINY_TEXT,
        &[
            "--steps",
            "2",
            "--quiet",
            "--lr",
            "0.002",
            "--results",
            out.to_str().unwrap(),
        ],
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(only_run(&out).file_name().unwrap(), names[0].as_os_str());
}

#[test]
fn a_run_stopped_by_sigint_resumes_exactly() {
    let dir = temp_dir("resume-sigint");
    let (whole, parts) = (dir.join("whole"), dir.join("parts"));
    let args = args_with(
        TINY_TEXT,
        &[
            "--norm",
            "power",
            "--steps",
            "1500",
            "--eval-every",
            "100",
            "--quiet",
        ],
    );
    let child = common::bin()
        .args(args_with(&args, &["--results", parts.to_str().unwrap()]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // wait until training is under way (steps.csv is flushed every 50 steps), then Ctrl-C
    let started = std::time::Instant::now();
    let steps_written = || {
        std::fs::read_dir(&parts)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| std::fs::metadata(e.unwrap().path().join("steps.csv")).ok())
            .is_some_and(|m| m.len() > 8_000)
    };
    while !steps_written() {
        assert!(started.elapsed().as_secs() < 120, "training did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let run = only_run(&parts);
    let summary = std::fs::read_to_string(run.join("summary.json")).unwrap();
    if out.status.code() == Some(0) {
        // finished before the signal arrived: nothing to resume (rare on a fast machine)
        assert!(summary.contains("\"finished\""));
        return;
    }
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(summary.contains("\"interrupted\""), "{summary}");
    let o = ablate(&["--resume", run.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = ablate(&args_with(&args, &["--results", whole.to_str().unwrap()]));
    assert!(o.status.success(), "{}", stderr(&o));
    let straight = only_run(&whole);
    for file in ["steps.csv", "probes.csv", "eval.csv"] {
        assert_eq!(
            numeric_rows(&straight.join(file)),
            numeric_rows(&run.join(file)),
            "{file} differs after Ctrl-C and --resume"
        );
    }
}

#[test]
fn saving_checkpoints_changes_no_number_of_the_run() {
    let dir = temp_dir("resume-saving");
    let mut runs = Vec::new();
    for every in ["0", "7"] {
        let out = dir.join(format!("every-{every}"));
        let args = args_with(
            &args_with(TINY_TEXT, STEPS),
            &[
                "--norm",
                "power",
                "--pn-warmup",
                "12",
                "--checkpoint-every",
                every,
                "--quiet",
            ],
        );
        let o = ablate(&args_with(&args, &["--results", out.to_str().unwrap()]));
        assert!(o.status.success(), "{}", stderr(&o));
        runs.push(only_run(&out));
    }
    for file in ["steps.csv", "probes.csv", "eval.csv"] {
        assert_eq!(
            numeric_rows(&runs[0].join(file)),
            numeric_rows(&runs[1].join(file)),
            "{file}: a run that saved checkpoints every 7 steps differs from one that saved none"
        );
    }
}

#[test]
fn a_declared_norm_resumes_across_its_warmup_boundary() {
    let dir = temp_dir("resume-declared-file");
    let file = dir.join("n.toml");
    std::fs::write(
        &file,
        "[norms.pn]\npre-scale = \"group-rms\"\ngroups = 2\naxes = \"batch\"\ncentre = false\n\
         scale = \"quadratic-mean\"\nforward = \"warmup-then-running\"\nwarmup = 12\n\
         running = \"cumulative-then-ema\"\nbackward = \"approximate\"\n",
    )
    .unwrap();
    let norm = ["--norm-file", file.to_str().unwrap(), "--norm", "pn"];
    let args = args_with(&args_with(TINY_TEXT, STEPS), &norm);
    // either side of its warm-up (nu, the running quadratic mean), and late
    resume_matches("resume-declared", &args, &[11, 13, 27]);
}
