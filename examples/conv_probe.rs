#![allow(deprecated)]
use burn::tensor::{Device, Distribution, Tensor};
use std::time::Instant;
fn main() {
    let device = Device::ndarray().autodiff();
    let (b, c, hw) = (128usize, 16usize, 28usize);
    let x = Tensor::<4>::random([b, c, hw, hw], Distribution::Default, &device).require_grad();
    let w = Tensor::<3>::random([1, c, 9 * c], Distribution::Default, &device).require_grad();
    for _ in 0..3 {
        let t = Instant::now();
        let xp = x.clone().pad((1, 1, 1, 1), burn::tensor::ops::PadMode::Constant(0.0));
        let _ = xp.clone().sum().into_scalar::<f32>();
        let t1 = t.elapsed();
        let mut sh = vec![];
        for i in 0..3 { for j in 0..3 { sh.push(xp.clone().narrow(2, i, hw).narrow(3, j, hw)); } }
        let cols = Tensor::cat(sh, 1).reshape([b, 9 * c, hw * hw]);
        let _ = cols.clone().sum().into_scalar::<f32>();
        let t2 = t.elapsed();
        let y = w.clone().matmul(cols);
        let _ = y.clone().sum().into_scalar::<f32>();
        let t3 = t.elapsed();
        let tok = y.swap_dims(1, 2);
        let m = tok.clone().mean_dim(1);
        let z = (tok - m).swap_dims(1,2);
        let g = z.sum().backward();
        let _ = x.grad(&g).unwrap().sum().into_scalar::<f32>();
        println!("pad {:?} cols {:?} matmul {:?} total {:?}", t1, t2, t3, t.elapsed());
    }
}
