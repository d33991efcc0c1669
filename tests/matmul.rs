//! The matmul family (`shaders/matmul*.wgsl`, `ops::matmul`): `matmul`, `matvec`, `linear`,
//! `mlp` against the plain-Rust reference at awkward sizes, past 65,535 workgroups and past a
//! driver's loop limit, on every matmul kernel the device can run (`common::matmul_variants`);
//! finite-difference checks; operands past one storage binding.

mod common;

use common::*;
use rssm::gpu::Gpu;
use rssm::ops::matmul::{matmul_into, reference as mm_ref, Act, MatmulSpec};
use rssm::ops::{self};
use rssm::tensor::{gradcheck, GradcheckOptions, Tape, Tensor};

#[allow(clippy::too_many_arguments)]
fn mm_case(
    g: &Gpu,
    (m, n, k): (usize, usize, usize),
    ta: bool,
    tb: bool,
    bias: bool,
    act: Act,
    acc: bool,
) {
    let seed = (m * 1_000_000 + n * 1000 + k) as u64;
    let a = rand_vec(m * k, seed, -1.0, 1.0);
    let b = rand_vec(k * n, seed + 1, -1.0, 1.0);
    let bias_v = rand_vec(n, seed + 2, -1.0, 1.0);
    let c0 = rand_vec(m * n, seed + 3, -1.0, 1.0);
    let (at, bt) = (
        Tensor::from_vec(g, &[m * k], &a).unwrap(),
        Tensor::from_vec(g, &[k * n], &b).unwrap(),
    );
    let biast = Tensor::from_vec(g, &[n], &bias_v).unwrap();
    let ct = Tensor::from_vec(g, &[m, n], &c0).unwrap();
    let spec = MatmulSpec {
        m,
        n,
        k,
        trans_a: ta,
        trans_b: tb,
        act,
        acc,
    };
    matmul_into(&at, &bt, bias.then_some(&biast), &ct, spec).unwrap();
    let got = ct.to_vec().unwrap();
    let mut want = mm_ref::matmul(&a, &b, bias.then_some(&bias_v[..]), m, n, k, ta, tb);
    for (i, w) in want.iter_mut().enumerate() {
        *w = match act {
            Act::None => *w,
            Act::Relu => w.max(0.0),
            Act::Elu => {
                if *w > 0.0 {
                    *w
                } else {
                    w.exp() - 1.0
                }
            }
        };
        if acc {
            *w += c0[i];
        }
    }
    let tol = 1e-5 * (k as f32).sqrt() + 1e-5;
    assert_close(
        &got,
        &want,
        tol,
        1e-4,
        &format!("matmul m={m} n={n} k={k} ta={ta} tb={tb} bias={bias} {act:?} acc={acc}"),
    );
}

/// Run `cases` on every matmul kernel the device can run: the 4x4 and the 8x8 register
/// blocks, and the subgroup kernel (`matmul_lanes`, where the device has 8-lane subgroups).
fn with_both_block_sizes(cases: impl Fn(&Gpu)) {
    for (name, g) in common::matmul_variants() {
        eprintln!("matmul variant: {name}");
        cases(&g);
    }
}

/// Every transpose combination of each size; with `variants`, also bias + ELU and accumulate.
fn transposed_cases(g: &Gpu, sizes: &[(usize, usize, usize)], variants: bool) {
    for ta in [false, true] {
        for tb in [false, true] {
            for &mnk in sizes {
                mm_case(g, mnk, ta, tb, false, Act::None, false);
                if variants {
                    mm_case(g, mnk, ta, tb, true, Act::Elu, false);
                    mm_case(g, mnk, ta, tb, false, Act::None, true);
                }
            }
        }
    }
}

#[test]
fn matmul_matches_reference_all_transposes_awkward_sizes() {
    let sizes = [
        (1, 1, 1),
        (3, 7, 33),
        (33, 257, 7),
        (257, 33, 3),
        (7, 1, 257),
        (257, 257, 257),
        (1, 257, 33),
    ];
    with_both_block_sizes(|g| transposed_cases(g, &sizes, false));
}

