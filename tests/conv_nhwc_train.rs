//! Training channels innermost: `conv2d_nhwc` and `conv_transpose2d_nhwc` (forward, input,
//! weight and bias gradients: shaders/conv_nhwc.wgsl's gather, scatter and `wgrad_nhwc`) and
//! the layout changes `to_nhwc` / `to_nchw` around them, against the plain-Rust reference. On
//! devices without 8-lane subgroups and 64-bit integers the path does not exist and the tests
//! say so.

mod common;

use common::{act_ref, assert_close, rand_vec};
use rssm::gpu::{Gpu, GpuOptions};
use rssm::ops::conv::{self, nhwc, reference};
use rssm::ops::matmul::Act;
use rssm::ops::{self};
use rssm::tensor::{Tape, Tensor};

fn device(max_binding: Option<u64>) -> Option<Gpu> {
    let g = Gpu::new(&GpuOptions {
        max_binding,
        ..GpuOptions::default()
    })
    .unwrap();
    if nhwc::available(&g).unwrap() {
        Some(g)
    } else {
        eprintln!("no 8-lane subgroups with 64-bit integers here: the NHWC path not run");
        None
    }
}

/// `(n, c, o, h, w, k, s)` for both ops. Phases with unequal taps (k 5, s 2), a stride larger
/// than half the kernel (k 3, s 2), stride 1, partial blocks of 32 positions, 64 output
/// channels (8, 24, 72) and 32 weight-gradient rows (k*k*c = 72, 200), and images enough for
/// several weight-gradient splits (n 20 of 16x16).
const CASES: [(usize, usize, usize, usize, usize, usize, usize); 6] = [
    (2, 8, 16, 9, 9, 3, 1),
    (3, 16, 24, 11, 13, 4, 2),
    (2, 8, 72, 7, 6, 5, 2),
    (1, 24, 8, 6, 5, 3, 2),
    (20, 8, 8, 16, 16, 2, 1),
    (2, 32, 64, 13, 13, 6, 2),
];

/// Run `x (NCHW) -> to_nhwc -> op -> to_nchw` forward and backward (the op applied `uses`
/// times to the same inputs and summed, so the second use adds into the gradients) and compare
/// with the reference.
fn check(g: &Gpu, case: (usize, usize, usize, usize, usize, usize, usize), transposed: bool, act: Act, uses: usize) {
    let (n, c, o, h, w, k, s) = case;
    let xs = [n, c, h, w];
    let ws = if transposed { [c, o, k, k] } else { [o, c, k, k] };
    let cs = if transposed {
        conv::conv_transpose2d_shape(&xs, &ws, Some(&[o]), s).unwrap()
    } else {
        conv::conv2d_shape(&xs, &ws, Some(&[o]), s).unwrap()
    };
    let seed = (n * 7 + c * 131 + o * 1031 + h * 17 + k * 3 + s) as u64 + transposed as u64 * 999;
    let x = rand_vec(xs.iter().product(), seed, -1.0, 1.0);
    let wv = rand_vec(ws.iter().product(), seed + 1, -0.5, 0.5);
    let b = rand_vec(o, seed + 2, -0.5, 0.5);
    let ys = [n, o, cs.oh, cs.ow];
    let gy = rand_vec(ys.iter().product(), seed + 3, -1.0, 1.0);

    let t = Tape::new(g);
    let xv = t.param(&Tensor::from_vec(g, &xs, &x).unwrap());
    let wt = t.param(&Tensor::from_vec(g, &ws, &wv).unwrap());
    let bt = t.param(&Tensor::from_vec(g, &[o], &b).unwrap());
    let xn = nhwc::to_nhwc(&t, xv).unwrap();
    let mut y = None;
    for _ in 0..uses {
        let yi = if transposed {
            nhwc::conv_transpose2d_nhwc(&t, xn, wt, bt, s, act).unwrap()
        } else {
            nhwc::conv2d_nhwc(&t, xn, wt, bt, s, act).unwrap()
        };
        assert_eq!(t.shape(yi), vec![n, cs.oh, cs.ow, o]);
        y = Some(match y {
            None => yi,
            Some(prev) => ops::add(&t, prev, yi).unwrap(),
        });
    }
    let y = nhwc::to_nchw(&t, y.unwrap()).unwrap();
    assert_eq!(t.shape(y), ys.to_vec());
    let got_y = t.value(y).to_vec().unwrap();
    let grads = t
        .backward_with(y, Tensor::from_vec(g, &ys, &gy).unwrap())
        .unwrap();

    let what = format!(
        "{} n={n} c={c} o={o} {h}x{w} k={k} s={s} {act:?} x{uses}",
        if transposed { "conv_transpose2d_nhwc" } else { "conv2d_nhwc" }
    );
    let pre = if transposed {
        reference::conv_transpose2d(&x, &wv, &b, &cs)
    } else {
        reference::conv2d(&x, &wv, &b, &cs)
    };
    let one: Vec<f32> = pre.iter().map(|v| act_ref(act, *v)).collect();
    let want_y: Vec<f32> = one.iter().map(|v| v * uses as f32).collect();
    let tol = 1e-5 * ((c * k * k) as f32).sqrt() + 1e-5;
    assert_close(&got_y, &want_y, tol * uses as f32, 1e-4, &format!("{what}: forward"));

    // The activation's derivative at the kernel's own output (one use's).
    let gpre: Vec<f32> = gy
        .iter()
        .zip(&got_y)
        .map(|(g, y)| {
            let y = y / uses as f32;
            match act {
                Act::None => *g,
                Act::Relu => if y > 0.0 { *g } else { 0.0 },
                Act::Elu => if y > 0.0 { *g } else { *g * (y + 1.0) },
            }
        })
        .collect();
    let (gx, gw, gb) = if transposed {
        reference::conv_transpose2d_backward(&x, &wv, &gpre, &cs)
    } else {
        reference::conv2d_backward(&x, &wv, &gpre, &cs)
    };
    let times = |v: Vec<f32>| v.into_iter().map(|a| a * uses as f32).collect::<Vec<_>>();
    let gtol = 1e-4 * uses as f32 * ((n * cs.oh * cs.ow) as f32).sqrt().max(1.0) / 4.0;
    for (name, var, want) in [("x", xv, gx), ("w", wt, gw), ("b", bt, gb)] {
        assert_close(
            &grads.get(var).unwrap().to_vec().unwrap(),
            &times(want),
            gtol,
            1e-4,
            &format!("{what}: gradient of {name}"),
        );
    }
}

