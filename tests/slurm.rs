//! Studies on a real Slurm cluster (`scripts/local-slurm.sh` starts a one-node one as root):
//! `scripts/slurm-array.sh` as a job array, 0- and 1-based; a run cut by its job's time limit
//! (Slurm's SIGTERM) and a task cancelled with `scancel` (SIGTERM, SIGKILL after KillWait), each
//! continued by a resubmitted array to the numbers of an uninterrupted run.
//!
//! Without a cluster (`sinfo` missing or no idle node) the tests say they skipped and pass,
//! unless `ABLATE_REQUIRE_SLURM=1` (CI sets it after starting the cluster).

mod common;

use common::{ablate, numeric_rows, stderr, temp_dir, TINY_TEXT_TOML};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Whether a Slurm cluster with an idle node answers; panics when one is required.
fn cluster_up() -> bool {
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| {
            let s = String::from_utf8_lossy(&o.stdout);
            o.status.success() && (s.contains("idle") || s.contains("mix"))
        });
    if !up {
        assert!(
            std::env::var("ABLATE_REQUIRE_SLURM").as_deref() != Ok("1"),
            "ABLATE_REQUIRE_SLURM=1 but no Slurm cluster answers (start one: scripts/local-slurm.sh)"
        );
        eprintln!("skipped: no Slurm cluster answers `sinfo` (start one: scripts/local-slurm.sh)");
    }
    up
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-array.sh")
}

/// `sbatch ARGS scripts/slurm-array.sh STUDY RESULTS` from `dir` (logs there), with this
/// build's binary; returns its output and the wall time. With `--wait`, sbatch exits with the
/// job's code: a job whose run was interrupted (130) fails, so only `ok_only` asserts success.
fn sbatch_with(
    dir: &Path,
    args: &[&str],
    study: &Path,
    results: &Path,
    ok_only: bool,
) -> (Output, Duration) {
    let t = Instant::now();
    let o = Command::new("sbatch")
        .current_dir(dir)
        .env("ABLATE", env!("CARGO_BIN_EXE_ablate"))
        .args(args)
        .arg(format!("--output={}/ablate-%A_%a.log", dir.display()))
        .arg(script())
        .arg(study)
        .arg(results)
        .output()
        .expect("sbatch");
    assert!(
        o.status.success() || !ok_only,
        "sbatch {args:?}: {:?} {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!(
        "sbatch {} took {:.1} s",
        args.join(" "),
        t.elapsed().as_secs_f64()
    );
    (o, t.elapsed())
}

fn sbatch(dir: &Path, args: &[&str], study: &Path, results: &Path) -> (Output, Duration) {
    sbatch_with(dir, args, study, results, true)
}

/// The job id `sbatch --parsable` printed.
fn job_id(o: &Output) -> String {
    let s = String::from_utf8_lossy(&o.stdout);
    s.trim().split(';').next().unwrap().to_string()
}

/// Everything the job's tasks logged.
fn logs(dir: &Path, job: &str) -> Vec<String> {
    let mut out: Vec<(PathBuf, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("ablate-{job}_"))
        })
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect();
    out.sort();
    out.into_iter().map(|(_, t)| t).collect()
}

fn write_study(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, format!("name = \"{name}\"\n{body}")).unwrap();
    path
}

fn summary(run: &Path) -> String {
    std::fs::read_to_string(run.join("summary.json")).unwrap_or_default()
}

fn same_numbers(a: &Path, b: &Path, what: &str) {
    for file in ["steps.csv", "probes.csv", "eval.csv"] {
        let (x, y) = (numeric_rows(&a.join(file)), numeric_rows(&b.join(file)));
        assert!(!x.is_empty());
        assert!(
            x == y,
            "{what}: {file} differs from the uninterrupted run's"
        );
    }
}

