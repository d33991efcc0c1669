//! Finite-difference gradient checks of every differentiable core op and of small composites.
//! (Model kernels have theirs in `ops_<family>.rs`.) See `rssm::tensor::gradcheck` for the step
//! and the tolerances.

mod common;

use common::{gpu, rand_away_from_zero, rand_vec};
use rssm::ops::{self, elementwise, shape, Act, Binary, Unary};
use rssm::tensor::{gradcheck, GradcheckOptions};

fn opts() -> GradcheckOptions {
    GradcheckOptions::default()
}

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
        gradcheck(&g, &[(vec![7], x)], &opts(), |t, v| {
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
            gradcheck(&g, &inputs, &opts(), |t, v| {
                elementwise::binary(t, v[0], v[1], op)
            })
            .unwrap_or_else(|e| panic!("{op:?} b{b_shape:?}: {e}"));
            // broadcast operand first
            let swapped = [inputs[1].clone(), inputs[0].clone()];
            gradcheck(&g, &swapped, &opts(), |t, v| {
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
    gradcheck(&g, &[(vec![5], x.clone())], &opts(), |t, v| {
        ops::mul(t, v[0], v[0])
    })
    .unwrap();
    gradcheck(&g, &[(vec![5], x)], &opts(), |t, v| ops::add(t, v[0], v[0])).unwrap();
}

#[test]
fn matmul_all_transposes() {
    let g = gpu();
    for ta in [false, true] {
        for tb in [false, true] {
            let (m, n, k) = (3, 4, 5);
            let a_shape = if ta { vec![k, m] } else { vec![m, k] };
            let b_shape = if tb { vec![n, k] } else { vec![k, n] };
            let inputs = [
                (a_shape, rand_vec(m * k, 5, -1.0, 1.0)),
                (b_shape, rand_vec(k * n, 6, -1.0, 1.0)),
            ];
            gradcheck(&g, &inputs, &opts(), |t, v| {
                ops::matmul(t, v[0], v[1], ta, tb)
            })
            .unwrap_or_else(|e| panic!("ta={ta} tb={tb}: {e}"));
        }
    }
}

#[test]
fn linear_with_fused_activations() {
    let g = gpu();
    for act in [Act::None, Act::Relu, Act::Elu] {
        let inputs = [
            (vec![2, 3, 4], rand_vec(24, 7, -1.0, 1.0)),
            (vec![5, 4], rand_vec(20, 8, -1.0, 1.0)),
            (vec![5], rand_vec(5, 9, -1.0, 1.0)),
        ];
        gradcheck(&g, &inputs, &opts(), |t, v| {
            ops::linear(t, v[0], v[1], Some(v[2]), act)
        })
        .unwrap_or_else(|e| panic!("{act:?}: {e}"));
    }
}

#[test]
fn reductions() {
    let g = gpu();
    let x = (vec![3, 5], rand_vec(15, 10, -1.0, 1.0));
    gradcheck(&g, std::slice::from_ref(&x), &opts(), |t, v| {
        ops::sum_rows(t, v[0], false)
    })
    .unwrap();
    gradcheck(&g, std::slice::from_ref(&x), &opts(), |t, v| {
        ops::sum_rows(t, v[0], true)
    })
    .unwrap();
    gradcheck(&g, std::slice::from_ref(&x), &opts(), |t, v| {
        ops::sum_leading(t, v[0])
    })
    .unwrap();
    gradcheck(&g, std::slice::from_ref(&x), &opts(), |t, v| {
        ops::sum_all(t, v[0])
    })
    .unwrap();
    gradcheck(&g, &[x], &opts(), |t, v| ops::mean_all(t, v[0])).unwrap();
}

#[test]
fn shape_ops() {
    let g = gpu();
    let a = (vec![3, 2], rand_vec(6, 11, -1.0, 1.0));
    let b = (vec![3, 4], rand_vec(12, 12, -1.0, 1.0));
    gradcheck(&g, &[a.clone(), b.clone()], &opts(), |t, v| {
        ops::concat_last(t, &[v[0], v[1]])
    })
    .unwrap();
    gradcheck(&g, std::slice::from_ref(&b), &opts(), |t, v| {
        Ok(ops::split_last(t, v[0], &[1, 3])?[1])
    })
    .unwrap();
    let seq = (vec![2, 3, 4], rand_vec(24, 13, -1.0, 1.0));
    gradcheck(&g, std::slice::from_ref(&seq), &opts(), |t, v| {
        shape::slice_time(t, v[0], 1)
    })
    .unwrap();
    gradcheck(&g, &[a.clone(), a], &opts(), |t, v| {
        ops::stack_time(t, &[v[0], v[1]])
    })
    .unwrap();
    gradcheck(&g, &[seq], &opts(), |t, v| ops::reshape(t, v[0], &[6, 4])).unwrap();
}

#[test]
fn mlp_composite() {
    // Two ELU layers and a linear head, then the mean: the shape of every model head.
    let g = gpu();
    let inputs = [
        (vec![4, 3], rand_vec(12, 20, -1.0, 1.0)),
        (vec![6, 3], rand_vec(18, 21, -0.8, 0.8)),
        (vec![6], rand_vec(6, 22, -0.1, 0.1)),
        (vec![5, 6], rand_vec(30, 23, -0.8, 0.8)),
        (vec![5], rand_vec(5, 24, -0.1, 0.1)),
        (vec![1, 5], rand_vec(5, 25, -0.8, 0.8)),
        (vec![1], vec![0.1]),
    ];
    gradcheck(&g, &inputs, &opts(), |t, v| {
        let h = ops::linear(t, v[0], v[1], Some(v[2]), Act::Elu)?;
        let h = ops::linear(t, h, v[3], Some(v[4]), Act::Elu)?;
        let y = ops::linear(t, h, v[5], Some(v[6]), Act::None)?;
        ops::mean_all(t, y)
    })
    .unwrap();
}

#[test]
fn concat_split_slice_chain() {
    // [B,T,F] -> slice two steps -> concat with a second input -> split -> recombine through
    // tanh and a product: every shape op's backward feeds another's.
    let g = gpu();
    let inputs = [
        (vec![2, 3, 4], rand_vec(24, 30, -1.0, 1.0)),
        (vec![2, 2], rand_vec(4, 31, -1.0, 1.0)),
    ];
    gradcheck(&g, &inputs, &opts(), |t, v| {
        let s0 = shape::slice_time(t, v[0], 0)?;
        let s2 = shape::slice_time(t, v[0], 2)?;
        let c = ops::concat_last(t, &[s0, v[1], s2])?; // [2, 10]
        let parts = ops::split_last(t, c, &[3, 7])?;
        let a = ops::tanh(t, parts[1])?;
        let s = ops::sum_rows(t, a, false)?; // [2]
        let p = ops::mul(t, s, s)?;
        ops::stack_time(t, &[p, s])
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

#[test]
fn a_wrong_gradient_is_caught() {
    // The checker itself must be able to fail: y = x * sg(x) looks like x^2 but its gradient is
    // x, not 2x, so checking it against the finite differences of x^2 must fail.
    let g = gpu();
    let x = rand_vec(3, 41, 0.5, 1.0);
    let r = gradcheck(&g, &[(vec![3], x)], &opts(), |t, v| {
        if t.grad_enabled() {
            let d = t.detach(v[0]);
            ops::mul(t, v[0], d)
        } else {
            ops::mul(t, v[0], v[0])
        }
    });
    assert!(r.is_err(), "gradcheck accepted a wrong gradient");
}
