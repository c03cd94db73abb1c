//! Run identity: the configuration as TOML, which keys enter the id hash, and the folders ids
//! name (with the ids of earlier builds still found).

use super::*;
use crate::norm::{all_options, find_option, Written};

impl RunConfig {
    /// The configuration as TOML; this text is what the run id hashes.
    pub fn to_toml(&self) -> String {
        self.to_toml_resetting(true)
    }

    /// [`to_toml`](Self::to_toml), with the norm options the norm does not read reset to their
    /// defaults or (for the ids of builds before that rule) as set.
    fn to_toml_resetting(&self, reset_inapplicable: bool) -> String {
        let mut c = self.clone();
        c.norm_options = self.written_norm_options(reset_inapplicable);
        c.drop_unchanged();
        toml::to_string(&c).expect("a run config always serializes")
    }

    /// The norm options config.toml carries, as each one's [`Written`] rule says. A norm option
    /// the chosen norm does not read is left out or written at its default, so it leaves the
    /// id alone (`--norm layer --norm-momentum 0.5` is the run of `--norm layer`); builds
    /// before that rule wrote it as set (`reset_inapplicable` false, for [`Self::legacy_id`]).
    fn written_norm_options(&self, reset_inapplicable: bool) -> NormOptions {
        let reads = self.norm.info().options;
        let mut written = NormOptions::default();
        for option in all_options() {
            let read = reads.iter().any(|o| o.key == option.key);
            let set = self
                .norm_options
                .get(option.key)
                .filter(|_| read || !reset_inapplicable);
            let value = match option.written {
                Written::WhenSet => set,
                Written::Always => set.or(option.default_value()),
                Written::WhenRead => read.then(|| set.or(option.default_value())).flatten(),
            };
            if let Some(v) = value {
                written.set_written(option, v);
            }
        }
        written
    }

    /// The norm options (keys some norm reads) set away from their defaults although the chosen
    /// norm does not read them. A single run refuses them; a study grid that sets an option for
    /// several norms leaves it out of the ids of the runs whose norm does not read it.
    pub fn inapplicable_norm_options(&self) -> Vec<&'static str> {
        let reads = self.norm.info().options;
        self.norm_options
            .keys()
            .filter(|key| {
                let option = find_option(key).expect("only declared options are set");
                self.norm_options.get(key) != option.default_value()
                    && !reads.iter().any(|o| o.key == *key)
            })
            .collect()
    }

    /// Images: true when validation is every 10th image of the training files (no separate
    /// validation files, or the training files named again).
    pub fn held_out_validation(&self) -> bool {
        let same = |v: &Option<PathBuf>, t: &PathBuf| v.as_ref().is_none_or(|v| v == t);
        same(&self.valid_images, &self.images) && same(&self.valid_labels, &self.labels)
    }

    /// The configuration as the run id hashes it: the logging keys ([`logging_keys`]) at their
    /// defaults and, for a text run, the image keys at the values they had when ids began.
    /// Reports group and compare runs by it, so a run written before a default changed still
    /// matches a run of the same trajectory written after.
    pub fn identity(&self) -> RunConfig {
        let mut c = self.clone();
        // the logging keys and a declared norm's name (its declaration is what it is)
        c.reset_unhashed();
        c.pin_image_keys();
        c
    }

    /// Leaves out of the id what did not exist when ids began: the validation files of a run
    /// that holds out every 10th training image, and a text run's image files.
    fn pin_image_keys(&mut self) {
        if self.task == Task::Text {
            (self.images, self.labels) = (ID_IMAGES.into(), ID_LABELS.into());
        }
        if self.task == Task::Text || self.held_out_validation() {
            (self.valid_images, self.valid_labels) = (None, None);
        }
    }

    /// Parses a config file's text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        toml::from_str(text)
            .map_err(|e| anyhow::anyhow!("{origin}: {}", friendly(&one_line(&e.to_string()))))
    }

    /// Builds a configuration from a TOML table (study files), with the digests of its split
    /// files recorded ([`RunConfig::record_file_digests`]); the error is the bare message.
    pub fn from_table(table: toml::Table) -> Result<Self> {
        let mut c = RunConfig::parse_table(table)?;
        c.record_file_digests()?;
        Ok(c)
    }

    /// [`RunConfig::from_table`] without the digests, for a caller that changes and checks
    /// the configuration before it reads the split files; the error is the bare message.
    pub fn parse_table(table: toml::Table) -> Result<Self> {
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("{}", friendly(&one_line(e.message()))))
    }

    /// Stable identity from what changes the training trajectory: the same trajectory always
    /// gets the same id, whatever the logging keys ([`logging_keys`]) say.
    pub fn id(&self) -> String {
        self.id_of(&self.identity().to_toml())
    }

    /// The id that builds up to f674c5a gave this configuration: a hash of all of config.toml
    /// as written then (no `checkpoint_every` line), logging keys included. Result folders
    /// named so are still found ([`RunConfig::run_dir`]).
    pub fn legacy_id(&self) -> String {
        let mut c = self.clone();
        c.pin_image_keys();
        // those builds hashed every norm option as set
        let toml = c.to_toml_resetting(false);
        let old: String = toml
            .lines()
            .filter(|l| !l.starts_with("checkpoint_every ="))
            .map(|l| format!("{l}\n"))
            .collect();
        self.id_of(&old)
    }

    fn id_of(&self, toml: &str) -> String {
        format!(
            "{}-{}-s{}-{:08x}",
            self.task.name(),
            self.norm.name(),
            self.seed,
            fnv1a(toml.as_bytes()) as u32
        )
    }

    /// This run's folder in `out`: `out/<id>`, or the folder an earlier build named by
    /// [`RunConfig::legacy_id`] when only that one exists.
    pub fn run_dir(&self, out: &std::path::Path) -> PathBuf {
        let dir = out.join(self.id());
        if !dir.exists() {
            let legacy = out.join(self.legacy_id());
            if legacy.is_dir() {
                return legacy;
            }
        }
        dir
    }
}

