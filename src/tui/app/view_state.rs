//! What depends on the screen: the transcript's size, scrolling, and which
//! previews to encode for the current width.

use std::path::Path;

use ratatui::layout::Rect;

use super::{App, ImageState, Preview, StoredImage};
use crate::tui::layout::{preview_cells, screen_layout};
use crate::tui::msg::{Cmd, ImageId};
use crate::tui::transcript::{all_rows, EntryKind};

impl App {
    pub fn transcript_area(&self) -> Rect {
        screen_layout(Rect::new(0, 0, self.size.0, self.size.1), self).transcript
    }

    /// Rows the whole transcript takes at the current width.
    pub fn transcript_height(&self) -> usize {
        let area = self.transcript_area();
        all_rows(self, area.width).len()
    }

    pub(super) fn max_scroll(&self) -> usize {
        self.transcript_height()
            .saturating_sub(self.transcript_area().height as usize)
    }

    pub(super) fn scroll_by(&mut self, delta: i64) {
        let max = self.max_scroll();
        let top = self.scroll.unwrap_or(max) as i64;
        let next = (top + delta).max(0) as usize;
        self.scroll = if next >= max { None } else { Some(next) };
    }

    pub(super) fn clamp_scroll(&mut self) {
        if let Some(top) = self.scroll {
            if top >= self.max_scroll() {
                self.scroll = None;
            }
        }
    }

    /// Asks for previews of every decoded image in the transcript at the
    /// size the current width gives them.
    pub(super) fn want_previews(&mut self, cmds: &mut Vec<Cmd>) {
        if !self.previews_on {
            return;
        }
        let width = self.transcript_area().width;
        let shown: Vec<ImageId> = self
            .entries
            .iter()
            .flat_map(|e| match &e.kind {
                EntryKind::User { images, .. } => images.clone(),
                _ => Vec::new(),
            })
            .collect();
        for id in shown {
            let Some(StoredImage {
                state: ImageState::Ready(d),
                ..
            }) = self.images.get(&id)
            else {
                continue;
            };
            let cells = preview_cells(d.capped, self.font_size, width);
            if self.previews.get(&id).is_some_and(|p| p.cells == cells) {
                continue;
            }
            self.previews.insert(
                id,
                Preview {
                    cells,
                    protocol: None,
                },
            );
            cmds.push(Cmd::EncodePreview {
                id,
                pixels: d.pixels.clone(),
                cells,
            });
        }
        self.want_overlays(cmds);
    }

    /// Path of an image, for commands and tests.
    pub fn image_path(&self, id: ImageId) -> Option<&Path> {
        self.images.get(&id).map(|i| i.path.as_path())
    }
}
