//! Decoder-only transformer language model with a swappable norm.
//!
//! tokens -> token embedding (x sqrt(d), as fairseq) + learned positions -> N blocks of
//! causal self-attention and feed-forward (pre-norm or post-norm) -> final norm (pre-norm)
//! -> LM head (tied to the token embedding by default) -> cross-entropy over real tokens.

use super::attention::SelfAttention;
use crate::data::TextTensors;
use crate::norm::{BatchStats, Norm, NormConfig, NormCtx, NormLayer};
use crate::ops::{self, cross_entropy, gelu, DropoutRng};
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Initializer, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Where the norm sits in a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum NormPosition {
    /// `x + f(norm(x))`, plus a final norm before the head (GPT-2, fairseq `normalize_before`).
    Pre,
    /// `norm(x + f(x))` (the original Transformer); no final norm.
    Post,
}

/// Shape of the language model.
#[derive(Debug, Clone, PartialEq)]
pub struct LmConfig {
    pub vocab: usize,
    pub max_len: usize,
    pub d_model: usize,
    pub layers: usize,
    pub heads: usize,
    pub d_ff: usize,
    pub dropout: f64,
    pub norm_position: NormPosition,
    pub tie_embeddings: bool,
    pub embed_scale: bool,
}

#[derive(Module, Debug)]
pub struct FeedForward {
    pub up: Linear,
    pub down: Linear,
}

impl FeedForward {
    fn forward(&self, x: Tensor<3>, dropout: Option<&Dropout>) -> Tensor<3> {
        let h = gelu(ops::linear(&self.up, x));
        ops::linear(&self.down, Dropout::apply(dropout, h))
    }
}

/// Dropout of one training step: its masks and the probability. `None` in evaluation.
#[derive(Clone, Copy)]
pub struct Dropout<'a> {
    pub rng: &'a DropoutRng,
    pub prob: f64,
}

impl Dropout<'_> {
    fn apply<const D: usize>(dropout: Option<&Self>, x: Tensor<D>) -> Tensor<D> {
        match dropout {
            Some(d) => d.rng.apply(x, d.prob),
            None => x,
        }
    }
}

#[derive(Module, Debug)]
pub struct Block {
    pub attn_norm: NormLayer,
    pub attn: SelfAttention,
    pub ffn_norm: NormLayer,
    pub ffn: FeedForward,
    pub pre_norm: bool,
}

impl Block {
    fn forward(
        &self,
        x: Tensor<3>,
        batch: &TextTensors,
        ctx: &NormCtx,
        dropout: Option<&Dropout>,
        stats: &mut Vec<Option<BatchStats>>,
    ) -> Tensor<3> {
        let attend = |h: Tensor<3>| {
            let attn_dropout = dropout.map(|d| d.rng);
            Dropout::apply(
                dropout,
                self.attn.forward(h, &batch.attn_bias, attn_dropout),
            )
        };
        let feed = |h: Tensor<3>| Dropout::apply(dropout, self.ffn.forward(h, dropout));
        if self.pre_norm {
            let (h, s) = self.attn_norm.forward(x.clone(), ctx);
            stats.push(s);
            let x = x + attend(h);
            let (h, s) = self.ffn_norm.forward(x.clone(), ctx);
            stats.push(s);
            x + feed(h)
        } else {
            let (x, s) = self.attn_norm.forward(x.clone() + attend(x), ctx);
            stats.push(s);
            let (x, s) = self.ffn_norm.forward(x.clone() + feed(x), ctx);
            stats.push(s);
            x
        }
    }
}

#[derive(Module, Debug)]
pub struct LanguageModel {
    pub token: Embedding,
    pub position: Embedding,
    pub blocks: Vec<Block>,
    pub final_norm: Option<NormLayer>,
    /// `None` when the head is tied to the token embedding.
    pub head: Option<Linear>,
    /// Dropout probability (embeddings, attention weights, sublayer outputs, FFN inner).
    pub dropout: f64,
    pub embed_scale: f64,
}

/// Output of one forward pass over a batch.
pub struct LmOutput {
    /// Mean cross-entropy over the real tokens.
    pub loss: Tensor<1>,
    /// Statistics of every norm layer, in [`LanguageModel::norm_names`] order.
    pub stats: Vec<Option<BatchStats>>,
}