#[test]
fn conv2d_nhwc_forward_and_gradients_match_reference() {
    let Some(g) = device(None) else { return };
    for (i, &case) in CASES.iter().enumerate() {
        let act = [Act::None, Act::Relu, Act::Elu][i % 3];
        check(&g, case, false, act, 1);
    }
}

#[test]
fn conv_transpose2d_nhwc_forward_and_gradients_match_reference() {
    let Some(g) = device(None) else { return };
    for (i, &case) in CASES.iter().enumerate() {
        let act = [Act::Relu, Act::Elu, Act::None][i % 3];
        check(&g, case, true, act, 1);
    }
}

/// A second use of the same inputs adds into every gradient (each kernel's accumulating
/// store, the split weight gradient's reduction, the layout change's backward).
#[test]
fn nhwc_gradients_accumulate_when_inputs_are_used_twice() {
    let Some(g) = device(None) else { return };
    for &case in &[CASES[1], CASES[4]] {
        check(&g, case, false, Act::None, 2);
        check(&g, case, true, Act::Relu, 2);
    }
}

/// With a 4 KiB storage binding every pass runs over slices of a few images (each slice's
/// weight gradient adding into the last), with the same results.
#[test]
fn nhwc_passes_over_binding_slices_match_reference() {
    let Some(g) = device(Some(4096)) else { return };
    for &case in &[(5, 8, 8, 5, 5, 3, 2), (4, 8, 8, 4, 4, 4, 2)] {
        check(&g, case, false, Act::Relu, 1);
        check(&g, case, true, Act::Elu, 1);
    }
}

#[test]
fn nhwc_layers_refuse_channels_not_multiples_of_8() {
    let Some(g) = device(None) else { return };
    let t = Tape::new(&g);
    let x = t.param(&Tensor::zeros(&g, &[1, 6, 6, 12]).unwrap());
    let w = t.param(&Tensor::zeros(&g, &[8, 12, 3, 3]).unwrap());
    let b = t.param(&Tensor::zeros(&g, &[8]).unwrap());
    let err = nhwc::conv2d_nhwc(&t, x, w, b, 1, Act::None).unwrap_err();
    assert!(err.to_string().contains("multiples of 8"), "{err}");
    let wt = t.param(&Tensor::zeros(&g, &[12, 8, 3, 3]).unwrap());
    let err = nhwc::conv_transpose2d_nhwc(&t, x, wt, b, 1, Act::None).unwrap_err();
    assert!(err.to_string().contains("multiples of 8"), "{err}");
}
