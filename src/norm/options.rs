//! The options norms read, each declared once as a [`NormOption`] in the file of the norm that
//! reads it (an option several norms read, such as `norm_momentum`, in the file of the first).
//!
//! A norm lists the options it reads in [`NormInfo::options`](super::NormInfo::options); from
//! that list alone come the `config.toml` and study-file key, the command-line flag (`--` and
//! the key with dashes), its `--help` line with the default, the check of its range, the refusal
//! of an option the chosen norm does not read, and what the run id hashes ([`Written`]).

use anyhow::{bail, Result};
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::collections::BTreeMap;

/// One option a norm reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormOption {
    /// The key in `config.toml` and study files; the flag is `--` and the key with dashes.
    pub key: &'static str,
    /// One line for `--help` (the default is appended from [`OptionKind`]).
    pub help: &'static str,
    pub kind: OptionKind,
    pub written: Written,
}

/// The values an option takes, and its default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptionKind {
    /// A real number in `bound`.
    Number { default: f64, bound: Bound },
    /// A count (`0..=i64::MAX`, what a TOML integer holds). `default: None` means a value the
    /// run derives (`derived` says from what: PowerNorm's warm-up is the learning rate's).
    Count {
        default: Option<usize>,
        derived: &'static str,
    },
    /// One of named values, each with a line of help.
    Choice {
        default: &'static str,
        values: &'static [(&'static str, &'static str)],
    },
}

/// The range of a [`OptionKind::Number`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// Finite and above zero.
    Positive,
    /// Finite and within `[lo, hi]`.
    Within(f64, f64),
}

/// When `config.toml` (and so the run id, which hashes it) carries an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Only when set: a new option leaves the ids of every earlier run as they were. The rule
    /// for every option added from now on.
    WhenSet,
    /// Always, at its value or its default, whatever the norm: the options of the first
    /// builds, which wrote them into every config.toml. A norm that does not read one writes
    /// its default, so it never changes that run's id.
    Always,
    /// Whenever the run's norm reads it, at its value or its default: PowerNorm's backward
    /// means, whose default changed (runs of the old default have no key and never pass for
    /// runs of the new one).
    WhenRead,
}

/// An option's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptionValue {
    Number(f64),
    Count(usize),
    Choice(&'static str),
}

impl Serialize for OptionValue {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            OptionValue::Number(v) => s.serialize_f64(*v),
            OptionValue::Count(v) => s.serialize_u64(*v as u64),
            OptionValue::Choice(v) => s.serialize_str(v),
        }
    }
}

impl std::fmt::Display for OptionValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OptionValue::Number(v) => write!(f, "{v:?}"),
            OptionValue::Count(v) => write!(f, "{v}"),
            OptionValue::Choice(v) => f.write_str(v),
        }
    }
}

impl NormOption {
    /// The command-line flag without its dashes.
    pub fn flag(&self) -> String {
        self.key.replace('_', "-")
    }

    /// The default, or `None` where the run derives it.
    pub fn default_value(&self) -> Option<OptionValue> {
        match self.kind {
            OptionKind::Number { default, .. } => Some(OptionValue::Number(default)),
            OptionKind::Count { default, .. } => default.map(OptionValue::Count),
            OptionKind::Choice { default, .. } => Some(OptionValue::Choice(default)),
        }
    }

    /// The default as `--help` shows it.
    pub fn default_text(&self) -> String {
        match (self.default_value(), self.kind) {
            (Some(v), _) => v.to_string(),
            (None, OptionKind::Count { derived, .. }) => derived.to_string(),
            (None, _) => unreachable!("only counts derive their default"),
        }
    }

    /// `--help`'s text: the help line and the default.
    pub fn help_text(&self) -> String {
        format!("{} [default: {}]", self.help, self.default_text())
    }