impl LmConfig {
    pub fn init(&self, norm: &NormConfig, device: &Device) -> LanguageModel {
        let d = self.d_model;
        // fairseq: N(0, d^-1/2) embeddings scaled by sqrt(d) -> unit scale into the first block
        let token = EmbeddingConfig::new(self.vocab, d)
            .with_initializer(Initializer::Normal {
                mean: 0.0,
                std: (d as f64).powf(-0.5),
            })
            .init(device);
        let position = EmbeddingConfig::new(self.max_len, d)
            .with_initializer(Initializer::Normal {
                mean: 0.0,
                std: 0.02,
            })
            .init(device);
        let blocks = (0..self.layers)
            .map(|_| Block {
                attn_norm: norm.init(d, device),
                attn: SelfAttention::new(d, self.heads, self.dropout, device),
                ffn_norm: norm.init(d, device),
                ffn: FeedForward {
                    up: LinearConfig::new(d, self.d_ff).init(device),
                    down: LinearConfig::new(self.d_ff, d).init(device),
                },
                pre_norm: self.norm_position == NormPosition::Pre,
            })
            .collect();
        LanguageModel {
            token,
            position,
            blocks,
            final_norm: (self.norm_position == NormPosition::Pre).then(|| norm.init(d, device)),
            head: (!self.tie_embeddings).then(|| {
                LinearConfig::new(d, self.vocab)
                    .with_bias(false)
                    .init(device)
            }),
            dropout: self.dropout,
            embed_scale: if self.embed_scale {
                (d as f64).sqrt()
            } else {
                1.0
            },
        }
    }
}

impl LanguageModel {
    /// Names of the norm layers, in the order of [`LmOutput::stats`].
    pub fn norm_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for i in 0..self.blocks.len() {
            names.push(format!("block{i}.attn_norm"));
            names.push(format!("block{i}.ffn_norm"));
        }
        if self.final_norm.is_some() {
            names.push("final_norm".to_string());
        }
        names
    }

    /// The norm layers, in [`Self::norm_names`] order.
    pub fn norms(&self) -> Vec<&NormLayer> {
        let mut norms: Vec<&NormLayer> = self
            .blocks
            .iter()
            .flat_map(|b| [&b.attn_norm, &b.ffn_norm])
            .collect();
        norms.extend(self.final_norm.as_ref());
        norms
    }

    /// Hidden states `[batch, time, d]` after the last block (and final norm). Dropout only
    /// when `dropout` gives the step's masks (training).
    pub fn hidden(
        &self,
        batch: &TextTensors,
        ctx: &NormCtx,
        dropout: Option<&DropoutRng>,
        stats: &mut Vec<Option<BatchStats>>,
    ) -> Tensor<3> {
        let dropout = dropout.map(|rng| Dropout {
            rng,
            prob: self.dropout,
        });
        let dropout = dropout.as_ref();
        let [b, t] = batch.inputs.dims();
        let device = batch.inputs.device();
        let positions = Tensor::arange(0..t as i64, &device)
            .reshape([1, t])
            .expand([b, t]);
        let x = self
            .token
            .forward(batch.inputs.clone())
            .mul_scalar(self.embed_scale)
            + self.position.forward(positions);
        let mut x = Dropout::apply(dropout, x);
        for block in &self.blocks {
            x = block.forward(x, batch, ctx, dropout, stats);
        }
        if let Some(norm) = &self.final_norm {
            let (h, s) = norm.forward(x, ctx);
            stats.push(s);
            x = h;
        }
        x
    }

    /// Logits `[n, vocab]` for hidden states `[n, d]`.
    pub fn logits(&self, h: Tensor<2>) -> Tensor<2> {
        match &self.head {
            Some(head) => ops::linear(head, h),
            None => ops::matmul(h, self.token.weight.val(), false, true),
        }
    }

    /// Logits at every position `[batch, time, vocab]` (tests and inspection).
    pub fn forward_logits(&self, batch: &TextTensors, ctx: &NormCtx) -> Tensor<3> {
        let h = self.hidden(batch, ctx, None, &mut Vec::new());
        let [b, t, d] = h.dims();
        let logits = self.logits(h.reshape([b * t, d]));
        let v = logits.dims()[1];
        logits.reshape([b, t, v])
    }

    /// Mean cross-entropy over real tokens, without dropout (evaluation, probes).
    pub fn forward_loss(&self, batch: &TextTensors, ctx: &NormCtx) -> LmOutput {
        self.forward_loss_dropout(batch, ctx, None)
    }

    /// Mean cross-entropy over real tokens, with the dropout masks of a training step. The
    /// head runs on real positions only: padded positions never reach the loss (and cost
    /// nothing there).
    pub fn forward_loss_dropout(
        &self,
        batch: &TextTensors,
        ctx: &NormCtx,
        dropout: Option<&DropoutRng>,
    ) -> LmOutput {
        let mut stats = Vec::new();
        let h = self.hidden(batch, ctx, dropout, &mut stats);
        let [b, t, d] = h.dims();
        let real = h.reshape([b * t, d]).select(0, batch.real_index.clone());
        let loss = cross_entropy(self.logits(real), batch.real_targets.clone());
        LmOutput { loss, stats }
    }
}

