//! A norm declared in TOML: the parts it is composed of, their defaults, and the rules between
//! them (checked before anything trains, one line naming the parts that conflict and why).
//!
//! ```toml
//! [norms.group-bn]
//! axes = "group"          # token | batch | position | group
//! groups = 4
//! positions = "real"      # real | all | filled
//! centre = true
//! scale = "variance"      # variance | quadratic-mean | none
//! ```
//!
//! A declaration is resolved when read: every part that applies holds its value (the default
//! when not written) and every part that does not is absent, so two declarations that mean the
//! same norm have the same content, and a run's id hashes that content, never the name.

use crate::norm::NormKind;
use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What each token is divided by before the statistics: nothing, its RMS over all features
/// (the PowerNorm authors' LayerScaling), or over each group of features (GroupScaling).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PreScale {
    #[default]
    None,
    TokenRms,
    GroupRms,
}

/// The axes a statistic is taken over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Axes {
    /// The features of one token (LayerNorm, RMSNorm): no batch statistic.
    Token,
    /// Batch x time, per feature (BatchNorm).
    Batch,
    /// The batch at one position, per (position, feature).
    Position,
    /// Batch x time and the features of one group, per group of features.
    Group,
}

/// Which positions a batch statistic counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Positions {
    /// Real tokens only.
    #[default]
    Real,
    /// Every position, padding included.
    All,
    /// Every position, with padded rows first replaced by the real-token mean (the authors'
    /// `MaskSyncBatchNorm`: the mean is the real one, the variance diluted by `N_real / N`).
    Filled,
}

/// The second-order statistic a layer divides by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scale {
    /// `mean((x - mu)^2)`.
    Variance,
    /// `psi2 = mean(x^2)`.
    QuadraticMean,
    /// Not divided.
    None,
}

/// Which statistic the training forward pass uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Forward {
    /// This batch's.
    #[default]
    Batch,
    /// The running one (from before this step's update).
    Running,
    /// The batch's while `step <= warmup`, then the running one (PowerNorm).
    WarmupThenRunning,
}

/// How the running statistic follows the batch's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Running {
    /// `r = (1 - m) r + m batch`.
    #[default]
    Ema,
    /// PowerNorm's: while `step < warmup` first `r = r (step-1)/step + batch/step`, then always
    /// the EMA.
    CumulativeThenEma,
}

/// The variance the running statistic takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bias {
    /// Divided by N.
    #[default]
    Biased,
    /// Times `N / (N - 1)` (PyTorch's running variance).
    Unbiased,
}

/// The backward pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backward {
    /// Ordinary automatic differentiation, through the statistics.
    #[default]
    Autodiff,
    /// PowerNorm's approximate gradient `dx = (g - nu z) / sqrt(psi2_B + eps)`.
    Approximate,
}

/// Positions the approximate backward's means (`Gamma`, `Lambda`, so `nu`) average over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Means {
    #[default]
    Real,
    All,
}

/// The trained per-feature parameters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Affine {
    /// `gamma * z + beta`.
    #[default]
    GainBias,
    /// `gamma * z`.
    Gain,
    None,
}

/// A declared norm, resolved (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NormDecl {
    #[serde(default)]
    pub pre_scale: PreScale,
    /// Groups of features, for `pre-scale = "group-rms"` and `axes = "group"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<usize>,
    pub axes: Axes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positions: Option<Positions>,
    #[serde(default = "yes")]
    pub centre: bool,
    pub scale: Scale,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<Forward>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<Running>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub momentum: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_variance: Option<Bias>,
    #[serde(default)]
    pub backward: Backward,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nu_momentum: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backward_means: Option<Means>,
    #[serde(default)]
    pub affine: Affine,
    #[serde(default = "default_eps")]
    pub eps: f64,
}

fn yes() -> bool {
    true
}

fn default_eps() -> f64 {
    1e-5
}

/// The default momentum of a running statistic (BatchNorm's).
pub const MOMENTUM: f64 = 0.1;
/// The default momentum of `nu`: `nu <- nu + m (Lambda - nu Gamma)`, `m = 1 - alpha_bkw` with the
/// paper's `alpha_bkw = 0.9`.
pub const NU_MOMENTUM: f64 = 0.1;

impl NormDecl {
    /// Whether the layer keeps running statistics (every batch statistic does).
    pub fn keeps_running(&self) -> bool {
        self.axes != Axes::Token && self.scale_or_centre()
    }

