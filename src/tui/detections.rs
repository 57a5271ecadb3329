//! Boxes and points found in an answer, kept on its entry: which of the
//! conversation's images each lands on, which one is highlighted, and the
//! lines that list them under the answer.

use std::collections::HashMap;

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};

use super::app::{App, ImageState, StoredImage};
use super::keymap::Action;
use super::layout::preview_cells;
use super::msg::ImageId;
use super::theme::Theme;
use super::transcript::Row;
use super::wrap::{truncate, width};
use crate::conversation::Conversation;
use crate::engine::ImageFacts;
use crate::processor::grounding::{
    ground_reply, label_text, Detection, GroundingFamily, ImageGeometry,
};
use crate::processor::vision_input::VisionPreprocessConfig;

/// The images a request went out with: the conversation's, in prompt
/// order, and the engine's facts about those its prompt kept (the oldest
/// turns may have been left out to fit the context).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SentImages {
    pub ids: Vec<ImageId>,
    pub facts: Vec<ImageFacts>,
}

impl SentImages {
    /// The images of `conversation`, as the app's image ids.
    pub fn of(conversation: &Conversation, images: &HashMap<ImageId, StoredImage>) -> Self {
        let ids = conversation
            .images()
            .iter()
            .filter_map(|path| {
                // The same file attached twice shares one id; a failed
                // decode of it may linger beside a good one.
                images
                    .iter()
                    .filter(|(_, i)| i.path.as_path() == *path)
                    .min_by_key(|(id, i)| (matches!(i.state, ImageState::Failed(_)), **id))
                    .map(|(id, _)| *id)
            })
            .collect();
        SentImages {
            ids,
            facts: Vec::new(),
        }
    }
}

/// The detections of one answer, placed on the original images.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplyGrounding {
    /// In the answer's order; the colours follow it.
    pub detections: Vec<Detection>,
    /// The conversation image each detection lands on.
    pub images: Vec<ImageId>,
    /// That image's 1-based number among the conversation's images.
    pub numbers: Vec<usize>,
    /// The conversation holds more than one image, so the list says which.
    pub several_images: bool,
    /// What could not be placed, one sentence each.
    pub warnings: Vec<String>,
    /// Index of the highlighted detection.
    pub highlight: usize,
    /// The preview slot of the annotated image.
    pub overlay: ImageId,
}

impl ReplyGrounding {
    /// The image the preview shows: the highlighted detection's.
    pub fn shown_image(&self) -> Option<ImageId> {
        self.images.get(self.highlight).copied()
    }

    /// The detections on the shown image, and where the highlighted one is
    /// among them. Unnamed ones are named by their number in the list, so
    /// the drawing and the list agree.
    pub fn on_shown_image(&self) -> (Vec<Detection>, Option<usize>) {
        let Some(shown) = self.shown_image() else {
            return (Vec::new(), None);
        };
        let mut highlight = None;
        let mut out = Vec::new();
        for (i, (d, &img)) in self.detections.iter().zip(&self.images).enumerate() {
            if img != shown {
                continue;
            }
            if i == self.highlight {
                highlight = Some(out.len());
            }
            let mut d = d.clone();
            if d.label.is_empty() {
                d.label = format!("#{}", i + 1);
            }
            out.push(d);
        }
        (out, highlight)
    }

    /// Moves the highlight `step` objects on, wrapping around.
    pub fn cycle(&mut self, step: isize) {
        let n = self.detections.len() as isize;
        if n > 0 {
            self.highlight = (self.highlight as isize + step).rem_euclid(n) as usize;
        }
    }
}

/// The detections in `answer`, placed on the images it was asked about.
/// `None` when it holds no box or point and nothing that tried to be one.
/// `overlay` becomes the preview slot of the annotated image.
pub fn ground_answer(
    answer: &str,
    family: GroundingFamily,
    sent: &SentImages,
    images: &HashMap<ImageId, StoredImage>,
    vision: &VisionPreprocessConfig,
    overlay: ImageId,
) -> Option<ReplyGrounding> {
    let (offset, geometries) = geometries(sent, images, vision);
    let found = ground_reply(answer, family, &geometries, geometries.len().checked_sub(1));
    if found.detections.is_empty() && found.warnings.is_empty() {
        return None;
    }
    let mut detections = Vec::new();
    let mut ids = Vec::new();
    let mut numbers = Vec::new();
    for d in found.detections {
        let Some(&id) = sent.ids.get(offset + d.image) else {
            continue;
        };
        ids.push(id);
        numbers.push(offset + d.image + 1);
        detections.push(d);
    }
    Some(ReplyGrounding {
        detections,
        images: ids,
        numbers,
        several_images: sent.ids.len() > 1,
        warnings: found.warnings,
        highlight: 0,
        overlay,
    })
}

