//! Studies: study files (base settings plus grids) expanded into run configurations
//! ([`study`]), the runner that executes them ([`runner`]), and the table of their runs
//! ([`table`]).
//!
//! ```toml
//! name = "norm-ablation"
//! description = "every norm on text, 3 seeds"
//! [base]                 # any run-config key (see `RunConfig`)
//! steps = 400
//! [[grid]]               # each key: a list of values (or one value); the product is run
//! norm = ["layer", "batch"]
//! seed = [1, 2, 3]
//! ```

mod runner;
mod study;
mod table;

pub use runner::{describe, existing_status, run_all, run_one, Outcome};
pub use study::{parse_set, parse_shard, Study};
pub use table::{runs_table, status_lines};

#[cfg(test)]
mod tests;
