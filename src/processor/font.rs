//! A tiny 5×7 bitmap font for text drawn into images: the labels of
//! grounding annotations and the lettering of the synthetic eval suite.
//!
//! The glyphs live in `font5x7.txt` as little pictures so they can be read
//! and fixed by eye. Only printable ASCII is covered; anything else (CJK,
//! emoji, accents) is drawn as an empty box of the same size, so a label
//! still shows how long it is. Grounding labels in other scripts are drawn
//! from outline fonts instead, by [`crate::processor::lettering`].

use std::sync::OnceLock;

use image::{Rgb, RgbImage};

/// Glyph width in font pixels (cells), without spacing.
pub const GLYPH_WIDTH: u32 = 5;
/// Glyph height in font pixels.
pub const GLYPH_HEIGHT: u32 = 7;
/// Horizontal advance from one character to the next, in font pixels.
pub const ADVANCE: u32 = GLYPH_WIDTH + 1;

const FIRST: u32 = 0x20;
const COUNT: usize = 95;

/// One glyph: a row per entry, bit 4 is the leftmost cell.
pub type Glyph = [u8; GLYPH_HEIGHT as usize];

const SOURCE: &str = include_str!("font5x7.txt");

/// How one character is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    Glyph(Glyph),
    /// The font has no glyph for this character: draw a hollow box.
    Missing,
}

/// The cells for a character.
pub fn cell(c: char) -> Cell {
    let code = c as u32;
    if !(FIRST..FIRST + COUNT as u32).contains(&code) {
        return Cell::Missing;
    }
    match glyphs() {
        Some(table) => Cell::Glyph(table[(code - FIRST) as usize]),
        None => Cell::Missing,
    }
}

/// The size in pixels of `text` drawn with cells `scale` pixels square:
/// every character advances by [`ADVANCE`] cells, the last one without its
/// trailing gap.
pub fn text_size(text: &str, scale: u32) -> (u32, u32) {
    let chars = text.chars().count() as u32;
    let width = (chars * ADVANCE).saturating_sub(ADVANCE - GLYPH_WIDTH) * scale;
    (width, GLYPH_HEIGHT * scale)
}

/// Draws `text` with its top-left corner at `(x, y)`, each font cell
/// `scale` pixels square, clipped to the image.
pub fn draw_text(img: &mut RgbImage, x: i64, y: i64, scale: u32, text: &str, ink: [u8; 3]) {
    let s = scale as i64;
    for (i, c) in text.chars().enumerate() {
        draw_char(img, x + i as i64 * ADVANCE as i64 * s, y, s, c, ink);
    }
}

/// One character with its top-left corner at `(x, y)`, each font cell `s`
/// pixels square; characters the font lacks become a hollow box.
pub fn draw_char(img: &mut RgbImage, x: i64, y: i64, s: i64, c: char, ink: [u8; 3]) {
    let (gw, gh) = (GLYPH_WIDTH as i64, GLYPH_HEIGHT as i64);
    match cell(c) {
        Cell::Glyph(rows) => {
            for (row, bits) in rows.iter().enumerate() {
                for col in 0..gw {
                    if bits & (1 << (gw - 1 - col)) != 0 {
                        let (px, py) = (x + col * s, y + row as i64 * s);
                        fill_rect(img, px, py, px + s, py + s, ink);
                    }
                }
            }
        }
        Cell::Missing => {
            let (x1, y1) = (x + gw * s, y + gh * s);
            fill_rect(img, x, y, x1, y + s, ink);
            fill_rect(img, x, y1 - s, x1, y1, ink);
            fill_rect(img, x, y, x + s, y1, ink);
            fill_rect(img, x1 - s, y, x1, y1, ink);
        }
    }
}

/// Fills columns `x0..x1` and rows `y0..y1`, clipped to the image.
pub(crate) fn fill_rect(img: &mut RgbImage, x0: i64, y0: i64, x1: i64, y1: i64, colour: [u8; 3]) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let (x0, x1) = (x0.clamp(0, w), x1.clamp(0, w));
    let (y0, y1) = (y0.clamp(0, h), y1.clamp(0, h));
    for y in y0..y1 {
        for x in x0..x1 {
            img.put_pixel(x as u32, y as u32, Rgb(colour));
        }
    }
}