/// How each image the prompt kept was resized, and the index of the first
/// of them among the conversation's images. The engine's facts give the
/// model's input size; the decoded image gives the size after the
/// long-edge cap. Without facts (none arrived) every image is assumed
/// kept, sized as the engine would size it.
fn geometries(
    sent: &SentImages,
    images: &HashMap<ImageId, StoredImage>,
    vision: &VisionPreprocessConfig,
) -> (usize, Vec<ImageGeometry>) {
    let decoded = |id: &ImageId| match images.get(id).map(|i| &i.state) {
        Some(ImageState::Ready(d)) => Some(d),
        _ => None,
    };
    if !sent.facts.is_empty() && sent.facts.len() <= sent.ids.len() {
        let offset = sent.ids.len() - sent.facts.len();
        let geometries = sent.ids[offset..]
            .iter()
            .zip(&sent.facts)
            .map(|(id, f)| {
                let original = (f.original_size[0], f.original_size[1]);
                let capped = decoded(id)
                    .filter(|d| d.original == original)
                    .map_or(original, |d| d.capped);
                ImageGeometry {
                    original,
                    capped,
                    model_input: (f.model_size[0], f.model_size[1]),
                }
            })
            .collect();
        return (offset, geometries);
    }
    let geometries = sent
        .ids
        .iter()
        .map(|id| match decoded(id) {
            Some(d) => ImageGeometry {
                original: d.original,
                capped: d.capped,
                model_input: vision
                    .model_input_size(d.capped.0, d.capped.1)
                    .unwrap_or(d.capped),
            },
            // Nothing lands on an image with no pixels.
            None => ImageGeometry {
                original: (0, 0),
                capped: (0, 0),
                model_input: (0, 0),
            },
        })
        .collect();
    (0, geometries)
}

/// `box (x1,y1)–(x2,y2)` or `point (x,y)`, in original pixels.
pub fn describe_place(d: &Detection) -> String {
    match (d.pixel_box(), d.pixel_point()) {
        (Some([l, t, r, b]), _) => format!("box ({l},{t})–({r},{b})"),
        (_, Some([x, y])) => format!("point ({x},{y})"),
        (None, None) => String::new(),
    }
}

/// Most objects listed under one answer.
pub const MAX_LISTED: usize = 20;

/// Key hints for the heading line.
pub struct ListKeys {
    pub toggle: String,
    pub next: String,
}

/// The lines under an answer: a heading, one line per object (number,
/// colour swatch, label, place, image), the highlighted one marked, and one
/// dim line for what could not be placed.
pub fn list_lines(
    g: &ReplyGrounding,
    overlay_on: bool,
    keys: &ListKeys,
    theme: &Theme,
    room: usize,
) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let n = g.detections.len();
    if n > 0 {
        let what = if n == 1 {
            "1 object".to_string()
        } else {
            format!("{n} objects")
        };
        let mut hint = format!(
            "{what} found · {} {} the boxes",
            keys.toggle,
            if overlay_on { "hides" } else { "shows" }
        );
        if n > 1 {
            hint.push_str(&format!(" · {} next", keys.next));
        }
        lines.push(Line::from(Span::styled(truncate(&hint, room), theme.dim)));
    }
    let digits = n.to_string().len();
    // A list as long as a runaway answer would bury the conversation: the
    // first objects, and the highlighted one wherever it is.
    let listed = (0..n).filter(|&i| i < MAX_LISTED || i == g.highlight);
    for i in listed {
        let d = &g.detections[i];
        let marked = i == g.highlight;
        let [r, gr, b] = d.colour;
        let place = describe_place(d);
        let image = if g.several_images {
            format!("  image {}", g.numbers[i])
        } else {
            String::new()
        };
        let head = format!("{} {:>digits$} ", if marked { "▶" } else { " " }, i + 1);
        let fixed = width(&head) + 3 + 2 + width(&place) + width(&image);
        let label = truncate(&label_text(d, i), room.saturating_sub(fixed).max(4));
        let text_style = if marked {
            theme.text.add_modifier(Modifier::BOLD)
        } else {
            theme.text
        };
        lines.push(Line::from(vec![
            Span::styled(head, text_style),
            Span::styled("██", Style::new().fg(Color::Rgb(r, gr, b))),
            Span::raw(" "),
            Span::styled(label, text_style),
            Span::styled(format!("  {place}"), theme.dim),
            Span::styled(image, theme.dim),
        ]));
    }
    if n > MAX_LISTED {
        let more = n - MAX_LISTED - usize::from(g.highlight >= MAX_LISTED);
        lines.push(Line::from(Span::styled(
            truncate(
                &format!(
                    "  … {more} more not listed; {} steps through them",
                    keys.next
                ),
                room,
            ),
            theme.dim,
        )));
    }
    if !g.warnings.is_empty() {
        let text = format!("not placed: {}", g.warnings.join("; "));
        lines.push(Line::from(Span::styled(
            truncate(&format!("  {text}"), room),
            theme.dim,
        )));
    }
    lines
}

