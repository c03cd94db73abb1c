//! The normalization family behind one trait, and the registry of norms.
//!
//! A norm sees activations `[batch, time, d]` and the padding mask, returns the normalized
//! tensor and the batch statistics it used (so probes never reach into the module). Images use
//! the same layout: a `[batch, channels, h, w]` feature map is viewed as `[batch, h*w, channels]`
//! with no padding.
//!
//! Every norm publishes its own facts in a [`NormDef`] (name and help, the statistic it keeps,
//! parameters and buffers for memory accounting, the options it reads and their checks, how to
//! build it). `config`, `cli`, `memory`, `report` and the tests read those facts; nothing outside
//! this module matches on the kind of norm to learn them.
//!
//! # Adding a norm
//!
//! 1. Write `src/norm/<file>.rs`: the layer type (`#[derive(Module)]`), its [`Norm`]
//!    implementation (return [`BatchStats`] when it keeps batch statistics, so the probes and
//!    reports see them), and a `pub const` [`NormDef`] with its facts. An option of its own is
//!    a `pub const` [`NormOption`] in the same file (key, help, kind with default and range,
//!    and [`Written::WhenSet`], so earlier runs keep their ids), listed in the def's
//!    `info.options` and read in its `build` with [`NormConfig::number`], [`NormConfig::count`]
//!    or [`NormConfig::choice`]. The command line (`--key-with-dashes`), `--help`, config and
//!    study files, the range check, the refusal of an option the chosen norm does not read and
//!    the run id all follow from that declaration.
//! 2. Add one line to the [`norms!`] list below: the file, the layer type, and the name of
//!    each kind the file defines with its def.
//! 3. Add its tests as `src/norm/tests/<file>.rs` (and a `mod` line in `tests/mod.rs`, whose
//!    helpers it uses): forward and backward against a float64 reference, with padding, in
//!    training and evaluation mode, and its running statistics. The padding property test, the
//!    backend parity test (`tests/parity.rs`), `--help`, memory accounting and the reports pick
//!    the norm up from the registry.
//!
//! `tests/fixture.rs` is such a norm with one option, registered for the unit tests only
//! (`#[cfg(test)]` on its registry line); its tests train it through the whole run path.

mod options;
mod stats;

pub use composed::NormDecl;
pub use options::{Bound, NormOption, NormOptions, OptionKind, OptionValue, Written};
pub use power::{BackwardDivisor, BackwardMeans, PowerConfig};
pub use stats::{BatchStats, GradStats, PowerGrad, PowerStats, StatKind};

use anyhow::Result;
use burn::module::Module;
use burn::tensor::{Device, Gradients, Tensor};

/// What a norm needs to know besides the activations.
#[derive(Debug, Clone, Copy)]
pub struct NormCtx<'a> {
    /// `[batch, time, 1]`: 1.0 at real tokens, 0.0 at padding. `None`: every position is real.
    pub mask: Option<&'a Tensor<3>>,
    /// Number of real positions (batch * time when there is no mask).
    pub n_real: usize,
    /// `true`: batch statistics (training mode). `false`: running statistics (evaluation).
    pub training: bool,
    /// Update running statistics / internal state. Only on real training steps.
    pub update_running: bool,
    /// 1-based training step (PowerNorm's warm-up counter).
    pub step: usize,
}

/// The normalization interface every variant implements.
pub trait Norm {
    /// Normalizes `x` (`[batch, time, d]`); returns the output and, for norms that keep
    /// batch statistics, the statistics used at this call (detached).
    fn forward(&self, x: Tensor<3>, ctx: &NormCtx) -> (Tensor<3>, Option<BatchStats>);

    /// After `loss.backward()` on a training step: gradients of the loss with respect to the
    /// batch statistics (backward probes) and any state update that needs the backward pass
    /// (PowerNorm's `nu`). Norms without batch statistics return `None`.
    fn after_backward(
        &self,
        _grads: &Gradients,
        _stats: &BatchStats,
        _ctx: &NormCtx,
    ) -> Option<GradStats> {
        None
    }
}

