//! Study files: base settings plus grids, expanded into run configurations; shards of them.

use crate::config::RunConfig;
use crate::errors::one_line;
use crate::norm::composed::decl::parse_norm_tables;
use crate::norm::{NormDecl, NormKind};
use anyhow::{anyhow, bail, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StudyFile {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    base: toml::Table,
    #[serde(default)]
    grid: Vec<toml::Table>,
    /// The norm every other configuration of the report's first section is compared with.
    baseline: Option<String>,
    /// Declared norms (`[norms.NAME]`), usable by name in `norm = ...`.
    #[serde(default)]
    norms: toml::Table,
}

/// `table` with a declared norm's name in `norm` replaced by the declaration (`norm =
/// "composed"`, `norm_name`, `norm_decl`); other tables unchanged.
fn with_declared(mut table: toml::Table, declared: &BTreeMap<String, NormDecl>) -> toml::Table {
    let decl = match table.get("norm") {
        Some(toml::Value::String(name)) => declared.get(name).map(|d| (name.clone(), d)),
        _ => None,
    };
    if let Some((name, decl)) = decl {
        let value = toml::Value::try_from(decl).expect("a declaration always serializes");
        table.insert("norm".into(), NormKind::DECLARED.name().into());
        table.insert("norm_name".into(), name.into());
        table.insert("norm_decl".into(), value);
    }
    table
}

/// The study's name becomes a file name in the results folder (runs-<name>.csv).
fn check_name(name: &str, file: &str) -> Result<()> {
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > 100 || name.starts_with('.') || !name.chars().all(valid) {
        bail!(
            "{file}: study name {name:?} must be 1-100 letters, digits, '.', '_' or '-' and not start with '.' (it names the runs table runs-<name>.csv in the results folder)"
        );
    }
    Ok(())
}

/// Says where a configuration error comes from: the file, a table and its line, or `--set`.
struct Blame<'a> {
    file: &'a str,
    text: &'a str,
    overrides: &'a [(String, toml::Value)],
}

impl Blame<'_> {
    fn error(&self, e: anyhow::Error, context: &str) -> anyhow::Error {
        let (file, text) = (self.file, self.text);
        let msg = one_line(&e.to_string());
        let line = unknown_name(&msg)
            .and_then(|(what, name)| match what {
                "key" => line_of(text, name),
                _ => text
                    .lines()
                    .position(|l| l.contains(&format!("\"{name}\"")))
                    .map(|i| i + 1),
            })
            .map(|l| format!(" (line {l})"))
            .unwrap_or_default();
        // a value put in place by --set is blamed on --set, not on the grid it went into
        // (an unknown value names only itself: `btach`)
        let names = |s: &str| msg.contains(&format!("`{s}`"));
        let names_value = |v: &toml::Value| match v {
            toml::Value::String(s) => names(s),
            toml::Value::Array(a) => a.iter().any(|x| x.as_str().is_some_and(names)),
            _ => false,
        };
        if let Some((k, v)) = self
            .overrides
            .iter()
            .find(|(k, v)| mentions(&msg, k) || names_value(v))
        {
            return anyhow!("{file}: --set {k}={v}: {msg}");
        }
        anyhow!("{file}: {context}{line}: {msg}")
    }
}

/// Every combination of one grid's lists over the base (`before`: runs of earlier grids).
fn combinations(
    base: &toml::Table,
    grid: &toml::Table,
    before: usize,
    blame: &Blame,
    context: &str,
) -> Result<Vec<toml::Table>> {
    let file = blame.file;
    let axes: Vec<(String, Vec<toml::Value>)> = grid
        .iter()
        .map(|(k, v)| {
            let values = match v {
                toml::Value::Array(a) => a.clone(),
                other => vec![other.clone()],
            };
            (k.clone(), values)
        })
        .collect();
    if let Some((k, _)) = axes.iter().find(|(_, v)| v.is_empty()) {
        let line = line_of(blame.text, k)
            .map(|l| format!(" (line {l})"))
            .unwrap_or_default();
        bail!("{file}: {context}{line}: key `{k}` has an empty list, so the grid has no runs");
    }
    let count = axes
        .iter()
        .try_fold(1usize, |n, (_, v)| n.checked_mul(v.len()))
        .filter(|&n| n <= MAX_RUNS);
    let Some(count) = count else {
        bail!(
            "{file}: {context} has more than {MAX_RUNS} combinations of its lists; split the study"
        );
    };
    if before + count > MAX_RUNS {
        bail!("{file}: the grids have more than {MAX_RUNS} runs together; split the study");
    }
    let mut combos: Vec<toml::Table> = vec![base.clone()];
    for (k, values) in &axes {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.insert(k.clone(), v.clone());
                    c
                })
            })
            .collect();
    }
    Ok(combos)
}

