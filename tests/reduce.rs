//! The reduction family (`shaders/reduce.wgsl`, `ops::reduce`): row, column and whole sums
//! against the reference, across the two-pass and the run thresholds and past a driver's loop
//! limit; finite-difference checks.

mod common;

use common::*;
use rssm::ops::{self, reduce};
use rssm::tensor::{gradcheck, GradcheckOptions, Tape, Tensor};

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

/// Sums to a scalar across the two-pass reduction's chunk of 4,096 values (one chunk, one
/// more value, several chunks and a partial one, more partial sums than one chunk).
#[test]
fn thresholds_two_pass_sums() {
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
}

// Finite differences.

#[test]
fn reductions() {
    let g = gpu();
    let x = (vec![3, 5], rand_vec(15, 10, -1.0, 1.0));
    gradcheck(
        &g,
        std::slice::from_ref(&x),
        &GradcheckOptions::default(),
        |t, v| ops::sum_rows(t, v[0], false),
    )
    .unwrap();
    gradcheck(
        &g,
        std::slice::from_ref(&x),
        &GradcheckOptions::default(),
        |t, v| ops::sum_rows(t, v[0], true),
    )
    .unwrap();
    gradcheck(
        &g,
        std::slice::from_ref(&x),
        &GradcheckOptions::default(),
        |t, v| ops::sum_leading(t, v[0]),
    )
    .unwrap();
    gradcheck(
        &g,
        std::slice::from_ref(&x),
        &GradcheckOptions::default(),
        |t, v| ops::sum_all(t, v[0]),
    )
    .unwrap();
    gradcheck(&g, &[x], &GradcheckOptions::default(), |t, v| {
        ops::mean_all(t, v[0])
    })
    .unwrap();
}