/// An infinite entry in the last k (a partial step of four in the kernels that step k by 4)
/// gives the reference's infinities and no NaN: the tail past K must read as zero in both
/// operands, since zero times a clamped copy of an infinity would be NaN.
#[test]
fn matmul_infinity_in_the_last_k_stays_infinite() {
    let (m, n, k) = (9, 10, 5);
    let check = |g: &Gpu, ta: bool, tb: bool| {
        let mut a = rand_vec(m * k, 11, 0.5, 1.0);
        let mut b = rand_vec(k * n, 12, 0.5, 1.0);
        // A[2, k-1] and B[k-1, 3] infinite, in each operand's storage order.
        a[if ta { (k - 1) * m + 2 } else { 2 * k + (k - 1) }] = f32::INFINITY;
        b[if tb { 3 * k + (k - 1) } else { (k - 1) * n + 3 }] = f32::INFINITY;
        let want = mm_ref::matmul(&a, &b, None, m, n, k, ta, tb);
        let at = Tensor::from_vec(g, &[m * k], &a).unwrap();
        let bt = Tensor::from_vec(g, &[k * n], &b).unwrap();
        let ct = Tensor::zeros(g, &[m, n]).unwrap();
        let spec = MatmulSpec {
            m,
            n,
            k,
            trans_a: ta,
            trans_b: tb,
            act: Act::None,
            acc: false,
        };
        matmul_into(&at, &bt, None, &ct, spec).unwrap();
        let got = ct.to_vec().unwrap();
        for (i, (x, y)) in got.iter().zip(&want).enumerate() {
            let ok = if y.is_finite() {
                (x - y).abs() <= 1e-4 * (1.0 + y.abs())
            } else {
                x == y
            };
            assert!(
                ok,
                "ta={ta} tb={tb}: C[{}, {}] = {x}, want {y}",
                i / n,
                i % n
            );
        }
    };
    with_both_block_sizes(|g| {
        for ta in [false, true] {
            for tb in [false, true] {
                check(g, ta, tb);
            }
        }
    });
}

#[test]
fn matmul_vec4_path_matches_reference() {
    // Sizes whose contiguous axes are multiples of 4 take the vec4 kernel (m or n may still be
    // awkward where that axis is not contiguous).
    let sizes = [
        (4, 4, 4),
        (36, 12, 8),
        (8, 40, 260),
        (260, 8, 4),
        (3, 8, 4),
        (8, 3, 4),
        (33, 7, 12),
        (68, 72, 16),
        (20, 12, 8),
    ];
    with_both_block_sizes(|g| transposed_cases(g, &sizes, true));
}

#[test]
fn matmul_fused_bias_activation_and_accumulate() {
    for &m in &SIZES {
        mm_case(&gpu(), (m, 33, 7), false, true, true, Act::Elu, false);
        mm_case(&gpu(), (m, 3, 33), false, true, true, Act::Relu, false);
        mm_case(&gpu(), (m, 7, 3), true, false, false, Act::None, true);
    }
}

#[test]
fn matmul_more_than_65535_workgroups_in_y() {
    // 64 rows per workgroup (8x8 blocks): 4.4M rows need 68,750 row tiles (folded into z).
    // (Two columns: a single one would take `matvec`.)
    mm_case(
        &gpu(),
        (4_400_000, 2, 2),
        false,
        false,
        true,
        Act::None,
        false,
    );
}

/// A single output column or row takes `matvec` (one invocation per output): every transpose,
/// with bias + ELU and with accumulation, K from 1 to 257.
#[test]
fn matvec_matches_reference() {
    let sizes = [
        (37, 1, 53),
        (1, 29, 70),
        (1, 1, 5),
        (300, 1, 1),
        (1, 300, 1),
        (2, 1, 257),
        (1, 8, 12),
        (12, 1, 8),
        // K a multiple of 4: `matvec_vec4` where the matrix's rows run along k.
        (37, 1, 52),
        (1, 29, 68),
        (300, 1, 4),
    ];
    transposed_cases(&gpu(), &sizes, true);
}

