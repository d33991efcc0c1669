//! A tiny anti-aliased software rasterizer into a 64x64 RGB `u8` image (HWC order).
//!
//! Shapes are described by signed distance functions. A pixel's coverage is
//! `clamp(0.5 - d, 0, 1)` where `d` is the signed distance (in pixels, negative inside) from the
//! pixel centre to the shape's edge, and the shape's colour is blended in with that coverage.
//! This one-pixel-wide ramp means a sub-pixel motion changes edge pixels by a proportional
//! amount instead of flipping them, so rendered observations vary smoothly with the state,
//! which is what a pixel-reconstructing world model wants.
//!
//! Coordinates are in pixels: `x` to the right, `y` downwards, `(0, 0)` the top-left corner of
//! the image, and pixel `(col, row)` covering `[col, col+1) x [row, row+1)` with its centre at
//! `(col + 0.5, row + 0.5)`. Shapes may extend past the image (they are clipped); shapes with
//! non-finite parameters are ignored instead of panicking.

use crate::data::{FRAME_LEN, IMAGE_CHANNELS, IMAGE_SIZE};

/// An RGB colour.
pub type Rgb = [u8; 3];

/// Image side in pixels (64).
pub const SIZE: usize = IMAGE_SIZE;

/// A 64x64 RGB image being drawn on, stored as `[64, 64, 3]` `u8` (HWC, row-major).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Canvas {
    pixels: Vec<u8>,
}

impl Default for Canvas {
    fn default() -> Self {
        Canvas::new([0, 0, 0])
    }
}

impl Canvas {
    /// A canvas filled with `background`.
    pub fn new(background: Rgb) -> Self {
        let mut c = Canvas {
            pixels: vec![0; FRAME_LEN],
        };
        c.clear(background);
        c
    }

    /// Fills the whole canvas with `color`.
    pub fn clear(&mut self, color: Rgb) {
        for px in self.pixels.chunks_exact_mut(IMAGE_CHANNELS) {
            px.copy_from_slice(&color);
        }
    }