/// The rows under an answer with objects: the list, then the image they
/// are on, with the boxes drawn over it unless the overlay is off.
pub fn rows(app: &App, g: &ReplyGrounding, width: u16) -> Vec<Row> {
    let t = &app.theme;
    let keys = ListKeys {
        toggle: app
            .keymap
            .first_label(Action::ToggleOverlay)
            .unwrap_or_default(),
        next: app
            .keymap
            .first_label(Action::NextObject)
            .unwrap_or_default(),
    };
    let room = width.saturating_sub(2) as usize;
    let mut rows: Vec<Row> = list_lines(g, app.overlay.on(), &keys, t, room)
        .into_iter()
        .map(|mut line| {
            line.spans.insert(0, Span::raw("  "));
            Row::Text(line)
        })
        .collect();
    let Some(shown) = g.shown_image() else {
        return rows;
    };
    let Some(StoredImage {
        name,
        state: ImageState::Ready(d),
        ..
    }) = app.images.get(&shown)
    else {
        return rows;
    };
    if !app.previews_on {
        return rows;
    }
    let what = if app.overlay.on() {
        "with the boxes"
    } else {
        "as it is"
    };
    rows.push(Row::Text(Line::from(vec![
        Span::styled("  ▣ ", t.dim),
        Span::styled(truncate(name, room.saturating_sub(20).max(8)), t.text),
        Span::styled(format!("  {what}"), t.dim),
    ])));
    let cells = preview_cells(d.capped, app.font_size, width);
    let id = if app.overlay.on() { g.overlay } else { shown };
    rows.extend((0..cells.1).map(|line| Row::Image {
        id,
        line,
        cells,
        indent: 2,
    }));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::grounding::Shape;

    fn det(label: &str, image: usize, shape: Shape) -> Detection {
        Detection {
            label: label.into(),
            image,
            image_size: (100, 50),
            colour: [1, 2, 3],
            shape,
        }
    }

    fn grounding(images: Vec<ImageId>) -> ReplyGrounding {
        let n = images.len();
        ReplyGrounding {
            detections: (0..n)
                .map(|i| det(if i == 1 { "" } else { "x" }, 0, Shape::Point([1.0, 1.0])))
                .collect(),
            numbers: images.iter().map(|&i| i as usize).collect(),
            images,
            several_images: true,
            warnings: vec![],
            highlight: 0,
            overlay: 99,
        }
    }

    #[test]
    fn cycling_wraps_both_ways() {
        let mut g = grounding(vec![1, 1, 2]);
        g.cycle(-1);
        assert_eq!(g.highlight, 2);
        g.cycle(1);
        assert_eq!(g.highlight, 0);
        g.cycle(4);
        assert_eq!(g.highlight, 1);
    }

    #[test]
    fn the_preview_shows_the_highlighted_objects_image_with_its_neighbours() {
        let mut g = grounding(vec![1, 1, 2]);
        g.highlight = 1;
        assert_eq!(g.shown_image(), Some(1));
        let (on, h) = g.on_shown_image();
        assert_eq!(on.len(), 2);
        assert_eq!(h, Some(1));
        assert_eq!(on[1].label, "#2", "an unnamed object keeps its list number");
        g.highlight = 2;
        let (on, h) = g.on_shown_image();
        assert_eq!((on.len(), h, g.shown_image()), (1, Some(0), Some(2)));
    }

    #[test]
    fn places_read_in_whole_original_pixels() {
        assert_eq!(
            describe_place(&det("", 0, Shape::Box([0.4, 1.6, 50.0, 49.5]))),
            "box (0,2)–(50,50)"
        );
        assert_eq!(
            describe_place(&det("", 0, Shape::Point([99.9, 0.2]))),
            "point (99,0)"
        );
    }
}
