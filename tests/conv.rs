//! The convolution family (`shaders/conv*.wgsl`, `ops::conv`): Conv2d and ConvTranspose2d
//! against plain-Rust references (f64 loops), forward, input, weight and bias gradients, on
//! every kernel variant the device runs (plain and subgroup kernels, both register blocks): at
//! awkward small shapes, at the exact shapes of the spec's encoder and decoder and the `small`
//! preset's layers at its training batch, accumulation into existing gradients, and
//! finite-difference gradchecks. (Past one storage binding and past 65,536 positions:
//! tests/chunking.rs and tests/at_scale.rs.)

mod common;

use crate::common::{act_ref, assert_close, gpu, rand_vec};
use rssm::gpu::Gpu;
use rssm::ops::conv::{self, reference, ConvShape};
use rssm::ops::matmul::Act;
use rssm::ops::{self};
use rssm::tensor::{gradcheck, GradcheckOptions, Tape, Tensor};

/// Shape of one case: batch, in/out channels, input image, kernel, stride.
#[derive(Clone, Copy, Debug)]
struct Case {
    n: usize,
    ci: usize,
    co: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    s: usize,
}

const fn case(n: usize, ci: usize, co: usize, h: usize, w: usize, k: usize, s: usize) -> Case {
    Case {
        n,
        ci,
        co,
        h,
        w,
        kh: k,
        kw: k,
        s,
    }
}

fn weight_shape(c: &Case, transposed: bool) -> [usize; 4] {
    if transposed {
        [c.ci, c.co, c.kh, c.kw]
    } else {
        [c.co, c.ci, c.kh, c.kw]
    }
}

fn shape_of(c: &Case, transposed: bool) -> ConvShape {
    let x = [c.n, c.ci, c.h, c.w];
    let w = weight_shape(c, transposed);
    if transposed {
        conv::conv_transpose2d_shape(&x, &w, None, c.s).unwrap()
    } else {
        conv::conv2d_shape(&x, &w, None, c.s).unwrap()
    }
}

/// Tolerance for sums of `k` products of values in [-1, 1] computed in f32.
fn tol(k: usize) -> f32 {
    2e-6 * (k as f32).sqrt() + 1e-5
}

/// Run forward + backward on the tape and compare everything with the reference.
fn check_case(c: Case, transposed: bool, act: Act) {
    check_case_on(&gpu(), c, transposed, act)
}