#[test]
fn matmul_empty_inner_dimension_is_bias() {
    mm_case(&gpu(), (3, 5, 0), false, true, true, Act::None, false);
}

/// `ops::mlp` against a chain of `ops::linear`s: the output and the gradients of x and of
/// every weight and bias, for an input width that is not a multiple of 4 and one that is, a
/// single row (the matvec kernel), ELU and ReLU, a first hidden width of 12 and of 16, with
/// every matmul kernel of the device.
#[test]
fn mlp_matches_a_chain_of_linears() {
    let run = |g: &Gpu, lead: &[usize], inp: usize, hidden: usize, act: Act, fused: bool| {
        let rows: usize = lead.iter().product();
        let widths = [inp, hidden, 8, 3];
        let t = Tape::new(g);
        let mut shape = lead.to_vec();
        shape.push(inp);
        let x =
            t.param(&Tensor::from_vec(g, &shape, &rand_vec(rows * inp, 40, -1.0, 1.0)).unwrap());
        let layers: Vec<(rssm::tensor::Var, rssm::tensor::Var)> = widths
            .windows(2)
            .enumerate()
            .map(|(l, w)| {
                let wt = Tensor::from_vec(
                    g,
                    &[w[1], w[0]],
                    &rand_vec(w[0] * w[1], 41 + l as u64, -0.5, 0.5),
                );
                let bt = Tensor::from_vec(g, &[w[1]], &rand_vec(w[1], 51 + l as u64, -0.2, 0.2));
                (t.param(&wt.unwrap()), t.param(&bt.unwrap()))
            })
            .collect();
        let y = if fused {
            ops::mlp(&t, x, &layers, act).unwrap()
        } else {
            let mut h = x;
            for (l, (w, b)) in layers.iter().enumerate() {
                let a = if l + 1 < layers.len() { act } else { Act::None };
                h = ops::linear(&t, h, *w, Some(*b), a).unwrap();
            }
            h
        };
        let yv = t.value(y);
        let (ys, yd) = (yv.shape().to_vec(), yv.to_vec().unwrap());
        let sq = ops::mul(&t, y, y).unwrap();
        let loss = ops::sum_all(&t, sq).unwrap();
        let grads = t.backward(loss).unwrap();
        let mut gs = vec![grads.get(x).unwrap().to_vec().unwrap()];
        for (w, b) in &layers {
            gs.push(grads.get(*w).unwrap().to_vec().unwrap());
            gs.push(grads.get(*b).unwrap().to_vec().unwrap());
        }
        (ys, yd, gs)
    };
    let cases = |g: &Gpu| {
        for (lead, inp) in [(&[5usize, 7][..], 23usize), (&[37][..], 24), (&[1][..], 23)] {
            for (act, hidden) in [(Act::Elu, 12), (Act::Relu, 12), (Act::Elu, 16)] {
                let what = format!("lead {lead:?} in {inp} hidden {hidden} {act:?}");
                let (s0, y0, g0) = run(g, lead, inp, hidden, act, false);
                let (s1, y1, g1) = run(g, lead, inp, hidden, act, true);
                assert_eq!(s1, s0, "{what}: shape");
                assert_close(&y1, &y0, 1e-5, 1e-5, &format!("{what}: y"));
                for (i, (a, b)) in g0.iter().zip(&g1).enumerate() {
                    assert_close(b, a, 1e-4, 1e-4, &format!("{what}: gradient {i}"));
                }
            }
        }
    };
    with_both_block_sizes(cases);
}

/// Weight-gradient products (`a` stored [k, m]) whose reduction K is past 65,535, where one
/// thread looping over all of K would meet a driver's loop limit (lavapipe: `Gpu::loop_limit`):
/// the behaviour update's critic and actor gradients have K = H * N. A single output row
/// (`matvec`), two rows (the scalar matmul), and widths a multiple of 4, on every kernel
/// variant.
#[test]
fn matmul_reduction_past_the_loop_limit() {
    with_both_block_sizes(|g| {
        for (m, n, k) in [(1, 3, 70_001), (2, 5, 66_000), (4, 8, 65_537)] {
            mm_case(g, (m, n, k), true, false, false, Act::None, false);
            mm_case(g, (m, n, k), true, false, false, Act::None, true);
        }
    });
}

