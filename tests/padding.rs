//! `linear` with an input width that is not a multiple of 4 (the features: stoch + deter = 230)
//! pads x and W with zero columns on CPU drivers to take the vec4 kernel: the output and every
//! gradient must match the unpadded path.

mod common;

use common::{assert_close, rand_vec};
use rssm::ops::{self, Act};
use rssm::tensor::{Tape, Tensor};

#[test]
fn padded_linear_matches_the_unpadded_one() {
    let (rows, inp, out) = (37, 230, 24);
    let run = |pad: bool| {
        let g = common::gpu_with(|t| t.pad_narrow = pad);
        let x = Tensor::from_vec(&g, &[rows, inp], &rand_vec(rows * inp, 1, -1.0, 1.0)).unwrap();
        let w = Tensor::from_vec(&g, &[out, inp], &rand_vec(out * inp, 2, -0.2, 0.2)).unwrap();
        let b = Tensor::from_vec(&g, &[out], &rand_vec(out, 3, -0.1, 0.1)).unwrap();
        let t = Tape::new(&g);
        let (xv, wv, bv) = (t.param(&x), t.param(&w), t.param(&b));
        let y = ops::linear(&t, xv, wv, Some(bv), Act::Elu).unwrap();
        let shape = t.value(y).shape().to_vec();
        let sq = ops::mul(&t, y, y).unwrap();
        let loss = ops::sum_all(&t, sq).unwrap();
        let yv = t.value(y).to_vec().unwrap();
        let grads = t.backward(loss).unwrap();
        let gs: Vec<(Vec<usize>, Vec<f32>)> = [xv, wv, bv]
            .iter()
            .map(|v| {
                let gt = grads.get(*v).unwrap();
                (gt.shape().to_vec(), gt.to_vec().unwrap())
            })
            .collect();
        (shape, yv, gs)
    };
    let (s0, y0, g0) = run(false);
    let (s1, y1, g1) = run(true);
    assert_eq!(s0, vec![rows, out]);
    assert_eq!(s1, s0, "the padding must not show in the output");
    assert_close(&y1, &y0, 1e-5, 1e-5, "y");
    for (i, ((sa, a), (sb, b))) in g0.iter().zip(&g1).enumerate() {
        assert_eq!(sa, sb, "gradient {i} shape");
        assert_close(b, a, 1e-4, 1e-4, &format!("gradient {i}"));
    }
}
