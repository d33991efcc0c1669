//! The fused GRU cell against its plain-Rust reference (forward and every gradient) at awkward
//! sizes, finite-difference gradient checks of every input, gradient accumulation over steps,
//! and shape errors.

mod common;

use common::{assert_close, gpu, rand_vec};
use rssm::gpu::{Gpu, GpuOptions};
use rssm::ops::gru::{self, gru_cell, reference::Cell, GruWeights};
use rssm::ops::{concat_last, mean_all};
use rssm::tensor::{gradcheck, GradcheckOptions, Tape, Tensor};

struct Case {
    batch: usize,
    input: usize,
    hidden: usize,
    x: Vec<f32>,
    h: Vec<f32>,
    w_ih: Vec<f32>,
    w_hh: Vec<f32>,
    b_ih: Vec<f32>,
    b_hh: Vec<f32>,
}

impl Case {
    fn new(batch: usize, input: usize, hidden: usize, seed: u64) -> Case {
        // Weights a little larger than PyTorch's U(-1/sqrt(H), 1/sqrt(H)) so the gates leave
        // their linear range.
        let s = 1.5 / (hidden as f32).sqrt();
        Case {
            batch,
            input,
            hidden,
            x: rand_vec(batch * input, seed, -1.0, 1.0),
            h: rand_vec(batch * hidden, seed + 1, -1.0, 1.0),
            w_ih: rand_vec(3 * hidden * input, seed + 2, -s, s),
            w_hh: rand_vec(3 * hidden * hidden, seed + 3, -s, s),
            b_ih: rand_vec(3 * hidden, seed + 4, -0.5, 0.5),
            b_hh: rand_vec(3 * hidden, seed + 5, -0.5, 0.5),
        }
    }

    fn cell(&self) -> Cell<'_> {
        Cell {
            w_ih: &self.w_ih,
            w_hh: &self.w_hh,
            b_ih: &self.b_ih,
            b_hh: &self.b_hh,
            batch: self.batch,
            input: self.input,
            hidden: self.hidden,
        }
    }

    /// `(shape, values)` of x, h, w_ih, w_hh, b_ih, b_hh, for gradcheck.
    fn inputs(&self) -> Vec<(Vec<usize>, Vec<f32>)> {
        let (b, i, h) = (self.batch, self.input, self.hidden);
        vec![
            (vec![b, i], self.x.clone()),
            (vec![b, h], self.h.clone()),
            (vec![3 * h, i], self.w_ih.clone()),
            (vec![3 * h, h], self.w_hh.clone()),
            (vec![3 * h], self.b_ih.clone()),
            (vec![3 * h], self.b_hh.clone()),
        ]
    }

    fn tensors(&self, g: &Gpu) -> Vec<Tensor> {
        self.inputs()
            .iter()
            .map(|(s, v)| Tensor::from_vec(g, s, v).unwrap())
            .collect()
    }
}

#[test]
fn gru_forward_and_backward_match_reference_at_awkward_sizes() {
    let g = gpu();
    for &batch in &[1, 3, 33] {
        for &hidden in &[1, 7, 33] {
            for &input in &[1, 5, 33] {
                let c = Case::new(
                    batch,
                    input,
                    hidden,
                    (batch * 10_000 + hidden * 100 + input) as u64,
                );
                let what = format!("B={batch} I={input} H={hidden}");
                let gout = rand_vec(batch * hidden, 99, -1.0, 1.0);
                let t = Tape::new(&g);
                let v: Vec<_> = c.tensors(&g).iter().map(|x| t.param(x)).collect();
                let y = gru_cell(&t, v[0], v[1], v[2], v[3], v[4], v[5]).unwrap();
                assert_eq!(t.shape(y), vec![batch, hidden]);
                let y_val = t.value(y);
                let grads = t
                    .backward_with(y, Tensor::from_vec(&g, &[batch, hidden], &gout).unwrap())
                    .unwrap();
                let want = c.cell().forward(&c.x, &c.h);
                assert_close(
                    &y_val.to_vec().unwrap(),
                    &want,
                    2e-6,
                    1e-5,
                    &format!("h' {what}"),
                );
                let r = c.cell().backward(&c.x, &c.h, &gout);
                let got = |i: usize| grads.get(v[i]).unwrap().to_vec().unwrap();
                // Gradients are sums of up to max(B, 3H) products of O(1) terms.
                let tol = 2e-6 * (batch.max(3 * hidden) as f32).sqrt() + 2e-6;
                assert_close(&got(0), &r.dx, tol, 1e-4, &format!("dx {what}"));
                assert_close(&got(1), &r.dh, tol, 1e-4, &format!("dh {what}"));
                assert_close(&got(2), &r.dw_ih, tol, 1e-4, &format!("dW_ih {what}"));
                assert_close(&got(3), &r.dw_hh, tol, 1e-4, &format!("dW_hh {what}"));
                assert_close(&got(4), &r.db_ih, tol, 1e-4, &format!("db_ih {what}"));
                assert_close(&got(5), &r.db_hh, tol, 1e-4, &format!("db_hh {what}"));
            }
        }
    }
}

