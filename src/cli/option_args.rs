//! The options on the command line, made from their declarations: the run options' flags from
//! [`crate::config::RUN_OPTIONS`], and one flag per [`NormOption`] the norm registry declares
//! (`--` and the key with dashes). Nothing here names an option, except one rule between two.

use crate::config::{add_run_flags, given_run_flags};
use crate::norm::{all_options, NormOption, NormOptions, OptionKind, OptionValue};
use clap::builder::{PossibleValue, PossibleValuesParser};
use clap::{Arg, ArgMatches, Args, Command, FromArgMatches};

/// The run options given on the command line, as TOML values by key.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RunOptionArgs {
    pub given: toml::Table,
}

impl FromArgMatches for RunOptionArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(RunOptionArgs {
            given: given_run_flags(m),
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        self.given.extend(given_run_flags(m));
        Ok(())
    }
}

impl Args for RunOptionArgs {
    fn augment_args(cmd: Command) -> Command {
        // one rule between two options: a training file replaces the corpus
        add_run_flags(cmd).mut_arg("train_file", |a| a.conflicts_with("corpus"))
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

/// The norm options given on the command line.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct NormOptionArgs {
    pub given: NormOptions,
}

fn arg(option: &'static NormOption) -> Arg {
    // clap keeps names as `&'static str`; the dashed and upper-case keys are made once per
    // command built
    let flag: &'static str = Box::leak(option.flag().into_boxed_str());
    let value_name: &'static str = Box::leak(option.key.to_uppercase().into_boxed_str());
    let arg = Arg::new(option.key)
        .long(flag)
        .value_name(value_name)
        .help(option.help_text())
        .help_heading("Norms")
        .required(false);
    match option.kind {
        OptionKind::Number { .. } => arg.value_parser(clap::value_parser!(f64)),
        OptionKind::Count { .. } => arg.value_parser(clap::value_parser!(usize)),
        OptionKind::Choice { values, .. } => {
            let values = values
                .iter()
                .map(|(name, help)| PossibleValue::new(*name).help(*help));
            arg.value_parser(PossibleValuesParser::new(values))
        }
    }
}

fn value(option: &'static NormOption, m: &ArgMatches) -> Option<OptionValue> {
    match option.kind {
        OptionKind::Number { .. } => m
            .get_one::<f64>(option.key)
            .map(|v| OptionValue::Number(*v)),
        OptionKind::Count { .. } => m
            .get_one::<usize>(option.key)
            .map(|v| OptionValue::Count(*v)),
        OptionKind::Choice { values, .. } => m.get_one::<String>(option.key).map(|v| {
            let name = values
                .iter()
                .find(|(n, _)| n == v)
                .expect("clap checked it")
                .0;
            OptionValue::Choice(name)
        }),
    }
}

impl FromArgMatches for NormOptionArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = NormOptionArgs::default();
        args.update_from_arg_matches(m)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        for option in all_options() {
            // as given, a default included: a flag given counts as given (for `--resume`'s
            // and `--preset`'s refusals), and at its default it overrides a config file
            if let Some(v) = value(option, m) {
                self.given.set_written(option, v);
            }
        }
        Ok(())
    }
}

impl Args for NormOptionArgs {
    fn augment_args(cmd: Command) -> Command {
        all_options().iter().fold(cmd, |cmd, o| cmd.arg(arg(o)))
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}
