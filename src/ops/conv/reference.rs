use super::ConvShape;

fn ix(c: usize, h: usize, w: usize) -> impl Fn(usize, usize, usize, usize) -> usize {
    move |n, ch, y, x| ((n * c + ch) * h + y) * w + x
}

/// Conv2d forward (bias included, no activation). `cs` from [`super::conv2d_shape`].
pub fn conv2d(x: &[f32], w: &[f32], b: &[f32], cs: &ConvShape) -> Vec<f32> {
    let xi = ix(cs.ci, cs.h, cs.w);
    let wi = ix(cs.ci, cs.kh, cs.kw);
    let yi = ix(cs.co, cs.oh, cs.ow);
    let mut y = vec![0f32; cs.n * cs.co * cs.oh * cs.ow];
    for n in 0..cs.n {
        for o in 0..cs.co {
            for oy in 0..cs.oh {
                for ox in 0..cs.ow {
                    let mut s = b[o] as f64;
                    for c in 0..cs.ci {
                        for ky in 0..cs.kh {
                            for kx in 0..cs.kw {
                                s += x[xi(n, c, oy * cs.s + ky, ox * cs.s + kx)] as f64
                                    * w[wi(o, c, ky, kx)] as f64;
                            }
                        }
                    }
                    y[yi(n, o, oy, ox)] = s as f32;
                }
            }
        }
    }
    y
}

/// Conv2d gradients `(gx, gw, gb)` from the output gradient `g`.
pub fn conv2d_backward(
    x: &[f32],
    w: &[f32],
    g: &[f32],
    cs: &ConvShape,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let xi = ix(cs.ci, cs.h, cs.w);
    let wi = ix(cs.ci, cs.kh, cs.kw);
    let yi = ix(cs.co, cs.oh, cs.ow);
    let mut gx = vec![0f64; x.len()];
    let mut gw = vec![0f64; w.len()];
    let mut gb = vec![0f64; cs.co];
    for n in 0..cs.n {
        for o in 0..cs.co {
            for oy in 0..cs.oh {
                for ox in 0..cs.ow {
                    let gv = g[yi(n, o, oy, ox)] as f64;
                    gb[o] += gv;
                    for c in 0..cs.ci {
                        for ky in 0..cs.kh {
                            for kx in 0..cs.kw {
                                let xj = xi(n, c, oy * cs.s + ky, ox * cs.s + kx);
                                let wj = wi(o, c, ky, kx);
                                gx[xj] += gv * w[wj] as f64;
                                gw[wj] += gv * x[xj] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    let f = |v: Vec<f64>| v.into_iter().map(|a| a as f32).collect();
    (f(gx), f(gw), f(gb))
}

/// ConvTranspose2d forward (bias included, no activation). `cs` from
/// [`super::conv_transpose2d_shape`] (`h`, `w`: the input; `oh`, `ow`: the output).
pub fn conv_transpose2d(x: &[f32], w: &[f32], b: &[f32], cs: &ConvShape) -> Vec<f32> {
    let xi = ix(cs.ci, cs.h, cs.w);
    let wi = ix(cs.co, cs.kh, cs.kw);
    let yi = ix(cs.co, cs.oh, cs.ow);
    let mut y = vec![0f64; cs.n * cs.co * cs.oh * cs.ow];
    for n in 0..cs.n {
        for o in 0..cs.co {
            for oy in 0..cs.oh {
                for ox in 0..cs.ow {
                    y[yi(n, o, oy, ox)] = b[o] as f64;
                }
            }
        }
        for c in 0..cs.ci {
            for iy in 0..cs.h {
                for ixx in 0..cs.w {
                    let xv = x[xi(n, c, iy, ixx)] as f64;
                    for o in 0..cs.co {
                        for ky in 0..cs.kh {
                            for kx in 0..cs.kw {
                                y[yi(n, o, iy * cs.s + ky, ixx * cs.s + kx)] +=
                                    xv * w[wi(c, o, ky, kx)] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    y.into_iter().map(|a| a as f32).collect()
}

/// ConvTranspose2d gradients `(gx, gw, gb)` from the output gradient `g`.
pub fn conv_transpose2d_backward(
    x: &[f32],
    w: &[f32],
    g: &[f32],
    cs: &ConvShape,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let xi = ix(cs.ci, cs.h, cs.w);
    let wi = ix(cs.co, cs.kh, cs.kw);
    let yi = ix(cs.co, cs.oh, cs.ow);
    let mut gx = vec![0f64; x.len()];
    let mut gw = vec![0f64; w.len()];
    let mut gb = vec![0f64; cs.co];
    for n in 0..cs.n {
        for o in 0..cs.co {
            for oy in 0..cs.oh {
                for ox in 0..cs.ow {
                    gb[o] += g[yi(n, o, oy, ox)] as f64;
                }
            }
        }
        for c in 0..cs.ci {
            for iy in 0..cs.h {
                for ixx in 0..cs.w {
                    let xj = xi(n, c, iy, ixx);
                    let xv = x[xj] as f64;
                    let mut s = 0f64;
                    for o in 0..cs.co {
                        for ky in 0..cs.kh {
                            for kx in 0..cs.kw {
                                let gv = g[yi(n, o, iy * cs.s + ky, ixx * cs.s + kx)] as f64;
                                let wj = wi(c, o, ky, kx);
                                s += gv * w[wj] as f64;
                                gw[wj] += gv * xv;
                            }
                        }
                    }
                    gx[xj] = s;
                }
            }
        }
    }
    let f = |v: Vec<f64>| v.into_iter().map(|a| a as f32).collect();
    (f(gx), f(gw), f(gb))
}