fn glyphs() -> Option<&'static [Glyph; COUNT]> {
    static TABLE: OnceLock<Option<[Glyph; COUNT]>> = OnceLock::new();
    TABLE.get_or_init(|| parse(SOURCE).ok()).as_ref()
}

/// Reads the glyph pictures; the error says which glyph is malformed.
fn parse(source: &str) -> Result<[Glyph; COUNT], String> {
    let mut lines = source
        .lines()
        .filter(|l| !l.starts_with("//") && !l.trim().is_empty());
    let mut table = [[0u8; GLYPH_HEIGHT as usize]; COUNT];
    for (i, glyph) in table.iter_mut().enumerate() {
        let expected = char::from_u32(FIRST + i as u32).unwrap_or(' ');
        let name = lines
            .next()
            .ok_or_else(|| format!("glyph {expected:?} is missing"))?;
        let named = if name == "space" {
            ' '
        } else {
            name.chars().next().unwrap_or('\0')
        };
        if named != expected || (name != "space" && name.chars().count() != 1) {
            return Err(format!("expected glyph {expected:?}, found {name:?}"));
        }
        for row in glyph.iter_mut() {
            let line = lines
                .next()
                .ok_or_else(|| format!("glyph {expected:?} has fewer than 7 rows"))?;
            if line.len() != GLYPH_WIDTH as usize {
                return Err(format!("glyph {expected:?}: row {line:?} is not 5 cells"));
            }
            for (x, b) in line.bytes().enumerate() {
                match b {
                    b'#' => *row |= 1 << (GLYPH_WIDTH as usize - 1 - x),
                    b'.' => {}
                    _ => return Err(format!("glyph {expected:?}: unexpected {:?}", b as char)),
                }
            }
        }
    }
    match lines.next() {
        Some(extra) => Err(format!("unexpected line after the last glyph: {extra:?}")),
        None => Ok(table),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_font_file_covers_printable_ascii_in_order() {
        let table = parse(SOURCE).expect("font5x7.txt is well formed");
        assert_eq!(table[0], [0; 7], "space is blank");
        // Every other printable character leaves some ink.
        for (i, g) in table.iter().enumerate().skip(1) {
            let c = char::from_u32(FIRST + i as u32).unwrap();
            assert!(g.iter().any(|&r| r != 0), "{c:?} is blank");
        }
    }

    #[test]
    fn glyphs_look_like_their_letters() {
        let Cell::Glyph(l) = cell('L') else {
            panic!("L has a glyph")
        };
        // A vertical stroke on the left and a full bottom row.
        assert!(l[..6].iter().all(|&r| r == 0b10000));
        assert_eq!(l[6], 0b11111);
    }

    #[test]
    fn characters_outside_ascii_are_missing() {
        assert_eq!(cell('猫'), Cell::Missing);
        assert_eq!(cell('\n'), Cell::Missing);
        assert_eq!(cell('é'), Cell::Missing);
    }

    #[test]
    fn text_is_drawn_cell_by_cell_and_measured_without_the_last_gap() {
        assert_eq!(text_size("", 3), (0, 21));
        assert_eq!(text_size("L", 1), (5, 7));
        assert_eq!(text_size("LL", 2), (22, 14));
        let mut img = RgbImage::from_pixel(30, 20, Rgb([9, 9, 9]));
        draw_text(&mut img, 2, 3, 2, "LL", [200, 0, 0]);
        let red = |x, y| img.get_pixel(x, y).0 == [200, 0, 0];
        // The second L's stroke starts one advance (6 cells of 2 px) later.
        assert!(red(2, 3) && red(3, 16) && red(14, 3) && red(23, 16));
        assert!(!red(4, 3) && !red(13, 3) && !red(24, 16));
        // Clipped at the edges, without a panic.
        draw_text(&mut img, -5, 18, 4, "L?猫", [1, 2, 3]);
    }

    #[test]
    fn malformed_font_text_is_an_error_not_a_panic() {
        assert!(parse("").is_err());
        assert!(parse("space\n.....\n").is_err());
        assert!(parse("x\n.....\n.....\n.....\n.....\n.....\n.....\n.....\n").is_err());
    }
}