/// What a norm publishes about itself.
#[derive(Debug, Clone)]
pub struct NormInfo {
    /// Its name on the command line, in study files and in run ids.
    pub name: &'static str,
    /// One line for `--help`.
    pub help: &'static str,
    /// The statistic it estimates over the batch and keeps a running value of (`None`: a
    /// per-token norm, or none); it decides the probes and the report's measures.
    pub statistic: Option<StatKind>,
    /// Trained parameters per feature (gain, bias).
    pub params_per_feature: u64,
    /// State kept besides parameters, in floats per feature, and what it is.
    pub buffers_per_feature: u64,
    /// Whether those buffers are kept for every token position (times the maximum length).
    pub buffers_per_position: bool,
    pub buffers: &'static str,
    /// The options it reads ([`NormOption`]), each declared once in a norm's file.
    pub options: &'static [NormOption],
}

/// A norm's facts and how to build and check it: each norm file defines one per kind.
pub struct NormDef<T> {
    pub info: NormInfo,
    /// A layer over `d` features.
    pub build: fn(&NormConfig, usize, &Device) -> T,
    /// Checks of its own options for a layer over `d` features (after the common ones).
    pub validate: fn(&NormConfig, usize) -> Result<()>,
    /// A few words for labels when a setting differs from the usual one.
    pub note: fn(&NormConfig) -> Option<&'static str>,
}

/// For [`NormDef::validate`]: nothing to check beyond the common options.
pub fn no_checks(_: &NormConfig, _: usize) -> Result<()> {
    Ok(())
}

/// For [`NormDef::note`]: nothing to say.
pub fn no_note(_: &NormConfig) -> Option<&'static str> {
    None
}

/// The registry: one line per norm file, `file::LayerType { Kind => DEF, ... }`. It declares
/// the modules, the selectable [`NormKind`]s and the [`NormLayer`] that models hold.
/// After the first `;`, the declared norm: a kind like the others (config files and run ids name
/// it), but not selectable by name alone and not in [`NormKind::ALL`], since it needs a
/// declaration. After the second, a norm of `tests/` that exists in the unit tests only.
macro_rules! norms {
    ($($module:ident :: $layer:ident { $($kind:ident => $def:ident),+ })*
     ; declared $dmodule:ident :: $dlayer:ident { $dkind:ident => $ddef:ident }
     ; for_tests $tmodule:ident :: $tlayer:ident { $tkind:ident => $tdef:ident }) => {
        $(mod $module; pub use $module::$layer;)*
        pub mod $dmodule;
        pub use $dmodule::$dlayer;
        #[cfg(test)]
        #[path = "tests/fixture.rs"]
        mod $tmodule;
        #[cfg(test)]
        use $tmodule::$tlayer;

        /// The norms selectable by name (`--norm`, study files), and the declared norm.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum NormKind { $($($kind,)+)* $dkind, #[cfg(test)] $tkind }

        impl NormKind {
            /// Every built-in norm, in registry order (the declared norm is not among them).
            pub const ALL: &'static [NormKind] = &[$($(NormKind::$kind,)+)* #[cfg(test)] NormKind::$tkind];
            const NAMES: &'static [&'static str] = &[$($($module::$def.info.name,)+)* #[cfg(test)] $tmodule::$tdef.info.name];
            /// The kind of every norm declared in TOML.
            pub const DECLARED: NormKind = NormKind::$dkind;

            /// Whether it is the unit tests' fixture (which documentation leaves out).
            pub fn is_test_fixture(&self) -> bool {
                match self {
                    #[cfg(test)]
                    NormKind::$tkind => true,
                    _ => false,
                }
            }

            /// The facts the norm publishes about itself (a declared norm's depend on its
            /// declaration: [`NormConfig::info`]).
            pub fn info(&self) -> &'static NormInfo {
                match self {
                    $($(NormKind::$kind => &$module::$def.info,)+)*
                    NormKind::$dkind => &$dmodule::$ddef.info,
                    #[cfg(test)]
                    NormKind::$tkind => &$tmodule::$tdef.info,
                }
            }

            fn build(&self, config: &NormConfig, d: usize, device: &Device) -> NormLayer {
                match self {
                    $($(NormKind::$kind => NormLayer::$kind(($module::$def.build)(config, d, device)),)+)*
                    NormKind::$dkind => NormLayer::$dkind(($dmodule::$ddef.build)(config, d, device)),
                    #[cfg(test)]
                    NormKind::$tkind => NormLayer::$tkind(($tmodule::$tdef.build)(config, d, device)),
                }
            }

            fn validate(&self, config: &NormConfig, d: usize) -> Result<()> {
                match self {
                    $($(NormKind::$kind => ($module::$def.validate)(config, d),)+)*
                    NormKind::$dkind => ($dmodule::$ddef.validate)(config, d),
                    #[cfg(test)]
                    NormKind::$tkind => ($tmodule::$tdef.validate)(config, d),
                }
            }

            fn note(&self, config: &NormConfig) -> Option<&'static str> {
                match self {
                    $($(NormKind::$kind => ($module::$def.note)(config),)+)*
                    NormKind::$dkind => ($dmodule::$ddef.note)(config),
                    #[cfg(test)]
                    NormKind::$tkind => ($tmodule::$tdef.note)(config),
                }
            }
        }

        /// A norm chosen at run time. Models hold this and use it through [`Norm`] only.
        #[derive(Module, Debug)]
        pub enum NormLayer { $($($kind($layer),)+)* $dkind($dlayer), #[cfg(test)] $tkind($tlayer) }

        impl Norm for NormLayer {
            fn forward(&self, x: Tensor<3>, ctx: &NormCtx) -> (Tensor<3>, Option<BatchStats>) {
                match self {
                    $($(NormLayer::$kind(n) => n.forward(x, ctx),)+)*
                    NormLayer::$dkind(n) => n.forward(x, ctx),
                    #[cfg(test)]
                    NormLayer::$tkind(n) => n.forward(x, ctx),
                }
            }

            fn after_backward(&self, grads: &Gradients, stats: &BatchStats, ctx: &NormCtx) -> Option<GradStats> {
                match self {
                    $($(NormLayer::$kind(n) => n.after_backward(grads, stats, ctx),)+)*
                    NormLayer::$dkind(n) => n.after_backward(grads, stats, ctx),
                    #[cfg(test)]
                    NormLayer::$tkind(n) => n.after_backward(grads, stats, ctx),
                }
            }
        }
    };
}

