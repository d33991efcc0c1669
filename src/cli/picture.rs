//! Pictures: open-loop prediction grids as PNG (rows truth / model / error per sequence, each
//! labelled) and frame strips, written atomically.

use std::path::Path;

use rssm::data::atomic::write_atomically;
use rssm::data::DataError;
use rssm::Result;

fn to_u8(v: f32) -> u8 {
    ((v + 0.5) * 255.0).round().clamp(0.0, 255.0) as u8
}

/// `truth` and `model` are `[B, T, 3, 64, 64]` in [-0.5, 0.5]. Writes a PNG with three rows per
/// sequence — truth, model, |error| (amplified x2), one 64x64 tile per step — each labelled
/// in a white column on the left.
pub fn write_open_loop_png(
    path: &Path,
    truth: &[f32],
    model: &[f32],
    b: usize,
    steps: usize,
) -> Result<()> {
    let img = open_loop_image(truth, model, b, steps);
    write_rgb(path, &img, LABEL_WIDTH + steps * 64, b * 3 * 64)
}

/// The RGB pixels of [`write_open_loop_png`]'s picture.
fn open_loop_image(truth: &[f32], model: &[f32], b: usize, steps: usize) -> Vec<u8> {
    let (w, h) = (LABEL_WIDTH + steps * 64, b * 3 * 64);
    let mut img = vec![0u8; w * h * 3];
    for py in 0..h {
        img[py * w * 3..(py * w + LABEL_WIDTH) * 3].fill(255);
    }
    for band in 0..b * 3 {
        let y = band * 64 + (64 - 7 * GLYPH_SCALE) / 2;
        draw_text(&mut img, w, 4, y, ROW_LABELS[band % 3]);
    }
    let frame = 3 * 64 * 64;
    for bi in 0..b {
        for t in 0..steps {
            let off = (bi * steps + t) * frame;
            for row in 0..3 {
                for y in 0..64 {
                    for x in 0..64 {
                        let py = (bi * 3 + row) * 64 + y;
                        let px = LABEL_WIDTH + t * 64 + x;
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
    img
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

fn write_rgb(path: &Path, img: &[u8], w: usize, h: usize) -> Result<()> {
    let err = |e: png::EncodingError| DataError::BadFile {
        path: path.to_path_buf(),
        reason: format!("cannot encode the PNG: {e}"),
    };
    write_atomically(path, |file| {
        let mut enc = png::Encoder::new(file, w as u32, h as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(err)?;
        writer.write_image_data(img).map_err(err)?;
        writer.finish().map_err(err)
    })?;
    Ok(())
}

/// Width of the label column left of an open-loop grid.
const LABEL_WIDTH: usize = 68;
/// Glyph scale: each font pixel is a 2x2 block.
const GLYPH_SCALE: usize = 2;

/// A 5x7 bitmap of each letter the row labels use (rows top to bottom, bit 4 = left column).
/// Built in, so the picture needs no font file.
fn glyph(c: char) -> Option<[u8; 7]> {
    Some(match c {
        'd' => [
            0b00001, 0b00001, 0b01101, 0b10011, 0b10001, 0b10001, 0b01111,
        ],
        'e' => [0, 0, 0b01110, 0b10001, 0b11111, 0b10000, 0b01110],
        'h' => [
            0b10000, 0b10000, 0b10110, 0b11001, 0b10001, 0b10001, 0b10001,
        ],
        'l' => [
            0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110,
        ],
        'm' => [0, 0, 0b11010, 0b10101, 0b10101, 0b10101, 0b10101],
        'o' => [0, 0, 0b01110, 0b10001, 0b10001, 0b10001, 0b01110],
        'r' => [0, 0, 0b10110, 0b11001, 0b10000, 0b10000, 0b10000],
        't' => [
            0b01000, 0b01000, 0b11110, 0b01000, 0b01000, 0b01001, 0b00110,
        ],
        'u' => [0, 0, 0b10001, 0b10001, 0b10001, 0b10011, 0b01101],
        _ => return None,
    })
}

/// Draws `text` in black into the RGB image `img` (width `w`) with its top-left at `(x, y)`.
fn draw_text(img: &mut [u8], w: usize, x: usize, y: usize, text: &str) {
    for (i, c) in text.chars().enumerate() {
        let Some(rows) = glyph(c) else { continue };
        let gx = x + i * 6 * GLYPH_SCALE;
        for (ry, bits) in rows.iter().enumerate() {
            for rx in 0..5 {
                if bits & (0b10000 >> rx) == 0 {
                    continue;
                }
                for dy in 0..GLYPH_SCALE {
                    for dx in 0..GLYPH_SCALE {
                        let (px, py) = (gx + rx * GLYPH_SCALE + dx, y + ry * GLYPH_SCALE + dy);
                        let at = (py * w + px) * 3;
                        if px < w && at + 3 <= img.len() {
                            img[at..at + 3].fill(0);
                        }
                    }
                }
            }
        }
    }
}

/// The row labels of an open-loop grid, top to bottom.
const ROW_LABELS: [&str; 3] = ["truth", "model", "error"];

#[cfg(test)]
mod tests {
    use super::*;

    /// The label column of band `band` as a bitmap of dark pixels.
    fn label_pixels(img: &[u8], w: usize, band: usize) -> Vec<bool> {
        (band * 64..(band + 1) * 64)
            .flat_map(|y| (0..LABEL_WIDTH).map(move |x| (x, y)))
            .map(|(x, y)| img[(y * w + x) * 3] < 128)
            .collect()
    }

    #[test]
    fn open_loop_rows_are_labelled_truth_model_error() {
        let (b, steps) = (2, 3);
        let n = b * steps * 3 * 64 * 64;
        let truth = vec![0.5f32; n];
        let model = vec![-0.5f32; n];
        let img = open_loop_image(&truth, &model, b, steps);
        let w = LABEL_WIDTH + steps * 64;
        assert_eq!(img.len(), w * b * 3 * 64 * 3);
        // Every band has a label, the three differ, and they repeat for the next sequence.
        let bands: Vec<Vec<bool>> = (0..b * 3).map(|k| label_pixels(&img, w, k)).collect();
        for (k, band) in bands.iter().enumerate() {
            let dark = band.iter().filter(|&&d| d).count();
            assert!(dark > 40, "band {k} has no label ({dark} dark pixels)");
        }
        assert_ne!(bands[0], bands[1]);
        assert_ne!(bands[1], bands[2]);
        assert_ne!(bands[0], bands[2]);
        assert_eq!(bands[0..3], bands[3..6]);
        // The labels are the words: drawing them alone gives the same pixels.
        for (k, word) in ROW_LABELS.iter().enumerate() {
            let mut alone = vec![255u8; LABEL_WIDTH * 64 * 3];
            draw_text(&mut alone, LABEL_WIDTH, 4, (64 - 7 * GLYPH_SCALE) / 2, word);
            let want: Vec<bool> = alone.chunks(3).map(|p| p[0] < 128).collect();
            assert_eq!(bands[k], want, "{word}");
        }
        // Truth (white), model (black), error (|1| * 2, saturated white) tiles right of it.
        let px = |x: usize, y: usize| img[(y * w + x) * 3];
        assert_eq!(px(LABEL_WIDTH + 10, 10), 255);
        assert_eq!(px(LABEL_WIDTH + 10, 64 + 10), 0);
        assert_eq!(px(LABEL_WIDTH + 10, 128 + 10), 255);
        // Every letter of the labels has a glyph.
        for word in ROW_LABELS {
            assert!(word.chars().all(|c| glyph(c).is_some()), "{word}");
        }
    }
}
