//! Grounding: the boxes and points a model writes in its answer, placed on
//! the original image and drawn over a copy of it.
//!
//! * [`parse_reply`] finds boxes and points in a reply's text, in the
//!   model's own numbers, tolerating every kind of mess (see `parse`).
//! * [`map_detections`] puts them in the original image's pixels, through
//!   the long-edge cap and `smart_resize` for Qwen2.5-VL's pixel answers,
//!   or straight from the 0–1000 grid for Qwen2-VL and Qwen3-VL.
//! * [`ground_reply`] does both.
//! * [`annotate`] draws them over a copy of the image.
//! * [`GroundingFamily::locate_prompt`] asks for boxes in the phrasing each
//!   family was trained on.
//!
//! Which image a detection belongs to: the most recent image of the
//! conversation (the last image of the last user turn that has one, see
//! [`default_image`]), unless the reply names another with `Picture N:` or
//! `Image N:` (1-based, as Qwen's chat templates number images) before it.

mod draw;
mod geometry;
mod json_scan;
mod lexing;
mod parse;
mod prompt;
mod special_tokens;
mod tuples;

pub use draw::{annotate, annotate_marks, label_text, line_width};
pub use geometry::{map_detections, ImageGeometry};
pub use parse::{parse_reply, ParsedReply, RawDetection, RawShape, MAX_DETECTIONS};

use crate::conversation::Conversation;

/// The grounding conventions of one model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroundingFamily {
    /// Special-token spans on a 0–1000 grid.
    Qwen2Vl,
    /// JSON `bbox_2d` / `point_2d` in pixels of the resized model input.
    Qwen25Vl,
    /// JSON `bbox_2d` / `point_2d` on a 0–1000 grid.
    Qwen3Vl,
}

impl GroundingFamily {
    /// The family of a `config.json` `model_type`.
    pub fn from_model_type(model_type: &str) -> Option<Self> {
        match model_type {
            "qwen2_vl" => Some(Self::Qwen2Vl),
            "qwen2_5_vl" => Some(Self::Qwen25Vl),
            // Qwen3.5 and the mixture-of-experts checkpoints answer on
            // Qwen3-VL's 0–1000 grid.
            "qwen3_vl" | "qwen3_5" | "qwen3_vl_moe" | "qwen3_5_moe" => Some(Self::Qwen3Vl),
            _ => None,
        }
    }

    /// What the numbers in this family's answers are measured in.
    pub fn coordinate_space(self) -> CoordinateSpace {
        match self {
            Self::Qwen2Vl | Self::Qwen3Vl => CoordinateSpace::Relative1000,
            Self::Qwen25Vl => CoordinateSpace::ModelInputPixels,
        }
    }
}

/// What the numbers in a reply are measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordinateSpace {
    /// 0 to 1000 across each side of the image, whatever its size.
    Relative1000,
    /// Pixels of the image as resized for the model.
    ModelInputPixels,
}

/// A box or point in original-image pixels (continuous coordinates: the
/// image spans `0..width` × `0..height`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// Left, top, right, bottom; left ≤ right and top ≤ bottom.
    Box([f64; 4]),
    /// x, y.
    Point([f64; 2]),
}

/// One box or point on one image of the conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// What the model called it; may be empty.
    pub label: String,
    /// Index of the image among the conversation's images (0-based, prompt
    /// order).
    pub image: usize,
    /// `(width, height)` of that image in original pixels.
    pub image_size: (u32, u32),
    /// Its colour in drawings and lists, RGB.
    pub colour: [u8; 3],
    pub shape: Shape,
}

impl Detection {
    /// The box in whole pixels: edges rounded to the nearest pixel
    /// boundary, so `right - left` is the width (right and bottom are
    /// exclusive).
    pub fn pixel_box(&self) -> Option<[u32; 4]> {
        match self.shape {
            Shape::Box([l, t, r, b]) => {
                let (w, h) = self.image_size;
                let edge = |v: f64, max: u32| (v.round().max(0.0) as u32).min(max);
                Some([edge(l, w), edge(t, h), edge(r, w), edge(b, h)])
            }
            Shape::Point(_) => None,
        }
    }

