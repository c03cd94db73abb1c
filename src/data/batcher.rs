//! Padded `[batch, time]` batches of token ids with a padding mask.
//!
//! Padding is one of the variables this tool studies, so every batch reports its padding
//! fraction, and the batch composition is controlled: by sentence count or by a padded-token
//! budget, with sentences in random order or length-bucketed within a pool of batches.

use super::corpus::Sentence;
use super::vocab::{Vocab, PAD};
use crate::errors::ensure_positive;
use anyhow::{bail, Result};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// How sentences are grouped into batches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchPlan {
    /// Sentences per batch (used when `max_tokens` is `None`).
    pub sentences: usize,
    /// Padded-token budget per batch (`batch * time <= max_tokens`), fairseq-style.
    pub max_tokens: Option<usize>,
    /// 0: random order. k > 0: sort sentences by length within pools of k batches, then
    /// shuffle the batches (less padding, as fairseq's length bucketing does).
    pub bucket_pool: usize,
    /// Longest input sequence; longer sentences are truncated (and counted).
    pub max_len: usize,
}

/// One encoded sentence: model inputs and next-token targets, already truncated.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub inputs: Vec<usize>,
    pub targets: Vec<usize>,
}

/// Encoded split plus how many of its sentences were truncated to `max_len`.
#[derive(Debug, Clone)]
pub struct EncodedSplit {
    pub examples: Vec<Example>,
    pub truncated: usize,
}

/// Encodes `<bos> w.. <eos>` and cuts it into inputs (all but last) and targets (all but
/// first), keeping at most `max_len` positions.
pub fn encode_split(sentences: &[Sentence], vocab: &Vocab, max_len: usize) -> Result<EncodedSplit> {
    ensure_positive("max-len", max_len)?;
    let mut truncated = 0;
    let examples = sentences
        .iter()
        .map(|s| {
            let ids = vocab.encode(s);
            let mut inputs = ids[..ids.len() - 1].to_vec();
            let mut targets = ids[1..].to_vec();
            if inputs.len() > max_len {
                truncated += 1;
                inputs.truncate(max_len);
                targets.truncate(max_len);
            }
            Example { inputs, targets }
        })
        .collect();
    Ok(EncodedSplit {
        examples,
        truncated,
    })
}

/// A padded batch on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct TextBatch {
    pub batch: usize,
    pub time: usize,
    /// `[batch * time]`, row-major, `PAD` at padded positions.
    pub inputs: Vec<usize>,
    pub targets: Vec<usize>,
    /// `true` at real (non-pad) positions.
    pub real: Vec<bool>,
}

impl TextBatch {
    pub fn from_examples(examples: &[&Example]) -> Self {
        let batch = examples.len();
        let time = examples.iter().map(|e| e.inputs.len()).max().unwrap_or(0);
        let mut inputs = vec![PAD; batch * time];
        let mut targets = vec![PAD; batch * time];
        let mut real = vec![false; batch * time];
        for (b, e) in examples.iter().enumerate() {
            for (t, (&i, &o)) in e.inputs.iter().zip(&e.targets).enumerate() {
                inputs[b * time + t] = i;
                targets[b * time + t] = o;
                real[b * time + t] = true;
            }
        }
        Self {
            batch,
            time,
            inputs,
            targets,
            real,
        }
    }

    /// Real (non-pad) tokens in the batch.
    pub fn real_tokens(&self) -> usize {
        self.real.iter().filter(|&&r| r).count()
    }

    /// Share of the `batch x time` positions that are padding.
    pub fn padding_fraction(&self) -> f64 {
        1.0 - self.real_tokens() as f64 / (self.batch * self.time).max(1) as f64
    }

