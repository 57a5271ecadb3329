//! `glimpse ask --show`: images printed in the terminal, in the line of
//! output, each with a caption.
//!
//! Drawn the chat's own way rather than with the `viuer` crate: the protocol
//! comes from [`graphics::pick`] (the same terminal query, tmux passthrough
//! and WezTerm/Konsole caution as the chat), ratatui-image encodes the image
//! into a ratatui buffer, and the buffer is written out row by row. That
//! keeps one detection and one look for both front doors and adds no second
//! image-printing dependency. Rows written as plain lines (no cursor
//! addressing) also read well through `less -R` or from a file.

use std::io::{self, IsTerminal, Write};
use std::path::Path;

use image::{DynamicImage, RgbImage};
use ratatui::buffer::{Buffer, Cell, CellDiffOption};
use ratatui::layout::Rect;
use ratatui::style::Color;
use ratatui::widgets::Widget;
use ratatui_image::picker::Picker;
use ratatui_image::{Image, Resize};

use crate::engine::ImageFacts;
use crate::session::config::ImageProtocol;
use crate::tui::graphics;

/// Width when the terminal's is unknown.
const FALLBACK_COLUMNS: u16 = 80;
/// Tallest an image is drawn, in rows, so the answer stays in view.
const MAX_ROWS: u16 = 20;

/// Kitty rows save the cursor before and jump to the image's far corner
/// after, which suits a full-screen redraw; printed as lines, the jump would
/// stack every row on the last one.
const SAVE_CURSOR: &str = "\x1b[s";
const RESTORE_CURSOR: &str = "\x1b[u";

/// Prints images on a terminal, or into a pipe when a protocol is forced.
pub struct Shower {
    picker: Picker,
    columns: u16,
}

/// Whether images are drawn and whether the terminal may be asked which
/// protocol it speaks. `--image-protocol` forces one, even when stdout is no
/// terminal (`| less -R`); without it only a terminal gets images, in the
/// config's protocol. The terminal is asked only when it is both where the
/// output goes and where the answers come from.
pub fn plan(
    flag: Option<ImageProtocol>,
    config: ImageProtocol,
    stdout_terminal: bool,
    stdin_terminal: bool,
) -> Option<(ImageProtocol, bool)> {
    let ask_terminal = stdout_terminal && stdin_terminal;
    match flag {
        Some(forced) => Some((forced, ask_terminal)),
        None if stdout_terminal => Some((config, ask_terminal)),
        None => None,
    }
}

impl Shower {
    /// The shower for this process's stdout, or `None` when it gets no images.
    pub fn for_stdout(flag: Option<ImageProtocol>, config: ImageProtocol) -> Option<Shower> {
        let (protocol, ask_terminal) = plan(
            flag,
            config,
            io::stdout().is_terminal(),
            io::stdin().is_terminal(),
        )?;
        Some(Shower::new(graphics::pick_with(protocol, ask_terminal)))
    }

    /// Draws through `picker`, as wide as the terminal (or 80 columns).
    pub fn new(picker: Picker) -> Shower {
        let columns = ratatui::crossterm::terminal::window_size()
            .map(|w| w.columns)
            .ok()
            .filter(|&c| c > 0)
            .unwrap_or(FALLBACK_COLUMNS);
        Shower { picker, columns }
    }

    /// `image`, fitted into the width and at most [`MAX_ROWS`] rows.
    pub fn image(&self, out: &mut impl Write, image: RgbImage) -> io::Result<()> {
        let area = Rect::new(0, 0, self.columns, MAX_ROWS);
        let protocol = self
            .picker
            .new_protocol(DynamicImage::ImageRgb8(image), area, Resize::Fit(None))
            .map_err(|e| io::Error::other(format!("encoding the image for the terminal: {e}")))?;
        let mut buf = Buffer::empty(protocol.area());
        Image::new(&protocol).render(buf.area, &mut buf);
        out.write_all(rows(&buf).as_bytes())
    }

    /// `image` with `caption` under it.
    pub fn captioned(
        &self,
        out: &mut impl Write,
        image: RgbImage,
        caption: &str,
    ) -> io::Result<()> {
        self.image(out, image)?;
        writeln!(out, "{caption}")?;
        out.flush()
    }
}

/// `  ▣ shelf.jpg  1280×960 → 1288×952 · 1564 image tokens`: what the chat
/// shows under an attached image.
pub fn facts_caption(facts: &ImageFacts) -> String {
    let [ow, oh] = facts.original_size;
    let [mw, mh] = facts.model_size;
    format!(
        "  ▣ {}  {ow}×{oh} → {mw}×{mh} · {} image tokens",
        file_name(&facts.path),
        facts.tokens
    )
}

