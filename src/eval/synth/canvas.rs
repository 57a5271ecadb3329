//! Drawing primitives for the synthetic images: filled rectangles, thick
//! lines, text in the shared bitmap font, noise.

use image::{Rgb, RgbImage};

use super::rng::Rng;
use crate::processor::font::{draw_text, text_size};

pub type Colour = [u8; 3];

pub const BLACK: Colour = [20, 20, 20];
pub const WHITE: Colour = [255, 255, 255];

/// Fills columns `x0..x1` and rows `y0..y1`, clipped to the image.
pub fn fill(img: &mut RgbImage, x0: i64, y0: i64, x1: i64, y1: i64, colour: Colour) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    for y in y0.clamp(0, h)..y1.clamp(0, h) {
        for x in x0.clamp(0, w)..x1.clamp(0, w) {
            img.put_pixel(x as u32, y as u32, Rgb(colour));
        }
    }
}

/// A line `thickness` pixels wide from one point to another: a square of
/// that size stamped at every step.
pub fn line(img: &mut RgbImage, from: (i64, i64), to: (i64, i64), thickness: i64, colour: Colour) {
    let steps = (to.0 - from.0).abs().max((to.1 - from.1).abs()).max(1);
    let half = thickness / 2;
    for i in 0..=steps {
        let x = from.0 + (to.0 - from.0) * i / steps;
        let y = from.1 + (to.1 - from.1) * i / steps;
        fill(
            img,
            x - half,
            y - half,
            x - half + thickness,
            y - half + thickness,
            colour,
        );
    }
}

/// Text with its top-left corner at `(x, y)`.
pub fn text(img: &mut RgbImage, x: i64, y: i64, scale: u32, s: &str, ink: Colour) {
    draw_text(img, x, y, scale, s, ink);
}

/// Text centred on `(cx, cy)`.
pub fn text_centred(img: &mut RgbImage, cx: i64, cy: i64, scale: u32, s: &str, ink: Colour) {
    let (w, h) = text_size(s, scale);
    text(img, cx - w as i64 / 2, cy - h as i64 / 2, scale, s, ink);
}

/// Text whose right edge is at `right`, vertically centred on `cy`.
pub fn text_right(img: &mut RgbImage, right: i64, cy: i64, scale: u32, s: &str, ink: Colour) {
    let (w, h) = text_size(s, scale);
    text(img, right - w as i64, cy - h as i64 / 2, scale, s, ink);
}

/// Black on light colours, white on dark ones.
pub fn ink_for(background: Colour) -> Colour {
    let [r, g, b] = background.map(f64::from);
    if 0.299 * r + 0.587 * g + 0.114 * b > 140.0 {
        BLACK
    } else {
        WHITE
    }
}

/// Salt-and-pepper noise: `fraction` of the pixels turned black or white.
pub fn speckle(img: &mut RgbImage, rng: &mut Rng, fraction: f64) {
    for p in img.pixels_mut() {
        if rng.chance(fraction) {
            *p = Rgb(if rng.chance(0.5) { WHITE } else { [0, 0, 0] });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_reach_both_ends_and_have_their_thickness() {
        let mut img = RgbImage::new(20, 20);
        line(&mut img, (2, 3), (15, 3), 3, WHITE);
        let white = |x, y| img.get_pixel(x, y).0 == WHITE;
        assert!(white(1, 2) && white(16, 4));
        assert!(!white(1, 5) && !white(17, 3) && !white(5, 1));
        line(&mut img, (-50, -50), (100, 100), 2, WHITE);
    }

    #[test]
    fn text_is_placed_by_its_centre_or_right_edge() {
        let mut img = RgbImage::new(40, 20);
        // "L" at scale 1 is 5×7: centred on (20, 10) it spans 18..23, 7..14.
        text_centred(&mut img, 20, 10, 1, "L", WHITE);
        assert_eq!(img.get_pixel(18, 7).0, WHITE);
        assert_eq!(img.get_pixel(22, 13).0, WHITE);
        assert_eq!(img.get_pixel(17, 13).0, [0, 0, 0]);
        let mut img = RgbImage::new(40, 20);
        text_right(&mut img, 30, 10, 1, "L", WHITE);
        assert_eq!(img.get_pixel(29, 13).0, WHITE);
        assert_eq!(img.get_pixel(30, 13).0, [0, 0, 0]);
        assert_eq!(ink_for([250, 250, 250]), BLACK);
        assert_eq!(ink_for([30, 60, 160]), WHITE);
    }
}
