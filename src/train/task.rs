//! What differs between training on text and on images: the model, the batches and the
//! evaluation. The training loop sees a [`Task`] only.

use super::init::seeded_init;
use crate::config::RunConfig;
use crate::data::images::{self, ImageSet, IndexBatches};
use crate::data::{batcher, TextBatch, TextData, TrainBatches};
use crate::model::{DropoutRng, ImageModel, LanguageModel, NormedModel};
use crate::norm::{BatchStats, NormCtx};
use crate::results::{EvalRow, Summary};
use burn::module::Module;
use burn::tensor::{Device, Tensor};

/// The forward pass of one training step.
pub struct Forward {
    pub loss: Tensor<1>,
    /// Each norm layer's batch statistics, in [`NormedModel::norms`] order.
    pub stats: Vec<Option<BatchStats>>,
    pub batch: BatchInfo,
}

/// What the step's batch was.
pub struct BatchInfo {
    /// Real tokens (text) or images.
    pub tokens: usize,
    pub batch: usize,
    pub time: usize,
    pub padding_fraction: f64,
    /// Positions the norms saw (batch x time, or batch x height x width).
    pub positions: usize,
}

/// A training task: builds its model, supplies training batches and evaluates.
pub trait Task {
    type Model: NormedModel;

    /// The model, with weights drawn from the run's seed on `init_device` and moved to `device`.
    fn model(&self, init_device: &Device, device: &Device) -> Self::Model;

    /// Forward pass of training step `step` (1-based) on the next training batch.
    fn forward(&mut self, model: &Self::Model, step: usize) -> Forward;

    /// Moves past the next `n` training batches without computing anything (a resumed run
    /// replays the batch order up to its checkpoint).
    fn skip_batches(&mut self, n: usize);

    /// Loss in evaluation mode (running statistics) and in training mode (batch statistics,
    /// nothing updated, no dropout) on the same validation batches.
    fn evaluate(&self, model: &Self::Model, step: usize) -> EvalRow;

    /// A training loss above this counts as divergence: 100 x the loss of a uniform guess,
    /// far beyond anything a training run passes through.
    fn loss_limit(&self) -> f64;

    /// Facts about the data that the run's summary records.
    fn describe(&self, _summary: &mut Summary) {}
}

/// The language model on padded sentences.
pub struct TextTask<'a> {
    config: &'a RunConfig,
    data: &'a TextData,
    batches: TrainBatches<'a>,
    valid: Vec<TextBatch>,
    /// The training device (with autodiff) and the evaluation device (without).
    device: Device,
    eval_device: Device,
}

impl<'a> TextTask<'a> {
    pub fn new(
        config: &'a RunConfig,
        data: &'a TextData,
        device: &Device,
        eval_device: &Device,
    ) -> Self {
        let plan = config.batch_plan();
        Self {
            config,
            data,
            batches: TrainBatches::new(&data.train.examples, plan, config.seed),
            valid: batcher::eval_batches(
                &data.valid.examples,
                &plan,
                config.eval_batches,
                config.eval_batching.unwrap_or_default(),
            ),
            device: device.clone(),
            eval_device: eval_device.clone(),
        }
    }
}

impl Task for TextTask<'_> {
    type Model = LanguageModel;

    fn model(&self, init_device: &Device, device: &Device) -> LanguageModel {
        let lm = self.config.lm_config(self.data.vocab.len());
        let norm = self.config.norm_config();
        seeded_init(self.config.seed, init_device, device, |d| lm.init(&norm, d))
    }

    fn forward(&mut self, model: &LanguageModel, step: usize) -> Forward {
        let batch = self.batches.next().expect("training split is not empty");
        let t = batch.to_device(&self.device);
        let ctx = NormCtx {
            mask: Some(&t.mask),
            n_real: t.n_real,
            training: true,
            update_running: true,
            step,
        };
        let dropout = DropoutRng::new(self.config.seed, step);
        let out = model.forward_loss_dropout(&t, &ctx, Some(&dropout));
        Forward {
            loss: out.loss,
            stats: out.stats,
            batch: BatchInfo {
                tokens: t.n_real,
                batch: batch.batch,
                time: batch.time,
                padding_fraction: batch.padding_fraction(),
                positions: batch.batch * batch.time,
            },
        }
    }

    fn skip_batches(&mut self, n: usize) {
        for _ in 0..n {
            self.batches.next();
        }
    }

    fn evaluate(&self, model: &LanguageModel, step: usize) -> EvalRow {
        let model = model.valid();
        let mut sums = [0.0f64; 2];
        let mut tokens = 0usize;
        for batch in &self.valid {
            let t = batch.to_device(&self.eval_device);
            for (i, training) in [false, true].into_iter().enumerate() {
                let ctx = NormCtx {
                    mask: Some(&t.mask),
                    n_real: t.n_real,
                    training,
                    update_running: false,
                    step,
                };
                let loss: f64 = model.forward_loss(&t, &ctx).loss.into_scalar::<f64>();
                sums[i] += loss * t.n_real as f64;
            }
            tokens += t.n_real;
        }
        let mean = |s: f64| s / tokens.max(1) as f64;
        EvalRow {
            step,
            eval_loss: mean(sums[0]),
            eval_ppl: Some(mean(sums[0]).exp()),
            train_mode_loss: mean(sums[1]),
            train_mode_ppl: Some(mean(sums[1]).exp()),
            eval_accuracy: None,
            train_mode_accuracy: None,
            tokens,
        }
    }

    fn loss_limit(&self) -> f64 {
        100.0 * (self.data.vocab.len() as f64).ln()
    }

    fn describe(&self, summary: &mut Summary) {
        summary.unigram_valid_loss = Some(self.data.unigram_valid_loss);
        summary.vocab_size = Some(self.data.vocab.len());
        summary.truncated_train_sentences = Some(self.data.train.truncated);
        summary.train_examples = Some(self.data.train.examples.len());
    }
}

