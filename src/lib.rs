//! ablate: normalization ablation studies on Burn.
//!
//! Dependencies point one way (checked by `tests/architecture.rs`):
//!
//! ```text
//! main -> cli -> report -> experiment -> train -> results -> config -> model -> norm -> ops
//!             -> bench, memory, gpucheck  -> probe                      -> data
//! ```
//!
//! - `ops`: every custom autodiff op (matrix product, GELU, softmax, dropout, cross-entropy,
//!   PowerNorm's backward) and the one list of supported backends.
//! - `norm`: the trait, the registry, one file per norm with its own facts.
//! - `data`: corpus, vocabulary, padded batches; images.
//! - `model`: the transformer LM and the ResNet, composed from norms and ops.
//! - `config`: one run's configuration (the run id hashes it).
//! - `results`: the result-file schema, writers and readers.
//! - `probe`: norm statistics -> per-step scalars.
//! - `train`: one run; a task (text, images) supplies batches and evaluation.
//! - `experiment`: study files -> run configurations, and the runner (jobs, shards, locks).
//! - `report`: result files -> charts and REPORT.md.
//! - `bench`, `memory`: step timing and memory accounting.
//! - `gpucheck`: a GPU backend's runs against the CPU reference, with the parity tolerances.
//! - `cli`: one module per command. `progress`, `errors` and `backend` are leaves every
//!   layer may use.

pub mod backend;
pub mod bench;
pub mod cli;
pub mod config;
pub mod data;
pub mod errors;
pub mod experiment;
pub mod gpucheck;
pub mod memory;
pub mod model;
pub mod norm;
pub mod ops;
pub mod probe;
pub mod progress;
pub mod report;
pub mod results;
pub mod train;

pub use config::RunConfig;