/// [`check_case`] on `g` (a device handle with its own kernel choices).
fn check_case_on(g: &Gpu, c: Case, transposed: bool, act: Act) {
    let g = g.clone();
    let cs = shape_of(&c, transposed);
    let seed = (c.n * 7 + c.ci * 131 + c.co * 1031 + c.h * 17 + c.kh * 3 + c.s) as u64
        + transposed as u64 * 99_991;
    let xs = [c.n, c.ci, c.h, c.w];
    let ws = weight_shape(&c, transposed);
    let x = rand_vec(xs.iter().product(), seed, -1.0, 1.0);
    let w = rand_vec(ws.iter().product(), seed + 1, -1.0, 1.0);
    let b = rand_vec(c.co, seed + 2, -0.5, 0.5);
    let ys = [c.n, c.co, cs.oh, cs.ow];
    let gy = rand_vec(ys.iter().product(), seed + 3, -1.0, 1.0);

    let t = Tape::new(&g);
    let xv = t.param(&Tensor::from_vec(&g, &xs, &x).unwrap());
    let wv = t.param(&Tensor::from_vec(&g, &ws, &w).unwrap());
    let bv = t.param(&Tensor::from_vec(&g, &[c.co], &b).unwrap());
    let y = if transposed {
        conv::conv_transpose2d(&t, xv, wv, bv, c.s, act).unwrap()
    } else {
        conv::conv2d(&t, xv, wv, bv, c.s, act).unwrap()
    };
    assert_eq!(t.shape(y), ys.to_vec(), "{c:?} output shape");
    let got_y = t.value(y).to_vec().unwrap();
    let grads = t
        .backward_with(y, Tensor::from_vec(&g, &ys, &gy).unwrap())
        .unwrap();

    let pre = if transposed {
        reference::conv_transpose2d(&x, &w, &b, &cs)
    } else {
        reference::conv2d(&x, &w, &b, &cs)
    };
    let want_y: Vec<f32> = pre.iter().map(|v| act_ref(act, *v)).collect();
    let what = format!(
        "{} {c:?} {act:?}",
        if transposed {
            "conv_transpose2d"
        } else {
            "conv2d"
        }
    );
    let taps = c.ci * c.kh * c.kw;
    assert_close(
        &got_y,
        &want_y,
        tol(taps),
        1e-4,
        &format!("{what}: forward"),
    );

    // Pre-activation gradient, with the activation's derivative taken at the kernel's own
    // output (an output within rounding of a ReLU kink must not decide the test).
    let gpre: Vec<f32> = gy
        .iter()
        .zip(&got_y)
        .map(|(g, y)| match act {
            Act::None => *g,
            Act::Relu => {
                if *y > 0.0 {
                    *g
                } else {
                    0.0
                }
            }
            Act::Elu => {
                if *y > 0.0 {
                    *g
                } else {
                    *g * (*y + 1.0)
                }
            }
        })
        .collect();
    let (gx, gw, gb) = if transposed {
        reference::conv_transpose2d_backward(&x, &w, &gpre, &cs)
    } else {
        reference::conv2d_backward(&x, &w, &gpre, &cs)
    };
    let pixels = c.n * cs.oh.min(c.h) * cs.ow.min(c.w);
    let get = |v| grads.get(v).unwrap().to_vec().unwrap();
    assert_close(
        &get(xv),
        &gx,
        tol(c.co * c.kh * c.kw),
        1e-4,
        &format!("{what}: input gradient"),
    );
    assert_close(
        &get(wv),
        &gw,
        tol(pixels * 4),
        1e-4,
        &format!("{what}: weight gradient"),
    );
    assert_close(
        &get(bv),
        &gb,
        tol(c.n * cs.oh * cs.ow),
        1e-4,
        &format!("{what}: bias gradient"),
    );
}

/// Small shapes that are multiples of nothing: batch 1 and 3, channels 1, 3, 7 (and 33 and 20
/// for several channel blocks), odd images, other kernels and strides.
const SMALL: [Case; 10] = [
    case(1, 1, 1, 4, 4, 4, 2),
    case(3, 3, 7, 9, 11, 4, 2),
    case(1, 7, 3, 13, 10, 5, 2),
    case(3, 1, 33, 12, 15, 6, 2),
    case(3, 7, 20, 10, 9, 3, 1),
    case(1, 3, 5, 11, 11, 5, 3),
    case(3, 20, 9, 6, 7, 2, 2),
    case(1, 33, 1, 5, 5, 1, 1),
    case(3, 3, 7, 9, 9, 2, 3),
    Case {
        n: 3,
        ci: 3,
        co: 7,
        h: 9,
        w: 8,
        kh: 3,
        kw: 2,
        s: 2,
    },
];

/// Small inputs for the transposed op (its output is the larger image).
const SMALL_T: [Case; 10] = [
    case(1, 1, 1, 1, 1, 4, 2),
    case(3, 3, 7, 4, 5, 4, 2),
    case(1, 7, 3, 5, 3, 5, 2),
    case(3, 1, 33, 3, 6, 6, 2),
    case(3, 7, 20, 5, 4, 3, 1),
    case(1, 3, 5, 3, 3, 5, 3),
    case(3, 20, 9, 1, 1, 5, 2),
    case(1, 33, 1, 5, 5, 1, 1),
    case(3, 3, 7, 4, 4, 2, 3),
    Case {
        n: 3,
        ci: 3,
        co: 7,
        h: 4,
        w: 3,
        kh: 3,
        kw: 2,
        s: 2,
    },
];

#[test]
fn conv2d_matches_reference_small_shapes() {
    for c in SMALL {
        check_case(c, false, Act::None);
    }
}

#[test]
fn conv_transpose2d_matches_reference_small_shapes() {
    for c in SMALL_T {
        check_case(c, true, Act::None);
    }
}

