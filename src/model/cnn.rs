//! A small ResNet for 28x28 grayscale images: the vision contrast to the text model.
//!
//! stem (3x3 conv with stride 2, norm, relu) -> residual blocks (two 3x3 convs with norms, shortcut
//! projection when the shape changes) -> global average pool -> linear classifier.
//! Feature maps are channels-last `[batch, h, w, c]`; norms see them as tokens
//! `[batch, h*w, c]` without padding, so BatchNorm here is the usual per-channel BN over
//! batch x height x width.

use crate::norm::{BatchStats, Norm, NormConfig, NormCtx, NormLayer};
use burn::module::{Module, Param};
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::{Device, Int, Tensor};

#[derive(Debug, Clone, PartialEq)]
pub struct CnnConfig {
    /// Channels of the stem and of each stage (each stage after the first halves h and w).
    pub channels: Vec<usize>,
    pub classes: usize,
}

/// A 3x3 (or 1x1) convolution on channels-last maps `[batch, h, w, c]`, computed as
/// shifted copies concatenated over channels and one matrix product (im2col). Burn-ndarray's
/// own conv2d backward took about 3 s per layer on this model; this takes milliseconds and
/// keeps the maps in the token layout the norms use.
#[derive(Module, Debug)]
pub struct Conv {
    /// `[k * k * c_in, c_out]`
    pub weight: Param<Tensor<2>>,
    pub kernel: usize,
    pub stride: usize,
}

impl Conv {
    fn new(cin: usize, cout: usize, kernel: usize, stride: usize, device: &Device) -> Self {
        let fan_in = kernel * kernel * cin;
        // He initialization for ReLU networks
        let std = (2.0 / fan_in as f64).sqrt();
        Self {
            weight: Initializer::Normal { mean: 0.0, std }.init([fan_in, cout], device),
            kernel,
            stride,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = if self.stride == 2 { subsample(x) } else { x };
        let [b, h, w, c] = x.dims();
        let cols = if self.kernel == 1 {
            x
        } else {
            let p = self.kernel / 2;
            let device = x.device();
            let zh = Tensor::zeros([b, p, w, c], &device);
            let x = Tensor::cat(vec![zh.clone(), x, zh], 1);
            let zw = Tensor::zeros([b, h + 2 * p, p, c], &device);
            let x = Tensor::cat(vec![zw.clone(), x, zw], 2);
            let mut shifted = Vec::with_capacity(self.kernel * self.kernel);
            for i in 0..self.kernel {
                for j in 0..self.kernel {
                    shifted.push(x.clone().narrow(1, i, h).narrow(2, j, w));
                }
            }
            Tensor::cat(shifted, 3)
        };
        let k = cols.dims()[3];
        let out = cols.reshape([b * h * w, k]).matmul(self.weight.val());
        let cout = out.dims()[1];
        out.reshape([b, h, w, cout])
    }
}

/// Keeps every second row and column (stride 2), `[b, h, w, c]` -> `[b, h/2, w/2, c]`.
fn subsample(x: Tensor<4>) -> Tensor<4> {
    let [b, h, w, c] = x.dims();
    let (h2, w2) = (h.div_ceil(2), w.div_ceil(2));
    let device = x.device();
    // pad odd sizes to even, then view pairs and keep the first of each
    let x = if h % 2 == 1 {
        Tensor::cat(vec![x, Tensor::zeros([b, 1, w, c], &device)], 1)
    } else {
        x
    };
    let x = if w % 2 == 1 {
        Tensor::cat(vec![x, Tensor::zeros([b, 2 * h2, 1, c], &device)], 2)
    } else {
        x
    };
    x.reshape([b, h2, 2, w2, 2, c])
        .narrow(2, 0, 1)
        .narrow(4, 0, 1)
        .reshape([b, h2, w2, c])
}

/// Applies a token-layout norm to a channels-last map.
fn norm_map(
    norm: &NormLayer,
    x: Tensor<4>,
    ctx: &NormCtx,
    stats: &mut Vec<Option<BatchStats>>,
) -> Tensor<4> {
    let [b, h, w, c] = x.dims();
    let ctx = NormCtx {
        mask: None,
        n_real: b * h * w,
        ..*ctx
    };
    let (y, s) = norm.forward(x.reshape([b, h * w, c]), &ctx);
    stats.push(s);
    y.reshape([b, h, w, c])
}

#[derive(Module, Debug)]
pub struct ResBlock {
    pub conv1: Conv,
    pub norm1: NormLayer,
    pub conv2: Conv,
    pub norm2: NormLayer,
    pub shortcut: Option<Conv>,
    pub shortcut_norm: Option<NormLayer>,
}

impl ResBlock {
    fn new(cin: usize, cout: usize, stride: usize, norm: &NormConfig, device: &Device) -> Self {
        let project = stride != 1 || cin != cout;
        Self {
            conv1: Conv::new(cin, cout, 3, stride, device),
            norm1: norm.init(cout, device),
            conv2: Conv::new(cout, cout, 3, 1, device),
            norm2: norm.init(cout, device),
            shortcut: project.then(|| Conv::new(cin, cout, 1, stride, device)),
            shortcut_norm: project.then(|| norm.init(cout, device)),
        }
    }

    fn forward(
        &self,
        x: Tensor<4>,
        ctx: &NormCtx,
        stats: &mut Vec<Option<BatchStats>>,
    ) -> Tensor<4> {
        let h = relu(norm_map(
            &self.norm1,
            self.conv1.forward(x.clone()),
            ctx,
            stats,
        ));
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
    pub stem: Conv,
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
            blocks.push(ResBlock::new(
                cin,
                c,
                if i == 0 { 1 } else { 2 },
                norm,
                device,
            ));
            cin = c;
        }
        ImageModel {
            // stride 2: 28x28 -> 14x14 keeps a CPU step fast
            stem: Conv::new(1, c0, 3, 2, device),
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

    pub fn forward_loss(
        &self,
        images: Tensor<4>,
        labels: Tensor<1, Int>,
        ctx: &NormCtx,
    ) -> ImageOutput {
        let mut stats = Vec::new();
        // [batch, 1, h, w] -> channels-last
        let mut x = relu(norm_map(
            &self.stem_norm,
            self.stem.forward(images.permute([0, 2, 3, 1])),
            ctx,
            &mut stats,
        ));
        for block in &self.blocks {
            x = block.forward(x, ctx, &mut stats);
        }
        let [b, _, _, c] = x.dims();
        let pooled = x.mean_dim(2).mean_dim(1).reshape([b, c]);
        let logp = log_softmax(self.head.forward(pooled), 1);
        let predicted = logp.clone().argmax(1).reshape([b]);
        let correct = predicted.equal(labels.clone()).int().sum();
        let loss = logp.gather(1, labels.reshape([b, 1])).mean().neg();
        ImageOutput {
            loss,
            correct,
            stats,
        }
    }
}
