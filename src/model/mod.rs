//! Models. They know norms only through the [`crate::norm::Norm`] trait and the
//! [`crate::norm::NormLayer`] that [`crate::norm::NormConfig`] builds by name.

pub mod attention;
pub mod cnn;
pub mod lm;

pub use crate::ops::DropoutRng;
pub use cnn::{CnnConfig, ImageModel, ImageOutput};
pub use lm::{LanguageModel, LmConfig, LmOutput, NormPosition};

use crate::norm::NormLayer;

/// A model whose norm layers the training loop can list (for probes and `after_backward`).
pub trait NormedModel: burn::module::Module {
    /// Layer names, in the order the forward pass reports statistics.
    fn norm_names(&self) -> Vec<String>;
    /// The norm layers, in the same order.
    fn norms(&self) -> Vec<&NormLayer>;
}

impl NormedModel for LanguageModel {
    fn norm_names(&self) -> Vec<String> {
        LanguageModel::norm_names(self)
    }
    fn norms(&self) -> Vec<&NormLayer> {
        LanguageModel::norms(self)
    }
}

impl NormedModel for ImageModel {
    fn norm_names(&self) -> Vec<String> {
        ImageModel::norm_names(self)
    }
    fn norms(&self) -> Vec<&NormLayer> {
        ImageModel::norms(self)
    }
}