#[test]
fn fused_activations_forward_and_backward() {
    for act in [Act::Relu, Act::Elu] {
        check_case(SMALL[1], false, act);
        check_case(SMALL[3], false, act);
        check_case(SMALL_T[1], true, act);
        check_case(SMALL_T[6], true, act);
    }
}

/// The spec's encoder at batch 2: 3->32->64->128->256, k4 s2, 64 -> 31 -> 14 -> 6 -> 2.
#[test]
fn encoder_shapes_match_reference() {
    for c in [
        case(2, 3, 32, 64, 64, 4, 2),
        case(2, 32, 64, 31, 31, 4, 2),
        case(2, 64, 128, 14, 14, 4, 2),
        case(2, 128, 256, 6, 6, 4, 2),
    ] {
        check_case(c, false, Act::Relu);
    }
}

/// The spec's decoder at batch 2: 1024->128 k5, 128->64 k5, 64->32 k6, 32->3 k6, all s2,
/// 1 -> 5 -> 13 -> 30 -> 64.
#[test]
fn decoder_shapes_match_reference() {
    for (c, act) in [
        (case(2, 1024, 128, 1, 1, 5, 2), Act::Relu),
        (case(2, 128, 64, 5, 5, 5, 2), Act::Relu),
        (case(2, 64, 32, 13, 13, 6, 2), Act::Relu),
        (case(2, 32, 3, 30, 30, 6, 2), Act::None),
    ] {
        check_case(c, true, act);
    }
}

/// Both register-block sizes (8, which GPUs get, and 16, which CPU drivers get), whatever
/// this device's rule.
#[test]
fn both_register_blocks_match_reference() {
    for block in [8, 16] {
        let g = crate::common::gpu_with(|t| t.conv_block = block);
        for c in [SMALL[1], SMALL[3], SMALL[9], case(2, 32, 64, 31, 31, 4, 2)] {
            check_case_on(&g, c, false, Act::Relu);
        }
        for c in [
            SMALL_T[1],
            SMALL_T[3],
            SMALL_T[6],
            case(2, 64, 32, 13, 13, 6, 2),
        ] {
            check_case_on(&g, c, true, Act::None);
        }
    }
}

/// The subgroup kernels (`conv_main_lanes`, `wgrad_lanes`) and the plain ones, forced each way,
/// forward and backward, at sizes with partial blocks everywhere: output channels 29 and 20
/// (32-channel blocks, 64 positions per subgroup), 40 and 37 (64-channel blocks, 32
/// positions), position counts that are not multiples of a block, weight-gradient rows 29 (a
/// partial block of 32 rows, or 16 + 13) and 135 columns (two blocks of 64 and 7), a
/// scatter pass (the transposed convs) with 15 output channels (its 4 phases folded into 60
/// virtual channels, `pack_w_fold`, with a 3x3 kernel whose phases have 2 or 1 taps per axis)
/// and a gather pass with 29.
#[test]
fn plain_and_subgroup_kernels_match_reference() {
    let lanes = [false, true];
    for on in lanes {
        if on && gpu().report().subgroup_lanes != Some(8) {
            eprintln!("no 8-lane subgroups on this device: conv_lanes not run");
            continue;
        }
        let g = crate::common::gpu_with(|t| t.lanes = on);
        check_case_on(&g, case(2, 15, 29, 9, 9, 3, 2), false, Act::None);
        check_case_on(&g, case(2, 29, 15, 5, 5, 3, 2), true, Act::None);
        check_case_on(&g, case(3, 5, 40, 11, 10, 4, 2), false, Act::Relu);
        check_case_on(&g, case(2, 20, 37, 6, 7, 4, 2), true, Act::None);
        check_case_on(&g, case(1, 37, 20, 7, 6, 4, 2), true, Act::Elu);
        // Narrow scatters whose folded phases also pair output columns (PAIR): the decoder's
        // last layer's shape (3 channels, k6 s2) with an even number of column pairs, an odd
        // output width (k5: the last pair half outside, phases with 3 and 2 tap columns), and
        // one channel (8 virtual channels), with ReLU and a bias.
        check_case_on(&g, case(2, 5, 3, 5, 4, 6, 2), true, Act::None);
        check_case_on(&g, case(2, 6, 3, 4, 5, 5, 2), true, Act::Relu);
        check_case_on(&g, case(3, 4, 1, 3, 6, 4, 2), true, Act::None);
        // A 1x1 input: the transposed conv is a matmul (matmul_lanes or the register blocks).
        check_case_on(&g, case(3, 20, 9, 1, 1, 5, 2), true, Act::Elu);
    }
}

