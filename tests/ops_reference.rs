//! Every kernel against its plain-Rust reference, at awkward sizes (1, 3, 7, 33, 257: not
//! multiples of any tile) and at sizes that need more than 65,535 workgroups in one dimension.

mod common;

use common::{assert_close, gpu, rand_vec};
use rssm::gpu::Gpu;
use rssm::ops::elementwise::{self, binary_forward, unary_backward, unary_forward, Binary, Unary};
use rssm::ops::matmul::{matmul_into, reference as mm_ref, Act, MatmulSpec};
use rssm::ops::{self, reduce, shape};
use rssm::tensor::{Tape, Tensor};

const SIZES: [usize; 5] = [1, 3, 7, 33, 257];

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
/// blocks, and the subgroup kernel (`matmul_lanes`, where the device has 8-lane subgroups)
/// with its vec4 and its 8-float loads (where it has 64-bit integers).
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

/// Sizes whose K and contiguous axes are multiples of 8 take `matmul_lanes_u64` on devices with
/// 64-bit integers (8-float loads), and `matmul_lanes_u64_store8` where N is a multiple of 8
/// too: partial row blocks of 8, 16 and 32, partial column blocks of 64, one row; N = 12 and 20
/// (with op(B) = B^T, the only case that takes the 8-float loads) store 4 at a time.
#[test]
fn matmul_wide_loads_path_matches_reference() {
    let sizes = [
        (40, 12, 16),
        (33, 20, 8),
        (8, 8, 8),
        (40, 16, 8),
        (16, 72, 24),
        (72, 136, 64),
        (200, 8, 48),
        (1, 16, 16),
        (24, 64, 256),
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

#[test]
fn reductions_match_reference() {
    let g = gpu();
    for &rows in &SIZES {
        for &cols in &SIZES {
            let x = rand_vec(rows * cols, (rows * 31 + cols) as u64, -1.0, 1.0);
            let t = Tape::no_grad(&g);
            let xv = t.constant(&Tensor::from_vec(&g, &[rows, cols], &x).unwrap());
            let s = ops::sum_rows(&t, xv, false).unwrap();
            assert_close(
                &t.value(s).to_vec().unwrap(),
                &reduce::reference::sum_rows(&x, cols),
                1e-5,
                1e-5,
                "sum_rows",
            );
            let m = ops::sum_rows(&t, xv, true).unwrap();
            let want: Vec<f32> = reduce::reference::sum_rows(&x, cols)
                .iter()
                .map(|v| v / cols as f32)
                .collect();
            assert_close(
                &t.value(m).to_vec().unwrap(),
                &want,
                1e-5,
                1e-5,
                "mean_rows",
            );
            let l = ops::sum_leading(&t, xv).unwrap();
            assert_close(
                &t.value(l).to_vec().unwrap(),
                &reduce::reference::sum_leading(&x, cols),
                1e-5,
                1e-5,
                "sum_leading",
            );
            let a = ops::sum_all(&t, xv).unwrap();
            let want = x.iter().map(|v| *v as f64).sum::<f64>() as f32;
            assert_close(
                &t.value(a).to_vec().unwrap(),
                &[want],
                1e-4,
                1e-5,
                "sum_all",
            );
        }
    }
}

#[test]
fn reductions_large() {
    let g = gpu();
    // 70,000 rows: more than 65,535 workgroups (one per row); and a two-pass scalar sum.
    let (rows, cols) = (70_000, 3);
    let x = rand_vec(rows * cols, 5, -1.0, 1.0);
    let t = Tape::no_grad(&g);
    let xv = t.constant(&Tensor::from_vec(&g, &[rows, cols], &x).unwrap());
    let s = ops::sum_rows(&t, xv, false).unwrap();
    assert_close(
        &t.value(s).to_vec().unwrap(),
        &reduce::reference::sum_rows(&x, cols),
        1e-5,
        1e-5,
        "sum_rows 70k",
    );
    let m = ops::mean_all(&t, xv).unwrap();
    let want = (x.iter().map(|v| *v as f64).sum::<f64>() / x.len() as f64) as f32;
    assert_close(
        &t.value(m).to_vec().unwrap(),
        &[want],
        1e-5,
        1e-3,
        "mean_all 210k",
    );
}

#[test]
fn concat_split_slice_stack_match_reference() {
    let g = gpu();
    for &(b, tt) in &[(1, 1), (3, 7), (33, 3)] {
        for &(f1, f2) in &[(1, 3), (7, 33), (257, 1)] {
            let x1 = rand_vec(b * f1, 1, -1.0, 1.0);
            let x2 = rand_vec(b * f2, 2, -1.0, 1.0);
            let t = Tape::no_grad(&g);
            let v1 = t.constant(&Tensor::from_vec(&g, &[b, f1], &x1).unwrap());
            let v2 = t.constant(&Tensor::from_vec(&g, &[b, f2], &x2).unwrap());
            let c = ops::concat_last(&t, &[v1, v2]).unwrap();
            let mut want = Vec::new();
            for r in 0..b {
                want.extend_from_slice(&x1[r * f1..(r + 1) * f1]);
                want.extend_from_slice(&x2[r * f2..(r + 1) * f2]);
            }
            assert_close(&t.value(c).to_vec().unwrap(), &want, 0.0, 0.0, "concat");
            let parts = ops::split_last(&t, c, &[f1, f2]).unwrap();
            assert_close(
                &t.value(parts[0]).to_vec().unwrap(),
                &x1,
                0.0,
                0.0,
                "split 0",
            );
            assert_close(
                &t.value(parts[1]).to_vec().unwrap(),
                &x2,
                0.0,
                0.0,
                "split 1",
            );
            // [B, T, F] slicing and stacking
            let seq = rand_vec(b * tt * f1, 3, -1.0, 1.0);
            let sv = t.constant(&Tensor::from_vec(&g, &[b, tt, f1], &seq).unwrap());
            let steps: Vec<_> = (0..tt)
                .map(|s| shape::slice_time(&t, sv, s).unwrap())
                .collect();
            for (s, v) in steps.iter().enumerate() {
                let want: Vec<f32> = (0..b)
                    .flat_map(|r| seq[(r * tt + s) * f1..(r * tt + s + 1) * f1].to_vec())
                    .collect();
                assert_close(
                    &t.value(*v).to_vec().unwrap(),
                    &want,
                    0.0,
                    0.0,
                    "slice_time",
                );
            }
            let st = ops::stack_time(&t, &steps).unwrap();
            assert_eq!(t.shape(st), vec![b, tt, f1]);
            assert_close(&t.value(st).to_vec().unwrap(), &seq, 0.0, 0.0, "stack_time");
        }
    }
}

#[test]
fn copy_more_than_65535_workgroups() {
    let g = gpu();
    let (rows, cols) = (70_000, 257);
    let x = rand_vec(rows * cols, 9, -1.0, 1.0);
    let t = Tape::no_grad(&g);
    let v = t.constant(&Tensor::from_vec(&g, &[rows, cols], &x).unwrap());
    let parts = ops::split_last(&t, v, &[256, 1]).unwrap();
    let want: Vec<f32> = (0..rows).map(|r| x[r * cols + 256]).collect();
    assert_close(
        &t.value(parts[1]).to_vec().unwrap(),
        &want,
        0.0,
        0.0,
        "split 70000x257",
    );
}

#[test]
fn shape_errors_are_clear() {
    let g = gpu();
    let t = Tape::no_grad(&g);
    let x = t.constant(&Tensor::zeros(&g, &[2, 3]).unwrap());
    let w = t.constant(&Tensor::zeros(&g, &[4, 5]).unwrap());
    let e = ops::linear(&t, x, w, None, Act::None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("linear") && e.contains("[2, 3]"), "{e}");
    let e = ops::split_last(&t, x, &[1, 1]).unwrap_err().to_string();
    assert!(e.contains("split"), "{e}");
    let e = shape::slice_time(&t, x, 3).unwrap_err().to_string();
    assert!(e.contains("slice_time"), "{e}");
    let e = ops::matmul(&t, x, w, false, false).unwrap_err().to_string();
    assert!(e.contains("inner sizes differ"), "{e}");
}

/// `ops::mlp` against a chain of `ops::linear`s: the output and the gradients of x and of
/// every weight and bias, for an input width that is not a multiple of 4 (padded and not), a
/// single row (the matvec kernel), ELU and ReLU, a first hidden width of 12 and of 16 (whose
/// activation gradient takes the 8-float store where the device has it), with every matmul
/// kernel of the device.
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
        for pad in [false, true] {
            let g = g.with_tuning(rssm::gpu::Tuning {
                pad_narrow: pad,
                ..*g.tuning()
            });
            for (lead, inp) in [(&[5usize, 7][..], 23usize), (&[37][..], 24), (&[1][..], 23)] {
                for (act, hidden) in [(Act::Elu, 12), (Act::Relu, 12), (Act::Elu, 16)] {
                    let what = format!("lead {lead:?} in {inp} hidden {hidden} {act:?} pad {pad}");
                    let (s0, y0, g0) = run(&g, lead, inp, hidden, act, false);
                    let (s1, y1, g1) = run(&g, lead, inp, hidden, act, true);
                    assert_eq!(s1, s0, "{what}: shape");
                    assert_close(&y1, &y0, 1e-5, 1e-5, &format!("{what}: y"));
                    for (i, (a, b)) in g0.iter().zip(&g1).enumerate() {
                        assert_close(b, a, 1e-4, 1e-4, &format!("{what}: gradient {i}"));
                    }
                }
            }
        }
    };
    with_both_block_sizes(cases);
}