    /// The pixel at column `x`, row `y`, or `None` outside the image.
    pub fn pixel(&self, x: usize, y: usize) -> Option<Rgb> {
        if x >= SIZE || y >= SIZE {
            return None;
        }
        let i = (y * SIZE + x) * IMAGE_CHANNELS;
        Some([self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]])
    }

    /// The image, `[64, 64, 3]` HWC.
    pub fn as_bytes(&self) -> &[u8] {
        &self.pixels
    }

    /// Takes the image out, `[64, 64, 3]` HWC.
    pub fn into_bytes(self) -> Vec<u8> {
        self.pixels
    }

    /// A filled circle of radius `r` centred at `(cx, cy)`.
    pub fn fill_circle(&mut self, cx: f32, cy: f32, r: f32, color: Rgb) {
        if ![cx, cy, r].iter().all(|v| v.is_finite()) || r <= 0.0 {
            return;
        }
        self.fill_sdf((cx - r, cy - r, cx + r, cy + r), color, |x, y| {
            ((x - cx).powi(2) + (y - cy).powi(2)).sqrt() - r
        });
    }

    /// A thick line from `(x0, y0)` to `(x1, y1)` with round caps: all points within `radius` of
    /// the segment (a capsule). The stroke is `2 * radius` wide.
    pub fn fill_capsule(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, radius: f32, color: Rgb) {
        if ![x0, y0, x1, y1, radius].iter().all(|v| v.is_finite()) || radius <= 0.0 {
            return;
        }
        let (dx, dy) = (x1 - x0, y1 - y0);
        let len2 = dx * dx + dy * dy;
        let bbox = (
            x0.min(x1) - radius,
            y0.min(y1) - radius,
            x0.max(x1) + radius,
            y0.max(y1) + radius,
        );
        self.fill_sdf(bbox, color, |x, y| {
            let (px, py) = (x - x0, y - y0);
            let h = if len2 > 0.0 {
                ((px * dx + py * dy) / len2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            ((px - h * dx).powi(2) + (py - h * dy).powi(2)).sqrt() - radius
        });
    }

    /// A thick line segment of total width `width` (a capsule of radius `width / 2`).
    pub fn draw_line(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, width: f32, color: Rgb) {
        self.fill_capsule(x0, y0, x1, y1, width * 0.5, color);
    }

    /// A filled axis-aligned rectangle covering `[x0, x1] x [y0, y1]` (corners in any order).
    /// Edges at fractional positions get partial coverage.
    pub fn fill_rect(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, color: Rgb) {
        let (cx, cy) = ((x0 + x1) * 0.5, (y0 + y1) * 0.5);
        let (hw, hh) = ((x1 - x0).abs() * 0.5, (y1 - y0).abs() * 0.5);
        self.fill_rotated_rect(cx, cy, hw, hh, 0.0, color);
    }

    /// A filled rectangle centred at `(cx, cy)` with half extents `(half_w, half_h)` along its
    /// own axes, rotated by `angle` radians (clockwise on screen, since `y` points down).
    pub fn fill_rotated_rect(
        &mut self,
        cx: f32,
        cy: f32,
        half_w: f32,
        half_h: f32,
        angle: f32,
        color: Rgb,
    ) {
        if ![cx, cy, half_w, half_h, angle]
            .iter()
            .all(|v| v.is_finite())
            || half_w <= 0.0
            || half_h <= 0.0
        {
            return;
        }
        let (s, c) = angle.sin_cos();
        // Half extents of the rotated box's bounding box.
        let ex = half_w * c.abs() + half_h * s.abs();
        let ey = half_w * s.abs() + half_h * c.abs();
        self.fill_sdf((cx - ex, cy - ey, cx + ex, cy + ey), color, |x, y| {
            let (px, py) = (x - cx, y - cy);
            // Rotate the point into the box's frame (inverse rotation).
            let lx = c * px + s * py;
            let ly = -s * px + c * py;
            let qx = lx.abs() - half_w;
            let qy = ly.abs() - half_h;
            let outside = (qx.max(0.0).powi(2) + qy.max(0.0).powi(2)).sqrt();
            outside + qx.max(qy).min(0.0)
        });
    }

    /// Blends `color` into every pixel of the (clipped, one-pixel-expanded) bounding box by the
    /// coverage that the signed distance function `sdf` gives at the pixel centre.
    fn fill_sdf(
        &mut self,
        (min_x, min_y, max_x, max_y): (f32, f32, f32, f32),
        color: Rgb,
        sdf: impl Fn(f32, f32) -> f32,
    ) {
        let lo = |v: f32| (v - 1.0).floor().clamp(0.0, SIZE as f32) as usize;
        let hi = |v: f32| (v + 1.0).ceil().clamp(0.0, SIZE as f32) as usize;
        let (x_lo, x_hi, y_lo, y_hi) = (lo(min_x), hi(max_x), lo(min_y), hi(max_y));
        let col = color.map(f32::from);
        for row in y_lo..y_hi {
            for colm in x_lo..x_hi {
                let d = sdf(colm as f32 + 0.5, row as f32 + 0.5);
                let a = (0.5 - d).clamp(0.0, 1.0);
                if a <= 0.0 {
                    continue;
                }
                let i = (row * SIZE + colm) * IMAGE_CHANNELS;
                for (p, &c) in self.pixels[i..i + IMAGE_CHANNELS].iter_mut().zip(&col) {
                    let old = f32::from(*p);
                    *p = (old + (c - old) * a).round().clamp(0.0, 255.0) as u8;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circle_covers_centre_not_corner() {
        let mut c = Canvas::new([0, 0, 0]);
        c.fill_circle(32.0, 32.0, 5.0, [255, 0, 0]);
        assert_eq!(c.pixel(32, 32), Some([255, 0, 0]));
        assert_eq!(c.pixel(0, 0), Some([0, 0, 0]));
        assert_eq!(c.pixel(64, 0), None);
    }

    #[test]
    fn non_finite_and_offscreen_shapes_are_ignored() {
        let mut c = Canvas::new([1, 2, 3]);
        c.fill_circle(f32::NAN, 3.0, 2.0, [255; 3]);
        c.fill_capsule(0.0, 0.0, f32::INFINITY, 0.0, 1.0, [255; 3]);
        c.fill_rect(-100.0, -100.0, -50.0, -50.0, [255; 3]);
        c.fill_rotated_rect(1e9, 1e9, 5.0, 5.0, 0.3, [255; 3]);
        assert_eq!(c, Canvas::new([1, 2, 3]));
    }
}