/// The study's `baseline`: a norm some run uses.
fn baseline(name: &str, runs: &[RunConfig], file: &str) -> Result<NormKind> {
    let kind = NormKind::from_name(name).ok_or_else(|| {
        anyhow!(
            "{file}: baseline {name:?} is not a norm (one of: {})",
            NormKind::ALL
                .iter()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    if !runs.iter().any(|r| r.norm == kind) {
        bail!("{file}: baseline {name:?}: no run of the study uses that norm");
    }
    Ok(kind)
}

/// An expanded study.
#[derive(Debug, Clone)]
pub struct Study {
    pub name: String,
    pub description: String,
    pub path: PathBuf,
    /// Every run, in grid order, without duplicates.
    pub runs: Vec<RunConfig>,
    /// The `--set` overrides it was loaded with (`key=value`), empty for the file as written.
    pub overrides: Vec<String>,
    /// `baseline = "NORM"`: the norm the report compares every configuration with (default:
    /// `layer` when the study has it, else its first configuration's norm).
    pub baseline: Option<NormKind>,
}

/// 1-based line of the first `key =` in `text`, for error messages.
fn line_of(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

/// Extracts ("key" or "value", name) from an "unknown key `x`" / "unknown value `x`" message.
fn unknown_name(msg: &str) -> Option<(&'static str, &str)> {
    ["key", "value"].into_iter().find_map(|what| {
        let rest = msg.split(&format!("unknown {what} `")).nth(1)?;
        Some((what, rest.split('`').next()?))
    })
}

/// Above this many runs a study is refused (its configurations would fill memory first).
const MAX_RUNS: usize = 1_000_000;
/// Above this many runs a study is listed and run with a warning.
const WARN_RUNS: usize = 10_000;

/// Whether `msg` names the key `key` (or its option, `warmup-steps`) as a word: `steps`, not
/// the `steps` inside `warmup_steps`.
fn mentions(msg: &str, key: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    [key.to_string(), key.replace('_', "-")].iter().any(|k| {
        msg.match_indices(k.as_str()).any(|(i, _)| {
            let before = msg[..i].chars().next_back();
            let after = msg[i + k.len()..].chars().next();
            !before.is_some_and(word) && !after.is_some_and(word)
        })
    })
}

/// A `--set key=value` override: the value is TOML (`steps=30`, `lr=[1e-3, 2e-3]`,
/// `cnn_channels=[8, 16]`), or a bare string (`norm=batch`).
pub fn parse_set(s: &str) -> Result<(String, toml::Value)> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| anyhow!("--set expects key=value, e.g. steps=30 (got {s:?})"))?;
    let key = key.trim().replace('-', "_");
    if key.is_empty() {
        bail!("--set expects key=value, e.g. steps=30 (got {s:?})");
    }
    let value = value.trim();
    let toml_value = |v: &str| {
        toml::from_str::<toml::Table>(&format!("v = {v}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
    };
    // a list of bare words (`norm=[batch,layer]`) is read as a list of strings, as a shell
    // user means it; anything else that is not TOML is one string
    let bare_list = || {
        let inner = value.strip_prefix('[')?.strip_suffix(']')?;
        let items: Vec<String> = inner
            .split(',')
            .map(|w| {
                let w = w.trim();
                if toml_value(w).is_some() {
                    w.to_string()
                } else {
                    format!("{w:?}")
                }
            })
            .collect();
        toml_value(&format!("[{}]", items.join(", ")))
    };
    let parsed = toml_value(value)
        .or_else(bare_list)
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    Ok((key, parsed))
}

impl Study {
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with(path, &[])
    }

    /// The study file with `overrides` (from `--set`) in place of its own values of those keys,
    /// in its base and in every grid.
    pub fn load_with(path: &Path, overrides: &[(String, toml::Value)]) -> Result<Self> {
        let text =
            crate::errors::read_text_limited(path, crate::errors::MAX_SETTINGS_BYTES, "study")?;
        Self::parse_with(&text, path, overrides)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        Self::parse_with(text, path, &[])
    }

    pub fn parse_with(
        text: &str,
        path: &Path,
        overrides: &[(String, toml::Value)],
    ) -> Result<Self> {
        let file = path.display().to_string();
        let mut study: StudyFile =
            toml::from_str(text).map_err(|e| anyhow!("{file}: {}", one_line(&e.to_string())))?;
        check_name(&study.name, &file)?;
        for (key, value) in overrides {
            study.base.remove(key);
            for grid in &mut study.grid {
                grid.insert(key.clone(), value.clone());
            }
        }
        let blame = Blame {
            file: &file,
            text,
            overrides,
        };
        let declared = parse_norm_tables(&study.norms).map_err(|e| anyhow!("{file}: {e}"))?;
        // the base alone must already be a valid configuration
        RunConfig::from_table(with_declared(study.base.clone(), &declared))
            .map_err(|e| blame.error(e, "[base]"))?;
        if study.grid.is_empty() {
            bail!("{file}: the study has no [[grid]] table, so it has no runs");
        }
        let mut runs: Vec<RunConfig> = Vec::new();
        let mut ids = std::collections::HashSet::new();
        for (g, grid) in study.grid.iter().enumerate() {
            let context = format!("[[grid]] #{}", g + 1);
            for combo in combinations(&study.base, grid, runs.len(), &blame, &context)? {
                let config = RunConfig::from_table(with_declared(combo, &declared))
                    .map_err(|e| blame.error(e, &context))?;
                config.validate().map_err(|e| blame.error(e, &context))?;
                if ids.insert(config.id()) {
                    runs.push(config);
                }
            }
        }
        let baseline = match &study.baseline {
            None => None,
            Some(name) => Some(baseline(name, &runs, &file)?),
        };
        Ok(Study {
            baseline,
            name: study.name,
            description: study.description,
            path: path.to_path_buf(),
            runs,
            overrides: overrides.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        })
    }

    /// A warning for a study large enough to be a mistake in its lists.
    pub fn size_warning(&self) -> Option<String> {
        (self.runs.len() > WARN_RUNS).then(|| {
            format!(
                "warning: {} has {} runs (more than {WARN_RUNS}); check its [[grid]] lists, or run a share of it with --shard",
                self.path.display(),
                self.runs.len()
            )
        })
    }

    /// The runs of shard `k` of `n` (1-based): runs are dealt round-robin in grid order, so
    /// shard sizes differ by at most one and every run is in exactly one shard.
    pub fn shard(&self, k: usize, n: usize) -> Vec<RunConfig> {
        self.runs
            .iter()
            .enumerate()
            .filter(|(i, _)| i % n + 1 == k)
            .map(|(_, r)| r.clone())
            .collect()
    }
}

/// Parses `k/n` with `k` counted from `base` (1: `1/n` .. `n/n`; 0: `0/n` .. `(n-1)/n`, as a
/// Slurm array `--array=0-(n-1)` numbers its tasks); returns the 1-based `(k, n)`.
pub fn parse_shard(s: &str, base: usize) -> Result<(usize, usize)> {
    if base > 1 {
        bail!("--shard-base must be 0 or 1 (got {base})");
    }
    let err = || {
        let range = if base == 0 {
            "0 <= k <= n - 1"
        } else {
            "1 <= k <= n"
        };
        anyhow!(
            "--shard expects k/n with {range} (--shard-base {base}), e.g. {}/4 (got {s:?})",
            base + 1
        )
    };
    let (k, n) = s.split_once('/').ok_or_else(err)?;
    let (k, n): (usize, usize) = (
        k.trim().parse().map_err(|_| err())?,
        n.trim().parse().map_err(|_| err())?,
    );
    if n == 0 || k < base || k - base >= n {
        return Err(err());
    }
    Ok((k - base + 1, n))
}
