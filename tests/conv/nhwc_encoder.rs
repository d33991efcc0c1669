//! The channels-innermost (NHWC) convolutions of the no-gradient encoder
//! (shaders/conv_nhwc.wgsl, `ops::conv::nhwc`) against the plain-Rust reference, and the
//! observe-only encoder on that path against the NCHW one. On devices without 8-lane subgroups
//! and 64-bit integers the path does not exist and the tests say so.

use crate::common::{act_ref, assert_close, rand_vec};
use rssm::gpu::{Gpu, GpuOptions};
use rssm::model::{Config, WorldModel};
use rssm::ops::conv::{self, nhwc, reference};
use rssm::ops::matmul::Act;
use rssm::tensor::{Tape, Tensor};

fn device() -> Option<Gpu> {
    let g = Gpu::new(&GpuOptions::default()).unwrap();
    if nhwc::available(&g).unwrap() {
        Some(g)
    } else {
        eprintln!("no 8-lane subgroups with 64-bit integers here: the NHWC path not run");
        None
    }
}

/// `[N, C, H, W]` -> `[N, H, W, C]`.
fn to_nhwc(x: &[f32], [n, c, h, w]: [usize; 4]) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for i in 0..n {
        for ch in 0..c {
            for y in 0..h * w {
                out[(i * h * w + y) * c + ch] = x[(i * c + ch) * h * w + y];
            }
        }
    }
    out
}

/// `(n, c, h, w, o, k, s)`: partial blocks of 32 positions and of 64 output channels (8, 24,
/// 72), strides 1 and 2, non-square images, one image.
const CASES: [(usize, usize, usize, usize, usize, usize, usize); 5] = [
    (3, 8, 9, 9, 8, 3, 1),
    (2, 16, 11, 13, 24, 4, 2),
    (1, 8, 7, 7, 72, 2, 2),
    (5, 32, 10, 10, 64, 4, 2),
    (2, 24, 6, 5, 136, 3, 1),
];

#[test]
fn nhwc_convolution_matches_reference() {
    let Some(g) = device() else { return };
    for (i, &(n, c, h, w, o, k, s)) in CASES.iter().enumerate() {
        let x = rand_vec(n * c * h * w, 10 + i as u64, -1.0, 1.0);
        let wv = rand_vec(o * c * k * k, 20 + i as u64, -0.3, 0.3);
        let bv = rand_vec(o, 30 + i as u64, -0.5, 0.5);
        let cs = conv::conv2d_shape(&[n, c, h, w], &[o, c, k, k], Some(&[o]), s).unwrap();
        let want = reference::conv2d(&x, &wv, &bv, &cs);
        let xt = Tensor::from_vec(&g, &[n, h, w, c], &to_nhwc(&x, [n, c, h, w])).unwrap();
        let wt = Tensor::from_vec(&g, &[o, c, k, k], &wv).unwrap();
        let bt = Tensor::from_vec(&g, &[o], &bv).unwrap();
        for act in [Act::None, Act::Relu, Act::Elu] {
            let want: Vec<f32> = want.iter().map(|v| act_ref(act, *v)).collect();
            let tol = 1e-5 * ((c * k * k) as f32).sqrt() + 1e-5;
            let what = format!("n={n} c={c} {h}x{w} o={o} k={k} s={s} {act:?}");
            let y = conv::nhwc::conv2d_nhwc_forward(&xt, &wt, Some(&bt), s, act, true).unwrap();
            assert_eq!(y.shape(), &[n, o, cs.oh, cs.ow]);
            assert_close(
                &y.to_vec().unwrap(),
                &want,
                tol,
                1e-4,
                &format!("{what}, NCHW out"),
            );
            let y = conv::nhwc::conv2d_nhwc_forward(&xt, &wt, Some(&bt), s, act, false).unwrap();
            assert_eq!(y.shape(), &[n, cs.oh, cs.ow, o]);
            let want_nhwc = to_nhwc(&want, [n, o, cs.oh, cs.ow]);
            assert_close(
                &y.to_vec().unwrap(),
                &want_nhwc,
                tol,
                1e-4,
                &format!("{what}, NHWC out"),
            );
        }
        // Without a bias.
        let y = conv::nhwc::conv2d_nhwc_forward(&xt, &wt, None, s, Act::None, true).unwrap();
        let want = reference::conv2d(&x, &wv, &vec![0.0; o], &cs);
        assert_close(&y.to_vec().unwrap(), &want, 1e-4, 1e-4, "no bias");
    }
}