norms! {
    identity :: Identity { None => NONE }
    layer :: LayerNorm { Layer => LAYER }
    rms :: RmsNorm { Rms => RMS }
    batch :: BatchNorm { Batch => BATCH, MaskedBatch => MASKED_BATCH }
    scaled_batch :: ScaledBatchNorm { ScaledBatch => SCALED_BATCH }
    position_batch :: PositionBatchNorm { PositionBatch => POSITION_BATCH, RandomGroupBatch => RANDOM_GROUP_BATCH, PositionBatchPooledFirst => POSITION_BATCH_POOLED_FIRST }
    pnv :: PnVNorm { PnV => PN_V }
    power :: PowerNorm { Power => POWER }
    ;
    declared composed :: ComposedNorm { Composed => COMPOSED }
    ;
    for_tests fixture :: ShiftedLayerNorm { ShiftedLayer => SHIFTED_LAYER }
}

/// `eps`, added to the variance (or mean square) inside the square root: read by every norm
/// that divides by a statistic.
pub const EPS: NormOption = NormOption {
    key: "norm_eps",
    help: "Added to the variance (or mean square) inside every norm's square root.",
    kind: OptionKind::Number {
        default: 1e-5,
        bound: Bound::Positive,
    },
    written: Written::Always,
};

/// Every option some norm reads, in registry order (each once), which is also the order of
/// their keys in `config.toml`.
pub fn all_options() -> &'static [NormOption] {
    static ALL: std::sync::OnceLock<Vec<NormOption>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        let mut all: Vec<NormOption> = Vec::new();
        for kind in NormKind::ALL {
            for option in kind.info().options {
                if !all.iter().any(|o| o.key == option.key) {
                    all.push(*option);
                }
            }
        }
        all
    })
}

/// The option some norm reads under `key`.
pub fn find_option(key: &str) -> Option<&'static NormOption> {
    all_options().iter().find(|o| o.key == key)
}

impl NormKind {
    pub fn name(&self) -> &'static str {
        self.info().name
    }

    /// The built-in norm called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<NormKind> {
        NormKind::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// Whether the norm keeps batch statistics (and so has probes).
    pub fn has_batch_stats(&self) -> bool {
        self.info().statistic.is_some()
    }
}

impl std::fmt::Display for NormKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for NormKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for NormKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        NormKind::from_name(&name)
            .or_else(|| (name == NormKind::DECLARED.name()).then_some(NormKind::DECLARED))
            .ok_or_else(|| serde::de::Error::unknown_variant(&name, NormKind::NAMES))
    }
}