#[test]
fn gru_gradcheck_every_input() {
    let g = gpu();
    let c = Case::new(3, 5, 4, 7);
    let report = gradcheck(&g, &c.inputs(), &GradcheckOptions::default(), |t, v| {
        gru_cell(t, v[0], v[1], v[2], v[3], v[4], v[5])
    })
    .unwrap();
    assert_eq!(report.checked, 15 + 12 + 60 + 48 + 12 + 12);
}

#[test]
fn gru_gradcheck_three_steps_accumulates_in_place() {
    // x is reused at every step and the weights are shared: every gradient receives three
    // contributions (matmuls and the fused kernel with ACC, the bias sums with their add).
    let g = gpu();
    let c = Case::new(2, 3, 4, 11);
    gradcheck(&g, &c.inputs(), &GradcheckOptions::default(), |t, v| {
        let h1 = gru_cell(t, v[0], v[1], v[2], v[3], v[4], v[5])?;
        let h2 = gru_cell(t, v[0], h1, v[2], v[3], v[4], v[5])?;
        let h3 = gru_cell(t, v[0], h2, v[2], v[3], v[4], v[5])?;
        concat_last(t, &[h1, h2, h3])
    })
    .unwrap();
}

#[test]
fn gru_same_var_as_input_and_state() {
    // x == h (I == H): both gradients land on one Var.
    let g = gpu();
    let c = Case::new(3, 4, 4, 13);
    let mut inputs = c.inputs();
    inputs.remove(0);
    gradcheck(&g, &inputs, &GradcheckOptions::default(), |t, v| {
        gru_cell(t, v[0], v[0], v[1], v[2], v[3], v[4])
    })
    .unwrap();
}

#[test]
fn gru_constant_state_and_no_grad_tape() {
    let g = gpu();
    let c = Case::new(3, 5, 7, 17);
    let ts = c.tensors(&g);
    // h is a constant (the zero initial state of a sequence): no dh is computed.
    let t = Tape::new(&g);
    let x = t.param(&ts[0]);
    let h = t.constant(&ts[1]);
    let p: Vec<_> = ts[2..].iter().map(|w| t.param(w)).collect();
    let y = gru_cell(&t, x, h, p[0], p[1], p[2], p[3]).unwrap();
    let loss = mean_all(&t, y).unwrap();
    let grads = t.backward(loss).unwrap();
    assert!(grads.get(h).is_none());
    let gout = vec![1.0 / (3.0 * 7.0); 21];
    let r = c.cell().backward(&c.x, &c.h, &gout);
    assert_close(
        &grads.get(x).unwrap().to_vec().unwrap(),
        &r.dx,
        1e-6,
        1e-4,
        "dx with constant h",
    );
    assert_close(
        &grads.get(p[1]).unwrap().to_vec().unwrap(),
        &r.dw_hh,
        1e-6,
        1e-4,
        "dW_hh with constant h",
    );
    // Inference: nothing saved, same value.
    let t = Tape::no_grad(&g);
    let v: Vec<_> = ts.iter().map(|x| t.constant(x)).collect();
    let y = gru_cell(&t, v[0], v[1], v[2], v[3], v[4], v[5]).unwrap();
    assert_close(
        &t.value(y).to_vec().unwrap(),
        &c.cell().forward(&c.x, &c.h),
        2e-6,
        1e-5,
        "no-grad h'",
    );
}