/// `  ▣ shelf.jpg  2 boxes and points drawn`, under an annotated copy.
pub fn annotated_caption(path: &Path, marks: usize) -> String {
    let what = match marks {
        0 => "nothing found to draw".to_string(),
        1 => "1 box or point drawn".to_string(),
        n => format!("{n} boxes and points drawn"),
    };
    format!("  ▣ {}  {what}", file_name(path))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// The buffer as lines of text with 24-bit colour escapes. Rows wholly
/// covered by an image drawn from the row above (sixel, iTerm2) print
/// nothing: the terminal moves the cursor below the image itself. Such an
/// image first clears its area moving the cursor down, which does not
/// scroll at the bottom of the screen; so its rows are made first with new
/// lines, and the cursor goes back up to where the image starts.
fn rows(buf: &Buffer) -> String {
    let area = buf.area;
    let mut text = String::new();
    let mut rows_drawn = 0;
    for y in area.top()..area.bottom() {
        let mut line = String::new();
        let (mut fg, mut bg) = (Color::Reset, Color::Reset);
        let mut drawn = false;
        for x in area.left()..area.right() {
            let cell = &buf[(x, y)];
            if skipped(cell) {
                continue;
            }
            drawn = true;
            if cell.fg != fg {
                fg = cell.fg;
                line.push_str(&sgr(fg, 38));
            }
            if cell.bg != bg {
                bg = cell.bg;
                line.push_str(&sgr(bg, 48));
            }
            line.push_str(&in_line(cell.symbol()));
        }
        if drawn {
            rows_drawn += 1;
            text.push_str(&line);
            text.push_str("\x1b[0m\n");
        }
    }
    if rows_drawn < area.height {
        let height = area.height;
        text.insert_str(0, &format!("{}\x1b[{height}A", "\n".repeat(height.into())));
    }
    text
}

#[allow(deprecated)] // ratatui-image still marks covered cells the old way.
fn skipped(cell: &Cell) -> bool {
    cell.skip || cell.diff_option == CellDiffOption::Skip
}

/// The escape that sets a foreground (`layer` 38) or background (48) colour.
fn sgr(colour: Color, layer: u8) -> String {
    match colour {
        Color::Rgb(r, g, b) => format!("\x1b[{layer};2;{r};{g};{b}m"),
        Color::Indexed(i) => format!("\x1b[{layer};5;{i}m"),
        // Half-blocks are all 24-bit colour; anything else is the default.
        _ => format!("\x1b[{}m", layer + 1),
    }
}

/// A cell's text without the cursor save and the jump back (see
/// [`SAVE_CURSOR`]).
fn in_line(symbol: &str) -> String {
    match (symbol.find(SAVE_CURSOR), symbol.rfind(RESTORE_CURSOR)) {
        (Some(save), Some(restore)) if save < restore => format!(
            "{}{}",
            &symbol[..save],
            &symbol[save + SAVE_CURSOR.len()..restore]
        ),
        _ => symbol.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui_image::picker::ProtocolType;

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 11) as u8, 90]))
    }

    fn shower(protocol: ProtocolType, columns: u16) -> Shower {
        let mut picker = Picker::halfblocks();
        picker.set_protocol_type(protocol);
        Shower { picker, columns }
    }

    fn drawn(protocol: ProtocolType, columns: u16, image: RgbImage) -> String {
        let mut out = Vec::new();
        shower(protocol, columns).image(&mut out, image).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn half_blocks_fit_the_width_and_twenty_rows_in_24_bit_colour() {
        let text = drawn(ProtocolType::Halfblocks, 40, gradient(2000, 300));
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() <= 20 && !lines.is_empty(), "{}", lines.len());
        for line in &lines {
            assert!(
                line.contains("\x1b[38;2;") && line.ends_with("\x1b[0m"),
                "{line:?}"
            );
            let cells = line
                .chars()
                .filter(|c| matches!(c, '▀' | '▄' | ' '))
                .count();
            assert!(cells <= 40, "{cells} cells");
        }
        let tall = drawn(ProtocolType::Halfblocks, 80, gradient(200, 4000));
        assert_eq!(tall.lines().count(), 20, "at most twenty rows");
    }

    #[test]
    fn kitty_rows_are_lines_without_cursor_jumps() {
        let text = drawn(ProtocolType::Kitty, 30, gradient(120, 80));
        assert!(text.starts_with("\x1b_G"), "the image is sent first");
        assert!(!text.contains(SAVE_CURSOR) && !text.contains(RESTORE_CURSOR));
        let rows = text.lines().count();
        assert!(rows > 1, "{rows}");
        assert_eq!(text.matches('\u{10EEEE}').count() % rows, 0);
    }

    #[test]
    fn a_sixel_image_makes_its_rows_then_is_one_escape_on_the_first() {
        // 120×80 px in cells of 10×20: 12 columns, 4 rows.
        let text = drawn(ProtocolType::Sixel, 30, gradient(120, 80));
        let image = text
            .strip_prefix("\n\n\n\n\x1b[4A")
            .unwrap_or_else(|| panic!("four rows made first: {:?}", &text[..12]));
        assert_eq!(image.lines().count(), 1, "the terminal moves below it");
        let sixel = image.find("\x1bP").expect("a sixel escape");
        assert!(image[sixel..].contains("\x1b\\"), "and its end");
    }

    #[test]
    fn images_go_to_terminals_and_to_pipes_only_when_forced() {
        use ImageProtocol::*;
        assert_eq!(plan(None, Auto, false, true), None, "piped: no image");
        assert_eq!(plan(None, Kitty, true, true), Some((Kitty, true)));
        assert_eq!(
            plan(Some(Halfblocks), Auto, false, false),
            Some((Halfblocks, false))
        );
        assert_eq!(
            plan(Some(Auto), Kitty, false, true),
            Some((Auto, false)),
            "piped: forced, but the terminal is not asked"
        );
        assert_eq!(plan(None, Auto, true, false), Some((Auto, false)));
    }

    #[test]
    fn captions_say_what_the_chat_shows() {
        let facts = ImageFacts {
            path: "photos/shelf.jpg".into(),
            original_size: [333, 211],
            model_size: [336, 224],
            grid_thw: [1, 16, 24],
            tokens: 96,
        };
        assert_eq!(
            facts_caption(&facts),
            "  ▣ shelf.jpg  333×211 → 336×224 · 96 image tokens"
        );
        assert_eq!(
            annotated_caption(Path::new("a/b.png"), 2),
            "  ▣ b.png  2 boxes and points drawn"
        );
    }
}
