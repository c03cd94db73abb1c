//! Training-memory accounting for a GPT-style model (`ablate memory`).
//!
//! With L layers, hidden size H, vocabulary V, batch B, sequence length S and N heads, trained
//! with Adam:
//! - parameters `Phi = V*H + L*(12*H^2 + 13*H)` (embeddings; per layer attention 4H^2+4H,
//!   feed-forward with inner size 4H 8H^2+5H, two norms 4H);
//! - mixed precision: parameters 2 Phi bytes, gradients 2 Phi, optimizer (fp32 master copy,
//!   fp32 gradient copy, two moments) 16 Phi: 20 Phi bytes in all;
//! - float32 (what this tool trains in): parameters 4 Phi, gradients 4 Phi, moments 8 Phi;
//! - activations kept for backward, per layer, half precision: `34*B*S*H + 5*B*N*S^2` bytes
//!   (Korthikanti et al. 2022); twice that in float32.

use crate::config::RunConfig;
use crate::model::NormPosition;
use crate::progress::RunControl;
use crate::train::TaskData;
use anyhow::{bail, Result};

mod process;
pub use process::{available_memory, current_rss, peak_rss};

/// The quantities the formulas need.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub name: String,
    pub vocab: u64,
    pub hidden: u64,
    pub layers: u64,
    pub heads: u64,
    pub batch: u64,
    pub seq: u64,
}

/// Well-known sizes. GPT-2 sizes from Radford et al. 2019, GPT-3 from Brown et al. 2020.
pub const PRESETS: [(&str, u64, u64, u64, u64); 4] = [
    // name, vocab, hidden, layers, heads (batch 1, sequence 1024 unless given)
    ("gpt2-small", 50257, 768, 12, 12),
    ("gpt2-medium", 50257, 1024, 24, 16),
    ("gpt2-xl", 50257, 1600, 48, 25),
    ("gpt3-175b", 50257, 12288, 96, 96),
];

impl Shape {
    pub fn preset(name: &str, batch: u64, seq: u64) -> Result<Self> {
        let Some(&(n, vocab, hidden, layers, heads)) = PRESETS.iter().find(|p| p.0 == name) else {
            let names: Vec<&str> = PRESETS.iter().map(|p| p.0).collect();
            bail!(
                "unknown preset {name:?}; known presets: {}",
                names.join(", ")
            );
        };
        // far beyond any machine, and small enough that the byte counts fit in 64 bits
        if batch == 0 || batch > 1 << 20 || seq == 0 || seq > 1 << 20 {
            bail!("--batch-size and --max-len must be within [1, 1048576] for a preset (got {batch} and {seq})");
        }
        Ok(Self {
            name: n.into(),
            vocab,
            hidden,
            layers,
            heads,
            batch,
            seq,
        })
    }

    pub fn of_config(config: &RunConfig, vocab: u64) -> Self {
        Self {
            name: "configured model".into(),
            vocab,
            hidden: config.d_model as u64,
            layers: config.layers as u64,
            heads: config.heads as u64,
            batch: config.batch_size as u64,
            seq: config.max_len as u64,
        }
    }

    /// Refuses a shape whose accounting does not fit in 64-bit byte counts (16 EiB): every
    /// formula below is then safe from overflow.
    pub fn check(&self) -> Result<()> {
        let (v, h, l, n, b, s) = (
            self.vocab as f64,
            self.hidden as f64,
            self.layers as f64,
            self.heads as f64,
            self.batch as f64,
            self.seq as f64,
        );
        let phi = v * h + l * (12.0 * h * h + 13.0 * h);
        let act = l * (34.0 * b * s * h + 5.0 * b * n * s * s);
        // the largest entry of the table: 16 Phi of mixed-precision state, twice the activations
        if 20.0 * phi + 2.0 * act >= u64::MAX as f64 / 2.0 {
            bail!(
                "{}: about {:.1e} bytes to account for, beyond what this table counts (16 EiB); use a smaller model or batch",
                self.name,
                16.0 * phi + 2.0 * act
            );
        }
        Ok(())
    }

    /// `Phi = V*H + L*(12*H^2 + 13*H)`.
    pub fn params(&self) -> u64 {
        let h = self.hidden;
        self.vocab * h + self.layers * (12 * h * h + 13 * h)
    }

