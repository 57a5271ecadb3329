//! Boxes and points in answers: found when an answer ends, drawn over a
//! copy of their image under it, highlighted one at a time, and asked for
//! with `/locate`.

use std::sync::Arc;

use image::DynamicImage;

use super::{App, Flash, ImageState, ModelState, Preview};
use crate::processor::grounding::{label_text, GroundingFamily};
use crate::tui::detections::{ground_answer, ReplyGrounding, SentImages};
use crate::tui::layout::preview_cells;
use crate::tui::msg::{Cmd, ImageId, RequestId};
use crate::tui::overlay::{
    draw_scaled, preview_source, scale, OverlayKey, PreviewKind, PreviewPlan,
};
use crate::tui::transcript::{conversation_until, EntryKind, ReplyPhase};

impl App {
    fn new_image_id(&mut self) -> ImageId {
        let id = self.next_image;
        self.next_image += 1;
        id
    }

    /// Finds the boxes and points of a finished (or stopped) answer and
    /// keeps them on its entry. The parser is linear in the answer's length
    /// and an answer is bounded by its token limit, so this runs here, once.
    pub(super) fn ground_finished(&mut self, id: RequestId, cmds: &mut Vec<Cmd>) {
        let Some(ready) = self.ready() else {
            return;
        };
        let Some(family) = GroundingFamily::from_model_type(&ready.info.model_type) else {
            return;
        };
        let vision = ready.info.preprocess.clone();
        let Some(pos) = self
            .entries
            .iter()
            .rposition(|e| matches!(&e.kind, EntryKind::Assistant(r) if r.id == id))
        else {
            return;
        };
        let EntryKind::Assistant(r) = &self.entries[pos].kind else {
            return;
        };
        if r.text.is_empty() {
            return;
        }
        let Some(found) = ground_answer(
            &r.text,
            family,
            &r.sent,
            &self.images,
            &vision,
            self.next_image,
        ) else {
            return;
        };
        self.new_image_id();
        let entry = &mut self.entries[pos];
        if let EntryKind::Assistant(r) = &mut entry.kind {
            r.grounding = Some(Box::new(found));
        }
        entry.touch();
        self.want_overlays(cmds);
    }

    /// Grounds the answers of a resumed session, each once the model (its
    /// family and resize rules) is known and the images before it are
    /// decoded, so a resumed conversation shows its boxes again.
    pub(super) fn ground_restored(&mut self, cmds: &mut Vec<Cmd>) {
        if self.ready().is_none() {
            return;
        }
        let mut due = Vec::new();
        for (pos, e) in self.entries.iter().enumerate() {
            let EntryKind::Assistant(r) = &e.kind else {
                continue;
            };
            if r.phase != ReplyPhase::Restored || r.grounding.is_some() || r.grounding_tried {
                continue;
            }
            let conversation = conversation_until(&self.entries[..pos], &self.images);
            let sent = SentImages::of(&conversation, &self.images);
            let decoding = sent.ids.iter().any(|id| {
                matches!(
                    self.images.get(id).map(|i| &i.state),
                    Some(ImageState::Decoding)
                )
            });
            if !decoding {
                due.push((pos, r.id, sent));
            }
        }
        for (pos, id, sent) in due {
            if let EntryKind::Assistant(r) = &mut self.entries[pos].kind {
                r.sent = sent;
                r.grounding_tried = true;
            }
            self.ground_finished(id, cmds);
        }
    }

    /// The latest answer with boxes or points.
    fn latest_grounding(&mut self) -> Option<(usize, &mut ReplyGrounding)> {
        self.entries
            .iter_mut()
            .enumerate()
            .rev()
            .find_map(|(i, e)| match &mut e.kind {
                EntryKind::Assistant(r) => r
                    .grounding
                    .as_mut()
                    .filter(|g| !g.detections.is_empty())
                    .map(|g| (i, &mut **g)),
                _ => None,
            })
    }

    /// Highlights the next (`step` 1) or previous (-1) object of the latest
    /// answer with objects.
    pub(super) fn cycle_highlight(&mut self, step: isize, cmds: &mut Vec<Cmd>) {
        let Some((pos, g)) = self.latest_grounding() else {
            self.flash = Some(Flash::Info("no boxes or points in the answers yet".into()));
            return;
        };
        g.cycle(step);
        let n = g.detections.len();
        let h = g.highlight;
        let label = label_text(&g.detections[h], h);
        self.entries[pos].touch();
        self.flash = Some(Flash::Info(format!("object {} of {n}: {label}", h + 1)));
        self.want_overlays(cmds);
    }

    pub(super) fn toggle_overlay(&mut self, cmds: &mut Vec<Cmd>) {
        self.overlay.hidden = !self.overlay.hidden;
        self.want_overlays(cmds);
        self.flash = Some(Flash::Info(
            if self.overlay.on() {
                "boxes drawn over the previews"
            } else {
                "boxes hidden: plain previews"
            }
            .into(),
        ));
    }