#[cfg(test)]
mod tests {
    #![allow(deprecated)]
    use super::*;
    use crate::data::batcher::{Example, TextBatch, TextTensors};
    use crate::norm::{NormKind, OptionValue};

    fn lm(kind: NormKind) -> (LanguageModel, Device) {
        let device = Device::ndarray(); // no autodiff: dropout is off
        device.seed(3);
        let cfg = LmConfig {
            vocab: 30,
            max_len: 8,
            d_model: 16,
            layers: 2,
            heads: 2,
            d_ff: 32,
            dropout: 0.1,
            norm_position: NormPosition::Pre,
            tie_embeddings: true,
            embed_scale: true,
        };
        let norm = NormConfig {
            heads: 2,
            lr_warmup: 5,
            max_positions: Some(cfg.max_len),
            ..NormConfig::new(kind)
        }
        .with(
            crate::norm::find_option("pn_backward_means").unwrap(),
            OptionValue::Choice("all"),
        );
        (cfg.init(&norm, &device), device)
    }

    fn ex(tokens: &[usize]) -> Example {
        Example {
            inputs: tokens.to_vec(),
            targets: tokens.iter().map(|t| (t + 1) % 30).collect(),
        }
    }

    /// Training-mode statistics that update nothing: what the tests compare.
    fn probe_ctx(t: &TextTensors) -> NormCtx<'_> {
        NormCtx {
            mask: Some(&t.mask),
            n_real: t.n_real,
            training: true,
            update_running: false,
            step: 1,
        }
    }

    fn logits(model: &LanguageModel, batch: &TextBatch, device: &Device) -> Vec<f32> {
        let t = batch.to_device(device);
        let ctx = probe_ctx(&t);
        model
            .forward_logits(&t, &ctx)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    }

    #[test]
    fn padding_does_not_change_real_logits_under_layer_norm() {
        let (model, device) = lm(NormKind::Layer);
        let short = ex(&[2, 5, 7]);
        let long = ex(&[2, 9, 4, 11, 6, 8]);
        let alone = logits(&model, &TextBatch::from_examples(&[&short]), &device);
        let padded = logits(&model, &TextBatch::from_examples(&[&short, &long]), &device);
        // row 0 of the padded batch: 6 positions, the first 3 real
        for (i, (a, b)) in alone.iter().zip(&padded[..alone.len()]).enumerate() {
            assert!((a - b).abs() < 1e-4, "logit {i}: {a} vs {b}");
        }
    }

    #[test]
    fn future_tokens_do_not_change_earlier_logits() {
        let (model, device) = lm(NormKind::Layer);
        let a = logits(
            &model,
            &TextBatch::from_examples(&[&ex(&[2, 5, 7, 9])]),
            &device,
        );
        let b = logits(
            &model,
            &TextBatch::from_examples(&[&ex(&[2, 5, 7, 21])]),
            &device,
        );
        let per_pos = 30;
        for i in 0..3 * per_pos {
            assert!(
                (a[i] - b[i]).abs() < 1e-5,
                "position {} changed",
                i / per_pos
            );
        }
        let last_changed = (3 * per_pos..4 * per_pos).any(|i| (a[i] - b[i]).abs() > 1e-4);
        assert!(
            last_changed,
            "the changed token must change its own position's logits"
        );
    }

    #[test]
    fn pads_never_contribute_to_the_loss() {
        for kind in [NormKind::Layer, NormKind::MaskedBatch] {
            let (model, device) = lm(kind);
            let batch = TextBatch::from_examples(&[&ex(&[2, 5, 7]), &ex(&[2, 9, 4, 11, 6, 8])]);
            let mut garbage = batch.clone();
            for i in 0..garbage.real.len() {
                if !garbage.real[i] {
                    garbage.inputs[i] = 17;
                    garbage.targets[i] = 23;
                }
            }
            let loss = |b: &TextBatch| {
                let t = b.to_device(&device);
                model
                    .forward_loss(&t, &probe_ctx(&t))
                    .loss
                    .into_scalar::<f64>()
            };
            let (a, b) = (loss(&batch), loss(&garbage));
            assert!(
                (a - b).abs() < 1e-6,
                "{kind}: loss changed with pad contents: {a} vs {b}"
            );
            // and the loss is the mean over exactly the 9 real tokens
            let t = batch.to_device(&device);
            assert_eq!(t.n_real, 9);
        }
    }
}