    fn scale_or_centre(&self) -> bool {
        self.scale != Scale::None || self.centre
    }

    /// Whether a mean is computed (to centre, or for the variance).
    pub fn has_mean(&self) -> bool {
        self.centre || self.scale == Scale::Variance
    }

    /// Fills in the defaults of the parts that apply and checks the rules between parts; the
    /// error is one line naming the parts.
    pub fn resolve(mut self) -> Result<Self> {
        self.check_shape()?;
        let batch = self.axes != Axes::Token;
        let rule = |applies: bool, given: bool, part: &str, why: &str| -> Result<()> {
            if given && !applies {
                bail!("{part} does not apply: {why}");
            }
            Ok(())
        };
        let token_why = "axes = \"token\" takes each token's own statistic, with no batch statistic or running value";
        rule(batch, self.positions.is_some(), "positions", token_why)?;
        rule(batch, self.forward.is_some(), "forward", token_why)?;
        rule(batch, self.running.is_some(), "running", token_why)?;
        rule(batch, self.momentum.is_some(), "momentum", token_why)?;
        rule(batch, self.running_variance.is_some(), "running-variance", token_why)?;
        if batch {
            self.positions.get_or_insert(Positions::Real);
            self.forward.get_or_insert(Forward::Batch);
            self.running.get_or_insert(Running::Ema);
            self.momentum.get_or_insert(MOMENTUM);
        }
        let variance = batch && self.scale == Scale::Variance;
        rule(
            variance,
            self.running_variance.is_some(),
            "running-variance",
            "it needs a variance over the batch (axes other than \"token\", scale = \"variance\")",
        )?;
        if variance {
            self.running_variance.get_or_insert(Bias::Biased);
        }
        let warm = self.forward == Some(Forward::WarmupThenRunning)
            || self.running == Some(Running::CumulativeThenEma);
        rule(warm, self.warmup.is_some(), "warmup", "it counts the steps of forward = \"warmup-then-running\" or running = \"cumulative-then-ema\"")?;
        if warm && self.warmup.is_none() {
            bail!("forward = \"warmup-then-running\" and running = \"cumulative-then-ema\" need warmup = STEPS");
        }
        let approx = self.backward == Backward::Approximate;
        let approx_why = "it belongs to backward = \"approximate\"";
        rule(approx, self.nu_momentum.is_some(), "nu-momentum", approx_why)?;
        rule(approx, self.backward_means.is_some(), "backward-means", approx_why)?;
        if approx {
            self.nu_momentum.get_or_insert(NU_MOMENTUM);
            self.backward_means.get_or_insert(Means::Real);
        }
        self.check_rules()?;
        Ok(self)
    }

    /// Groups, counts and ranges.
    fn check_shape(&self) -> Result<()> {
        let grouped = self.pre_scale == PreScale::GroupRms || self.axes == Axes::Group;
        match (grouped, self.groups) {
            (true, None) => bail!("pre-scale = \"group-rms\" and axes = \"group\" need groups = G (the features of a token split into G groups)"),
            (true, Some(0)) => bail!("groups must be at least 1"),
            (false, Some(_)) => bail!("groups does not apply: only pre-scale = \"group-rms\" and axes = \"group\" split features into groups"),
            _ => {}
        }
        if !(self.eps > 0.0 && self.eps.is_finite()) {
            bail!("eps must be a finite number > 0 (got {})", self.eps);
        }
        for (part, v) in [("momentum", self.momentum), ("nu-momentum", self.nu_momentum)] {
            if let Some(m) = v {
                if !(0.0..=1.0).contains(&m) {
                    bail!("{part} must be between 0 and 1 (got {m})");
                }
            }
        }
        Ok(())
    }

