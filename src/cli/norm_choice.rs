//! `--norm NAME` and `--norm-file FILE`: a built-in norm, or one declared in the file.

use super::args::RunArgs;
use crate::config::RunConfig;
use crate::norm::composed::decl::read_norm_file;
use crate::norm::NormKind;
use anyhow::Result;

impl RunArgs {
    /// Refuses `--norm-file` without `--norm NAME` (a run trains one norm).
    pub fn refuse_unpicked_norm_file(&self) -> Result<()> {
        if let (Some(file), None) = (&self.norm_file, &self.norm) {
            let names: Vec<String> = read_norm_file(file)?.into_keys().collect();
            anyhow::bail!(
                "--norm-file needs --norm NAME to pick a declared norm ({} declares {})",
                file.display(),
                names.join(", ")
            );
        }
        Ok(())
    }

    /// Puts the norm `choice` names into `c`: a norm declared in `--norm-file` under that name,
    /// else the built-in norm.
    pub fn apply_norm(&self, c: &mut RunConfig, choice: &NormChoice) -> Result<()> {
        let name = choice.name();
        if let Some(file) = &self.norm_file {
            let mut declared = read_norm_file(file)?;
            if let Some(decl) = declared.remove(name) {
                c.set_declared_norm(name, decl);
                return Ok(());
            }
            if NormKind::from_name(name).is_none() {
                let names: Vec<&str> = declared.keys().map(|k| k.as_str()).collect();
                anyhow::bail!(
                    "--norm {name}: {} declares no such norm (it declares {}) and no built-in norm has that name",
                    file.display(),
                    names.join(", ")
                );
            }
        }
        match NormKind::from_name(name) {
            Some(kind) => c.norm = kind,
            None => {
                let names = NormKind::ALL.iter().map(|k| k.name());
                let hint = crate::errors::closest(name, names)
                    .map(|n| format!(" (a similar value exists: '{n}')"))
                    .unwrap_or_default();
                anyhow::bail!(
                    "--norm {name}: not a built-in norm, and no --norm-file FILE declares it{hint}"
                );
            }
        }
        Ok(())
    }
}

/// `--norm NAME`: a built-in norm or a declared one, resolved with `--norm-file` in
/// [`RunArgs::to_config`].
#[derive(Debug, Clone, PartialEq)]
pub struct NormChoice(pub String);

impl NormChoice {
    pub fn name(&self) -> &str {
        &self.0
    }
}

/// Parses `--norm`: any name (a declared norm's is checked against `--norm-file`), with the
/// built-in norms listed in `--help`.
#[derive(Debug, Clone, Copy)]
pub struct NormParser;

impl clap::builder::TypedValueParser for NormParser {
    type Value = NormChoice;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> std::result::Result<NormChoice, clap::Error> {
        match value.to_str() {
            Some(s) if !s.is_empty() => Ok(NormChoice(s.to_string())),
            _ => Err(clap::Error::new(clap::error::ErrorKind::InvalidValue).with_cmd(cmd)),
        }
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        use clap::ValueEnum;
        Some(Box::new(
            NormKind::ALL.iter().filter_map(|k| k.to_possible_value()),
        ))
    }
}