/// A parameter used twice gets the sum of both gradients, accumulated in place (ACC) by every
/// backward kernel; batch 1 also takes the unsplit weight-gradient path.
#[test]
fn gradients_accumulate_when_an_input_is_used_twice() {
    let g = gpu();
    for (c, transposed) in [
        (SMALL[1], false),
        (case(1, 3, 7, 9, 11, 4, 2), false),
        (SMALL_T[1], true),
        (case(1, 3, 7, 1, 1, 5, 2), true),
    ] {
        let cs = shape_of(&c, transposed);
        let xs = [c.n, c.ci, c.h, c.w];
        let ws = weight_shape(&c, transposed);
        let x = rand_vec(xs.iter().product(), 5, -1.0, 1.0);
        let w = rand_vec(ws.iter().product(), 6, -1.0, 1.0);
        let b = rand_vec(c.co, 7, -0.5, 0.5);
        let ys = [c.n, c.co, cs.oh, cs.ow];
        let gy = rand_vec(ys.iter().product(), 8, -1.0, 1.0);
        let t = Tape::new(&g);
        let xv = t.param(&Tensor::from_vec(&g, &xs, &x).unwrap());
        let wv = t.param(&Tensor::from_vec(&g, &ws, &w).unwrap());
        let bv = t.param(&Tensor::from_vec(&g, &[c.co], &b).unwrap());
        let f = if transposed {
            conv::conv_transpose2d
        } else {
            conv::conv2d
        };
        let y1 = f(&t, xv, wv, bv, c.s, Act::None).unwrap();
        let y2 = f(&t, xv, wv, bv, c.s, Act::None).unwrap();
        let y = ops::add(&t, y1, y2).unwrap();
        let grads = t
            .backward_with(y, Tensor::from_vec(&g, &ys, &gy).unwrap())
            .unwrap();
        let (gx, gw, gb) = if transposed {
            reference::conv_transpose2d_backward(&x, &w, &gy, &cs)
        } else {
            reference::conv2d_backward(&x, &w, &gy, &cs)
        };
        let twice = |v: Vec<f32>| v.into_iter().map(|a| 2.0 * a).collect::<Vec<_>>();
        let what = format!("accumulate {c:?} transposed={transposed}");
        assert_close(
            &grads.get(xv).unwrap().to_vec().unwrap(),
            &twice(gx),
            1e-4,
            1e-4,
            &format!("{what}: x"),
        );
        assert_close(
            &grads.get(wv).unwrap().to_vec().unwrap(),
            &twice(gw),
            1e-4,
            1e-4,
            &format!("{what}: w"),
        );
        assert_close(
            &grads.get(bv).unwrap().to_vec().unwrap(),
            &twice(gb),
            1e-4,
            1e-4,
            &format!("{what}: b"),
        );
    }
}

#[test]
fn forward_into_accumulates() {
    let g = gpu();
    let c = SMALL[2];
    let cs = shape_of(&c, false);
    let x = rand_vec(c.n * c.ci * c.h * c.w, 1, -1.0, 1.0);
    let w = rand_vec(c.co * c.ci * c.kh * c.kw, 2, -1.0, 1.0);
    let b = rand_vec(c.co, 3, -1.0, 1.0);
    let y0 = rand_vec(c.n * c.co * cs.oh * cs.ow, 4, -1.0, 1.0);
    let xt = Tensor::from_vec(&g, &[c.n, c.ci, c.h, c.w], &x).unwrap();
    let wt = Tensor::from_vec(&g, &[c.co, c.ci, c.kh, c.kw], &w).unwrap();
    let bt = Tensor::from_vec(&g, &[c.co], &b).unwrap();
    let yt = Tensor::from_vec(&g, &[c.n, c.co, cs.oh, cs.ow], &y0).unwrap();
    conv::conv2d_forward_into(&xt, &wt, Some(&bt), &yt, c.s, Act::None, true).unwrap();
    let want: Vec<f32> = reference::conv2d(&x, &w, &b, &cs)
        .iter()
        .zip(&y0)
        .map(|(a, b)| a + b)
        .collect();
    assert_close(
        &yt.to_vec().unwrap(),
        &want,
        1e-4,
        1e-4,
        "conv2d forward ACC",
    );
}

