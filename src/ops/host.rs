//! Host access to burn-flex tensors for the fused host paths of the custom operations.

use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, TensorData};
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

/// `t` after `f` has changed its f32 elements (row-major) in place: in `t`'s own buffer when
/// `t` is its only user and stored in row-major order, which saves a copy of the whole tensor
/// on the thread that runs the step (the LM head's logits are 4 million elements); else in a
/// row-major copy.
pub fn flex_f32_in_place(mut t: FlexTensor, f: impl FnOnce(&mut [f32])) -> FlexTensor {
    if t.dtype() == DType::F32 {
        if let Some((start, end)) = t.layout().contiguous_offsets() {
            if let Some(storage) = t.try_storage_mut::<f32>() {
                f(&mut storage[start..end]);
                return t;
            }
        }
    }
    let shape = t.layout().shape().clone();
    let mut v = flex_f32(&t).into_owned();
    f(&mut v);
    FlexTensor::from_data(TensorData::new(v, shape))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(values: Vec<f32>, shape: [usize; 2]) -> FlexTensor {
        FlexTensor::from_data(TensorData::new(values, shape))
    }

    #[test]
    fn in_place_changes_a_sole_tensor_in_its_buffer_and_copies_a_shared_or_strided_one() {
        let double = |x: &mut [f32]| x.iter_mut().for_each(|v| *v *= 2.0);
        // sole user: the same buffer comes back, changed
        let t = tensor(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]);
        let before = t.storage::<f32>().as_ptr();
        let t = flex_f32_in_place(t, double);
        assert_eq!(t.storage::<f32>().as_ptr(), before);
        assert_eq!(&*flex_f32(&t), &[2.0, 4.0, 6.0, 8.0, 10.0, 12.0]);
        // shared: the other user keeps the old values
        let other = tensor(vec![1.0, 2.0, 3.0, 4.0], [2, 2]);
        let t = flex_f32_in_place(other.clone(), double);
        assert_eq!(&*flex_f32(&t), &[2.0, 4.0, 6.0, 8.0]);
        assert_eq!(&*flex_f32(&other), &[1.0, 2.0, 3.0, 4.0]);
        // a transposed view: changed in row-major order of the view
        let t = flex_f32_in_place(
            tensor(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]).transpose(0, 1),
            double,
        );
        assert_eq!(t.layout().shape().clone(), [3, 2].into());
        assert_eq!(&*flex_f32(&t), &[2.0, 8.0, 4.0, 10.0, 6.0, 12.0]);
        // a view inside its buffer (rows 1..): only the view's elements
        let t = flex_f32_in_place(
            tensor(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [3, 2]).narrow(0, 1, 2),
            double,
        );
        assert_eq!(&*flex_f32(&t), &[6.0, 8.0, 10.0, 12.0]);
    }
}
