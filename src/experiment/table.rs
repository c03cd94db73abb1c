//! The table of a study's runs (`runs-<study>.csv` beside the run folders, for pandas or
//! polars) and the lines of `ablate status`.

use super::Study;
use crate::config::varying_keys;
use crate::results::{read_csv_growing, read_summary, StepRow, Summary, STEPS_FILE};
use std::path::Path;

/// What a run folder says about a run: its summary, or for a run without one (running, or
/// killed) its last step from steps.csv.
struct RunState {
    status: String,
    steps_done: usize,
    last_loss: Option<f64>,
    /// Seconds to the end at the run's own pace, for a run in progress.
    eta_s: Option<f64>,
    summary: Option<Summary>,
}

fn state(dir: &Path, planned: usize) -> RunState {
    // a live owner means the run is training now, whatever an earlier summary says (a resumed
    // run still has the summary of its interruption)
    let live = crate::results::lock::holder_alive(dir);
    if let (false, Ok(s)) = (live, read_summary(dir)) {
        return RunState {
            status: format!("{:?}", s.status).to_lowercase(),
            steps_done: s.steps_completed,
            last_loss: s.final_train_loss,
            eta_s: None,
            summary: Some(s),
        };
    }
    if !dir.is_dir() {
        return RunState {
            status: "to run".into(),
            steps_done: 0,
            last_loss: None,
            eta_s: None,
            summary: None,
        };
    }
    // no summary yet: steps.csv says how far it got (read only here, not for finished runs)
    let steps: Vec<StepRow> = read_csv_growing(&dir.join(STEPS_FILE)).unwrap_or_default();
    let last = steps.last();
    // the pace of the last 50 steps (a resumed run's clock restarts at its first step)
    let recent = steps.len().saturating_sub(50);
    let pace = last.zip(steps.get(recent)).and_then(|(l, r)| {
        (l.step > r.step && l.wall_s > r.wall_s)
            .then(|| (l.wall_s - r.wall_s) / (l.step - r.step) as f64)
    });
    RunState {
        status: if live { "running" } else { "incomplete" }.into(),
        steps_done: last.map_or(0, |r| r.step),
        last_loss: last.map(|r| r.loss),
        eta_s: last
            .zip(pace)
            .map(|(r, p)| p * planned.saturating_sub(r.step) as f64),
        summary: None,
    }
}

/// A metric cell: NaN where a run has none, so that the column reads as numbers in pandas and
/// polars.
fn num(x: Option<f64>) -> String {
    x.filter(|v| v.is_finite())
        .map_or_else(|| "NaN".into(), |v| format!("{v}"))
}

/// `runs-<study>.csv`: one row per run of the study with its id, state, the keys that vary in
/// the study, and its final metrics (NaN where a run has none).
pub fn runs_table(study: &Study, out: &Path) -> String {
    let configs: Vec<&crate::config::RunConfig> = study.runs.iter().collect();
    // `steps` and `seed` have columns of their own
    let keys: Vec<String> = varying_keys(&configs)
        .into_iter()
        .filter(|k| k != "steps" && k != "seed")
        .collect();
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = vec![
        "id".into(),
        "status".into(),
        "steps_done".into(),
        "steps".into(),
    ];
    header.extend(keys.iter().cloned());
    header.extend(
        [
            "seed",
            "final_train_loss",
            "eval_loss",
            "eval_ppl",
            "eval_accuracy",
            "train_mode_loss",
            "median_step_ms",
            "tokens_per_s",
            "wall_s",
            "git_revision",
        ]
        .map(String::from),
    );
    let _ = w.write_record(&header);
    for c in &study.runs {
        let s = state(&c.run_dir(out), c.steps);
        let eval = s.summary.as_ref().and_then(|s| s.final_eval.clone());
        let mut row = vec![
            c.id(),
            s.status.clone(),
            s.steps_done.to_string(),
            c.steps.to_string(),
        ];
        row.extend(keys.iter().map(|k| value_of(c, k)));
        let sum = s.summary.as_ref();
        row.extend([
            c.seed.to_string(),
            num(s.last_loss),
            num(eval.as_ref().map(|e| e.eval_loss)),
            num(eval.as_ref().and_then(|e| e.eval_ppl)),
            num(eval.as_ref().and_then(|e| e.eval_accuracy)),
            num(eval.as_ref().map(|e| e.train_mode_loss)),
            num(sum.and_then(|s| s.median_step_ms)),
            num(sum.and_then(|s| s.tokens_per_s)),
            num(sum.map(|s| s.wall_s)),
            sum.and_then(|s| s.git_revision.clone()).unwrap_or_default(),
        ]);
        let _ = w.write_record(&row);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// `ablate status`: one line per run (state, progress, last loss, ETA) and a count per state.
pub fn status_lines(study: &Study, out: &Path) -> Vec<String> {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    let mut lines = Vec::new();
    for c in &study.runs {
        let s = state(&c.run_dir(out), c.steps);
        *counts.entry(s.status.clone()).or_default() += 1;
        let loss = s
            .last_loss
            .map(|l| format!("loss {l:.4}"))
            .unwrap_or_default();
        let eta = s
            .eta_s
            .map(|e| format!("eta {}", crate::progress::clock(e)))
            .unwrap_or_default();
        lines.push(format!(
            "  {:<40} {:<11} {:>7}/{:<7} {:<12} {}",
            c.id(),
            s.status,
            s.steps_done,
            c.steps,
            loss,
            eta
        ));
    }
    let summary = counts
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ");
    lines.push(format!("{} runs: {summary}", study.runs.len()));
    lines
}

fn value_of(c: &crate::config::RunConfig, key: &str) -> String {
    c.value_of(key)
        .map(|v| match v {
            toml::Value::String(s) => s,
            other => other.to_string(),
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_run_with_a_live_owner_reads_as_running_from_its_steps() {
        let dir = std::env::temp_dir().join(format!("ablate-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // the summary of its interruption at step 40
        std::fs::write(
            dir.join(crate::results::SUMMARY_FILE),
            r#"{"run_id":"x","status":"interrupted","task":"text","norm":"batch","seed":1,"steps_planned":150,
                "steps_completed":40,"num_params":1,"wall_s":1.0,"backend":"flex","adapter":"cpu","crate_version":"0"}"#,
        )
        .unwrap();
        // steps 1-100 written, 0.5 s a step over the last 50
        let mut csv = crate::results::STEP_COLUMNS.join(",") + "\n";
        for step in 1..=100 {
            csv += &format!(
                "{step},{},0.001,1,10,2,8,0.1,5,{}\n",
                6.0 - step as f64 * 0.01,
                step as f64 * 0.5
            );
        }
        std::fs::write(dir.join(STEPS_FILE), csv).unwrap();
        let s = state(&dir, 150);
        assert_eq!((s.status.as_str(), s.steps_done), ("interrupted", 40));
        // its owner is alive: the steps tell
        let lock = crate::results::lock::RunLock::acquire(&dir)
            .unwrap()
            .unwrap();
        let s = state(&dir, 150);
        assert_eq!((s.status.as_str(), s.steps_done), ("running", 100));
        assert!((s.last_loss.unwrap() - 5.0).abs() < 1e-12);
        assert!((s.eta_s.unwrap() - 25.0).abs() < 1e-9, "{:?}", s.eta_s);
        drop(lock);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