    /// Moves the batch to a device in the forms the model needs.
    pub fn to_device(&self, device: &Device) -> TextTensors {
        let (b, t) = (self.batch, self.time);
        let ints = |v: &[usize]| v.iter().map(|&x| x as i64).collect::<Vec<_>>();
        let real_index: Vec<i64> = self
            .real
            .iter()
            .enumerate()
            .filter(|(_, &r)| r)
            .map(|(i, _)| i as i64)
            .collect();
        let real_targets: Vec<i64> = real_index
            .iter()
            .map(|&i| self.targets[i as usize] as i64)
            .collect();
        let n_real = real_index.len();
        let mask: Vec<f32> = self
            .real
            .iter()
            .map(|&r| if r { 1.0 } else { 0.0 })
            .collect();
        let attn_bias = attention_bias(&self.real, b, t);
        TextTensors {
            inputs: Tensor::from_data(TensorData::new(ints(&self.inputs), [b, t]), device),
            real_index: Tensor::from_data(TensorData::new(real_index, [n_real]), device),
            real_targets: Tensor::from_data(TensorData::new(real_targets, [n_real]), device),
            mask: Tensor::from_data(TensorData::new(mask, [b, t, 1]), device),
            attn_bias: Tensor::from_data(TensorData::new(attn_bias, [b, 1, t, t]), device),
            n_real,
        }
    }
}

/// A batch on the device.
#[derive(Debug, Clone)]
pub struct TextTensors {
    /// `[batch, time]` token ids.
    pub inputs: Tensor<2, Int>,
    /// Flat indices (into `batch * time`) of the real positions, in row-major order.
    pub real_index: Tensor<1, Int>,
    /// Targets at the real positions, aligned with `real_index`.
    pub real_targets: Tensor<1, Int>,
    /// `[batch, time, 1]`: 1.0 at real tokens, 0.0 at padding (what norms use).
    pub mask: Tensor<3>,
    /// `[batch, 1, time, time]`: 0 where a query may attend to a key, a large negative number
    /// where the key is later or padding (what attention adds to its scores).
    pub attn_bias: Tensor<4>,
    pub n_real: usize,
}

impl BatchPlan {
    pub fn validate(&self) -> Result<()> {
        ensure_positive("max-len", self.max_len)?;
        match self.max_tokens {
            Some(budget) if budget < self.max_len => bail!(
                "max-tokens ({budget}) must be at least max-len ({}) so a full-length sentence fits",
                self.max_len
            ),
            None => ensure_positive("batch-size", self.sentences),
            _ => Ok(()),
        }
    }

    /// Cuts `order` (indices into `examples`) into batches.
    fn cut(&self, examples: &[Example], order: &[usize]) -> Vec<Vec<usize>> {
        match self.max_tokens {
            None => order.chunks(self.sentences).map(|c| c.to_vec()).collect(),
            Some(budget) => {
                let mut batches = Vec::new();
                let mut current: Vec<usize> = Vec::new();
                let mut longest = 0;
                for &i in order {
                    let len = examples[i].inputs.len();
                    let new_longest = longest.max(len);
                    if !current.is_empty() && (current.len() + 1) * new_longest > budget {
                        batches.push(std::mem::take(&mut current));
                        longest = 0;
                    }
                    longest = longest.max(len);
                    current.push(i);
                }
                if !current.is_empty() {
                    batches.push(current);
                }
                batches
            }
        }
    }

    /// Sentences in a bucketing pool of `batches` batches.
    fn pool_sentences(&self, batches: usize) -> usize {
        batches.saturating_mul(
            self.max_tokens
                .map(|t| t / self.max_len)
                .unwrap_or(self.sentences)
                .max(1),
        )
    }

    /// Batches of one pass over `examples`. `rng = None`: file order (evaluation);
    /// otherwise shuffled (and bucketed if configured).
    pub fn epoch(&self, examples: &[Example], rng: Option<&mut StdRng>) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..examples.len()).collect();
        let Some(rng) = rng else {
            return self.cut(examples, &order);
        };
        order.shuffle(rng);
        if self.bucket_pool == 0 {
            return self.cut(examples, &order);
        }
        let pool = self.pool_sentences(self.bucket_pool);
        let mut batches = Vec::new();
        for chunk in order.chunks_mut(pool) {
            chunk.sort_by_key(|&i| examples[i].inputs.len());
            batches.extend(self.cut(examples, chunk));
        }
        batches.shuffle(rng);
        batches
    }
}