/// Column sums (every bias gradient) across the thresholds of `sum_leading`: runs of
/// `SUM_LEADING_RUN` rows (one run, one more row, several runs and a partial one, runs whose
/// partial sums need runs of their own), and past 65,535 rows, where one thread looping over
/// every row would meet a driver's loop limit (lavapipe ends a shader's loops after 65,535
/// iterations: `Gpu::loop_limit`). With accumulation into an existing value too.
#[test]
fn column_sums_across_runs_and_the_loop_limit() {
    use reduce::SUM_LEADING_RUN as RUN;
    let g = gpu();
    eprintln!("loop limit of the test device: {:?}", g.loop_limit());
    let rows_cases = [
        RUN - 1,
        RUN,
        RUN + 1,
        3 * RUN + 5,
        65_535,
        65_537,
        RUN * RUN + 3,
    ];
    for &rows in &rows_cases {
        for cols in [3, 32] {
            if rows * cols > 40_000_000 {
                continue;
            }
            // Values of one sign: a lost run shows as a deficit, not as a cancellation.
            let x = rand_vec(rows * cols, (rows + cols) as u64, 0.5, 1.0);
            let xt = Tensor::from_vec(&g, &[rows, cols], &x).unwrap();
            let want = reduce::reference::sum_leading(&x, cols);
            let y = Tensor::empty(&g, &[cols]).unwrap();
            reduce::sum_leading_into(&xt, &y, false).unwrap();
            let got = y.to_vec().unwrap();
            // f32 sums of `rows` values near 0.75: a relative error of a few ulps per level.
            assert_close(
                &got,
                &want,
                0.0,
                1e-5,
                &format!("sum_leading {rows}x{cols}"),
            );
            let y0 = rand_vec(cols, 3, -1.0, 1.0);
            let y = Tensor::from_vec(&g, &[cols], &y0).unwrap();
            reduce::sum_leading_into(&xt, &y, true).unwrap();
            let want_acc: Vec<f32> = want.iter().zip(&y0).map(|(w, a)| w + a).collect();
            assert_close(
                &y.to_vec().unwrap(),
                &want_acc,
                0.0,
                1e-5,
                &format!("sum_leading {rows}x{cols}, accumulated"),
            );
        }
    }
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

/// Sums to a scalar across the two-pass reduction's chunk of 4,096 values (one chunk, one
/// more value, several chunks and a partial one, more partial sums than one chunk), and
/// matmul reductions across the kernels' K thresholds (multiples of 4 take the vec4 loads,
/// multiples of 8 the 8-float loads): K one below, at and one above each.
#[test]
fn thresholds_two_pass_sums_and_matmul_k() {
    let g = gpu();
    for n in [4_095, 4_096, 4_097, 3 * 4_096 + 7, 4_096 * 4_097] {
        let x = rand_vec(n, n as u64, 0.5, 1.0);
        let t = Tape::no_grad(&g);
        let xv = t.constant(&Tensor::from_vec(&g, &[n], &x).unwrap());
        let s = ops::sum_all(&t, xv).unwrap();
        let want = x.iter().map(|v| *v as f64).sum::<f64>() as f32;
        assert_close(
            &t.value(s).to_vec().unwrap(),
            &[want],
            0.0,
            1e-5,
            &format!("sum_all over {n} values (chunks of 4,096)"),
        );
    }
    with_both_block_sizes(|g| {
        for k in [3, 4, 5, 7, 8, 9, 15, 16, 17, 63, 64, 65] {
            for (ta, tb) in [(false, false), (false, true), (true, false)] {
                mm_case(g, (9, 12, k), ta, tb, false, Act::None, false);
            }
        }
    });
}
