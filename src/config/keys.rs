//! A configuration's keys in TOML: the run options are `RunConfig`'s fields; the norm options
//! are declared by the norms ([`crate::norm::all_options`]) and sit among them in the order
//! of the files earlier builds wrote (after `cnn_channels`), so their text and ids stay.

use super::RunConfig;
use crate::norm::{all_options, NormOptions};
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

impl Serialize for RunConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RunConfig::serialize(self, s)
    }
}

impl<'de> Deserialize<'de> for RunConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut table = toml::Table::deserialize(d)?;
        let options = NormOptions::take_from(&mut table).map_err(de::Error::custom)?;
        let mut config = RunConfig::deserialize(toml::Value::Table(table))
            .map_err(|e| de::Error::custom(with_norm_keys(&e.to_string())))?;
        config.norm_options = options;
        Ok(config)
    }
}

/// An "unknown field `x`, expected one of ..." message lists the run options only: the norm
/// options are keys too, so they join the list (and the "did you mean" hint that reads it).
fn with_norm_keys(msg: &str) -> String {
    if !msg.contains("unknown field `") || !msg.contains("expected one of") {
        return msg.to_string();
    }
    let (first, rest) = msg.split_once('\n').unwrap_or((msg, ""));
    let keys: Vec<String> = all_options()
        .iter()
        .map(|o| format!("`{}`", o.key))
        .collect();
    let rest = if rest.is_empty() {
        String::new()
    } else {
        format!("\n{rest}")
    };
    format!("{}, {}{rest}", first.trim_end(), keys.join(", "))
}
