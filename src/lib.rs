//! ablate: normalization ablation studies on Burn.
//!
//! Data flows one way: `data` (corpus, vocabulary, padded batches; images) -> `model`
//! (transformer LM, small ResNet) built from `norm` (one trait, one file per norm) ->
//! `train` (step loop, evaluation, result files, with `probe` turning norm statistics into
//! rows) -> `report` (reads result files only). `experiment` expands study files into run
//! configurations; `cli` parses arguments and maps errors to exit codes.

pub mod backend;
pub mod bench;
pub mod cli;
pub mod config;
pub mod data;
pub mod experiment;
pub mod memory;
pub mod model;
pub mod norm;
pub mod probe;
pub mod report;
pub mod train;

pub use config::RunConfig;