impl clap::ValueEnum for NormKind {
    fn value_variants<'a>() -> &'a [Self] {
        NormKind::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()).help(self.info().help))
    }
}

/// Everything needed to build any norm of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct NormConfig {
    pub kind: NormKind,
    /// The norm options set; the others read their defaults ([`NormConfig::number`], ...).
    pub options: NormOptions,
    /// The run's attention heads and learning-rate warm-up steps, for options whose default
    /// the run derives (PowerNorm's GroupScaling groups and warm-up).
    pub heads: usize,
    pub lr_warmup: usize,
    /// The longest sequence a text model sees (`None` for images): norms that keep
    /// statistics per position size their buffers by it.
    pub max_positions: Option<usize>,
    /// A declared norm's declaration (with [`NormKind::DECLARED`]).
    pub decl: Option<NormDecl>,
}

impl NormConfig {
    /// `kind` with every option at its default, 4 heads, 100 warm-up steps, no positions.
    pub fn new(kind: NormKind) -> Self {
        NormConfig {
            kind,
            options: NormOptions::default(),
            heads: 4,
            lr_warmup: 100,
            max_positions: None,
            decl: None,
        }
    }

    /// Sets `option` to `value` (builder style, for tests and callers that build norms).
    pub fn with(mut self, option: &NormOption, value: OptionValue) -> Self {
        self.options.set(option, value);
        self
    }

    /// A number option's value (its default unless set).
    pub fn number(&self, option: &NormOption) -> f64 {
        match self.options.get(option.key).or(option.default_value()) {
            Some(OptionValue::Number(v)) => v,
            other => panic!("{} is a number option (got {other:?})", option.key),
        }
    }

    /// A count option's value: set, else its default, else `None` (the run derives it).
    pub fn count(&self, option: &NormOption) -> Option<usize> {
        match self.options.get(option.key).or(option.default_value()) {
            Some(OptionValue::Count(v)) => Some(v),
            None => None,
            other => panic!("{} is a count option (got {other:?})", option.key),
        }
    }

    /// A choice option's value (its default unless set).
    pub fn choice(&self, option: &NormOption) -> &'static str {
        match self.options.get(option.key).or(option.default_value()) {
            Some(OptionValue::Choice(v)) => v,
            other => panic!("{} is a choice option (got {other:?})", option.key),
        }
    }

    /// [`EPS`]'s value.
    pub fn eps(&self) -> f64 {
        self.number(&EPS)
    }

    /// Checks the options set, then the norm's own rules.
    pub fn validate(&self, d: usize) -> Result<()> {
        self.options.check()?;
        self.kind.validate(self, d)
    }

    /// Builds a norm over `d` features.
    pub fn init(&self, d: usize, device: &Device) -> NormLayer {
        self.kind.build(self, d, device)
    }

    /// The norm's facts: the registry's, or a declared norm's from its declaration.
    pub fn info(&self) -> NormInfo {
        match (&self.decl, self.kind == NormKind::DECLARED) {
            (Some(decl), true) => composed::info(decl),
            _ => self.kind.info().clone(),
        }
    }

    /// A few words for labels when the norm runs with an unusual setting.
    pub fn note(&self) -> Option<&'static str> {
        self.kind.note(self)
    }
}

/// Per-feature mean over the real positions of `x` (`[batch, time, d]` -> `[d]`).
pub(crate) fn masked_feature_mean(x: Tensor<3>, ctx: &NormCtx) -> Tensor<1> {
    let [b, t, d] = x.dims();
    let summed = match ctx.mask {
        Some(mask) => (x * mask.clone()).reshape([b * t, d]).sum_dim(0),
        None => x.reshape([b * t, d]).sum_dim(0),
    };
    summed.reshape([d]).div_scalar(ctx.n_real as f64)
}

/// Per-feature mean over every position, padding included.
pub(crate) fn feature_mean(x: Tensor<3>) -> Tensor<1> {
    let [b, t, d] = x.dims();
    x.reshape([b * t, d]).mean_dim(0).reshape([d])
}

/// `[d]` -> `[1, 1, d]` for broadcasting over `[batch, time, d]`.
pub(crate) fn per_feature(v: Tensor<1>) -> Tensor<3> {
    let [d] = v.dims();
    v.reshape([1, 1, d])
}

#[cfg(test)]
mod tests;
