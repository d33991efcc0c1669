//! Pictures: open-loop prediction grids as PNG (rows truth / model / error per sequence).

use std::path::Path;

use rssm::{Error, Result};

fn to_u8(v: f32) -> u8 {
    ((v + 0.5) * 255.0).round().clamp(0.0, 255.0) as u8
}

/// `truth` and `model` are `[B, T, 3, 64, 64]` in [-0.5, 0.5]. Writes a PNG with three rows per
/// sequence: truth, model, |error| (amplified x2), one 64x64 tile per step.
pub fn write_open_loop_png(path: &Path, truth: &[f32], model: &[f32], b: usize, steps: usize) -> Result<()> {
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
    let tmp = path.with_extension("png.tmp");
    let file = std::fs::File::create(&tmp)?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w as u32, h as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let err = |e: png::EncodingError| Error::File { path: path.to_path_buf(), msg: e.to_string() };
    let mut writer = enc.write_header().map_err(err)?;
    writer.write_image_data(&img).map_err(err)?;
    writer.finish().map_err(err)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