    /// The rules between parts that are all present.
    fn check_rules(&self) -> Result<()> {
        if !self.scale_or_centre() {
            bail!("centre = false with scale = \"none\" normalizes nothing (use norm = \"none\")");
        }
        if self.positions == Some(Positions::Filled) && self.axes != Axes::Batch {
            bail!("positions = \"filled\" needs axes = \"batch\": it fills padded rows with the per-feature mean of the batch");
        }
        if self.forward != Some(Forward::Batch) && self.forward.is_some() && self.axes == Axes::Position {
            bail!("axes = \"position\" with forward other than \"batch\" is not composed: positions with fewer than 2 real tokens already fall back to the running statistic");
        }
        if self.axes == Axes::Position && self.running_variance == Some(Bias::Unbiased) {
            bail!("running-variance = \"unbiased\" with axes = \"position\" is not composed: each position counts its own tokens");
        }
        if self.backward == Backward::Approximate {
            let why = "PowerNorm's approximate backward is derived for z = x / sqrt(psi2) with psi2 a per-feature quadratic mean over the batch";
            if self.scale != Scale::QuadraticMean {
                bail!("backward = \"approximate\" needs scale = \"quadratic-mean\": {why}");
            }
            if self.centre {
                bail!("backward = \"approximate\" needs centre = false: {why}");
            }
            if self.axes != Axes::Batch {
                bail!("backward = \"approximate\" needs axes = \"batch\": {why}");
            }
            if self.positions == Some(Positions::Filled) {
                bail!("backward = \"approximate\" with positions = \"filled\" is not composed: {why}, over real tokens or all positions");
            }
            if self.affine == Affine::None {
                bail!("backward = \"approximate\" needs affine with a gain: nu's update reads Lambda = mean(g z) from the gain's gradient");
            }
        }
        Ok(())
    }

    /// Checks against the model: groups divide the width, per-position statistics need text.
    pub fn check_model(&self, d: usize, max_positions: Option<usize>) -> Result<()> {
        if let Some(g) = self.groups {
            if !d.is_multiple_of(g) {
                bail!("groups ({g}) must divide the model width d = {d}");
            }
        }
        if self.axes == Axes::Position && max_positions.is_none() {
            bail!("axes = \"position\" keeps statistics per token position and needs text: use --task text");
        }
        Ok(())
    }

    /// The declaration as one line of TOML (`{ axes = "batch", ... }`), for labels and tables.
    pub fn inline(&self) -> String {
        let table = toml::Table::try_from(self).expect("a declaration always serializes");
        let parts: Vec<String> = table.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        format!("{{ {} }}", parts.join(", "))
    }
}

/// The names a declaration may not take: the built-in norms' (and `composed`).
fn check_name(name: &str) -> Result<()> {
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty() || name.len() > 60 || !name.chars().all(valid) {
        bail!("norms.{name}: a declared norm's name is 1-60 letters, digits, '.', '_' or '-'");
    }
    if name == NormKind::DECLARED.name() || NormKind::from_name(name).is_some() {
        bail!("norms.{name}: the name is a built-in norm's; give the declaration another");
    }
    Ok(())
}

/// Parses and resolves one declaration; `name` prefixes errors.
pub fn parse_decl(name: &str, value: toml::Value) -> Result<NormDecl> {
    check_name(name)?;
    let decl: NormDecl = value.try_into().map_err(|e: toml::de::Error| {
        anyhow!(
            "norms.{name}: {}",
            crate::errors::friendly(&crate::errors::one_line(e.message()))
        )
    })?;
    decl.resolve().map_err(|e| anyhow!("norms.{name}: {e}"))
}

/// The `[norms.NAME]` tables of a study or norm file (its other keys are left alone).
pub fn parse_norms(table: &toml::Table) -> Result<BTreeMap<String, NormDecl>> {
    let Some(norms) = table.get("norms") else {
        return Ok(BTreeMap::new());
    };
    let Some(norms) = norms.as_table() else {
        bail!("norms must be tables: [norms.NAME]");
    };
    parse_norm_tables(norms)
}

/// The declarations of a `norms` table, by name.
pub fn parse_norm_tables(norms: &toml::Table) -> Result<BTreeMap<String, NormDecl>> {
    norms
        .iter()
        .map(|(name, v)| Ok((name.clone(), parse_decl(name, v.clone())?)))
        .collect()
}

/// Reads a norm file (`--norm-file`): its `[norms.NAME]` tables.
pub fn read_norm_file(path: &std::path::Path) -> Result<BTreeMap<String, NormDecl>> {
    let origin = path.display().to_string();
    let text =
        crate::errors::read_text_limited(path, crate::errors::MAX_SETTINGS_BYTES, "norm file")?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| anyhow!("{origin}: {}", crate::errors::one_line(&e.to_string())))?;
    let norms = parse_norms(&table).map_err(|e| anyhow!("{origin}: {e}"))?;
    if norms.is_empty() {
        bail!("{origin}: no [norms.NAME] table: declare a norm there first");
    }
    Ok(norms)
}
