//! The elementwise family (`shaders/elementwise.wgsl`, `ops::elementwise`): every unary and
//! binary op forward and backward against the reference, at extremes, past 65,535 workgroups,
//! with broadcasting; finite-difference checks; operands past one storage binding.

mod common;

use common::*;
use rssm::gpu::Gpu;
use rssm::ops::elementwise::{self, binary_forward, unary_backward, unary_forward, Binary, Unary};
use rssm::ops::{self};
use rssm::tensor::{gradcheck, GradcheckOptions, Tape, Tensor};

const UNARY: [Unary; 8] = [
    Unary::Affine(-1.5, 0.25),
    Unary::Relu,
    Unary::Elu,
    Unary::Tanh,
    Unary::Sigmoid,
    Unary::Softplus,
    Unary::Exp,
    Unary::Square,
];

#[test]
fn unary_forward_and_backward_match_reference() {
    let g = gpu();
    for op in UNARY {
        for &n in &SIZES {
            let x = rand_vec(n, n as u64, -4.0, 4.0);
            let gy = rand_vec(n, n as u64 + 7, -1.0, 1.0);
            let xt = Tensor::from_vec(&g, &[n], &x).unwrap();
            let yt = unary_forward(&xt, op).unwrap();
            let want: Vec<f32> = x
                .iter()
                .map(|v| elementwise::reference::unary(op, *v as f64) as f32)
                .collect();
            assert_close(
                &yt.to_vec().unwrap(),
                &want,
                1e-5,
                1e-5,
                &format!("{op:?} n={n}"),
            );
            // backward, through the tape so the saved tensor (x or y) is the op's own choice
            let t = Tape::new(&g);
            let xv = t.param(&xt);
            let y = elementwise::unary(&t, xv, op).unwrap();
            let grads = t
                .backward_with(y, Tensor::from_vec(&g, &[n], &gy).unwrap())
                .unwrap();
            let want: Vec<f32> = x
                .iter()
                .zip(&gy)
                .map(|(x, gy)| {
                    (elementwise::reference::unary_grad(op, *x as f64) * *gy as f64) as f32
                })
                .collect();
            assert_close(
                &grads.get(xv).unwrap().to_vec().unwrap(),
                &want,
                1e-5,
                1e-4,
                &format!("{op:?}' n={n}"),
            );
        }
    }
}

#[test]
fn unary_stable_at_extremes() {
    let g = gpu();
    let x = vec![-1000.0, -90.0, -30.0, 0.0, 30.0, 90.0, 1000.0];
    let xt = Tensor::from_vec(&g, &[7], &x).unwrap();
    for op in [Unary::Tanh, Unary::Sigmoid, Unary::Softplus] {
        let y = unary_forward(&xt, op).unwrap().to_vec().unwrap();
        let want: Vec<f32> = x
            .iter()
            .map(|v| elementwise::reference::unary(op, *v as f64) as f32)
            .collect();
        assert_close(&y, &want, 1e-6, 1e-6, &format!("{op:?} extremes"));
        let gx = Tensor::empty(&g, &[7]).unwrap();
        let gy = Tensor::full(&g, &[7], 1.0).unwrap();
        // backward from x for softplus, from y for the others
        let saved = if op == Unary::Softplus {
            xt.clone()
        } else {
            unary_forward(&xt, op).unwrap()
        };
        unary_backward(&saved, &gy, &gx, op, false).unwrap();
        assert!(
            gx.to_vec().unwrap().iter().all(|v| v.is_finite()),
            "{op:?} gradient not finite"
        );
    }
}

#[test]
fn elementwise_more_than_65535_workgroups() {
    let g = gpu();
    let n = 65_535 * 256 + 1_000; // 65,539 workgroups of 256
    let x = rand_vec(n, 3, -2.0, 2.0);
    let xt = Tensor::from_vec(&g, &[n], &x).unwrap();
    let y = unary_forward(&xt, Unary::Affine(2.0, 1.0))
        .unwrap()
        .to_vec()
        .unwrap();
    let want: Vec<f32> = x.iter().map(|v| 2.0 * v + 1.0).collect();
    assert_close(&y, &want, 1e-6, 1e-6, "affine, 16.8M elements");
}

