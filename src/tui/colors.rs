//! How many colours the terminal shows, and bringing any colour down to what
//! it can: themes and code highlighting speak RGB; a 256-colour terminal gets
//! the nearest xterm index, a 16-colour one the nearest ANSI colour.

use ratatui::buffer::Buffer;
use ratatui::style::Color;

/// Forces the colour depth: `16`, `256` or `truecolor`.
pub const COLORS_ENV: &str = "GLIMPSE_COLORS";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorDepth {
    Ansi16,
    Indexed256,
    TrueColor,
}

impl ColorDepth {
    pub fn name(self) -> &'static str {
        match self {
            ColorDepth::Ansi16 => "16",
            ColorDepth::Indexed256 => "256",
            ColorDepth::TrueColor => "truecolor",
        }
    }

    /// From `GLIMPSE_COLORS`, `COLORTERM` and `TERM` as the process sees them.
    pub fn from_env() -> Result<ColorDepth, String> {
        let var = |name: &str| std::env::var(name).ok();
        detect(
            var(COLORS_ENV).as_deref(),
            var("COLORTERM").as_deref(),
            var("TERM").as_deref(),
        )
    }
}

/// `forced` (GLIMPSE_COLORS) wins; then COLORTERM=truecolor|24bit means RGB,
/// a TERM ending in 256color the xterm palette, anything else 16 colours.
pub fn detect(
    forced: Option<&str>,
    colorterm: Option<&str>,
    term: Option<&str>,
) -> Result<ColorDepth, String> {
    match forced.map(str::trim).filter(|f| !f.is_empty()) {
        Some("16") => return Ok(ColorDepth::Ansi16),
        Some("256") => return Ok(ColorDepth::Indexed256),
        Some("truecolor" | "24bit") => return Ok(ColorDepth::TrueColor),
        Some(other) => {
            return Err(format!(
                "{COLORS_ENV}={other:?} is not a colour depth; use 16, 256 or truecolor"
            ))
        }
        None => {}
    }
    let colorterm = colorterm.unwrap_or("").to_ascii_lowercase();
    if colorterm == "truecolor" || colorterm == "24bit" {
        return Ok(ColorDepth::TrueColor);
    }
    if term.is_some_and(|t| t.contains("256color")) {
        return Ok(ColorDepth::Indexed256);
    }
    Ok(ColorDepth::Ansi16)
}

/// The 16 ANSI colours in xterm's default palette, in index order.
const ANSI: [(Color, [u8; 3]); 16] = [
    (Color::Black, [0, 0, 0]),
    (Color::Red, [205, 0, 0]),
    (Color::Green, [0, 205, 0]),
    (Color::Yellow, [205, 205, 0]),
    (Color::Blue, [0, 0, 238]),
    (Color::Magenta, [205, 0, 205]),
    (Color::Cyan, [0, 205, 205]),
    (Color::Gray, [229, 229, 229]),
    (Color::DarkGray, [127, 127, 127]),
    (Color::LightRed, [255, 0, 0]),
    (Color::LightGreen, [0, 255, 0]),
    (Color::LightYellow, [255, 255, 0]),
    (Color::LightBlue, [92, 92, 255]),
    (Color::LightMagenta, [255, 0, 255]),
    (Color::LightCyan, [0, 255, 255]),
    (Color::White, [255, 255, 255]),
];

/// The levels of each channel in the xterm 6×6×6 colour cube.
const CUBE: [u8; 6] = [0, 95, 135, 175, 215, 255];

/// Perceptual distance between two colours ("redmean": red and blue weigh
/// by how red the pair is), good enough to choose among palette entries.
fn distance(a: [u8; 3], b: [u8; 3]) -> u32 {
    let rmean = (a[0] as i32 + b[0] as i32) / 2;
    let dr = a[0] as i32 - b[0] as i32;
    let dg = a[1] as i32 - b[1] as i32;
    let db = a[2] as i32 - b[2] as i32;
    (((512 + rmean) * dr * dr) / 256 + 4 * dg * dg + ((767 - rmean) * db * db) / 256) as u32
}

/// The RGB value of an xterm-256 index.
pub fn xterm_rgb(index: u8) -> [u8; 3] {
    match index {
        0..=15 => ANSI[index as usize].1,
        16..=231 => {
            let i = index - 16;
            [
                CUBE[(i / 36) as usize],
                CUBE[(i / 6 % 6) as usize],
                CUBE[(i % 6) as usize],
            ]
        }
        _ => {
            let v = 8 + 10 * (index - 232);
            [v, v, v]
        }
    }
}

/// The nearest xterm-256 index of the cube or the grey ramp (16–255); the
/// first 16 are left out because terminals change them.
pub fn nearest_256(rgb: [u8; 3]) -> u8 {
    let level = |v: u8| {
        (0..6)
            .min_by_key(|&i| (CUBE[i] as i32 - v as i32).abs())
            .expect("six levels") as u8
    };
    let (r, g, b) = (level(rgb[0]), level(rgb[1]), level(rgb[2]));
    let cube = 16 + 36 * r + 6 * g + b;
    let mean = (rgb[0] as u32 + rgb[1] as u32 + rgb[2] as u32) / 3;
    let grey_step = ((mean.saturating_sub(3)) / 10).min(23) as u8;
    let grey = 232 + grey_step;
    if distance(xterm_rgb(grey), rgb) < distance(xterm_rgb(cube), rgb) {
        grey
    } else {
        cube
    }
}