/// Matmul reductions across the kernels' K thresholds (multiples of 4 take the vec4 loads; the
/// register blocks step 8 k at a time): K one below, at and one above each.
#[test]
fn thresholds_matmul_k() {
    with_both_block_sizes(|g| {
        for k in [3, 4, 5, 7, 8, 9, 15, 16, 17, 63, 64, 65] {
            for (ta, tb) in [(false, false), (false, true), (true, false)] {
                mm_case(g, (9, 12, k), ta, tb, false, Act::None, false);
            }
        }
    });
}

/// The three products of a `linear` over the features (stoch + deter = 230, not a multiple of
/// 4, so the subgroup kernel's scalar loads or the scalar register blocks take them): forward
/// with bias and ELU, the input gradient and the accumulating weight gradient, on every kernel.
#[test]
fn linear_products_at_the_features_width_match_reference() {
    let (rows, inp, out) = (37, 230, 24);
    with_both_block_sizes(|g| {
        mm_case(g, (rows, out, inp), false, true, true, Act::Elu, false);
        mm_case(g, (rows, inp, out), false, false, false, Act::None, false);
        mm_case(g, (out, inp, rows), true, false, false, Act::None, true);
    });
}

// Finite differences.

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
            gradcheck(&g, &inputs, &GradcheckOptions::default(), |t, v| {
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
        gradcheck(&g, &inputs, &GradcheckOptions::default(), |t, v| {
            ops::linear(t, v[0], v[1], Some(v[2]), act)
        })
        .unwrap_or_else(|e| panic!("{act:?}: {e}"));
    }
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
    gradcheck(&g, &inputs, &GradcheckOptions::default(), |t, v| {
        let h = ops::linear(t, v[0], v[1], Some(v[2]), Act::Elu)?;
        let h = ops::linear(t, h, v[3], Some(v[4]), Act::Elu)?;
        let y = ops::linear(t, h, v[5], Some(v[6]), Act::None)?;
        ops::mean_all(t, y)
    })
    .unwrap();
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
    gradcheck(&g, &inputs, &GradcheckOptions::default(), |t, v| {
        let layers = [(v[1], v[2]), (v[3], v[4]), (v[5], v[6])];
        let y = ops::mlp(t, v[0], &layers, Act::Elu)?;
        ops::mean_all(t, y)
    })
    .unwrap();
}

// Operands past one storage binding.

#[test]
fn linear_over_row_blocks_matches_one_dispatch() {
    // x [300, 64] is 75 KiB; a 16 KiB binding holds 64 of its rows. The weight gradient
    // (x^T g) runs over blocks of the reduction instead.
    let run = |g: &Gpu| {
        let t = Tape::new(g);
        let x =
            t.param(&Tensor::from_vec(g, &[300, 64], &rand_vec(300 * 64, 5, -1.0, 1.0)).unwrap());
        let w = t.param(&Tensor::from_vec(g, &[24, 64], &rand_vec(24 * 64, 6, -0.3, 0.3)).unwrap());
        let b = t.param(&Tensor::from_vec(g, &[24], &rand_vec(24, 7, -0.1, 0.1)).unwrap());
        let y = ops::linear(&t, x, w, Some(b), Act::Elu).unwrap();
        let sq = ops::mul(&t, y, y).unwrap();
        let loss = ops::sum_all(&t, sq).unwrap();
        let yv = t.value(y).to_vec().unwrap();
        let grads = t.backward(loss).unwrap();
        let gs: Vec<Vec<f32>> = [x, w, b]
            .iter()
            .map(|v| grads.get(*v).unwrap().to_vec().unwrap())
            .collect();
        (yv, gs)
    };
    let (y0, g0) = run(&common::gpu());
    let (y1, g1) = run(&capped(16 << 10));
    assert_close(&y1, &y0, 1e-5, 1e-5, "y");
    for (i, (a, b)) in g0.iter().zip(&g1).enumerate() {
        assert_close(b, a, 1e-3, 1e-4, &format!("gradient {i}"));
    }
}
