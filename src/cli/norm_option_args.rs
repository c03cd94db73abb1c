//! The norms' options on the command line: one flag per [`NormOption`] the registry declares
//! (`--` and the key with dashes), its help and default from the declaration. Nothing here
//! names an option: a norm that declares one gets its flag.

use crate::norm::{all_options, NormOption, NormOptions, OptionKind, OptionValue};
use clap::builder::{PossibleValue, PossibleValuesParser};
use clap::{Arg, ArgMatches, Args, Command, FromArgMatches};

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
            if let Some(v) = value(option, m) {
                self.given.set(option, v);
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
