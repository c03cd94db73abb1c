//! How a run option's type becomes a flag: clap's parser for it, its value as TOML, its
//! `--help` line with the default. The flags themselves come from the declarations
//! ([`super::options`]).

use super::options::{RunConfig, RunOption, RUN_OPTIONS};
use super::{BackendKind, MatmulPrecision, Schedule, Task, TokenizerKind};
use crate::data::EvalBatching;
use crate::model::NormPosition;
use clap::{Arg, ArgAction, ArgMatches};
use std::path::PathBuf;

/// A type a flag can carry: how clap parses it and how it becomes a TOML value.
pub trait FlagValue {
    fn arg(arg: Arg) -> Arg;
    fn given(m: &ArgMatches, id: &str) -> Option<toml::Value>;
}

/// Counts: parsed as `u64` within what a TOML integer holds, so a config file always reads back.
macro_rules! count_flag {
    ($($t:ty),*) => {$(
        impl FlagValue for $t {
            fn arg(arg: Arg) -> Arg {
                arg.value_parser(clap::value_parser!(u64).range(..=i64::MAX as u64))
            }
            fn given(m: &ArgMatches, id: &str) -> Option<toml::Value> {
                m.get_one::<u64>(id).map(|v| toml::Value::Integer(*v as i64))
            }
        }
    )*};
}
count_flag!(usize, u64);

/// Numbers, paths and named values: clap's parser for the type, TOML by serde.
macro_rules! parsed_flag {
    ($($t:ty),*) => {$(
        impl FlagValue for $t {
            fn arg(arg: Arg) -> Arg {
                arg.value_parser(clap::value_parser!($t))
            }
            fn given(m: &ArgMatches, id: &str) -> Option<toml::Value> {
                m.get_one::<$t>(id)
                    .map(|v| toml::Value::try_from(v).expect("a flag's value is a TOML value"))
            }
        }
    )*};
}
parsed_flag!(
    f64,
    Task,
    BackendKind,
    MatmulPrecision,
    TokenizerKind,
    NormPosition,
    Schedule,
    EvalBatching
);

impl FlagValue for PathBuf {
    fn arg(arg: Arg) -> Arg {
        arg.value_parser(clap::value_parser!(PathBuf))
            .value_name("FILE")
    }
    fn given(m: &ArgMatches, id: &str) -> Option<toml::Value> {
        m.get_one::<PathBuf>(id)
            .map(|v| toml::Value::String(v.to_string_lossy().into_owned()))
    }
}

impl FlagValue for bool {
    fn arg(arg: Arg) -> Arg {
        arg.action(ArgAction::SetTrue)
    }
    fn given(m: &ArgMatches, id: &str) -> Option<toml::Value> {
        m.get_flag(id).then_some(toml::Value::Boolean(true))
    }
}

impl FlagValue for Vec<usize> {
    fn arg(arg: Arg) -> Arg {
        arg.value_parser(clap::value_parser!(u64).range(..=i64::MAX as u64))
            .value_delimiter(',')
    }
    fn given(m: &ArgMatches, id: &str) -> Option<toml::Value> {
        m.get_many::<u64>(id)
            .map(|vs| toml::Value::Array(vs.map(|v| toml::Value::Integer(*v as i64)).collect()))
    }
}

impl<T: FlagValue> FlagValue for Option<T> {
    fn arg(arg: Arg) -> Arg {
        T::arg(arg)
    }
    fn given(m: &ArgMatches, id: &str) -> Option<toml::Value> {
        T::given(m, id)
    }
}

/// A flag's clap argument: name, help (with the default), heading.
pub(super) fn flag_arg(option: &'static RunOption) -> Arg {
    Arg::new(option.key)
        .long(option.flag.expect("only options with flags"))
        .help(help_text(option))
        .help_heading(option.heading)
        .value_name(value_name(option))
}

fn value_name(option: &RunOption) -> &'static str {
    // clap keeps names as `&'static str`: made once per option
    static NAMES: std::sync::OnceLock<Vec<(&'static str, &'static str)>> =
        std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| {
        RUN_OPTIONS
            .iter()
            .map(|o| {
                let name: &'static str = Box::leak(o.key.to_uppercase().into_boxed_str());
                (o.key, name)
            })
            .collect()
    });
    names.iter().find(|(k, _)| *k == option.key).unwrap().1
}

/// `--help`'s text: the line, and the default unless the line states it or the flag is a
/// switch (a line without a default drops its full stop, as clap does with doc comments).
pub fn help_text(option: &RunOption) -> String {
    match default_text(option.key) {
        Some(d) if !option.help.contains("[default") => format!("{} [default: {d}]", option.help),
        _ => option.help.trim_end_matches('.').to_string(),
    }
}

/// An option's default as a person writes it (`None`: unset, or a switch).
pub fn default_text(key: &str) -> Option<String> {
    // the defaults as TOML, made once (every flag's help line reads them)
    static DEFAULTS: std::sync::OnceLock<toml::Table> = std::sync::OnceLock::new();
    let table = DEFAULTS.get_or_init(|| {
        toml::Table::try_from(RunConfig::default()).expect("the defaults serialize")
    });
    match table.get(key)? {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Boolean(_) => None,
        toml::Value::Float(f) => Some(format!("{f:?}")),
        toml::Value::Array(vs) => Some(
            vs.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(","),
        ),
        v => Some(v.to_string()),
    }
}

/// A switch sets the opposite of its default (`--no-probes`: `probes = false`).
pub(super) fn flag_value(given: toml::Value, default: &Option<toml::Value>) -> toml::Value {
    match (given, default) {
        (toml::Value::Boolean(_), Some(toml::Value::Boolean(d))) => toml::Value::Boolean(!d),
        (v, _) => v,
    }
}
