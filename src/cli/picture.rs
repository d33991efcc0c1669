//! Pictures: open-loop prediction grids as PNG (rows truth / model / error per sequence).

use std::path::Path;

use rssm::{Error, Result};

fn to_u8(v: f32) -> u8 {
    ((v + 0.5) * 255.0).round().clamp(0.0, 255.0) as u8
}

/// `truth` and `model` are `[B, T, 3, 64, 64]` in [-0.5, 0.5]. Writes a PNG with three rows per
/// sequence: truth, model, |error| (amplified x2), one 64x64 tile per step.
pub fn write_open_loop_png(
    path: &Path,
    truth: &[f32],
    model: &[f32],
    b: usize,
    steps: usize,
) -> Result<()> {
    let (w, h) = (steps * 64, b * 3 * 64);
    let mut img = vec![0u8; w * h * 3];
    let frame = 3 * 64 * 64;
    for bi in 0..b {
        for t in 0..steps {
            let off = (bi * steps + t) * frame;
            for row in 0..3 {
                for y in 0..64 {
                    for x in 0..64 {
                        let py = (bi * 3 + row) * 64 + y;
                        let px = t * 64 + x;
                        for c in 0..3 {
                            let i = off + c * 64 * 64 + y * 64 + x;
                            let v = match row {
                                0 => to_u8(truth[i]),
                                1 => to_u8(model[i]),
                                _ => ((truth[i] - model[i]).abs() * 2.0 * 255.0).min(255.0) as u8,
                            };
                            img[(py * w + px) * 3 + c] = v;
                        }
                    }
                }
            }
        }
    }
    write_rgb(path, &img, w, h)
}

/// A grid of frames `[N, 3, 64, 64]` in [-0.5, 0.5], `cols` per row, as a PNG (a strip a
/// person can watch left to right, top to bottom).
pub fn write_frames_png(path: &Path, frames: &[f32], n: usize, cols: usize) -> Result<()> {
    let cols = cols.max(1).min(n.max(1));
    let rows = n.div_ceil(cols);
    let (w, h) = (cols * 64, rows * 64);
    let mut img = vec![0u8; w * h * 3];
    let frame = 3 * 64 * 64;
    for i in 0..n {
        let (ty, tx) = (i / cols, i % cols);
        for y in 0..64 {
            for x in 0..64 {
                for c in 0..3 {
                    let v = frames[i * frame + c * 64 * 64 + y * 64 + x];
                    img[((ty * 64 + y) * w + tx * 64 + x) * 3 + c] = to_u8(v);
                }
            }
        }
    }
    write_rgb(path, &img, w, h)
}

/// A line plot of `(x, y)` series on a white 640x360 canvas with light grid lines: enough to
/// see a learning curve. Colours: first series blue, second orange.
pub fn write_curve_png(path: &Path, series: &[&[(f64, f64)]]) -> Result<()> {
    let (w, h, m) = (640usize, 360usize, 30usize);
    let mut img = vec![255u8; w * h * 3];
    let pts: Vec<(f64, f64)> = series.iter().flat_map(|s| s.iter().copied()).collect();
    if pts.is_empty() {
        return write_rgb(path, &img, w, h);
    }
    let (x0, x1) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |a, p| (a.0.min(p.0), a.1.max(p.0)));
    let (y0, y1) = pts
        .iter()
        .fold((0f64, f64::MIN), |a, p| (a.0.min(p.1), a.1.max(p.1)));
    let sx = |x: f64| m as f64 + (x - x0) / (x1 - x0).max(1e-9) * (w - 2 * m) as f64;
    let sy = |y: f64| (h - m) as f64 - (y - y0) / (y1 - y0).max(1e-9) * (h - 2 * m) as f64;
    let mut put = |x: i64, y: i64, c: [u8; 3]| {
        if x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h {
            let i = (y as usize * w + x as usize) * 3;
            img[i..i + 3].copy_from_slice(&c);
        }
    };
    for k in 0..=4 {
        let y = (m + k * (h - 2 * m) / 4) as i64;
        for x in m..w - m {
            put(x as i64, y, [225, 225, 225]);
        }
    }
    let colours = [[31, 119, 180], [255, 127, 14]];
    for (si, s) in series.iter().enumerate() {
        let c = colours[si % 2];
        for pair in s.windows(2) {
            let (ax, ay, bx, by) = (sx(pair[0].0), sy(pair[0].1), sx(pair[1].0), sy(pair[1].1));
            let steps = ((bx - ax).abs().max((by - ay).abs()) as usize).max(1);
            for k in 0..=steps {
                let f = k as f64 / steps as f64;
                let (x, y) = ((ax + f * (bx - ax)) as i64, (ay + f * (by - ay)) as i64);
                for d in -1..=1 {
                    put(x, y + d, c);
                }
            }
        }
        for p in s.iter() {
            for dx in -2..=2 {
                for dy in -2..=2 {
                    put(sx(p.0) as i64 + dx, sy(p.1) as i64 + dy, c);
                }
            }
        }
    }
    write_rgb(path, &img, w, h)
}

fn write_rgb(path: &Path, img: &[u8], w: usize, h: usize) -> Result<()> {
    let tmp = path.with_extension("png.tmp");
    let file = std::fs::File::create(&tmp)?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w as u32, h as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let err = |e: png::EncodingError| Error::File {
        path: path.to_path_buf(),
        msg: e.to_string(),
    };
    let mut writer = enc.write_header().map_err(err)?;
    writer.write_image_data(img).map_err(err)?;
    writer.finish().map_err(err)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