#[test]
fn binary_broadcast_forward_and_backward() {
    let g = gpu();
    for op in [Binary::Add, Binary::Sub, Binary::Mul] {
        for &(rows, cols) in &[(1, 1), (3, 7), (33, 1), (7, 257), (257, 3)] {
            let a = rand_vec(rows * cols, 11, -2.0, 2.0);
            for b_shape in [vec![rows, cols], vec![cols], vec![1]] {
                let bl: usize = b_shape.iter().product();
                let b = rand_vec(bl, 12, -2.0, 2.0);
                let at = Tensor::from_vec(&g, &[rows, cols], &a).unwrap();
                let bt = Tensor::from_vec(&g, &b_shape, &b).unwrap();
                let z = binary_forward(&at, &bt, op).unwrap();
                assert_eq!(z.shape(), &[rows, cols]);
                assert_close(
                    &z.to_vec().unwrap(),
                    &elementwise::reference::binary(op, &a, &b),
                    1e-6,
                    1e-6,
                    &format!("{op:?} {rows}x{cols} b{b_shape:?}"),
                );
                // backward: gradient of a and of the broadcast b (summed over rows)
                let gz = rand_vec(rows * cols, 13, -1.0, 1.0);
                let t = Tape::new(&g);
                let (av, bv) = (t.param(&at), t.param(&bt));
                let z = elementwise::binary(&t, av, bv, op).unwrap();
                let grads = t
                    .backward_with(z, Tensor::from_vec(&g, &[rows, cols], &gz).unwrap())
                    .unwrap();
                let mut ga = vec![0f64; a.len()];
                let mut gb = vec![0f64; bl];
                for i in 0..a.len() {
                    let (x, y, d) = (a[i] as f64, b[i % bl] as f64, gz[i] as f64);
                    let (da, db) = match op {
                        Binary::Add => (1.0, 1.0),
                        Binary::Sub => (1.0, -1.0),
                        Binary::Mul => (y, x),
                    };
                    ga[i] += d * da;
                    gb[i % bl] += d * db;
                }
                let f = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<_>>();
                assert_close(
                    &grads.get(av).unwrap().to_vec().unwrap(),
                    &f(ga),
                    1e-5,
                    1e-5,
                    "binary ga",
                );
                assert_close(
                    &grads.get(bv).unwrap().to_vec().unwrap(),
                    &f(gb),
                    1e-4,
                    1e-4,
                    "binary gb",
                );
            }
        }
    }
}

#[test]
fn binary_rejects_incompatible_shapes() {
    let g = gpu();
    let a = Tensor::zeros(&g, &[3, 4]).unwrap();
    let b = Tensor::zeros(&g, &[3]).unwrap();
    let err = binary_forward(&a, &b, Binary::Add).unwrap_err().to_string();
    assert!(err.contains("cannot broadcast"), "{err}");
}

// Finite differences.

#[test]
fn unary_ops() {
    let g = gpu();
    for op in [
        Unary::Affine(-1.5, 0.3),
        Unary::Relu,
        Unary::Elu,
        Unary::Tanh,
        Unary::Sigmoid,
        Unary::Softplus,
        Unary::Exp,
        Unary::Square,
    ] {
        // |x| >= 0.05 > step: finite differences never straddle the ReLU/ELU kink.
        let x = rand_away_from_zero(7, 1, 0.05, 2.0);
        gradcheck(&g, &[(vec![7], x)], &GradcheckOptions::default(), |t, v| {
            elementwise::unary(t, v[0], op)
        })
        .unwrap_or_else(|e| panic!("{op:?}: {e}"));
    }
}

