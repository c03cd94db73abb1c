//! A small ResNet for 28x28 grayscale images: the vision contrast to the text model.
//!
//! stem (3x3 conv, norm, relu) -> residual blocks (two 3x3 convs with norms, shortcut
//! projection when the shape changes) -> global average pool -> linear classifier.
//! Norms see the feature map `[batch, c, h, w]` as tokens `[batch, h*w, c]` without padding,
//! so BatchNorm here is the usual per-channel BN over batch x height x width.

use crate::norm::{BatchStats, Norm, NormConfig, NormCtx, NormLayer};
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::{Device, Int, Tensor};

#[derive(Debug, Clone, PartialEq)]
pub struct CnnConfig {
    /// Channels of the stem and of each stage (each stage after the first halves h and w).
    pub channels: Vec<usize>,
    pub classes: usize,
}

impl Default for CnnConfig {
    fn default() -> Self {
        Self { channels: vec![16, 32, 64], classes: 10 }
    }
}

fn conv3(cin: usize, cout: usize, stride: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(false)
        .init(device)
}

/// Applies a token-layout norm to a feature map.
fn norm_map(norm: &NormLayer, x: Tensor<4>, ctx: &NormCtx, stats: &mut Vec<Option<BatchStats>>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let tokens = x.permute([0, 2, 3, 1]).reshape([b, h * w, c]);
    let ctx = NormCtx { mask: None, n_real: b * h * w, ..*ctx };
    let (y, s) = norm.forward(tokens, &ctx);
    stats.push(s);
    y.reshape([b, h, w, c]).permute([0, 3, 1, 2])
}

#[derive(Module, Debug)]
pub struct ResBlock {
    pub conv1: Conv2d,
    pub norm1: NormLayer,
    pub conv2: Conv2d,
    pub norm2: NormLayer,
    pub shortcut: Option<Conv2d>,
    pub shortcut_norm: Option<NormLayer>,
}

impl ResBlock {
    fn new(cin: usize, cout: usize, stride: usize, norm: &NormConfig, device: &Device) -> Self {
        let project = stride != 1 || cin != cout;
        Self {
            conv1: conv3(cin, cout, stride, device),
            norm1: norm.init(cout, device),
            conv2: conv3(cout, cout, 1, device),
            norm2: norm.init(cout, device),
            shortcut: project.then(|| {
                Conv2dConfig::new([cin, cout], [1, 1]).with_stride([stride, stride]).with_bias(false).init(device)
            }),
            shortcut_norm: project.then(|| norm.init(cout, device)),
        }
    }

    fn forward(&self, x: Tensor<4>, ctx: &NormCtx, stats: &mut Vec<Option<BatchStats>>) -> Tensor<4> {
        let h = relu(norm_map(&self.norm1, self.conv1.forward(x.clone()), ctx, stats));
        let h = norm_map(&self.norm2, self.conv2.forward(h), ctx, stats);
        let skip = match (&self.shortcut, &self.shortcut_norm) {
            (Some(conv), Some(norm)) => norm_map(norm, conv.forward(x), ctx, stats),
            _ => x,
        };
        relu(h + skip)
    }
}

#[derive(Module, Debug)]
pub struct ImageModel {
    pub stem: Conv2d,
    pub stem_norm: NormLayer,
    pub blocks: Vec<ResBlock>,
    pub head: Linear,
}

pub struct ImageOutput {
    pub loss: Tensor<1>,
    /// Correct predictions in the batch.
    pub correct: Tensor<1, Int>,
    pub stats: Vec<Option<BatchStats>>,
}

impl CnnConfig {
    pub fn init(&self, norm: &NormConfig, device: &Device) -> ImageModel {
        let c0 = self.channels[0];
        let mut blocks = Vec::new();
        let mut cin = c0;
        for (i, &c) in self.channels.iter().enumerate() {
            blocks.push(ResBlock::new(cin, c, if i == 0 { 1 } else { 2 }, norm, device));
            cin = c;
        }
        ImageModel {
            stem: conv3(1, c0, 1, device),
            stem_norm: norm.init(c0, device),
            blocks,
            head: LinearConfig::new(cin, self.classes).init(device),
        }
    }
}

impl ImageModel {
    pub fn norm_names(&self) -> Vec<String> {
        let mut names = vec!["stem.norm".to_string()];
        for (i, b) in self.blocks.iter().enumerate() {
            names.push(format!("block{i}.norm1"));
            names.push(format!("block{i}.norm2"));
            if b.shortcut_norm.is_some() {
                names.push(format!("block{i}.shortcut_norm"));
            }
        }
        names
    }

    pub fn norms(&self) -> Vec<&NormLayer> {
        let mut norms = vec![&self.stem_norm];
        for b in &self.blocks {
            norms.push(&b.norm1);
            norms.push(&b.norm2);
            norms.extend(b.shortcut_norm.as_ref());
        }
        norms
    }

    pub fn forward_loss(&self, images: Tensor<4>, labels: Tensor<1, Int>, ctx: &NormCtx) -> ImageOutput {
        let mut stats = Vec::new();
        let mut x = relu(norm_map(&self.stem_norm, self.stem.forward(images), ctx, &mut stats));
        for block in &self.blocks {
            x = block.forward(x, ctx, &mut stats);
        }
        let [b, c, _, _] = x.dims();
        let pooled = x.mean_dim(3).mean_dim(2).reshape([b, c]);
        let logp = log_softmax(self.head.forward(pooled), 1);
        let predicted = logp.clone().argmax(1).reshape([b]);
        let correct = predicted.equal(labels.clone()).int().sum();
        let loss = logp.gather(1, labels.reshape([b, 1])).mean().neg();
        ImageOutput { loss, correct, stats }
    }
}
