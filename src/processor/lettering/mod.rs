//! Lettering for labels drawn into images, in any script.
//!
//! Short ASCII labels on small images keep the 5×7 bitmap font
//! ([`crate::processor::font`]): at a few pixels tall its square cells stay
//! sharp where anti-aliased outlines would blur. Everything else (other
//! scripts, accents, and any label on a large image) is drawn from outline
//! fonts, at a size where Han characters stay legible.

mod fonts;
mod outline;

use image::RgbImage;

use super::font;
use fonts::FontChain;

/// The largest bitmap-font cell, in pixels, at which ASCII labels keep the
/// bitmap font; above it outlines look better than the blown-up cells.
const PIXEL_FONT_MAX_SCALE: u32 = 2;

/// Ems per bitmap-font cell: ten cells to the em puts Latin capitals
/// (0.73 em) at the seven cells of the bitmap font's capitals.
const EM_PER_CELL: u32 = 10;

/// The smallest em, in pixels, at which Han characters and Hangul stay
/// readable.
const MIN_EM: u32 = 14;

/// How one label is lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lettering {
    /// The bitmap font, each cell `scale` pixels square.
    Pixel { scale: u32 },
    /// Outline fonts, `em` pixels to the em.
    Outline { em: u32 },
}

impl Lettering {
    /// The lettering for `text` on an image whose bitmap-font cell would be
    /// `scale` pixels (the size that image's marks are drawn at).
    pub fn for_text(text: &str, scale: u32) -> Lettering {
        let scale = scale.max(1);
        let ascii = text.chars().all(|c| (' '..='~').contains(&c));
        if (ascii && scale <= PIXEL_FONT_MAX_SCALE) || !FontChain::shared().is_usable() {
            Lettering::Pixel { scale }
        } else {
            Lettering::Outline {
                em: (scale * EM_PER_CELL).max(MIN_EM),
            }
        }
    }

    /// The margin around the text on a tag, in pixels.
    pub fn pad(self) -> u32 {
        match self {
            Lettering::Pixel { scale } => scale,
            Lettering::Outline { em } => (em as f32 / EM_PER_CELL as f32).round().max(1.0) as u32,
        }
    }

    /// Width and height in pixels of `text` drawn this way.
    pub fn size(self, text: &str) -> (u32, u32) {
        match self {
            Lettering::Pixel { scale } => font::text_size(text, scale),
            Lettering::Outline { em } => (outline::width(FontChain::shared(), text, em as f32), em),
        }
    }

    /// Draws `text` with the top-left corner of its [`size`](Self::size) box
    /// at `(x, y)`, in `ink`, clipped to the image.
    pub fn draw(self, img: &mut RgbImage, x: i64, y: i64, text: &str, ink: [u8; 3]) {
        match self {
            Lettering::Pixel { scale } => font::draw_text(img, x, y, scale, text, ink),
            Lettering::Outline { em } => {
                outline::draw(img, FontChain::shared(), x, y, em as f32, text, ink)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ascii_on_small_images_keeps_the_bitmap_font() {
        assert_eq!(Lettering::for_text("cat", 1), Lettering::Pixel { scale: 1 });
        assert_eq!(Lettering::for_text("#12", 2), Lettering::Pixel { scale: 2 });
        assert_eq!(Lettering::for_text("cat", 0), Lettering::Pixel { scale: 1 });
        assert_eq!(Lettering::for_text("cat", 3), Lettering::Outline { em: 30 });
    }

    #[test]
    fn other_scripts_use_outlines_large_enough_to_read() {
        assert_eq!(
            Lettering::for_text("蓝色罐头", 1),
            Lettering::Outline { em: 14 }
        );
        assert_eq!(
            Lettering::for_text("café", 1),
            Lettering::Outline { em: 14 }
        );
        assert_eq!(
            Lettering::for_text("圆 circle", 4),
            Lettering::Outline { em: 40 }
        );
        assert_eq!(
            Lettering::for_text("line\nbreak", 1),
            Lettering::Outline { em: 14 }
        );
    }

    #[test]
    fn sizes_and_pads_follow_the_lettering() {
        let pixel = Lettering::Pixel { scale: 2 };
        assert_eq!(pixel.size("LL"), font::text_size("LL", 2));
        assert_eq!(pixel.pad(), 2);
        let outline = Lettering::Outline { em: 14 };
        assert_eq!(outline.size("蓝色"), (28, 14));
        assert_eq!(outline.pad(), 1);
        assert_eq!(Lettering::Outline { em: 40 }.pad(), 4);
    }

    #[test]
    fn both_letterings_draw_at_the_top_left_of_their_box() {
        let ink = [250, 250, 250];
        for (lettering, text) in [
            (Lettering::Pixel { scale: 1 }, "L"),
            (Lettering::Outline { em: 14 }, "国"),
        ] {
            let (w, h) = lettering.size(text);
            let mut img = RgbImage::new(w + 10, h + 10);
            lettering.draw(&mut img, 5, 5, text, ink);
            let inked: Vec<(u32, u32)> = img
                .enumerate_pixels()
                .filter(|(_, _, p)| p.0 != [0, 0, 0])
                .map(|(x, y, _)| (x, y))
                .collect();
            assert!(!inked.is_empty(), "{lettering:?}");
            for (x, y) in inked {
                assert!(
                    (5..5 + w).contains(&x) && (5..5 + h).contains(&y),
                    "{lettering:?} ({x}, {y})"
                );
            }
        }
    }
}
