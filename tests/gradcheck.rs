//! The finite-difference checker itself: it catches a wrong gradient and refuses a check of
//! nothing. (Each kernel family checks its ops in its own test file.) See
//! `rssm::tensor::gradcheck` for the step and the tolerances.

mod common;

use common::{gpu, rand_vec};
use rssm::ops::{self};
use rssm::tensor::{gradcheck, GradcheckOptions};

#[test]
fn a_wrong_gradient_is_caught() {
    // The checker itself must be able to fail: y = x * sg(x) looks like x^2 but its gradient is
    // x, not 2x, so checking it against the finite differences of x^2 must fail.
    let g = gpu();
    let x = rand_vec(3, 41, 0.5, 1.0);
    let r = gradcheck(&g, &[(vec![3], x)], &GradcheckOptions::default(), |t, v| {
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
        ..GradcheckOptions::default()
    };
    let e = gradcheck(&g, std::slice::from_ref(&x), &none, |t, v| {
        ops::tanh(t, v[0])
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("checked nothing"), "{e}");
    // A function that does not depend on its input: every gradient is zero, so any backward
    // would pass; the check must say so instead.
    let e = gradcheck(&g, &[x], &GradcheckOptions::default(), |t, v| {
        ops::scale(t, v[0], 0.0, 1.0)
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("tiny"), "{e}");
}