/// The ResNet on images, the vision contrast.
pub struct ImageTask<'a> {
    config: &'a RunConfig,
    train: &'a ImageSet,
    valid: &'a ImageSet,
    batches: IndexBatches,
    device: Device,
    eval_device: Device,
}

impl<'a> ImageTask<'a> {
    pub fn new(
        config: &'a RunConfig,
        train: &'a ImageSet,
        valid: &'a ImageSet,
        device: &Device,
        eval_device: &Device,
    ) -> Self {
        Self {
            config,
            train,
            valid,
            batches: IndexBatches::new(train.len(), config.batch_size, config.seed),
            device: device.clone(),
            eval_device: eval_device.clone(),
        }
    }
}

impl Task for ImageTask<'_> {
    type Model = ImageModel;

    fn describe(&self, summary: &mut Summary) {
        summary.train_examples = Some(self.train.len());
    }

    fn model(&self, init_device: &Device, device: &Device) -> ImageModel {
        let cnn = self.config.cnn_config();
        let norm = self.config.norm_config();
        seeded_init(self.config.seed, init_device, device, |d| {
            cnn.init(&norm, d)
        })
    }

    fn forward(&mut self, model: &ImageModel, step: usize) -> Forward {
        let idx = self
            .batches
            .next()
            .expect("image training split is not empty");
        let b = images::image_batch(self.train, &idx, &self.device);
        let [_, _, h, w] = b.images.dims();
        let positions = b.batch * h * w;
        let ctx = NormCtx {
            mask: None,
            n_real: positions,
            training: true,
            update_running: true,
            step,
        };
        let out = model.forward_loss(b.images, b.labels, &ctx);
        Forward {
            loss: out.loss,
            stats: out.stats,
            batch: BatchInfo {
                tokens: b.batch,
                batch: b.batch,
                time: 1,
                padding_fraction: 0.0,
                positions,
            },
        }
    }

    fn skip_batches(&mut self, n: usize) {
        for _ in 0..n {
            self.batches.next();
        }
    }

    fn evaluate(&self, model: &ImageModel, step: usize) -> EvalRow {
        let model = model.valid();
        let idx: Vec<usize> = (0..self.valid.len()).collect();
        let chunks: Vec<&[usize]> = idx.chunks(self.config.batch_size).collect();
        let take = match self.config.eval_batches {
            0 => chunks.len(),
            limit => limit.min(chunks.len()),
        };
        let (mut loss, mut correct, mut n) = ([0.0f64; 2], [0i64; 2], 0usize);
        for chunk in &chunks[..take] {
            let b = images::image_batch(self.valid, chunk, &self.eval_device);
            let [_, _, h, w] = b.images.dims();
            for (i, training) in [false, true].into_iter().enumerate() {
                let ctx = NormCtx {
                    mask: None,
                    n_real: b.batch * h * w,
                    training,
                    update_running: false,
                    step,
                };
                let out = model.forward_loss(b.images.clone(), b.labels.clone(), &ctx);
                loss[i] += out.loss.into_scalar::<f64>() * b.batch as f64;
                correct[i] += out.correct.into_scalar::<i64>();
            }
            n += b.batch;
        }
        let n_f = n.max(1) as f64;
        EvalRow {
            step,
            eval_loss: loss[0] / n_f,
            eval_ppl: None,
            train_mode_loss: loss[1] / n_f,
            train_mode_ppl: None,
            eval_accuracy: Some(correct[0] as f64 / n_f),
            train_mode_accuracy: Some(correct[1] as f64 / n_f),
            tokens: n,
        }
    }

    fn loss_limit(&self) -> f64 {
        100.0 * (self.config.cnn_config().classes as f64).ln()
    }
}