    /// Draws and asks to encode the annotated preview of every answer with
    /// objects whose picture changed (new answer, highlight, width).
    pub(super) fn want_overlays(&mut self, cmds: &mut Vec<Cmd>) {
        let live: Vec<ImageId> = self
            .entries
            .iter()
            .filter_map(|e| match &e.kind {
                EntryKind::Assistant(r) => r.grounding.as_ref().map(|g| g.overlay),
                _ => None,
            })
            .collect();
        // Answers written again or cleared leave their previews behind.
        let gone: Vec<ImageId> = self
            .overlay
            .made
            .keys()
            .filter(|id| !live.contains(id))
            .copied()
            .collect();
        for id in gone {
            self.overlay.made.remove(&id);
            self.previews.remove(&id);
        }
        if !self.previews_on || !self.overlay.on() {
            return;
        }
        let width = self.transcript_area().width;
        let kind = PreviewKind::of_protocol(&self.image_protocol);
        let mut jobs = Vec::new();
        for e in &self.entries {
            let EntryKind::Assistant(r) = &e.kind else {
                continue;
            };
            let Some(g) = r.grounding.as_ref() else {
                continue;
            };
            let Some(shown) = g.shown_image() else {
                continue;
            };
            let Some(ImageState::Ready(d)) = self.images.get(&shown).map(|i| &i.state) else {
                continue;
            };
            let cells = preview_cells(d.capped, self.font_size, width);
            let key = OverlayKey {
                image: shown,
                highlight: g.highlight,
                cells,
            };
            if self.overlay.made.get(&g.overlay) == Some(&key) {
                continue;
            }
            let font = self.font_size;
            let source =
                self.overlay
                    .sources
                    .entry(shown)
                    .or_insert_with(|| match d.pixels.as_rgb8() {
                        Some(rgb) => preview_source(rgb, font),
                        None => preview_source(&d.pixels.to_rgb8(), font),
                    });
            // Planned on the image the plain preview shows, so both take
            // the same cells; the source is at least as large as the plan.
            let plan = PreviewPlan::new(d.capped, cells, font, kind);
            let (detections, highlight) = g.on_shown_image();
            let pixels = draw_scaled(&scale(source, plan.scaled), &plan, &detections, highlight);
            jobs.push((g.overlay, key, pixels));
        }
        for (id, key, pixels) in jobs {
            // The old picture stays until the new one is encoded.
            let kept = self
                .previews
                .remove(&id)
                .filter(|p| p.cells == key.cells)
                .and_then(|p| p.protocol);
            self.previews.insert(
                id,
                Preview {
                    cells: key.cells,
                    protocol: kept,
                },
            );
            self.overlay.made.insert(id, key);
            cmds.push(Cmd::EncodePreview {
                id,
                pixels: Arc::new(DynamicImage::ImageRgb8(pixels)),
                cells: key.cells,
            });
        }
    }

    /// `/locate THING` as the question the model's family was trained to
    /// answer with boxes, or `Err` (with a flash saying why) when it cannot
    /// be asked. Input that is not `/locate` comes back unchanged.
    pub(super) fn expand_locate(&mut self, text: &str) -> Result<String, ()> {
        let Some(thing) = locate_argument(text) else {
            return Ok(text.to_string());
        };
        let family = match &self.model {
            ModelState::Ready(r) => GroundingFamily::from_model_type(&r.info.model_type),
            _ => {
                self.flash = Some(Flash::Error(
                    "/locate asks in the model's own format: wait until it has loaded".into(),
                ));
                return Err(());
            }
        };
        let Some(family) = family else {
            self.flash = Some(Flash::Error(
                "this model has no known box format, so /locate cannot ask for boxes".into(),
            ));
            return Err(());
        };
        let has_image = !self.attachments.is_empty()
            || !conversation_until(&self.entries, &self.images)
                .images()
                .is_empty();
        if !has_image {
            self.flash = Some(Flash::Error(
                "/locate needs an image: attach one with /image PATH first".into(),
            ));
            return Err(());
        }
        match family.locate_prompt(thing) {
            Some(q) => Ok(q),
            None => {
                self.flash = Some(Flash::Error(
                    "say what to find: /locate THING, e.g. /locate the red car".into(),
                ));
                Err(())
            }
        }
    }
}

/// What follows `/locate`, when the text is that command.
fn locate_argument(text: &str) -> Option<&str> {
    let rest = text.strip_prefix("/locate")?;
    (rest.is_empty() || rest.starts_with(char::is_whitespace)).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::locate_argument;

    #[test]
    fn only_the_locate_command_is_expanded() {
        assert_eq!(locate_argument("/locate the cat"), Some(" the cat"));
        assert_eq!(locate_argument("/locate"), Some(""));
        assert_eq!(locate_argument("/located"), None);
        assert_eq!(locate_argument("locate the cat"), None);
    }
}