/// The nearest of the 16 ANSI colours.
pub fn nearest_ansi(rgb: [u8; 3]) -> Color {
    ANSI.iter()
        .min_by_key(|(_, c)| distance(*c, rgb))
        .map(|(color, _)| *color)
        .expect("sixteen colours")
}

/// `color` as a terminal of `depth` can show it.
pub fn degrade(color: Color, depth: ColorDepth) -> Color {
    match (depth, color) {
        (ColorDepth::TrueColor, c) => c,
        (ColorDepth::Indexed256, Color::Rgb(r, g, b)) => Color::Indexed(nearest_256([r, g, b])),
        (ColorDepth::Ansi16, Color::Rgb(r, g, b)) => nearest_ansi([r, g, b]),
        (ColorDepth::Ansi16, Color::Indexed(i)) if i < 16 => ANSI[i as usize].0,
        (ColorDepth::Ansi16, Color::Indexed(i)) => nearest_ansi(xterm_rgb(i)),
        (_, c) => c,
    }
}

/// Brings every cell of a drawn frame to `depth`.
pub fn degrade_buffer(buffer: &mut Buffer, depth: ColorDepth) {
    if depth == ColorDepth::TrueColor {
        return;
    }
    for cell in &mut buffer.content {
        cell.fg = degrade(cell.fg, depth);
        cell.bg = degrade(cell.bg, depth);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_picks_the_depth_and_glimpse_colors_wins() {
        assert_eq!(
            detect(None, Some("truecolor"), Some("xterm")),
            Ok(ColorDepth::TrueColor)
        );
        assert_eq!(detect(None, Some("24bit"), None), Ok(ColorDepth::TrueColor));
        assert_eq!(
            detect(None, None, Some("xterm-256color")),
            Ok(ColorDepth::Indexed256)
        );
        assert_eq!(
            detect(None, None, Some("screen-256color")),
            Ok(ColorDepth::Indexed256)
        );
        assert_eq!(detect(None, None, Some("xterm")), Ok(ColorDepth::Ansi16));
        assert_eq!(detect(None, None, Some("linux")), Ok(ColorDepth::Ansi16));
        assert_eq!(detect(None, None, None), Ok(ColorDepth::Ansi16));
        assert_eq!(
            detect(Some("16"), Some("truecolor"), None),
            Ok(ColorDepth::Ansi16)
        );
        assert_eq!(detect(Some("256"), None, None), Ok(ColorDepth::Indexed256));
        assert_eq!(
            detect(Some("truecolor"), None, Some("vt100")),
            Ok(ColorDepth::TrueColor)
        );
        let e = detect(Some("lots"), None, None).unwrap_err();
        assert!(e.contains("use 16, 256 or truecolor"), "{e}");
    }

    #[test]
    fn palette_colours_map_to_themselves() {
        for i in 16..=255u8 {
            assert_eq!(nearest_256(xterm_rgb(i)), i, "index {i}");
        }
        for (color, rgb) in ANSI {
            assert_eq!(nearest_ansi(rgb), color);
        }
    }

    #[test]
    fn rgb_goes_to_the_nearest_cube_or_grey_entry() {
        // gruvbox yellow #fabd2f: cube (5, 3, 0) = #ffaf00.
        assert_eq!(nearest_256([0xfa, 0xbd, 0x2f]), 214);
        // a near-grey goes to the grey ramp, not the cube.
        assert_eq!(nearest_256([0x30, 0x30, 0x30]), 236);
        assert_eq!(nearest_256([0x28, 0x28, 0x28]), 235);
        assert_eq!(nearest_256([0, 0, 0]), 16);
        assert_eq!(nearest_256([255, 255, 255]), 231);
    }

    #[test]
    fn rgb_goes_to_the_nearest_ansi_colour() {
        assert_eq!(nearest_ansi([0xfb, 0x49, 0x34]), Color::LightRed);
        assert_eq!(nearest_ansi([0xb8, 0xbb, 0x26]), Color::Yellow);
        assert_eq!(nearest_ansi([0x83, 0xa5, 0x98]), Color::DarkGray);
        assert_eq!(nearest_ansi([0x28, 0x28, 0x28]), Color::Black);
        assert_eq!(nearest_ansi([0xeb, 0xdb, 0xb2]), Color::Gray);
        assert_eq!(nearest_ansi([0x10, 0x10, 0xc8]), Color::Blue);
    }

    #[test]
    fn degrading_keeps_named_colours_and_converts_the_rest() {
        let rgb = Color::Rgb(0xfa, 0xbd, 0x2f);
        assert_eq!(degrade(rgb, ColorDepth::TrueColor), rgb);
        assert_eq!(degrade(rgb, ColorDepth::Indexed256), Color::Indexed(214));
        assert_eq!(degrade(rgb, ColorDepth::Ansi16), Color::Yellow);
        assert_eq!(degrade(Color::Cyan, ColorDepth::Ansi16), Color::Cyan);
        assert_eq!(degrade(Color::Reset, ColorDepth::Ansi16), Color::Reset);
        assert_eq!(
            degrade(Color::Indexed(9), ColorDepth::Ansi16),
            Color::LightRed
        );
        assert_eq!(
            degrade(Color::Indexed(196), ColorDepth::Ansi16),
            Color::LightRed
        );
        assert_eq!(
            degrade(Color::Indexed(196), ColorDepth::Indexed256),
            Color::Indexed(196)
        );
    }
}