/// The 1x1-input transposed conv (a matmul, its biases repeated over the kernel's taps) adds
/// into its output when asked, with and without an activation (which takes the conv path).
#[test]
fn conv_transpose2d_1x1_forward_into_accumulates() {
    let g = gpu();
    let c = case(3, 6, 5, 1, 1, 3, 2);
    let cs = shape_of(&c, true);
    let x = rand_vec(c.n * c.ci, 1, -1.0, 1.0);
    let w = rand_vec(c.ci * c.co * c.kh * c.kw, 2, -1.0, 1.0);
    let b = rand_vec(c.co, 3, -1.0, 1.0);
    let y0 = rand_vec(c.n * c.co * cs.oh * cs.ow, 4, -1.0, 1.0);
    let xt = Tensor::from_vec(&g, &[c.n, c.ci, 1, 1], &x).unwrap();
    let wt = Tensor::from_vec(&g, &[c.ci, c.co, c.kh, c.kw], &w).unwrap();
    let bt = Tensor::from_vec(&g, &[c.co], &b).unwrap();
    let pre = reference::conv_transpose2d(&x, &w, &b, &cs);
    for act in [Act::None, Act::Relu] {
        let yt = Tensor::from_vec(&g, &[c.n, c.co, cs.oh, cs.ow], &y0).unwrap();
        conv::conv_transpose2d_forward_into(&xt, &wt, Some(&bt), &yt, c.s, act, true).unwrap();
        let want: Vec<f32> = pre
            .iter()
            .zip(&y0)
            .map(|(p, y)| act_ref(act, *p) + y)
            .collect();
        let what = format!("conv_transpose2d 1x1 forward ACC {act:?}");
        assert_close(&yt.to_vec().unwrap(), &want, 1e-4, 1e-4, &what);
    }
}

#[test]
fn conv2d_gradcheck() {
    let g = gpu();
    let inputs = vec![
        (vec![2, 2, 7, 7], rand_vec(2 * 2 * 49, 11, -1.0, 1.0)),
        (vec![3, 2, 4, 4], rand_vec(3 * 2 * 16, 12, -0.5, 0.5)),
        (vec![3], rand_vec(3, 13, -0.5, 0.5)),
    ];
    let r = gradcheck(&g, &inputs, &GradcheckOptions::default(), |t, v| {
        conv::conv2d(t, v[0], v[1], v[2], 2, Act::None)
    })
    .unwrap();
    assert_eq!(r.checked, 2 * 2 * 49 + 96 + 3);
}

#[test]
fn conv_transpose2d_gradcheck() {
    let g = gpu();
    let inputs = vec![
        (vec![2, 2, 2, 2], rand_vec(16, 21, -1.0, 1.0)),
        (vec![2, 3, 4, 4], rand_vec(2 * 3 * 16, 22, -0.5, 0.5)),
        (vec![3], rand_vec(3, 23, -0.5, 0.5)),
    ];
    let r = gradcheck(&g, &inputs, &GradcheckOptions::default(), |t, v| {
        conv::conv_transpose2d(t, v[0], v[1], v[2], 2, Act::None)
    })
    .unwrap();
    assert_eq!(r.checked, 16 + 96 + 3);
}

