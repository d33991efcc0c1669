//! dm_control's reward shaping helper, `rewards.tolerance`, so the built-in tasks use the same
//! reward vocabulary as the DeepMind Control Suite.

/// Shape of the fall-off outside the bounds (dm_control's `sigmoid` argument, the ones used here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sigmoid {
    /// `exp(-0.5 (d * s)^2)`: smooth, never exactly zero.
    Gaussian,
    /// `1 - (d * s)^2` clipped at 0: reaches exactly zero at `d * s = 1`.
    Quadratic,
    /// `1 - d * s` clipped at 0: a constant slope all the way out to the margin.
    Linear,
}

/// 1 when `lower <= x <= upper`; outside, decays with the distance `d` to the nearest bound,
/// measured in units of `margin`, so that the value at `d = margin` is `value_at_margin`.
/// With `margin == 0` the result is an indicator (1 inside, 0 outside).
///
/// Matches `dm_control.utils.rewards.tolerance` for the sigmoids above. `value_at_margin` must
/// be in `(0, 1)` for `Gaussian` and `[0, 1)` for `Quadratic` and `Linear`; it is clamped
/// into range.
pub fn tolerance(
    x: f64,
    lower: f64,
    upper: f64,
    margin: f64,
    sigmoid: Sigmoid,
    value_at_margin: f64,
) -> f64 {
    if (lower..=upper).contains(&x) {
        return 1.0;
    }
    if margin <= 0.0 || !x.is_finite() {
        return 0.0;
    }
    let d = if x < lower { lower - x } else { x - upper } / margin;
    match sigmoid {
        Sigmoid::Gaussian => {
            let v = value_at_margin.clamp(1e-12, 1.0 - 1e-12);
            let scale = (-2.0 * v.ln()).sqrt();
            (-0.5 * (d * scale).powi(2)).exp()
        }
        Sigmoid::Quadratic => {
            let v = value_at_margin.clamp(0.0, 1.0 - 1e-12);
            let s = d * (1.0 - v).sqrt();
            if s.abs() < 1.0 {
                1.0 - s * s
            } else {
                0.0
            }
        }
        Sigmoid::Linear => {
            let s = d * (1.0 - value_at_margin.clamp(0.0, 1.0 - 1e-12));
            if s.abs() < 1.0 {
                1.0 - s.abs()
            } else {
                0.0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_dm_control_definition() {
        assert_eq!(tolerance(0.5, 0.0, 1.0, 1.0, Sigmoid::Gaussian, 0.1), 1.0);
        let at_margin = tolerance(2.0, 0.0, 1.0, 1.0, Sigmoid::Gaussian, 0.1);
        assert!((at_margin - 0.1).abs() < 1e-12);
        assert!((tolerance(-0.5, 0.0, 0.0, 1.0, Sigmoid::Quadratic, 0.0) - 0.75).abs() < 1e-12);
        assert_eq!(tolerance(-1.0, 0.0, 0.0, 1.0, Sigmoid::Quadratic, 0.0), 0.0);
        assert_eq!(tolerance(1.1, 0.0, 1.0, 0.0, Sigmoid::Gaussian, 0.1), 0.0);
        assert!((tolerance(1.25, 0.0, 1.0, 1.0, Sigmoid::Linear, 0.0) - 0.75).abs() < 1e-12);
        let lin_margin = tolerance(-2.0, 0.0, 1.0, 2.0, Sigmoid::Linear, 0.2);
        assert!((lin_margin - 0.2).abs() < 1e-12);
        assert_eq!(tolerance(-3.0, 0.0, 1.0, 2.0, Sigmoid::Linear, 0.0), 0.0);
    }
}
