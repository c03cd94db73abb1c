//! Host access to burn-flex tensors for the fused host paths of the custom operations.

use burn::backend::flex::FlexTensor;
use std::borrow::Cow;

/// The f32 elements of `t` in row-major order: borrowed when it is stored that way, copied into
/// that order otherwise (a strided or transposed view).
pub fn flex_f32(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => s.into(),
        None => t
            .clone()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("converted to f32")
            .into(),
    }
}