/// A device whose storage bindings hold 4 KiB: the NHWC convolution runs one image per
/// dispatch (5 slices) with the results of one dispatch.
#[test]
fn nhwc_convolution_over_binding_slices() {
    if device().is_none() {
        return;
    }
    let g = Gpu::new(&GpuOptions {
        max_binding: Some(4096),
        ..GpuOptions::default()
    })
    .unwrap();
    let (n, c, h, o, k) = (5, 8, 9, 8, 3);
    let x = rand_vec(n * c * h * h, 80, -1.0, 1.0);
    let wv = rand_vec(o * c * k * k, 81, -0.3, 0.3);
    let bv = rand_vec(o, 82, -0.5, 0.5);
    let cs = conv::conv2d_shape(&[n, c, h, h], &[o, c, k, k], Some(&[o]), 1).unwrap();
    let want = reference::conv2d(&x, &wv, &bv, &cs);
    let xt = Tensor::from_vec(&g, &[n, h, h, c], &to_nhwc(&x, [n, c, h, h])).unwrap();
    let wt = Tensor::from_vec(&g, &[o, c, k, k], &wv).unwrap();
    let bt = Tensor::from_vec(&g, &[o], &bv).unwrap();
    g.flush();
    let before = g.stats().dispatches;
    let y = conv::nhwc::conv2d_nhwc_forward(&xt, &wt, Some(&bt), 1, Act::None, true).unwrap();
    g.flush();
    // The weights' packing, then one dispatch per image.
    assert_eq!(g.stats().dispatches - before, 1 + n as u64);
    assert_close(&y.to_vec().unwrap(), &want, 1e-4, 1e-4, "sliced, NCHW out");
    let y = conv::nhwc::conv2d_nhwc_forward(&xt, &wt, Some(&bt), 1, Act::None, false).unwrap();
    let want = to_nhwc(&want, [n, o, cs.oh, cs.ow]);
    assert_close(&y.to_vec().unwrap(), &want, 1e-4, 1e-4, "sliced, NHWC out");
}

/// The subgroup gather stores channels innermost: 3 input channels (any), 32 and 40 outputs
/// (one and two vec4s per lane, 40 a partial block).
#[test]
fn first_layer_stores_channels_innermost() {
    let Some(g) = device() else { return };
    for (i, &(n, c, h, o)) in [(3, 3, 16, 32), (2, 3, 12, 40)].iter().enumerate() {
        let (k, s) = (4, 2);
        let x = rand_vec(n * c * h * h, 40 + i as u64, -1.0, 1.0);
        let wv = rand_vec(o * c * k * k, 50 + i as u64, -0.3, 0.3);
        let bv = rand_vec(o, 60 + i as u64, -0.5, 0.5);
        let cs = conv::conv2d_shape(&[n, c, h, h], &[o, c, k, k], Some(&[o]), s).unwrap();
        let want: Vec<f32> = reference::conv2d(&x, &wv, &bv, &cs)
            .iter()
            .map(|v| v.max(0.0))
            .collect();
        let xt = Tensor::from_vec(&g, &[n, c, h, h], &x).unwrap();
        let wt = Tensor::from_vec(&g, &[o, c, k, k], &wv).unwrap();
        let bt = Tensor::from_vec(&g, &[o], &bv).unwrap();
        let y = conv::nhwc::conv2d_forward_to_nhwc(&xt, &wt, Some(&bt), s, Act::Relu).unwrap();
        assert_eq!(y.shape(), &[n, cs.oh, cs.ow, o]);
        let want = to_nhwc(&want, [n, o, cs.oh, cs.ow]);
        assert_close(&y.to_vec().unwrap(), &want, 1e-4, 1e-4, &format!("o={o}"));
    }
    // The store writes 4 channels as one vec4: other channel counts are refused, not written
    // past.
    let x = Tensor::zeros(&g, &[1, 3, 12, 12]).unwrap();
    let w = Tensor::zeros(&g, &[18, 3, 4, 4]).unwrap();
    let e = conv::nhwc::conv2d_forward_to_nhwc(&x, &w, None, 2, Act::None).unwrap_err();
    assert!(e.to_string().contains("multiple of 4"), "{e}");
}

#[test]
fn channels_that_are_not_multiples_of_8_are_refused() {
    let Some(g) = device() else { return };
    let x = Tensor::zeros(&g, &[1, 6, 6, 12]).unwrap();
    let w = Tensor::zeros(&g, &[8, 12, 3, 3]).unwrap();
    let e = conv::nhwc::conv2d_nhwc_forward(&x, &w, None, 1, Act::None, false).unwrap_err();
    assert!(e.to_string().contains("multiples of 8"), "{e}");
}

/// The observe-only encoder (a tape without gradients) takes the NHWC path where it applies
/// (channels 24, 48, 96, 192: the first layer's 24 outputs take the subgroup gather, every later
/// layer's channels are multiples of 8) and gives the NCHW path's embedding. On a device of its
/// own, so that the compiled pipelines show that the NHWC kernels ran.
#[test]
fn observe_only_encoder_matches_the_nchw_path() {
    let Some(g) = device() else { return };
    let cfg = Config {
        depth: 24,
        ..Config::tiny()
    };
    let n = 5;
    let images = rand_vec(n * 3 * 64 * 64, 70, -0.5, 0.5);
    let mut out = vec![];
    for on in [false, true] {
        let g = g.with_tuning(rssm::gpu::Tuning {
            nhwc: on,
            ..*g.tuning()
        });
        let wm = WorldModel::new(&g, &cfg).unwrap();
        let images = Tensor::from_vec(&g, &[n, 3, 64, 64], &images).unwrap();
        let before = g.stats().pipelines;
        let t = Tape::no_grad(&g);
        let p = wm.params.bind_frozen(&t);
        let x = t.constant(&images);
        let e = wm.encode(&t, &p, x).unwrap();
        out.push(t.value(e).to_vec().unwrap());
        let compiled = g.stats().pipelines - before;
        if on {
            // conv_nhwc and conv_nhwc_to_nchw (the other kernels are already compiled).
            assert_eq!(
                compiled, 2,
                "the NHWC path compiled {compiled} new pipelines"
            );
        }
    }
    assert_eq!(out[0].len(), n * cfg.embed());
    assert!(out[0].iter().any(|v| *v > 0.0), "the embedding is all zero");
    assert_close(&out[1], &out[0], 1e-5, 1e-4, "NHWC encoder against NCHW");
}
