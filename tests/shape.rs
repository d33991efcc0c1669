//! The shape family (`shaders/shape.wgsl`, `ops::shape`): concat, split, slice, stack and
//! copies against the reference, past 65,535 workgroups, with clear shape errors;
//! finite-difference checks.

mod common;

use common::*;
use rssm::ops::matmul::Act;
use rssm::ops::{self, shape};
use rssm::tensor::{gradcheck, GradcheckOptions, Tape, Tensor};

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

// Finite differences.

#[test]
fn shape_ops() {
    let g = gpu();
    let a = (vec![3, 2], rand_vec(6, 11, -1.0, 1.0));
    let b = (vec![3, 4], rand_vec(12, 12, -1.0, 1.0));
    gradcheck(
        &g,
        &[a.clone(), b.clone()],
        &GradcheckOptions::default(),
        |t, v| ops::concat_last(t, &[v[0], v[1]]),
    )
    .unwrap();
    gradcheck(
        &g,
        std::slice::from_ref(&b),
        &GradcheckOptions::default(),
        |t, v| Ok(ops::split_last(t, v[0], &[1, 3])?[1]),
    )
    .unwrap();
    let seq = (vec![2, 3, 4], rand_vec(24, 13, -1.0, 1.0));
    gradcheck(
        &g,
        std::slice::from_ref(&seq),
        &GradcheckOptions::default(),
        |t, v| shape::slice_time(t, v[0], 1),
    )
    .unwrap();
    gradcheck(&g, &[a.clone(), a], &GradcheckOptions::default(), |t, v| {
        ops::stack_time(t, &[v[0], v[1]])
    })
    .unwrap();
    gradcheck(&g, &[seq], &GradcheckOptions::default(), |t, v| {
        ops::reshape(t, v[0], &[6, 4])
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
    gradcheck(&g, &inputs, &GradcheckOptions::default(), |t, v| {
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
