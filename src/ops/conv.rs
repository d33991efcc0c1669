//! (being written)
use crate::error::Result;
use crate::ops::matmul::Act;
use crate::tensor::Tensor;

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    r: u32,
    o: u32,
    ih: u32,
    iw: u32,
    oh: u32,
    ow: u32,
    ws_o: u32,
    ws_r: u32,
}

/// experimental
pub fn conv2d_forward(x: &Tensor, w: &Tensor, b: Option<&Tensor>, stride: usize, act: Act, entry: &'static str) -> Result<Tensor> {
    let (n, ci, h, wd) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    let (co, kh, kw) = (w.shape()[0], w.shape()[2], w.shape()[3]);
    let (oh, ow) = ((h - kh) / stride + 1, (wd - kw) / stride + 1);
    let gpu = x.gpu();
    let y = Tensor::empty(gpu, &[n, co, oh, ow])?;
    let k = gpu.kernel("conv", entry, &[("KH", kh as f64), ("KW", kw as f64), ("S", stride as f64), ("HAS_BIAS", b.is_some() as u32 as f64), ("ACT", act.code())])?;
    let p = Params { n: n as u32, r: ci as u32, o: co as u32, ih: h as u32, iw: wd as u32, oh: oh as u32, ow: ow as u32, ws_o: (ci * kh * kw) as u32, ws_r: (kh * kw) as u32 };
    let grid = gpu.grid_2d(co.div_ceil(4), (n * oh * ow).div_ceil(256));
    gpu.dispatch(&k, &p, &[x.buf(), w.buf(), b.unwrap_or(x).buf(), y.buf()], grid);
    Ok(y)
}

/// experimental 2
pub fn conv2d_forward2(x: &Tensor, w: &Tensor, b: Option<&Tensor>, stride: usize, act: Act, entry: &'static str) -> Result<Tensor> {
    let (n, ci, h, wd) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    let (co, kh, kw) = (w.shape()[0], w.shape()[2], w.shape()[3]);
    let (oh, ow) = ((h - kh) / stride + 1, (wd - kw) / stride + 1);
    let gpu = x.gpu();
    let consts = [("KH", kh as f64), ("KW", kw as f64), ("S", stride as f64), ("HAS_BIAS", b.is_some() as u32 as f64), ("ACT", act.code())];
    let cb = if entry.contains("c1") { 4 } else if entry.contains("c4") { 16 } else if entry.contains("c8") { 32 } else { 8 };
    let opad4 = co.div_ceil(cb) * cb / 4;
    let packed = Tensor::empty(gpu, &[ci * kh * kw * opad4 * 4])?;
    let kp = gpu.kernel("conv", "pack_w", &consts)?;
    let total = ci * kh * kw * opad4;
    let pp = Params { n: total as u32, o: opad4 as u32, ws_o: co as u32, ih: (ci * kh * kw) as u32, iw: (kh * kw) as u32, ..Default::default() };
    gpu.dispatch(&kp, &pp, &[w.buf(), packed.buf()], gpu.grid_1d(total, 256));
    let y = Tensor::empty(gpu, &[n, co, oh, ow])?;
    let k = gpu.kernel("conv", entry, &consts)?;
    let p = Params { n: n as u32, r: ci as u32, o: co as u32, ih: h as u32, iw: wd as u32, oh: oh as u32, ow: ow as u32, ws_o: opad4 as u32, ws_r: 0 };
    let pb: usize = entry.rsplit(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap_or(8);
    let grid = if entry.starts_with('g') { gpu.grid_2d(co.div_ceil(cb), (n * oh * ow).div_ceil(pb * 64)) } else { gpu.grid_2d(co.div_ceil(cb), (n * oh * ow.div_ceil(pb)).div_ceil(64)) };
    gpu.dispatch(&k, &p, &[x.buf(), b.unwrap_or(x).buf(), y.buf(), &packed.buf()], grid);
    Ok(y)
}

/// Conv2d on the tape (being written).
pub fn conv2d(_t: &crate::tensor::Tape, _x: crate::tensor::Var, _w: crate::tensor::Var, _b: crate::tensor::Var, _stride: usize, _act: Act) -> Result<crate::tensor::Var> {
    Err(crate::error::Error::Invalid("conv2d: being written".into()))
}

/// ConvTranspose2d on the tape (being written).
pub fn conv_transpose2d(_t: &crate::tensor::Tape, _x: crate::tensor::Var, _w: crate::tensor::Var, _b: crate::tensor::Var, _stride: usize, _act: Act) -> Result<crate::tensor::Var> {
    Err(crate::error::Error::Invalid("conv_transpose2d: being written".into()))
}
