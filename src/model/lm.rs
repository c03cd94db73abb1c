//! Decoder-only transformer language model with a swappable norm.
//!
//! tokens -> token embedding (x sqrt(d), as fairseq) + learned positions -> N blocks of
//! causal self-attention and feed-forward (pre-norm or post-norm) -> final norm (pre-norm)
//! -> LM head (tied to the token embedding by default) -> cross-entropy over real tokens.

use crate::data::TextTensors;
use crate::norm::{BatchStats, Norm, NormConfig, NormCtx, NormLayer};
use burn::module::Module;
use burn::nn::attention::{generate_autoregressive_mask, MhaInput, MultiHeadAttention, MultiHeadAttentionConfig};
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, Initializer, Linear, LinearConfig,
};
use burn::tensor::activation::{gelu, log_softmax};
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
    pub dropout: Dropout,
}

impl FeedForward {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.down.forward(self.dropout.forward(gelu(self.up.forward(x))))
    }
}

#[derive(Module, Debug)]
pub struct Block {
    pub attn_norm: NormLayer,
    pub attn: MultiHeadAttention,
    pub ffn_norm: NormLayer,
    pub ffn: FeedForward,
    pub dropout: Dropout,
    pub pre_norm: bool,
}

impl Block {
    fn forward(
        &self,
        x: Tensor<3>,
        batch: &TextTensors,
        causal: &Tensor<3, burn::tensor::Bool>,
        ctx: &NormCtx,
        stats: &mut Vec<Option<BatchStats>>,
    ) -> Tensor<3> {
        let attend = |h: Tensor<3>| {
            let input = MhaInput::self_attn(h).mask_pad(batch.pad_mask.clone()).mask_attn(causal.clone());
            self.dropout.forward(self.attn.forward(input).context)
        };
        let feed = |h: Tensor<3>| self.dropout.forward(self.ffn.forward(h));
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
    pub dropout: Dropout,
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
            .with_initializer(Initializer::Normal { mean: 0.0, std: (d as f64).powf(-0.5) })
            .init(device);
        let position = EmbeddingConfig::new(self.max_len, d)
            .with_initializer(Initializer::Normal { mean: 0.0, std: 0.02 })
            .init(device);
        let blocks = (0..self.layers)
            .map(|_| Block {
                attn_norm: norm.init(d, device),
                attn: MultiHeadAttentionConfig::new(d, self.heads).with_dropout(self.dropout).init(device),
                ffn_norm: norm.init(d, device),
                ffn: FeedForward {
                    up: LinearConfig::new(d, self.d_ff).init(device),
                    down: LinearConfig::new(self.d_ff, d).init(device),
                    dropout: DropoutConfig::new(self.dropout).init(),
                },
                dropout: DropoutConfig::new(self.dropout).init(),
                pre_norm: self.norm_position == NormPosition::Pre,
            })
            .collect();
        LanguageModel {
            token,
            position,
            blocks,
            final_norm: (self.norm_position == NormPosition::Pre).then(|| norm.init(d, device)),
            head: (!self.tie_embeddings).then(|| LinearConfig::new(d, self.vocab).with_bias(false).init(device)),
            dropout: DropoutConfig::new(self.dropout).init(),
            embed_scale: if self.embed_scale { (d as f64).sqrt() } else { 1.0 },
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
        let mut norms: Vec<&NormLayer> =
            self.blocks.iter().flat_map(|b| [&b.attn_norm, &b.ffn_norm]).collect();
        norms.extend(self.final_norm.as_ref());
        norms
    }

    /// Hidden states `[batch, time, d]` after the last block (and final norm).
    pub fn hidden(&self, batch: &TextTensors, ctx: &NormCtx, stats: &mut Vec<Option<BatchStats>>) -> Tensor<3> {
        let [b, t] = batch.inputs.dims();
        let device = batch.inputs.device();
        let positions = Tensor::arange(0..t as i64, &device).reshape([1, t]).expand([b, t]);
        let x = self.token.forward(batch.inputs.clone()).mul_scalar(self.embed_scale)
            + self.position.forward(positions);
        let mut x = self.dropout.forward(x);
        let causal = generate_autoregressive_mask(b, t, &device);
        for block in &self.blocks {
            x = block.forward(x, batch, &causal, ctx, stats);
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
            Some(head) => head.forward(h),
            None => h.matmul(self.token.weight.val().transpose()),
        }
    }

    /// Logits at every position `[batch, time, vocab]` (tests and inspection).
    pub fn forward_logits(&self, batch: &TextTensors, ctx: &NormCtx) -> Tensor<3> {
        let h = self.hidden(batch, ctx, &mut Vec::new());
        let [b, t, d] = h.dims();
        let logits = self.logits(h.reshape([b * t, d]));
        let v = logits.dims()[1];
        logits.reshape([b, t, v])
    }

    /// Mean cross-entropy over real tokens. The head runs on real positions only: padded
    /// positions never reach the loss (and cost nothing there).
    pub fn forward_loss(&self, batch: &TextTensors, ctx: &NormCtx) -> LmOutput {
        let mut stats = Vec::new();
        let h = self.hidden(batch, ctx, &mut stats);
        let [b, t, d] = h.dims();
        let real = h.reshape([b * t, d]).select(0, batch.real_index.clone());
        let logp = log_softmax(self.logits(real), 1);
        let n = batch.n_real;
        let picked = logp.gather(1, batch.real_targets.clone().reshape([n, 1]));
        LmOutput { loss: picked.mean().neg(), stats }
    }
}