/// Endless shuffled training batches: epoch after epoch, reshuffled with a seeded RNG.
pub struct TrainBatches<'a> {
    examples: &'a [Example],
    plan: BatchPlan,
    rng: StdRng,
    queue: std::vec::IntoIter<Vec<usize>>,
    pub epoch: usize,
}

impl<'a> TrainBatches<'a> {
    pub fn new(examples: &'a [Example], plan: BatchPlan, seed: u64) -> Self {
        Self {
            examples,
            plan,
            rng: StdRng::seed_from_u64(seed),
            queue: Vec::new().into_iter(),
            epoch: 0,
        }
    }
}

impl Iterator for TrainBatches<'_> {
    type Item = TextBatch;
    fn next(&mut self) -> Option<TextBatch> {
        if self.examples.is_empty() {
            return None;
        }
        loop {
            if let Some(idx) = self.queue.next() {
                let ex: Vec<&Example> = idx.iter().map(|&i| &self.examples[i]).collect();
                return Some(TextBatch::from_examples(&ex));
            }
            self.epoch += 1;
            self.queue = self
                .plan
                .epoch(self.examples, Some(&mut self.rng))
                .into_iter();
        }
    }
}

/// How validation batches are formed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum EvalBatching {
    /// Sentences in file order, cut with the run's batch size or token budget.
    #[default]
    Plain,
    /// The same sentences sorted by length within pools of `--bucket-pool` batches (16 when
    /// training is not bucketed), as bucketed training batches are: less padding.
    Bucketed,
}

/// Pool size, in batches, of bucketed evaluation when training is not bucketed.
pub const EVAL_BUCKET_POOL: usize = 16;

/// Evaluation batches (deterministic): the first `limit` batches (0: all) of the split in file
/// order; with [`EvalBatching::Bucketed`], the same sentences length-bucketed.
pub fn eval_batches(
    examples: &[Example],
    plan: &BatchPlan,
    limit: usize,
    batching: EvalBatching,
) -> Vec<TextBatch> {
    let batches = plan.epoch(examples, None);
    let take = if limit == 0 {
        batches.len()
    } else {
        limit.min(batches.len())
    };
    let chosen = &batches[..take];
    let batches = match batching {
        EvalBatching::Plain => chosen.to_vec(),
        EvalBatching::Bucketed => {
            let mut order = chosen.concat();
            let pool_batches = match plan.bucket_pool {
                0 => EVAL_BUCKET_POOL,
                k => k,
            };
            let pool = plan.pool_sentences(pool_batches);
            let mut out = Vec::new();
            for chunk in order.chunks_mut(pool) {
                chunk.sort_by_key(|&i| examples[i].inputs.len());
                out.extend(plan.cut(examples, chunk));
            }
            out
        }
    };
    batches
        .iter()
        .map(|idx| TextBatch::from_examples(&idx.iter().map(|&i| &examples[i]).collect::<Vec<_>>()))
        .collect()
}

/// What masked attention scores become (as Burn's `MultiHeadAttentionConfig::min_float`):
/// `exp` of it is exactly 0 in float32, and it stays finite so no NaN can arise.
pub const MASKED: f32 = -1.0e4;

/// The additive attention bias `[batch, 1, time, time]` for a batch whose real positions are
/// `real` (`[batch * time]`, row-major): key `j` is visible from query `i` when `j <= i` and `j`
/// is a real token.
pub fn attention_bias(real: &[bool], batch: usize, time: usize) -> Vec<f32> {
    let mut bias = vec![MASKED; batch * time * time];
    for s in 0..batch {
        for i in 0..time {
            let row = &mut bias[(s * time + i) * time..][..time];
            for j in 0..=i {
                if real[s * time + j] {
                    row[j] = 0.0;
                }
            }
        }
    }
    bias
}

#[cfg(test)]
mod tests;
