//! The outline fonts labels are lettered with: subsets of Noto Sans (Latin,
//! Greek, Cyrillic) and Noto Sans CJK SC (the common Chinese characters,
//! kana, kanji and Hangul) built into the binary, asked in that order so a
//! Latin word never mixes two designs (see `assets/fonts/README.md`); then,
//! for the rare character both lack, a full CJK font of the system if one of
//! a few well-known files is installed.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ab_glyph::{Font, FontArc, GlyphId};

const LATIN: &[u8] = include_bytes!("../../../assets/fonts/NotoSans-Regular-subset.ttf");
const CJK: &[u8] = include_bytes!("../../../assets/fonts/NotoSansCJKsc-Regular-subset.otf");

/// Fonts with wide coverage where distributions and macOS install them. A
/// fixed list rather than a fontconfig query: it needs no library and no
/// directory walk, and one hit is enough.
const SYSTEM_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/wenquanyi/wqy-microhei/wqy-microhei.ttc",
    "/System/Library/Fonts/Supplemental/Arial Unicode.ttf",
    "/Library/Fonts/Arial Unicode.ttf",
];

/// The embedded fonts, then a system font, asked in that order.
pub struct FontChain {
    embedded: Vec<FontArc>,
    system: OnceLock<Option<FontArc>>,
    candidates: Vec<PathBuf>,
}

impl FontChain {
    /// The chain every label uses. The system font is read only when a
    /// label first needs a character the embedded fonts lack.
    pub fn shared() -> &'static FontChain {
        static CHAIN: OnceLock<FontChain> = OnceLock::new();
        CHAIN.get_or_init(|| FontChain {
            embedded: [LATIN, CJK]
                .iter()
                .filter_map(|bytes| FontArc::try_from_slice(bytes).ok())
                .collect(),
            system: OnceLock::new(),
            candidates: SYSTEM_CANDIDATES.iter().map(PathBuf::from).collect(),
        })
    }

    /// Whether the embedded fonts are there to draw with (they are unless
    /// the build is broken; the bitmap font stands in then).
    pub fn is_usable(&self) -> bool {
        !self.embedded.is_empty()
    }

    /// The first font with a glyph for `c`, and that glyph.
    pub fn find(&self, c: char) -> Option<(&FontArc, GlyphId)> {
        let has = |font: &FontArc| {
            let id = font.glyph_id(c);
            (id.0 != 0).then_some(id)
        };
        if let Some(found) = self.embedded.iter().find_map(|f| Some((f, has(f)?))) {
            return Some(found);
        }
        let system = self
            .system
            .get_or_init(|| first_readable(&self.candidates))
            .as_ref()?;
        Some((system, has(system)?))
    }
}

/// The first of `paths` that exists and parses as a font (the first face of
/// a collection).
fn first_readable(paths: &[PathBuf]) -> Option<FontArc> {
    paths.iter().find_map(|p| read_font(p))
}

fn read_font(path: &Path) -> Option<FontArc> {
    let bytes = std::fs::read(path).ok()?;
    ab_glyph::FontVec::try_from_vec_and_index(bytes, 0)
        .ok()
        .map(FontArc::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_fonts_cover_every_script_labels_come_in() {
        let chain = FontChain::shared();
        assert!(chain.is_usable());
        assert_eq!(chain.embedded.len(), 2, "both subsets parse");
        let [latin, cjk] = [&chain.embedded[0], &chain.embedded[1]];
        let from = |c: char| {
            let (font, _) = chain.find(c).unwrap_or_else(|| panic!("{c:?} has a glyph"));
            std::ptr::eq(font, latin)
        };
        for c in "Aé ßŁőŠțđ€…ΩЖ".chars() {
            assert!(from(c), "{c:?} comes from the Latin font");
        }
        for c in "蓝色罐头圆猫ラベルのカ라벨한국「」、。（".chars() {
            assert!(!from(c), "{c:?} comes from the CJK font");
            assert_ne!(cjk.glyph_id(c).0, 0);
        }
        // Unassigned code points are in no font.
        assert!(chain.find('\u{378}').is_none());
    }

    #[test]
    fn the_system_font_is_the_first_candidate_that_reads_and_comes_second() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.ttf");
        std::fs::write(&junk, b"not a font").unwrap();
        let good = dir.path().join("good.otf");
        std::fs::write(&good, CJK).unwrap();
        let missing = dir.path().join("missing.ttc");
        let candidates = vec![missing, junk, good];
        assert!(first_readable(&candidates[..2]).is_none());

        // Without an embedded font, every glyph comes from the system one.
        let chain = FontChain {
            embedded: Vec::new(),
            system: OnceLock::new(),
            candidates,
        };
        let (font, id) = chain.find('猫').expect("found in the third file");
        assert_eq!(id, font.glyph_id('猫'));
        assert!(chain.find('\u{378}').is_none());
    }
}