#[test]
fn a_study_runs_as_a_job_array_zero_and_one_based() {
    if !cluster_up() {
        return;
    }
    let dir = temp_dir("slurm-array");
    let study = write_study(
        &dir,
        "five",
        &format!(
            "[base]\n{TINY_TEXT_TOML}steps = 30\neval_every = 10\nwarmup_steps = 5\n[[grid]]\nnorm = [\"layer\", \"batch\", \"rms\", \"masked-batch\", \"power\"]\n"
        ),
    );
    for (array, base) in [("0-1", "zero"), ("1-2", "one")] {
        let results = dir.join(format!("results-{base}"));
        let (o, _) = sbatch(
            &dir,
            &[
                "--parsable",
                &format!("--array={array}"),
                "--cpus-per-task=1",
                "--wait",
            ],
            &study,
            &results,
        );
        let job = job_id(&o);
        let logs = logs(&dir, &job);
        assert_eq!(logs.len(), 2, "{array}: {logs:?}");
        let runs = common::run_dirs(&results);
        assert_eq!(runs.len(), 5, "{array}: {runs:?}");
        for run in &runs {
            let id = run.file_name().unwrap().to_string_lossy().to_string();
            assert!(summary(run).contains("\"status\": \"finished\""), "{id}");
            // trained once: by exactly one task, one row per step
            let trained_by = logs.iter().filter(|l| l.contains(&id)).count();
            assert_eq!(trained_by, 1, "{array}: {id} in {trained_by} task logs");
            assert_eq!(numeric_rows(&run.join("steps.csv")).len(), 30, "{id}");
        }
        // the shards split 3 + 2
        let mut per_task: Vec<usize> = logs
            .iter()
            .map(|l| {
                runs.iter()
                    .filter(|r| l.contains(&*r.file_name().unwrap().to_string_lossy()))
                    .count()
            })
            .collect();
        per_task.sort();
        assert_eq!(per_task, vec![2, 3], "{array}");
        // the runs table: one row per run, all finished, not garbled by two writers
        let table = std::fs::read_to_string(results.join("runs-five.csv")).unwrap();
        let rows: Vec<&str> = table.lines().skip(1).collect();
        assert_eq!(rows.len(), 5, "{table}");
        let columns = table.lines().next().unwrap().split(',').count();
        for row in &rows {
            assert_eq!(row.split(',').count(), columns, "{table}");
            assert!(row.contains("finished"), "{table}");
        }
        let out = dir.join(format!("report-{base}"));
        let o = ablate(&[
            "report",
            study.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(out.join("REPORT.md").is_file());
    }
}

/// A run long enough to outlast a one-minute job (about 75 s on one quiet core of the 2-core
/// machines, 25 ms a step).
fn long_study(dir: &Path) -> PathBuf {
    write_study(
        dir,
        "long",
        "[base]\nd_model = 64\nlayers = 2\nheads = 2\nd_ff = 128\nvocab_size = 1000\nbatch_size = 64\nmax_len = 32\n\
         steps = 3000\nwarmup_steps = 100\neval_every = 1000\neval_batches = 2\ncheckpoint_every = 1000\n\
         [[grid]]\nnorm = \"batch\"\n",
    )
}

/// Waits until `job` has left the queue.
fn wait_gone(job: &str, limit: Duration) {
    let t = Instant::now();
    while t.elapsed() < limit {
        let o = Command::new("squeue")
            .args(["-h", "-j", job])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&o.stdout).trim().is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!("job {job} still queued after {limit:?}");
}

#[test]
fn a_time_limit_and_a_scancel_leave_runs_that_a_resubmitted_array_finishes_exactly() {
    if !cluster_up() {
        return;
    }
    let dir = temp_dir("slurm-limit");
    let study = long_study(&dir);
    // the same run uninterrupted, beside the jobs
    let reference = dir.join("reference");
    let mut straight = common::bin()
        .args(["run", study.to_str().unwrap(), "--results"])
        .arg(&reference)
        .arg("--quiet")
        .spawn()
        .unwrap();

    // 1. cut by the time limit: SIGTERM 30 s before the one-minute limit
    let limited = dir.join("limited");
    let limit_job = {
        let (study, limited, dir) = (study.clone(), limited.clone(), dir.clone());
        std::thread::spawn(move || {
            sbatch_with(
                &dir,
                &[
                    "--array=0-0",
                    "--cpus-per-task=1",
                    "--time=00:01:00",
                    "--signal=B:TERM@30",
                    "--wait",
                ],
                &study,
                &limited,
                false,
            )
        })
    };
    // 2. cancelled once it has trained a while
    let cancelled = dir.join("cancelled");
    let (o, _) = sbatch(
        &dir,
        &["--parsable", "--array=0-0", "--cpus-per-task=1"],
        &study,
        &cancelled,
    );
    let job = job_id(&o);
    let t = Instant::now();
    loop {
        let rows = common::run_dirs_if_any(&cancelled)
            .first()
            .and_then(|r| std::fs::read_to_string(r.join("steps.csv")).ok())
            .map_or(0, |s| s.lines().count());
        if rows > 500 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(180),
            "job {job} trained nothing in 3 minutes"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let o = Command::new("scancel").arg(&job).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_gone(&job, Duration::from_secs(120));
    let _ = limit_job.join().unwrap();

    for (results, what) in [(&limited, "time limit"), (&cancelled, "scancel")] {
        let run = common::run_dirs(results).remove(0);
        let s = summary(&run);
        assert!(s.contains("\"status\": \"interrupted\""), "{what}: {s}");
        assert!(run.join("checkpoints").is_dir(), "{what}: no checkpoint");
    }
    // the resubmitted array continues both, with no stale lock in the way
    for (results, what) in [(&limited, "time limit"), (&cancelled, "scancel")] {
        let (o, _) = sbatch(
            &dir,
            &["--parsable", "--array=0-0", "--cpus-per-task=1", "--wait"],
            &study,
            results,
        );
        let log = logs(&dir, &job_id(&o)).concat();
        assert!(log.contains("from step"), "{what}: {log}");
        assert!(log.contains(" 0 busy, 0 failed"), "{what}: {log}");
    }
    assert!(straight.wait().unwrap().success());
    let reference_run = common::run_dirs(&reference).remove(0);
    for (results, what) in [(&limited, "time limit"), (&cancelled, "scancel")] {
        let run = common::run_dirs(results).remove(0);
        assert!(summary(&run).contains("\"status\": \"finished\""), "{what}");
        same_numbers(&reference_run, &run, what);
    }
}
