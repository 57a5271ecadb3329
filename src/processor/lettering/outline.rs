//! Text drawn from outline fonts: glyphs laid side by side on one baseline,
//! rasterized with anti-aliasing and blended onto the image in the ink
//! colour. A character no font has becomes a hollow box, as in the bitmap
//! font, so the label still shows where it was.

use ab_glyph::{point, Font, FontArc, GlyphId, PxScale, ScaleFont};
use image::{Rgb, RgbImage};

use super::fonts::FontChain;
use crate::processor::font::fill_rect;

/// Where the baseline sits in a line one em tall, as a fraction of the em
/// from the top. Han, kana and Hangul ink runs from 0.08 em below the
/// baseline to 0.84 em above it, so they sit in the middle of the line;
/// accented capitals (0.95 em) and Latin descenders (0.25 em) reach a tenth
/// of an em past it, into the tag's margin, and no further.
const BASELINE: f32 = 0.85;

/// Advance of the box drawn for a missing character, in ems: about the
/// width of a Latin capital, as the bitmap font's box is.
const MISSING_ADVANCE: f32 = 0.62;

/// One character placed on the line: `x` is its pen position from the start
/// of the text, in pixels.
pub struct Slot<'a> {
    pub x: f32,
    pub advance: f32,
    glyph: Option<(&'a FontArc, GlyphId)>,
}

/// The characters of `text` placed at `em` pixels per em.
pub fn layout<'a>(chain: &'a FontChain, text: &str, em: f32) -> Vec<Slot<'a>> {
    let mut x = 0.0;
    text.chars()
        .map(|c| {
            let glyph = chain.find(c);
            let advance = match glyph {
                Some((font, id)) => font.as_scaled(px_scale(font, em)).h_advance(id),
                None => MISSING_ADVANCE * em,
            };
            let slot = Slot { x, advance, glyph };
            x += advance;
            slot
        })
        .collect()
}

/// Width in whole pixels of `text` at `em` pixels per em.
pub fn width(chain: &FontChain, text: &str, em: f32) -> u32 {
    layout(chain, text, em)
        .last()
        .map_or(0.0, |p| p.x + p.advance)
        .ceil() as u32
}

/// Draws `text` in a line `em` pixels tall with its top-left corner at
/// `(x, y)`, clipped to the image.
pub fn draw(
    img: &mut RgbImage,
    chain: &FontChain,
    x: i64,
    y: i64,
    em: f32,
    text: &str,
    ink: [u8; 3],
) {
    let baseline = y as f32 + (BASELINE * em).round();
    for slot in layout(chain, text, em) {
        let pen = x as f32 + slot.x;
        match slot.glyph {
            Some((font, id)) => {
                let glyph = id.with_scale_and_position(px_scale(font, em), point(pen, baseline));
                if let Some(outlined) = font.outline_glyph(glyph) {
                    let bounds = outlined.px_bounds();
                    let (left, top) = (bounds.min.x as i64, bounds.min.y as i64);
                    outlined.draw(|gx, gy, coverage| {
                        blend(img, left + gx as i64, top + gy as i64, coverage, ink);
                    });
                }
            }
            None => draw_missing(img, pen, baseline, em, ink),
        }
    }
}

/// ab_glyph scales a font so that its ascent-to-descent height is the given
/// size; fonts differ in that height, so the em is converted per font.
fn px_scale(font: &FontArc, em: f32) -> PxScale {
    let units = font.units_per_em().unwrap_or(1000.0);
    PxScale::from(em * font.height_unscaled() / units)
}

/// Mixes `ink` into the pixel at `(x, y)` by `coverage` (0 to 1).
fn blend(img: &mut RgbImage, x: i64, y: i64, coverage: f32, ink: [u8; 3]) {
    if x < 0 || y < 0 || x >= img.width() as i64 || y >= img.height() as i64 {
        return;
    }
    let a = coverage.clamp(0.0, 1.0);
    if a <= 0.0 {
        return;
    }
    let pixel = img.get_pixel_mut(x as u32, y as u32);
    let mixed: [u8; 3] =
        std::array::from_fn(|i| (pixel.0[i] as f32 * (1.0 - a) + ink[i] as f32 * a).round() as u8);
    *pixel = Rgb(mixed);
}

/// A hollow box as tall as a capital letter, standing on the baseline.
fn draw_missing(img: &mut RgbImage, pen: f32, baseline: f32, em: f32, ink: [u8; 3]) {
    let stroke = (em / 14.0).round().max(1.0) as i64;
    let x0 = (pen + 0.05 * em).round() as i64;
    let x1 = (pen + (MISSING_ADVANCE - 0.08) * em).round() as i64;
    let (y0, y1) = ((baseline - 0.73 * em).round() as i64, baseline as i64);
    fill_rect(img, x0, y0, x1, y0 + stroke, ink);
    fill_rect(img, x0, y1 - stroke, x1, y1, ink);
    fill_rect(img, x0, y0, x0 + stroke, y1, ink);
    fill_rect(img, x1 - stroke, y0, x1, y1, ink);
}

#[cfg(test)]
mod tests {
    use super::*;

    const BG: [u8; 3] = [0, 90, 160];
    const INK: [u8; 3] = [255, 255, 255];