    /// Half-precision activation bytes of one layer: `34*B*S*H + 5*B*N*S^2`.
    pub fn activation_bytes_per_layer(&self) -> u64 {
        34 * self.batch * self.seq * self.hidden + 5 * self.batch * self.heads * self.seq * self.seq
    }

    pub fn activation_bytes(&self) -> u64 {
        self.layers * self.activation_bytes_per_layer()
    }
}

/// One row of the memory table.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    pub name: &'static str,
    pub formula: &'static str,
    pub fp32: u64,
    pub mixed: u64,
}

pub fn terms(s: &Shape) -> Vec<Term> {
    let phi = s.params();
    let act = s.activation_bytes();
    vec![
        Term {
            name: "parameters",
            formula: "fp32 4 Phi | mixed 2 Phi",
            fp32: 4 * phi,
            mixed: 2 * phi,
        },
        Term {
            name: "gradients",
            formula: "fp32 4 Phi | mixed 2 Phi",
            fp32: 4 * phi,
            mixed: 2 * phi,
        },
        Term {
            name: "optimizer (Adam)",
            formula: "fp32 8 Phi (2 moments) | mixed 16 Phi (fp32 params, grads, 2 moments)",
            fp32: 8 * phi,
            mixed: 16 * phi,
        },
        Term {
            name: "activations",
            formula: "L (34 B S H + 5 B N S^2), x2 in fp32",
            fp32: 2 * act,
            mixed: act,
        },
    ]
}

/// Extra state a norm keeps besides parameters: running buffers (floats per norm layer).
pub fn norm_buffers_per_layer(config: &RunConfig) -> (u64, &'static str) {
    let info = config.norm_info();
    let per_position = if info.buffers_per_position {
        config.max_len as u64
    } else {
        1
    };
    (
        info.buffers_per_feature * config.d_model as u64 * per_position,
        info.buffers,
    )
}

/// Parameters of one norm layer of width `h`.
pub fn norm_params(config: &RunConfig, h: u64) -> u64 {
    config.norm_info().params_per_feature * h
}

/// How the built model's parameter count differs from the formula, item by item.
pub fn differences(config: &RunConfig, vocab: u64) -> Vec<(String, i64)> {
    let h = config.d_model as i64;
    let l = config.layers as i64;
    let mut d = vec![(
        format!("learned positions ({} x {h})", config.max_len),
        config.max_len as i64 * h,
    )];
    let per_norm = norm_params(config, h as u64) as i64;
    if per_norm != 2 * h {
        d.push((
            format!(
                "{} norms have {per_norm} parameters, not 2H ({} norm layers)",
                config.norm_label(),
                2 * l
            ),
            2 * l * (per_norm - 2 * h),
        ));
    }
    let mut norm_layers = 2 * l;
    if config.norm_position == NormPosition::Pre {
        d.push(("final norm before the head (pre-norm)".into(), per_norm));
        norm_layers += 1;
    }
    let (buffers, what) = norm_buffers_per_layer(config);
    if buffers > 0 {
        d.push((
            format!("{what} of {norm_layers} norm layers (buffers, not trained; Burn's num_params counts them)"),
            norm_layers * buffers as i64,
        ));
    }
    let ff = config.d_ff as i64;
    if ff != 4 * h {
        // up (H x F + F) + down (F x H + H) against 8H^2 + 5H
        d.push((
            format!("feed-forward width {ff}, not 4H = {}", 4 * h),
            l * ((2 * h * ff + ff + h) - (8 * h * h + 5 * h)),
        ));
    }
    if !config.tie_embeddings {
        d.push((format!("untied LM head ({vocab} x {h})"), vocab as i64 * h));
    }
    d
}

