//! A tiny 5×7 bitmap font for labels drawn into images.
//!
//! The glyphs live in `font5x7.txt` as little pictures so they can be read
//! and fixed by eye. Only printable ASCII is covered; anything else (CJK,
//! emoji, accents) is drawn as an empty box of the same size, so a label
//! still shows how long it is.

use std::sync::OnceLock;

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
    fn malformed_font_text_is_an_error_not_a_panic() {
        assert!(parse("").is_err());
        assert!(parse("space\n.....\n").is_err());
        assert!(parse("x\n.....\n.....\n.....\n.....\n.....\n.....\n.....\n").is_err());
    }
}