/// FNV-1a 64-bit: a stable hash for run identities (std's hasher may change between releases).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Config keys (as in config.toml) whose values differ between `configs`, seeds aside; a key
/// that some configurations leave out (an unset option) counts as differing from a set one.
pub fn varying_keys(configs: &[&RunConfig]) -> Vec<String> {
    let tables: Vec<toml::Table> = configs
        .iter()
        .filter_map(|c| toml::from_str(&c.identity().to_toml()).ok())
        .collect();
    let Some(first) = tables.first() else {
        return vec![];
    };
    let mut keys: Vec<String> = tables.iter().flat_map(|t| t.keys().cloned()).collect();
    keys.sort();
    keys.dedup();
    // in config.toml order
    let order: Vec<&String> = first.keys().collect();
    keys.sort_by_key(|k| order.iter().position(|o| *o == k).unwrap_or(usize::MAX));
    keys.into_iter()
        .filter(|k| k != "seed")
        .filter(|k| tables.iter().any(|t| t.get(k) != first.get(k)))
        .collect()
}

impl RunConfig {
    /// The value of `key` as config.toml writes it (`None`: an unset option left out), except
    /// that a declared norm reads as its name (`norm`) and its declaration as one line, and float32 products and the word tokenizer, which config.toml leaves out, read as `f32`
    /// beside `bf16` and `word` beside `bpe`.
    pub fn value_of(&self, key: &str) -> Option<toml::Value> {
        // a declared norm reads as its name, and its declaration as one line
        match key {
            "norm" => return Some(toml::Value::String(self.norm_label())),
            "norm_decl" => return self.norm_decl.as_ref().map(|d| d.inline().into()),
            _ => {}
        }
        toml::from_str::<toml::Table>(&self.to_toml())
            .ok()
            .and_then(|mut t| t.remove(key))
            .or_else(|| match key {
                "matmul_precision" => {
                    Some(toml::Value::String(self.matmul_precision().name().into()))
                }
                "tokenizer" => Some(toml::Value::String(self.tokenizer().name().into())),
                _ => None,
            })
    }
}
