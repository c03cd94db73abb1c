//! Causal multi-head self-attention over padded batches.
//!
//! The same computation as Burn's `MultiHeadAttention` with a padding and a causal mask, written
//! out so that (a) both masks arrive as one additive bias built once per batch on the host
//! instead of two `mask_fill`s per layer, and (b) dropout on the attention weights draws from
//! [`DropoutRng`] like every other dropout.

use crate::ops::{self, attention_softmax, DropoutRng};
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

#[derive(Module, Debug)]
pub struct SelfAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub output: Linear,
    pub heads: usize,
    /// Dropout on the attention weights.
    pub dropout: f64,
}

impl SelfAttention {
    pub fn new(d_model: usize, heads: usize, dropout: f64, device: &Device) -> Self {
        assert!(
            d_model.is_multiple_of(heads),
            "d_model {d_model} is not divisible by {heads} heads"
        );
        Self {
            query: LinearConfig::new(d_model, d_model).init(device),
            key: LinearConfig::new(d_model, d_model).init(device),
            value: LinearConfig::new(d_model, d_model).init(device),
            output: LinearConfig::new(d_model, d_model).init(device),
            heads,
            dropout,
        }
    }

    /// `x`: `[batch, time, d]`; `bias`: `[batch, 1, time, time]`, 0 where query `i` may attend
    /// to key `j` and [`MASKED`](crate::data::batcher::MASKED) where it may not (a later position or padding).
    pub fn forward(
        &self,
        x: Tensor<3>,
        bias: &Tensor<4>,
        dropout: Option<&DropoutRng>,
    ) -> Tensor<3> {
        let [b, t, d] = x.dims();
        let (h, dk) = (self.heads, d / self.heads);
        // [b, t, d] -> [b, h, t, dk]
        let heads = |linear: &Linear| {
            ops::linear(linear, x.clone())
                .reshape([b, t, h, dk])
                .swap_dims(1, 2)
        };
        let (q, k, v) = (heads(&self.query), heads(&self.key), heads(&self.value));
        let scale = 1.0 / (dk as f32).sqrt();
        let mut weights =
            attention_softmax(ops::batched_matmul(q, k.transpose()), bias.clone(), scale);
        if let Some(rng) = dropout {
            weights = rng.apply(weights, self.dropout);
        }
        let context = ops::batched_matmul(weights, v)
            .swap_dims(1, 2)
            .reshape([b, t, d]);
        ops::linear(&self.output, context)
    }
}

#[cfg(test)]
mod tests {
    #![allow(deprecated)] // Device::ndarray (the reference backend), TensorData::to_vec
    use super::*;
    use crate::data::batcher::{attention_bias, MASKED};
    use burn::nn::attention::{generate_autoregressive_mask, MhaInput, MultiHeadAttentionConfig};
    use burn::tensor::{Bool, TensorData};

    #[test]
    fn matches_burns_multi_head_attention_with_pad_and_causal_masks() {
        // ndarray: the softmax in tensor operations; flex: the fused host kernel
        for device in [Device::ndarray(), Device::flex()] {
            matches_burns_mha_on(device);
        }
    }

    fn matches_burns_mha_on(device: Device) {
        device.seed(11);
        let (b, t, d, h) = (3, 5, 8, 2);
        let burn_mha = MultiHeadAttentionConfig::new(d, h).init(&device);
        let mut ours = SelfAttention::new(d, h, 0.0, &device);
        ours.query = burn_mha.query.clone();
        ours.key = burn_mha.key.clone();
        ours.value = burn_mha.value.clone();
        ours.output = burn_mha.output.clone();

        let lengths = [5usize, 2, 4];
        let real: Vec<bool> = lengths
            .iter()
            .flat_map(|&n| (0..t).map(move |j| j < n))
            .collect();
        let x = Tensor::<3>::random(
            [b, t, d],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let pad: Vec<bool> = real.iter().map(|r| !r).collect();
        let reference = burn_mha
            .forward(
                MhaInput::self_attn(x.clone())
                    .mask_pad(Tensor::<2, Bool>::from_data(
                        TensorData::new(pad, [b, t]),
                        &device,
                    ))
                    .mask_attn(generate_autoregressive_mask(b, t, &device)),
            )
            .context
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let bias = Tensor::<4>::from_data(
            TensorData::new(attention_bias(&real, b, t), [b, 1, t, t]),
            &device,
        );
        let got = ours
            .forward(x, &bias, None)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        // every position, padded queries included (they see the real keys before them)
        for (i, (a, r)) in got.iter().zip(&reference).enumerate() {
            assert!((a - r).abs() < 1e-5, "element {i}: {a} vs {r}");
        }
    }

    #[test]
    fn bias_hides_the_future_and_padding() {
        // one sentence of 2 real tokens in 3 positions
        let bias = attention_bias(&[true, true, false], 1, 3);
        let m = MASKED;
        assert_eq!(bias, vec![0.0, m, m, 0.0, 0.0, m, 0.0, 0.0, m]);
    }
}
