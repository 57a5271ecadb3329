//! A backend wrapper that re-places the cursor after every cell holding a
//! non-ASCII character. Terminals and ratatui do not always agree on how
//! wide a character is (unassigned code points, some emoji and symbols);
//! ratatui writes neighbouring cells without moving the cursor, so one
//! disagreement would shift the rest of the row and leave stale characters
//! behind. Models write such characters, so every row must stay aligned.
//!
//! Each frame is also wrapped in a synchronized update (DEC mode 2026), so a
//! terminal that knows it shows whole frames only: no half-drawn status line
//! or answer over a slow SSH link. Terminals that do not know it ignore it.

use std::io::{self, Write};

use ratatui::backend::{Backend, ClearType, WindowSize};
use ratatui::buffer::Cell;
use ratatui::layout::{Position, Size};

/// Starts a synchronized update: the terminal holds what follows back.
pub const FRAME_BEGIN: &[u8] = b"\x1b[?2026h";
/// Ends a synchronized update: the terminal shows the whole frame at once.
pub const FRAME_END: &[u8] = b"\x1b[?2026l";

pub struct ResyncBackend<B> {
    inner: B,
    /// A frame's cells were written and its end is still to be sent.
    in_frame: bool,
}

impl<B> ResyncBackend<B> {
    pub fn new(inner: B) -> Self {
        ResyncBackend {
            inner,
            in_frame: false,
        }
    }

    pub fn inner(&self) -> &B {
        &self.inner
    }
}

impl<B: Backend<Error = io::Error> + Write> Backend for ResyncBackend<B> {
    type Error = io::Error;

    fn draw<'a, I>(&mut self, content: I) -> Result<(), Self::Error>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
        // ratatui writes a frame's cells, places the cursor, then flushes.
        if !self.in_frame {
            self.inner.write_all(FRAME_BEGIN)?;
            self.in_frame = true;
        }
        // Each call of the inner draw starts with an explicit cursor move,
        // so a run is cut right after any cell that is not plain ASCII.
        let mut run: Vec<(u16, u16, &'a Cell)> = Vec::new();
        for item in content {
            let ascii = item.2.symbol().is_ascii();
            run.push(item);
            if !ascii {
                self.inner.draw(run.drain(..))?;
            }
        }
        if !run.is_empty() {
            self.inner.draw(run.into_iter())?;
        }
        Ok(())
    }

    fn append_lines(&mut self, n: u16) -> Result<(), Self::Error> {
        self.inner.append_lines(n)
    }

    fn hide_cursor(&mut self) -> Result<(), Self::Error> {
        self.inner.hide_cursor()
    }

    fn show_cursor(&mut self) -> Result<(), Self::Error> {
        self.inner.show_cursor()
    }

    fn get_cursor_position(&mut self) -> Result<Position, Self::Error> {
        self.inner.get_cursor_position()
    }

    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> Result<(), Self::Error> {
        self.inner.set_cursor_position(position)
    }

    fn clear(&mut self) -> Result<(), Self::Error> {
        self.inner.clear()
    }

    fn clear_region(&mut self, clear_type: ClearType) -> Result<(), Self::Error> {
        self.inner.clear_region(clear_type)
    }

    fn size(&self) -> Result<Size, Self::Error> {
        self.inner.size()
    }

    fn window_size(&mut self) -> Result<WindowSize, Self::Error> {
        self.inner.window_size()
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        if self.in_frame {
            self.in_frame = false;
            self.inner.write_all(FRAME_END)?;
        }
        Backend::flush(&mut self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::CrosstermBackend;

    fn written(cells: &[(u16, &'static str)], resync: bool) -> String {
        let owned: Vec<(u16, Cell)> = cells.iter().map(|(x, s)| (*x, Cell::new(s))).collect();
        let items = owned.iter().map(|(x, c)| (*x, 0u16, c));
        let mut out = Vec::new();
        if resync {
            let mut b = ResyncBackend::new(CrosstermBackend::new(&mut out));
            b.draw(items).unwrap();
        } else {
            let mut b = CrosstermBackend::new(&mut out);
            b.draw(items).unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_cursor_is_placed_again_after_a_non_ascii_cell() {
        let cells = [(0, "a"), (1, "\u{530}"), (2, "b"), (3, "c")];
        // Column 3 (1-based) is addressed explicitly after the doubtful character…
        assert!(written(&cells, true).contains("\x1b[1;3H"));
        // …which plain ratatui output does not do.
        assert!(!written(&cells, false).contains("\x1b[1;3H"));
        // ASCII runs stay one run.
        assert!(!written(&[(0, "a"), (1, "b"), (2, "c")], true).contains("\x1b[1;2H"));
    }

    #[test]
    fn a_frame_is_one_synchronized_update() {
        let owned: Vec<(u16, Cell)> = [(0, "a"), (1, "\u{530}"), (2, "b")]
            .iter()
            .map(|(x, s)| (*x, Cell::new(s)))
            .collect();
        let mut out = Vec::new();
        {
            let mut b = ResyncBackend::new(CrosstermBackend::new(&mut out));
            // As ratatui draws a frame: cells (here cut into runs), cursor, flush.
            for _ in 0..2 {
                b.draw(owned.iter().map(|(x, c)| (*x, 0u16, c))).unwrap();
                b.hide_cursor().unwrap();
                Backend::flush(&mut b).unwrap();
            }
            // A flush with nothing drawn sends no empty frame.
            Backend::flush(&mut b).unwrap();
        }
        let begin = std::str::from_utf8(FRAME_BEGIN).unwrap();
        let end = std::str::from_utf8(FRAME_END).unwrap();
        let out = String::from_utf8(out).unwrap();
        let frames: Vec<&str> = out.split_inclusive(end).collect();
        assert_eq!(frames.len(), 2, "{out:?}");
        for frame in frames {
            assert!(frame.starts_with(begin), "{frame:?}");
            assert_eq!(frame.matches(begin).count(), 1, "{frame:?}");
            assert!(frame.ends_with(end), "{frame:?}");
            assert!(frame.contains('a') && frame.contains('b'), "{frame:?}");
        }
    }
}