    /// The pixel a point falls in, `[column, row]`.
    pub fn pixel_point(&self) -> Option<[u32; 2]> {
        match self.shape {
            Shape::Point([x, y]) => {
                let (w, h) = self.image_size;
                let cell =
                    |v: f64, size: u32| (v.floor().max(0.0) as u32).min(size.saturating_sub(1));
                Some([cell(x, w), cell(y, h)])
            }
            Shape::Box(_) => None,
        }
    }
}

/// The detections of one reply, with whatever could not be used.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grounding {
    pub detections: Vec<Detection>,
    /// One sentence per problem, for showing to the user.
    pub warnings: Vec<String>,
}

impl Grounding {
    /// The detections on one image, in reply order.
    pub fn on_image(&self, image: usize) -> Vec<Detection> {
        self.detections
            .iter()
            .filter(|d| d.image == image)
            .cloned()
            .collect()
    }
}

/// Finds the boxes and points in `reply` and places them on the original
/// images. See [`map_detections`] for `images` and `default_image`.
pub fn ground_reply(
    reply: &str,
    family: GroundingFamily,
    images: &[ImageGeometry],
    default_image: Option<usize>,
) -> Grounding {
    map_detections(
        &parse_reply(reply),
        family.coordinate_space(),
        images,
        default_image,
    )
}

/// The image a reply's boxes belong to unless it names another: the most
/// recent image in the conversation (the last image of the last user turn
/// that holds images), as an index among all its images. `None` when the
/// conversation has no image.
pub fn default_image(conversation: &Conversation) -> Option<usize> {
    conversation.images().len().checked_sub(1)
}

/// Twelve colours that stay apart from each other and readable on light and
/// dark photos.
const PALETTE: [[u8; 3]; 12] = [
    [230, 25, 75],
    [60, 180, 75],
    [0, 130, 200],
    [245, 130, 48],
    [145, 30, 180],
    [70, 240, 240],
    [240, 50, 230],
    [210, 245, 60],
    [255, 225, 25],
    [0, 128, 128],
    [170, 110, 40],
    [250, 190, 212],
];

/// The colour of the `n`-th detection of a reply (0-based); repeats after
/// twelve.
pub fn palette_colour(n: usize) -> [u8; 3] {
    PALETTE[n % PALETTE.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::{Message, Part, Role};
    use std::path::PathBuf;

    #[test]
    fn families_by_model_type_and_their_coordinate_spaces() {
        use CoordinateSpace::*;
        let f = |t| GroundingFamily::from_model_type(t).map(|f| f.coordinate_space());
        assert_eq!(f("qwen2_vl"), Some(Relative1000));
        assert_eq!(f("qwen2_5_vl"), Some(ModelInputPixels));
        assert_eq!(f("qwen3_vl"), Some(Relative1000));
        assert_eq!(f("llava"), None);
    }

    #[test]
    fn the_default_image_is_the_most_recent_one() {
        let img = |p: &str| Part::Image(PathBuf::from(p));
        let mut c = Conversation::new();
        assert_eq!(default_image(&c), None);
        c.push(Message::parts(Role::User, vec![img("a.png"), img("b.png")]));
        assert_eq!(default_image(&c), Some(1));
        c.push(Message::text(Role::Assistant, "two pictures"));
        c.push(Message::text(Role::User, "where is the cat?"));
        assert_eq!(
            default_image(&c),
            Some(1),
            "a text-only turn keeps the last image"
        );
        c.push(Message::parts(Role::User, vec![img("c.png")]));
        assert_eq!(default_image(&c), Some(2));
    }

    #[test]
    fn whole_pixel_views_of_boxes_and_points() {
        let d = |shape| Detection {
            label: String::new(),
            image: 0,
            image_size: (100, 50),
            colour: [0; 3],
            shape,
        };
        assert_eq!(
            d(Shape::Box([0.4, 0.5, 99.6, 50.0])).pixel_box(),
            Some([0, 1, 100, 50])
        );
        assert_eq!(
            d(Shape::Point([100.0, 49.99])).pixel_point(),
            Some([99, 49])
        );
        assert_eq!(d(Shape::Point([0.0, 0.0])).pixel_box(), None);
    }
}
