//! `docs/options.md`, made from the declarations.

use super::flags::default_text;
use super::options::{Identity, RUN_OPTIONS};
use crate::norm::NormKind;

impl Identity {
    /// What the options table says of it.
    fn in_id(&self) -> &'static str {
        match self {
            Identity::Trajectory => "yes",
            Identity::WhenChanged => "when not the default",
            Identity::Logging => "no (logging only)",
            Identity::Label => "no (a label)",
            Identity::ImageFile => "image runs only",
            Identity::NormOptions => "as each option says",
        }
    }
}

/// `docs/options.md`: every option with its flag, key, default and id rule, from the
/// declarations (a test keeps the file equal to it).
pub fn options_markdown() -> String {
    use std::fmt::Write;
    let cell = |s: &str| s.replace('|', "\\|");
    let mut md = String::from(
        "# Options\n\nGenerated from the declarations (`src/config/options.rs` for the run options, \
         each norm's file for the norm options) by `ABLATE_WRITE_DOCS=1 cargo test --lib \
         options_table`. Every option is a flag of `ablate`, `ablate bench` and `ablate memory`, \
         a key of `config.toml`, and a key of a study file's `[base]` and `[[grid]]` tables \
         (and of `--set`). \"In the run id\": whether two runs that differ only in the option \
         get different ids (and so different folders).\n\n\
         Besides these: `--norm NAME` (a built-in norm, or one declared in `--norm-file FILE`), \
         `--images-dir DIR` (the four Fashion-MNIST files of a folder), and the command's own \
         options (`--config`, `--resume`, `--stop-at-step`, `--results`, `--quiet`): see \
         `ablate --help`.\n",
    );
    let mut heading = "";
    for o in RUN_OPTIONS.iter().filter(|o| o.flag.is_some()) {
        if o.heading != heading {
            heading = o.heading;
            write!(md, "\n## {heading}\n\n| flag | key | default | in the run id | meaning |\n|---|---|---|---|---|\n").unwrap();
        }
        let flag = o.flag.unwrap();
        let default = default_text(o.key).unwrap_or_else(|| "—".into());
        let (help, stated) = match o.help.split_once(" [default: ") {
            Some((h, d)) => (h.to_string(), Some(d.trim_end_matches(']').to_string())),
            None => (o.help.to_string(), None),
        };
        writeln!(
            md,
            "| `--{flag}` | `{}` | {} | {} | {} |",
            o.key,
            cell(&stated.unwrap_or(default)),
            o.identity.in_id(),
            cell(&help)
        )
        .unwrap();
    }
    md += "\n## Norms\n\nDeclared in the norms' files; an option the chosen norm does not read is refused by \
           `ablate` and left out of that run's id in a study grid.\n\n\
           | flag | key | default | read by | in the run id | meaning |\n|---|---|---|---|---|---|\n";
    for o in crate::norm::all_options() {
        let readers: Vec<&str> = NormKind::ALL
            .iter()
            .filter(|k| !k.is_test_fixture() && k.info().options.iter().any(|r| r.key == o.key))
            .map(|k| k.name())
            .collect();
        if readers.is_empty() {
            continue;
        }
        let in_id = match o.written {
            crate::norm::Written::WhenSet => "when set",
            crate::norm::Written::Always => "yes, for the norms that read it",
            crate::norm::Written::WhenRead => "yes, for the norms that read it",
        };
        writeln!(
            md,
            "| `--{}` | `{}` | {} | {} | {in_id} | {} |",
            o.flag(),
            o.key,
            cell(&o.default_text()),
            readers.join(", "),
            cell(o.help)
        )
        .unwrap();
    }
    md
}
