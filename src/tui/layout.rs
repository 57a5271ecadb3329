//! Where everything goes on screen, as a pure function of the terminal size
//! and the app state, shared by drawing and by scrolling.

use ratatui::layout::Rect;

use super::app::App;

/// Terminals at least this wide get the side pane (unless it is hidden).
pub const SIDE_PANE_MIN_WIDTH: u16 = 100;
pub const SIDE_PANE_WIDTH: u16 = 36;
/// Tallest an image preview gets, in rows.
pub const PREVIEW_ROWS: u16 = 10;
/// Most lines the input grows to before it scrolls.
pub const INPUT_MAX_LINES: u16 = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    pub transcript: Rect,
    pub side: Option<Rect>,
    pub chips: Option<Rect>,
    pub path_prompt: Option<Rect>,
    pub input: Rect,
    pub status: Rect,
}

pub fn screen_layout(area: Rect, app: &App) -> Areas {
    let mut bottom = area.y + area.height;
    let mut take = |h: u16| {
        let h = h.min(bottom.saturating_sub(area.y));
        bottom -= h;
        Rect::new(area.x, bottom, area.width, h)
    };
    let status = take(1);
    let lines = (app.input.lines().len() as u16).clamp(1, INPUT_MAX_LINES);
    let input = take(lines + 2);
    let path_prompt = app.dialog.path_prompt().map(|_| take(3));
    let chips = (!app.attachments.is_empty()).then(|| take(1));
    let main = Rect::new(area.x, area.y, area.width, bottom.saturating_sub(area.y));
    let (transcript, side) = if app.gpu_pane_on && area.width >= SIDE_PANE_MIN_WIDTH {
        let t = Rect::new(main.x, main.y, main.width - SIDE_PANE_WIDTH, main.height);
        let s = Rect::new(main.x + t.width, main.y, SIDE_PANE_WIDTH, main.height);
        (t, Some(s))
    } else {
        (main, None)
    };
    // One column of margin on each side of the transcript.
    let transcript = Rect::new(
        transcript.x + 1,
        transcript.y,
        transcript.width.saturating_sub(2),
        transcript.height,
    );
    Areas {
        transcript,
        side,
        chips,
        path_prompt,
        input,
        status,
    }
}

/// The box, in cells, a preview of a `size` pixel image gets in a transcript
/// `width` cells wide: at most [`PREVIEW_ROWS`] high, keeping the aspect
/// ratio with the terminal's cell size.
pub fn preview_cells(size: (u32, u32), font: (u16, u16), width: u16) -> (u16, u16) {
    let (w, h) = (size.0.max(1) as f64, size.1.max(1) as f64);
    let (fw, fh) = (font.0.max(1) as f64, font.1.max(1) as f64);
    let max_cols = width.saturating_sub(4).max(1) as f64;
    // Never upscale a small image beyond its pixels.
    let rows_for_pixels = (h / fh).ceil().max(1.0);
    let mut rows = (PREVIEW_ROWS as f64).min(rows_for_pixels);
    let mut cols = (rows * fh * w / h / fw).round().max(1.0);
    if cols > max_cols {
        cols = max_cols;
        rows = (cols * fw * h / w / fh).round().max(1.0);
    }
    (cols as u16, rows as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_keep_the_aspect_ratio_within_bounds() {
        // 333×211 with 10×20 cells: 10 rows would be 200 px high; 211 px needs 11,
        // so the bound of 10 rows wins, 32 columns wide.
        assert_eq!(preview_cells((333, 211), (10, 20), 100), (32, 10));
        // A narrow pane squeezes the width and the height follows.
        assert_eq!(preview_cells((333, 211), (10, 20), 20), (16, 5));
        // A tiny image is not blown up.
        assert_eq!(preview_cells((64, 64), (10, 20), 100), (8, 4));
    }
}