#[test]
fn binary_ops_with_broadcasting() {
    let g = gpu();
    for op in [Binary::Add, Binary::Sub, Binary::Mul] {
        for b_shape in [vec![3, 4], vec![4], vec![1]] {
            let bl = b_shape.iter().product();
            let inputs = [
                (vec![3, 4], rand_vec(12, 2, -1.0, 1.0)),
                (b_shape.clone(), rand_vec(bl, 3, -1.0, 1.0)),
            ];
            gradcheck(&g, &inputs, &GradcheckOptions::default(), |t, v| {
                elementwise::binary(t, v[0], v[1], op)
            })
            .unwrap_or_else(|e| panic!("{op:?} b{b_shape:?}: {e}"));
            // broadcast operand first
            let swapped = [inputs[1].clone(), inputs[0].clone()];
            gradcheck(&g, &swapped, &GradcheckOptions::default(), |t, v| {
                elementwise::binary(t, v[0], v[1], op)
            })
            .unwrap_or_else(|e| panic!("{op:?} a{b_shape:?}: {e}"));
        }
    }
}

#[test]
fn same_input_used_twice() {
    // x * x and x + x: the gradient of one input arrives from both operands.
    let g = gpu();
    let x = rand_vec(5, 4, -1.0, 1.0);
    gradcheck(
        &g,
        &[(vec![5], x.clone())],
        &GradcheckOptions::default(),
        |t, v| ops::mul(t, v[0], v[0]),
    )
    .unwrap();
    gradcheck(&g, &[(vec![5], x)], &GradcheckOptions::default(), |t, v| {
        ops::add(t, v[0], v[0])
    })
    .unwrap();
}

#[test]
fn stop_gradient_blocks() {
    // y = x * detach(x): the gradient is detach(x) only, not 2x.
    let g = gpu();
    let x = rand_vec(4, 40, 0.5, 1.0);
    let t = rssm::tensor::Tape::new(&g);
    let xv = t.param(&rssm::tensor::Tensor::from_vec(&g, &[4], &x).unwrap());
    let d = t.detach(xv);
    let y = ops::mul(&t, xv, d).unwrap();
    let s = ops::sum_all(&t, y).unwrap();
    let grads = t.backward(s).unwrap();
    let gx = grads.get(xv).unwrap().to_vec().unwrap();
    common::assert_close(&gx, &x, 1e-6, 1e-6, "d/dx x*sg(x)");
}

// Operands past one storage binding.

#[test]
fn elementwise_ops_with_broadcasting_match_one_dispatch() {
    let run = |g: &Gpu| {
        let t = Tape::new(g);
        let x = t.param(&Tensor::from_vec(g, &[500, 40], &rand_vec(20_000, 8, -2.0, 2.0)).unwrap());
        let r = t.param(&Tensor::from_vec(g, &[40], &rand_vec(40, 9, -1.0, 1.0)).unwrap());
        let y = ops::add(&t, x, r).unwrap();
        let y = ops::tanh(&t, y).unwrap();
        let z = ops::mul(&t, y, x).unwrap();
        let loss = ops::mean_all(&t, z).unwrap();
        let zv = t.value(z).to_vec().unwrap();
        let grads = t.backward(loss).unwrap();
        let gx = grads.get(x).unwrap().to_vec().unwrap();
        (zv, gx, grads.get(r).unwrap().to_vec().unwrap())
    };
    let (z0, g0, r0) = run(&common::gpu());
    // 80,000-byte tensors in 4 KiB bindings; the broadcast operand's gradient sums its 500
    // copies over slices.
    let g = capped(4 << 10);
    let (z1, g1, r1) = run(&g);
    assert_close(&z1, &z0, 1e-6, 1e-6, "z");
    assert_close(&g1, &g0, 1e-7, 1e-5, "dx");
    assert_close(&r1, &r0, 1e-7, 1e-4, "dr");
}