    /// `text` drawn at (4, 3) on a plain image, with its layout.
    fn drawn(text: &str, em: f32) -> (RgbImage, Vec<(f32, f32)>) {
        let chain = FontChain::shared();
        let cells = layout(chain, text, em)
            .iter()
            .map(|p| (p.x, p.advance))
            .collect();
        let w = width(chain, text, em) + 8;
        let mut img = RgbImage::from_pixel(w, em as u32 + 6, Rgb(BG));
        draw(&mut img, chain, 4, 3, em, text, INK);
        (img, cells)
    }

    /// Which pixels of columns `x0..x1`, rows `y0..y1` differ from the
    /// background.
    fn ink_mask(img: &RgbImage, x0: u32, x1: u32, y0: u32, y1: u32) -> Vec<bool> {
        let mut mask = Vec::new();
        for y in y0..y1 {
            for x in x0..x1 {
                mask.push(img.get_pixel(x, y).0 != BG);
            }
        }
        mask
    }

    #[test]
    fn each_character_leaves_its_own_ink_in_its_own_cell() {
        let em = 20.0;
        for text in ["蓝色罐头", "ラベル", "라벨", "café"] {
            let (img, cells) = drawn(text, em);
            assert_eq!(cells.len(), text.chars().count());
            let masks: Vec<Vec<bool>> = cells
                .iter()
                .map(|&(x, advance)| {
                    let x0 = 4 + x.floor() as u32;
                    let x1 = 4 + (x + advance).floor() as u32;
                    ink_mask(&img, x0, x1, 3, 3 + em as u32)
                })
                .collect();
            for (c, mask) in text.chars().zip(&masks) {
                let inked = mask.iter().filter(|&&m| m).count();
                assert!(inked > 4, "{text}: {c:?} has ink ({inked} pixels)");
                assert!(
                    inked < mask.len() * 3 / 4,
                    "{text}: {c:?} is not a solid block"
                );
            }
            for i in 0..masks.len() {
                for j in i + 1..masks.len() {
                    assert_ne!(
                        masks[i], masks[j],
                        "{text}: characters {i} and {j} look the same"
                    );
                }
            }
        }
    }

    #[test]
    fn ink_stays_within_a_tenth_of_an_em_of_the_line() {
        // The line is 20 px tall at (4, 3); a tag's margin is 2 px.
        for text in [
            "蓝色罐头（）",
            "ラベル",
            "라벨",
            "ÉŚgjpqy|",
            "Łódź Ærøskøbing",
        ] {
            let (img, _) = drawn(text, 20.0);
            let (w, h) = img.dimensions();
            let all = ink_mask(&img, 0, w, 0, h).iter().filter(|&&m| m).count();
            let inside = ink_mask(&img, 2, w - 2, 1, 3 + 20 + 2);
            assert_eq!(inside.iter().filter(|&&m| m).count(), all, "{text}");
        }
    }

    #[test]
    fn full_width_characters_advance_one_em_and_latin_less() {
        let chain = FontChain::shared();
        assert_eq!(width(chain, "蓝色罐头", 14.0), 56);
        assert_eq!(width(chain, "ラベル", 20.0), 60);
        let latin = width(chain, "café", 20.0);
        assert!((30..50).contains(&latin), "{latin}");
        assert_eq!(width(chain, "", 20.0), 0);
    }

    #[test]
    fn edges_are_anti_aliased_and_strokes_reach_the_full_ink() {
        let (img, _) = drawn("罐", 24.0);
        let full = img.pixels().filter(|p| p.0 == INK).count();
        let partial = img.pixels().filter(|p| p.0 != INK && p.0 != BG).count();
        assert!(full > 10, "solid stroke pixels: {full}");
        assert!(partial > 10, "blended edge pixels: {partial}");
        // A blended pixel lies between the background and the ink.
        for p in img.pixels().filter(|p| p.0 != INK && p.0 != BG) {
            assert!(p.0[2] >= BG[2] && p.0[0] >= BG[0], "{:?}", p.0);
        }
    }

    #[test]
    fn a_character_no_font_has_is_a_hollow_box() {
        let em = 20.0;
        let (img, cells) = drawn("\u{378}", em);
        assert_eq!(cells, vec![(0.0, MISSING_ADVANCE * em)]);
        // Baseline at 3 + 17 = 20; box from x 5 to 15, y 5 to 20, 1 px lines.
        for (x, y) in [(5, 5), (14, 5), (5, 19), (14, 19), (5, 13), (14, 13)] {
            assert_eq!(img.get_pixel(x, y).0, INK, "box edge ({x}, {y})");
        }
        assert_eq!(img.get_pixel(10, 13).0, BG, "hollow");
        assert_eq!(img.get_pixel(4, 13).0, BG, "inset from the pen");
    }

    #[test]
    fn text_off_the_image_is_clipped_without_a_panic() {
        let chain = FontChain::shared();
        let mut img = RgbImage::from_pixel(10, 10, Rgb(BG));
        for (x, y) in [(-15, -8), (5, 5), (-1000, 9), (9, -30)] {
            draw(&mut img, chain, x, y, 16.0, "蓝\u{378}é", INK);
        }
        let mut empty = RgbImage::new(0, 0);
        draw(&mut empty, chain, 0, 0, 16.0, "蓝", INK);
    }
}