#[test]
fn relu_gradcheck_away_from_the_kink() {
    // Biases of +-2 against pre-activations of at most 0.4 in size: no output is near the kink
    // (half the channels are on, half off).
    let g = gpu();
    let opts = GradcheckOptions {
        inputs: Some(vec![0, 1]),
        ..Default::default()
    };
    let inputs = vec![
        (vec![2, 2, 7, 7], rand_vec(2 * 2 * 49, 31, -0.25, 0.25)),
        (vec![4, 2, 4, 4], rand_vec(4 * 2 * 16, 32, -0.05, 0.05)),
        (vec![4], vec![2.0, -2.0, 2.0, -2.0]),
    ];
    gradcheck(&g, &inputs, &opts, |t, v| {
        conv::conv2d(t, v[0], v[1], v[2], 2, Act::Relu)
    })
    .unwrap();
    let inputs = vec![
        (vec![2, 2, 2, 2], rand_vec(16, 33, -0.25, 0.25)),
        (vec![2, 4, 4, 4], rand_vec(2 * 4 * 16, 34, -0.05, 0.05)),
        (vec![4], vec![2.0, -2.0, 2.0, -2.0]),
    ];
    gradcheck(&g, &inputs, &opts, |t, v| {
        conv::conv_transpose2d(t, v[0], v[1], v[2], 2, Act::Relu)
    })
    .unwrap();
}

#[test]
fn bad_shapes_are_errors() {
    let g = gpu();
    let t = Tape::new(&g);
    let x = t.constant(&Tensor::zeros(&g, &[2, 3, 8, 8]).unwrap());
    let w = t.param(&Tensor::zeros(&g, &[4, 3, 4, 4]).unwrap());
    let w_bad = t.param(&Tensor::zeros(&g, &[4, 2, 4, 4]).unwrap());
    let w_big = t.param(&Tensor::zeros(&g, &[4, 3, 9, 9]).unwrap());
    let b = t.param(&Tensor::zeros(&g, &[4]).unwrap());
    let b_bad = t.param(&Tensor::zeros(&g, &[3]).unwrap());
    let x3 = t.constant(&Tensor::zeros(&g, &[3, 8, 8]).unwrap());
    assert!(conv::conv2d(&t, x, w, b, 2, Act::Relu).is_ok());
    for (xx, ww, bb, s) in [
        (x, w_bad, b, 2),
        (x, w, b_bad, 2),
        (x, w_big, b, 2),
        (x3, w, b, 2),
        (x, w, b, 0),
    ] {
        let e = conv::conv2d(&t, xx, ww, bb, s, Act::None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("conv2d"), "{e}");
    }
    // transposed: weight [in_c, out_c, kh, kw] = [3, 4, 4, 4] for a 3-channel input
    let wt = t.param(&Tensor::zeros(&g, &[3, 4, 4, 4]).unwrap());
    assert!(conv::conv_transpose2d(&t, x, wt, b, 2, Act::None).is_ok());
    let e = conv::conv_transpose2d(&t, x, w, b, 2, Act::None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("conv_transpose2d") && e.contains("in_c, out_c"),
        "{e}"
    );
}

/// The `small` preset's encoder and decoder (depth 8: 3->8->16->32->64, 256->32->16->8->3) at
/// its training batch, B8 T16 = 128 images, with the plain and (where the device has 8-lane
/// subgroups) the subgroup kernels: forward, input, weight and bias gradients against the
/// reference.
#[test]
fn small_preset_layers_at_its_batch_match_reference() {
    for on in [false, true] {
        if on && gpu().report().subgroup_lanes != Some(8) {
            eprintln!("no 8-lane subgroups on this device: conv_lanes not run");
            continue;
        }
        let g = crate::common::gpu_with(|t| t.lanes = on);
        for c in [
            case(128, 3, 8, 64, 64, 4, 2),
            case(128, 8, 16, 31, 31, 4, 2),
            case(128, 16, 32, 14, 14, 4, 2),
            case(128, 32, 64, 6, 6, 4, 2),
        ] {
            check_case_on(&g, c, false, Act::Relu);
        }
        for (c, act) in [
            (case(128, 256, 32, 1, 1, 5, 2), Act::Relu),
            (case(128, 32, 16, 5, 5, 5, 2), Act::Relu),
            (case(128, 16, 8, 13, 13, 6, 2), Act::Relu),
            (case(128, 8, 3, 30, 30, 6, 2), Act::None),
        ] {
            check_case_on(&g, c, true, act);
        }
    }
}