pub fn human(bytes: u64) -> String {
    let b = bytes as f64;
    for (unit, size) in [("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)] {
        if b >= size {
            return format!("{:.1} {unit}", b / size);
        }
    }
    format!("{bytes} B")
}

/// Float32 training memory of the text model by the table's formulas (parameters, gradients,
/// Adam's moments, activations) for batches of `batch` x `seq` tokens; in f64, so that absurd
/// settings give a large number instead of an overflow.
pub fn training_bytes(config: &RunConfig, vocab: usize, batch: f64, seq: f64) -> f64 {
    let (h, l, n, v) = (
        config.d_model as f64,
        config.layers as f64,
        config.heads as f64,
        vocab as f64,
    );
    let phi = v * h + l * (12.0 * h * h + 13.0 * h);
    16.0 * phi + 2.0 * l * (34.0 * batch * seq * h + 5.0 * batch * n * seq * seq)
}

/// Refuses, before any work, a text run whose estimated float32 training memory (see
/// [`training_bytes`]; its largest batch: as long as the longest sentence of `data`, or
/// `max_len` when the data are not loaded yet; its vocabulary: [`vocabulary`]) exceeds the
/// memory this machine has available. GPU runs are not checked (their memory is the device's), nor the small image model.
pub fn check_fits(config: &RunConfig, data: Option<&TaskData>) -> Result<()> {
    let longest = match data {
        Some(TaskData::Text(t)) => t
            .train
            .examples
            .iter()
            .chain(&t.valid.examples)
            .map(|e| e.inputs.len())
            .max(),
        _ => None,
    };
    if config.task != crate::config::Task::Text || config.backend.is_gpu() {
        return Ok(());
    }
    let Some(available) = available_memory() else {
        return Ok(());
    };
    let seq = longest.unwrap_or(config.max_len).min(config.max_len).max(1) as f64;
    let batch = match config.max_tokens {
        Some(t) => (t as f64 / seq).floor().max(1.0),
        None => config.batch_size as f64,
    };
    let need = training_bytes(config, vocabulary(config, data), batch, seq);
    if need > available as f64 {
        bail!(
            "this run needs about {} of memory (float32 parameters, gradients, Adam moments and the activations of a {batch} x {seq} batch, as `ablate memory` counts them), more than the {} this machine has available; use a smaller --max-len, --batch-size, --max-tokens, --d-model or --layers",
            human_f64(need),
            human(available)
        );
    }
    Ok(())
}

/// The vocabulary size of a text run: the loaded data's, else `vocab-size` capped by what the
/// training text can give ([`vocabulary_bound`]). `vocab-size` is a cap, not a size: a huge one
/// on a small corpus gives a small vocabulary.
pub fn vocabulary(config: &RunConfig, data: Option<&TaskData>) -> usize {
    match data {
        Some(TaskData::Text(t)) => t.vocab.len(),
        _ => vocabulary_bound(config).map_or(config.vocab_size, |b| b.min(config.vocab_size)),
    }
}

/// An upper bound of the vocabulary the training text of `config` can give, from its file's
/// size alone (`None` when it cannot be read): at most one word per two bytes (a word and a
/// separator) for the word tokenizer; for BPE, at most every character (lowercasing turns one
/// byte into at most 3 characters) and one merge per character, and the word mark.
pub fn vocabulary_bound(config: &RunConfig) -> Option<usize> {
    use crate::data::{files::resolve_data_path, vocab::SPECIALS, TokenizerKind};
    let text = config.train_file.as_ref().unwrap_or(&config.corpus);
    let bytes = std::fs::metadata(resolve_data_path(text)).ok()?.len() as usize;
    let tokens = match config.tokenizer() {
        TokenizerKind::Word => bytes.div_ceil(2),
        TokenizerKind::Bpe => bytes.saturating_mul(6).saturating_add(1),
    };
    Some(tokens.saturating_add(SPECIALS.len()))
}

fn human_f64(bytes: f64) -> String {
    if bytes < u64::MAX as f64 {
        human(bytes as u64)
    } else {
        format!("{:.1e} bytes", bytes)
    }
}

/// The configured text model: its formula table, the built model's parameter count against
/// the formula (item by item) and the norm state besides parameters.
pub fn config_report(config: &RunConfig, vocab: usize) -> Result<String> {
    use std::fmt::Write;
    let shape = Shape::of_config(config, vocab as u64);
    shape.check()?;
    // the report builds the model to count its parameters: its float32 weights must fit
    // (counted with the configured feed-forward width, which the table's formula takes as 4H)
    let (h, l) = (config.d_model as f64, config.layers as f64);
    let weights =
        4.0 * (vocab as f64 * h + l * (4.0 * h * h + 2.0 * h * config.d_ff as f64 + 13.0 * h));
    if let Some(available) = available_memory() {
        if weights > available as f64 {
            bail!(
                "building this model to count its parameters needs about {} for its float32 weights alone, more than the {} this machine has available; use a smaller --d-model, --layers or --vocab-size",
                human_f64(weights),
                human(available)
            );
        }
    }
    let mut out = table(&shape);
    #[allow(deprecated)]
    let device = burn::tensor::Device::ndarray();
    let model = config.lm_config(vocab).init(&config.norm_config(), &device);
    let built = burn::module::Module::num_params(&model) as i64;
    let formula = shape.params() as i64;
    let _ = writeln!(
        out,
        "\nparameter count: formula {formula}, built model {built} (Burn's num_params), difference {}",
        built - formula
    );
    for (why, n) in differences(config, vocab as u64) {
        let _ = writeln!(out, "  {n:>+10}  {why}");
    }
    let (buffers, what) = norm_buffers_per_layer(config);
    let norm_layers = 2 * config.layers + usize::from(config.norm_position == NormPosition::Pre);
    let _ = writeln!(
        out,
        "norm state besides parameters ({}): {} floats a layer ({what}), {} in all",
        config.norm_label(),
        buffers,
        human(4 * buffers * norm_layers as u64)
    );
    Ok(out)
}

/// The most steps `ablate memory --measure` and `ablate bench` train: they measure, and the
/// peak memory and the step time settle within the first few dozen steps.
pub const MAX_MEASURED_STEPS: usize = 10_000;

/// Trains `config.steps` real steps (results in a temporary folder, removed after) and says
/// how the measured peak resident memory compares with the float32 estimate.
pub fn measure(config: &RunConfig, data: &TaskData) -> Result<String> {
    let TaskData::Text(text) = data else {
        bail!(
            "ablate memory accounts for the text model (a GPT-style transformer); use --task text"
        );
    };
    let shape = Shape::of_config(config, text.vocab.len() as u64);
    let before = current_rss().unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("ablate-memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut config = config.clone();
    // one evaluation, after the last step (steps + 1 would pass the TOML limit at the largest
    // --steps and blame --eval-every, which was not given)
    config.eval_every = config.steps;
    let summary = crate::train::run(&config, data, &dir, &RunControl::hidden());
    let _ = std::fs::remove_dir_all(&dir);
    summary?;
    let peak = peak_rss().unwrap_or(0);
    let estimate: u64 = terms(&shape).iter().map(|t| t.fp32).sum();
    Ok(format!(
        "\nmeasured on {} training steps ({}, float32): peak resident memory {}, {} above the {} held \
         before training (data, vocabulary); float32 estimate: {}\n",
        config.steps,
        config.backend.name(),
        human(peak),
        human(peak.saturating_sub(before)),
        human(before),
        human(estimate)
    ))
}

/// The table as text.
pub fn table(s: &Shape) -> String {
    let mut out = format!(
        "{}: V={} H={} L={} N={} B={} S={}\nPhi = V*H + L*(12*H^2 + 13*H) = {} parameters ({:.3e})\n\n",
        s.name, s.vocab, s.hidden, s.layers, s.heads, s.batch, s.seq, s.params(), s.params() as f64
    );
    out += &format!(
        "{:<18} {:>12} {:>12}   {}\n",
        "term", "float32", "mixed", "formula (bytes)"
    );
    let mut total = (0, 0);
    for t in terms(s) {
        out += &format!(
            "{:<18} {:>12} {:>12}   {}\n",
            t.name,
            human(t.fp32),
            human(t.mixed),
            t.formula
        );
        total.0 += t.fp32;
        total.1 += t.mixed;
    }
    out += &format!(
        "{:<18} {:>12} {:>12}\n",
        "total",
        human(total.0),
        human(total.1)
    );
    out += &format!(
        "activations per layer: {} (mixed), {} (float32)\n",
        human(s.activation_bytes_per_layer()),
        human(2 * s.activation_bytes_per_layer())
    );
    out += &format!(
        "not in the formulas: the LM head's logits, B*S*V floats = {} in float32 (its softmax and their \
         gradients are as large again)\n",
        human(4 * s.batch * s.seq * s.vocab)
    );
    out
}

#[cfg(test)]
mod tests;
