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

#[test]
fn a_check_of_nothing_or_of_zeros_fails() {
    let g = gpu();
    let x = (vec![3], rand_vec(3, 42, -1.0, 1.0));
    // No element selected.
    let none = GradcheckOptions {
        inputs: Some(vec![]),
        ..opts()
    };
    let e = gradcheck(&g, std::slice::from_ref(&x), &none, |t, v| {
        ops::tanh(t, v[0])
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("checked nothing"), "{e}");
    // A function that does not depend on its input: every gradient is zero, so any backward
    // would pass; the check must say so instead.
    let e = gradcheck(&g, &[x], &opts(), |t, v| ops::scale(t, v[0], 0.0, 1.0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("tiny"), "{e}");
}

/// Gaussian heads for the posterior and the prior from `[rows, 2S]` statistics, the balanced
/// KL between them and the posterior sample through a quadratic (the decoder's place): the
/// path the world model's loss takes. With `fd_reference` (the finite-difference evaluations)
/// the KL is replaced by what its gradient means, `alpha * KL(q0 || p) + (1 - alpha) *
/// KL(q || p0)` with q0, p0 the heads at the unperturbed statistics `x0`, since the balanced
/// KL's value is KL(q || p) whatever alpha.
fn heads_then_balanced_kl(
    t: &rssm::tensor::Tape,
    v: &[rssm::tensor::Var],
    x0: &[(Vec<usize>, Vec<f32>)],
    eps: &rssm::tensor::Tensor,
    alpha: f32,
    fd_reference: bool,
) -> rssm::Result<rssm::tensor::Var> {
    use rssm::ops::gaussian::{gaussian_head, Noise};
    use rssm::ops::kl::kl_balanced;
    let g = t.value(v[0]).gpu().clone();
    let zeros = rssm::tensor::Tensor::zeros(&g, eps.shape())?;
    let head = |stats, noise| gaussian_head(t, stats, 0.1, noise);
    let q = head(v[0], Noise::Given(eps.clone()))?;
    let p = head(v[1], Noise::Given(zeros.clone()))?;
    let kl = if fd_reference {
        let c = |i: usize| -> rssm::Result<rssm::tensor::Var> {
            Ok(t.constant(&rssm::tensor::Tensor::from_vec(&g, &x0[i].0, &x0[i].1)?))
        };
        let q0 = head(c(0)?, Noise::Given(eps.clone()))?;
        let p0 = head(c(1)?, Noise::Given(zeros))?;
        let prior_side = kl_balanced(t, (q0.mean, q0.std), (p.mean, p.std), alpha, 0.0)?.value;
        let post_side = kl_balanced(t, (q.mean, q.std), (p0.mean, p0.std), alpha, 0.0)?.value;
        let a = ops::scale(t, prior_side, alpha, 0.0)?;
        let b = ops::scale(t, post_side, 1.0 - alpha, 0.0)?;
        ops::add(t, a, b)?
    } else {
        kl_balanced(t, (q.mean, q.std), (p.mean, p.std), alpha, 0.0)?.value
    };
    let decoder = ops::mean_all(t, ops::mul(t, q.sample, q.sample)?)?;
    let decoder = ops::reshape(t, decoder, &[1])?;
    let kl = ops::reshape(t, kl, &[1])?;
    ops::add(t, kl, decoder)
}

#[test]
fn gaussian_heads_into_balanced_kl() {
    let g = gpu();
    let (rows, s) = (4, 5);
    let inputs = vec![
        (vec![rows, 2 * s], rand_vec(rows * 2 * s, 60, -1.0, 1.0)),
        (vec![rows, 2 * s], rand_vec(rows * 2 * s, 61, -1.0, 1.0)),
    ];
    let eps =
        rssm::tensor::Tensor::from_vec(&g, &[rows, s], &rand_vec(rows * s, 62, -1.5, 1.5)).unwrap();
    let x0 = inputs.clone();
    for alpha in [0.8f32, 0.3] {
        let report = gradcheck(&g, &inputs, &opts(), |t, v| {
            heads_then_balanced_kl(t, v, &x0, &eps, alpha, !t.grad_enabled())
        })
        .unwrap_or_else(|e| panic!("alpha {alpha}: {e}"));
        assert!(report.max_abs_grad > 0.05, "{report:?}");
    }
    // The check sees the balance: the backward at alpha 0.5 against the reference at 0.8
    // fails (at 0.5 both sides weigh the same and swapping them would go unnoticed).
    let r = gradcheck(&g, &inputs, &opts(), |t, v| {
        let alpha = if t.grad_enabled() { 0.5 } else { 0.8 };
        heads_then_balanced_kl(t, v, &x0, &eps, alpha, !t.grad_enabled())
    });
    assert!(r.is_err(), "a KL balanced at 0.5 passed for 0.8");
}

#[test]
fn mlp_op_against_finite_differences() {
    // `ops::mlp` (one op, the activation backward fused into the matmuls): the same heads as
    // `mlp_composite`, with an input width that is not a multiple of 4.
    let g = gpu();
    let inputs = [
        (vec![2, 2, 5], rand_vec(20, 60, -1.0, 1.0)),
        (vec![6, 5], rand_vec(30, 61, -0.8, 0.8)),
        (vec![6], rand_vec(6, 62, -0.1, 0.1)),
        (vec![5, 6], rand_vec(30, 63, -0.8, 0.8)),
        (vec![5], rand_vec(5, 64, -0.1, 0.1)),
        (vec![2, 5], rand_vec(10, 65, -0.8, 0.8)),
        (vec![2], vec![0.1, -0.2]),
    ];
    gradcheck(&g, &inputs, &opts(), |t, v| {
        let layers = [(v[1], v[2]), (v[3], v[4]), (v[5], v[6])];
        let y = ops::mlp(t, v[0], &layers, Act::Elu)?;
        ops::mean_all(t, y)
    })
    .unwrap();
}