#[test]
fn gru_tensor_level_forward_saves_gates() {
    let g = gpu();
    let c = Case::new(2, 3, 5, 19);
    let ts = c.tensors(&g);
    let w = GruWeights {
        w_ih: &ts[2],
        w_hh: &ts[3],
        b_ih: &ts[4],
        b_hh: &ts[5],
    };
    let (h_new, saved) = gru::gru_cell_forward(&ts[0], &ts[1], &w, true).unwrap();
    let saved = saved.unwrap();
    assert_eq!(saved.shape(), &[2, 20]);
    let s = saved.to_vec().unwrap();
    let hn = h_new.to_vec().unwrap();
    // h' = (1 - z) n + z h from the saved gates; r and z are in (0, 1), n in (-1, 1).
    for b in 0..2 {
        for j in 0..5 {
            let (r, z, n) = (s[b * 20 + j], s[b * 20 + 5 + j], s[b * 20 + 10 + j]);
            assert!(r > 0.0 && r < 1.0 && z > 0.0 && z < 1.0 && n.abs() < 1.0);
            let want = (1.0 - z) * n + z * c.h[b * 5 + j];
            assert!((hn[b * 5 + j] - want).abs() < 1e-6);
        }
    }
    let (_, none) = gru::gru_cell_forward(&ts[0], &ts[1], &w, false).unwrap();
    assert!(none.is_none());
}

#[test]
fn gru_dispatch_counts() {
    // A device of its own: the counters must not see other tests' work.
    let g = Gpu::new(&GpuOptions::default()).unwrap();
    let c = Case::new(4, 3, 5, 23);
    let ts = c.tensors(&g);
    let t = Tape::new(&g);
    let v: Vec<_> = ts.iter().map(|x| t.param(x)).collect();
    let d0 = g.stats().dispatches;
    let y = gru_cell(&t, v[0], v[1], v[2], v[3], v[4], v[5]).unwrap();
    let d1 = g.stats().dispatches;
    assert_eq!(
        d1 - d0,
        3,
        "forward: two gate matmuls and one fused cell kernel"
    );
    let seed = Tensor::full(&g, &[4, 5], 1.0).unwrap();
    let grads = t.backward_with(y, seed).unwrap();
    let d2 = g.stats().dispatches;
    // fused cell backward, dh, dx, dW_ih, dW_hh matmuls, two bias column sums
    assert_eq!(d2 - d1, 7, "backward");
    drop(grads);
    g.sync();
}

#[test]
fn gru_shape_errors_are_clear() {
    let g = gpu();
    let c = Case::new(2, 3, 4, 29);
    let ts = c.tensors(&g);
    let t = Tape::no_grad(&g);
    let v: Vec<_> = ts.iter().map(|x| t.constant(x)).collect();
    // x and h swapped: I = 3 but x has 4 columns
    let e = gru_cell(&t, v[1], v[0], v[2], v[3], v[4], v[5])
        .unwrap_err()
        .to_string();
    assert!(e.contains("gru_cell"), "{e}");
    // weight_ih where weight_hh belongs
    let e = gru_cell(&t, v[0], v[1], v[2], v[2], v[4], v[5])
        .unwrap_err()
        .to_string();
    assert!(e.contains("gru_cell") && e.contains("weight_hh"), "{e}");
    // bias of the wrong length
    let short = t.constant(&Tensor::zeros(&g, &[11]).unwrap());
    let e = gru_cell(&t, v[0], v[1], v[2], v[3], short, v[5])
        .unwrap_err()
        .to_string();
    assert!(e.contains("bias_ih"), "{e}");
    // batch mismatch
    let h3 = t.constant(&Tensor::zeros(&g, &[3, 4]).unwrap());
    let e = gru_cell(&t, v[0], h3, v[2], v[3], v[4], v[5])
        .unwrap_err()
        .to_string();
    assert!(e.contains("leading shape"), "{e}");
}