    /// Reads a value from TOML (a config or study file); the error is the bare reason.
    pub fn from_toml(&self, v: &toml::Value) -> std::result::Result<OptionValue, String> {
        let value = match (self.kind, v) {
            (OptionKind::Number { .. }, toml::Value::Float(x)) => OptionValue::Number(*x),
            (OptionKind::Number { .. }, toml::Value::Integer(x)) => OptionValue::Number(*x as f64),
            (OptionKind::Count { .. }, toml::Value::Integer(x)) if *x >= 0 => {
                OptionValue::Count(*x as usize)
            }
            (OptionKind::Choice { values, .. }, toml::Value::String(s)) => {
                match values.iter().find(|(name, _)| name == s) {
                    Some((name, _)) => OptionValue::Choice(name),
                    None => {
                        let names: Vec<&str> = values.iter().map(|(n, _)| *n).collect();
                        return Err(format!(
                            "{} must be one of {} (got \"{s}\")",
                            self.key,
                            names.join(", ")
                        ));
                    }
                }
            }
            _ => {
                return Err(format!(
                    "{} must be {} (got {v})",
                    self.key,
                    self.expected()
                ))
            }
        };
        Ok(value)
    }

    fn expected(&self) -> &'static str {
        match self.kind {
            OptionKind::Number { .. } => "a number",
            OptionKind::Count { .. } => "a non-negative integer",
            OptionKind::Choice { .. } => "a string",
        }
    }

    /// Checks a value's range; the message names the flag.
    pub fn check(&self, v: OptionValue) -> Result<()> {
        let flag = self.flag();
        match (self.kind, v) {
            (OptionKind::Number { bound, .. }, OptionValue::Number(x)) => match bound {
                Bound::Positive => crate::errors::ensure_positive_number(&flag, x),
                Bound::Within(lo, hi) => crate::errors::ensure_within(&flag, x, lo, hi),
            },
            (OptionKind::Count { .. }, OptionValue::Count(n)) => {
                if n as u128 > i64::MAX as u128 {
                    bail!("{flag} must be at most {} (got {n})", i64::MAX);
                }
                Ok(())
            }
            (OptionKind::Choice { .. }, OptionValue::Choice(_)) => Ok(()),
            _ => bail!("{flag}: a value of the wrong kind ({v})"),
        }
    }
}

/// The norm options a run sets, by key; an option not set reads its default. Serialized in
/// the registry's order ([`super::all_options`]), which keeps `config.toml` and the run ids of
/// earlier builds as they were.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NormOptions(BTreeMap<&'static str, OptionValue>);

impl NormOptions {
    pub fn get(&self, key: &str) -> Option<OptionValue> {
        self.0.get(key).copied()
    }

    /// Sets `option` to `value`. An option that is always written holds its default as unset
    /// (as the plain field it was), so a configuration read back from its file equals itself.
    pub fn set(&mut self, option: &NormOption, value: OptionValue) {
        if option.written == Written::Always && Some(value) == option.default_value() {
            self.0.remove(option.key);
        } else {
            self.0.insert(option.key, value);
        }
    }

    /// Sets `option` to `value` as config.toml writes it: a default is kept, not unset.
    pub fn set_written(&mut self, option: &NormOption, value: OptionValue) {
        self.0.insert(option.key, value);
    }

    /// Sets every option `other` sets (as [`NormOptions::set`] does: an always-written
    /// option given at its default unsets a value from elsewhere, a config file's).
    pub fn extend(&mut self, other: &NormOptions) {
        for (key, value) in &other.0 {
            let option = super::find_option(key).expect("only declared options are set");
            self.set(option, *value);
        }
    }

    /// Unsets `key`.
    pub fn unset(&mut self, key: &str) {
        self.0.remove(key);
    }

    /// The keys set, in the registry's order.
    pub fn keys(&self) -> impl Iterator<Item = &'static str> + '_ {
        super::all_options()
            .iter()
            .map(|o| o.key)
            .filter(|k| self.0.contains_key(k))
    }

    /// Takes the norm options out of a TOML table (a config or study file), leaving the other
    /// keys; the error names the key.
    pub fn take_from(table: &mut toml::Table) -> std::result::Result<NormOptions, String> {
        let mut options = NormOptions::default();
        for option in super::all_options() {
            if let Some(v) = table.remove(option.key) {
                options.set(option, option.from_toml(&v)?);
            }
        }
        Ok(options)
    }

    /// Checks every value set.
    pub fn check(&self) -> Result<()> {
        for option in super::all_options() {
            if let Some(v) = self.get(option.key) {
                option.check(v)?;
            }
        }
        Ok(())
    }
}

impl Serialize for NormOptions {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for key in self.keys() {
            map.serialize_entry(key, &self.0[key])?;
        }
        map.end()
    }
}
