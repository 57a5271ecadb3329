//! A backend wrapper that re-places the cursor after every cell holding a
//! non-ASCII character. Terminals and ratatui do not always agree on how
//! wide a character is (unassigned code points, some emoji and symbols);
//! ratatui writes neighbouring cells without moving the cursor, so one
//! disagreement would shift the rest of the row and leave stale characters
//! behind. Models write such characters, so every row must stay aligned.

use ratatui::backend::{Backend, ClearType, WindowSize};
use ratatui::buffer::Cell;
use ratatui::layout::{Position, Size};

pub struct ResyncBackend<B> {
    inner: B,
}

impl<B> ResyncBackend<B> {
    pub fn new(inner: B) -> Self {
        ResyncBackend { inner }
    }

    pub fn inner(&self) -> &B {
        &self.inner
    }
}

impl<B: Backend> Backend for ResyncBackend<B> {
    type Error = B::Error;

    fn draw<'a, I>(&mut self, content: I) -> Result<(), Self::Error>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
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
        self.inner.flush()
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
}
