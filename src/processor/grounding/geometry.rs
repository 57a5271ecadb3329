//! Where the model's numbers land on the original image.
//!
//! An image reaches the model through up to two resizes: the long-edge cap
//! (e.g. 4000 px → 1920 px) and `smart_resize` (multiples of 28 or 32 inside
//! a pixel budget). Each stretches the whole image, so a position maps back
//! by undoing each step's scale in turn. Qwen2.5-VL answers in pixels of the
//! final model input; Qwen2-VL and Qwen3-VL answer on a 0–1000 grid over the
//! image, which needs no resize information at all.

use super::parse::{ParsedReply, RawShape};
use super::{palette_colour, CoordinateSpace, Detection, Grounding, Shape};
use crate::processor::image::LongEdgeCap;
use crate::processor::vision_input::{VisionInputError, VisionPreprocessConfig};

/// The sizes an image had on its way to the model, `(width, height)` each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageGeometry {
    /// The image as the user sees it (after EXIF orientation).
    pub original: (u32, u32),
    /// After the long-edge cap; the same as `original` when it did not apply.
    pub capped: (u32, u32),
    /// The model's input, after `smart_resize`.
    pub model_input: (u32, u32),
}

impl ImageGeometry {
    /// The geometry of an image whose original and model-input sizes are
    /// known (as the engine reports them), with the cap that was in force.
    pub fn new(original: (u32, u32), cap: Option<&LongEdgeCap>, model_input: (u32, u32)) -> Self {
        let capped = cap
            .and_then(|c| c.capped_size(original.0, original.1))
            .unwrap_or(original);
        ImageGeometry {
            original,
            capped,
            model_input,
        }
    }

    /// Works out both resizes for an image of size `original`, exactly as
    /// the engine does before encoding it.
    pub fn compute(
        original: (u32, u32),
        cap: Option<&LongEdgeCap>,
        preprocess: &VisionPreprocessConfig,
    ) -> Result<Self, VisionInputError> {
        let capped = cap
            .and_then(|c| c.capped_size(original.0, original.1))
            .unwrap_or(original);
        let model_input = preprocess.model_input_size(capped.0, capped.1)?;
        Ok(ImageGeometry {
            original,
            capped,
            model_input,
        })
    }

    fn is_usable(&self) -> bool {
        [self.original, self.capped, self.model_input]
            .iter()
            .all(|&(w, h)| w > 0 && h > 0)
    }

    /// A position in model-input pixels as a position in original pixels.
    pub fn model_to_original(&self, x: f64, y: f64) -> (f64, f64) {
        let (cx, cy) = (
            scale(x, self.model_input.0, self.capped.0),
            scale(y, self.model_input.1, self.capped.1),
        );
        (
            scale(cx, self.capped.0, self.original.0),
            scale(cy, self.capped.1, self.original.1),
        )
    }

    /// The inverse of [`Self::model_to_original`].
    pub fn original_to_model(&self, x: f64, y: f64) -> (f64, f64) {
        let (cx, cy) = (
            scale(x, self.original.0, self.capped.0),
            scale(y, self.original.1, self.capped.1),
        );
        (
            scale(cx, self.capped.0, self.model_input.0),
            scale(cy, self.capped.1, self.model_input.1),
        )
    }

    /// A position on the 0–1000 grid as original pixels.
    pub fn relative_to_original(&self, x: f64, y: f64) -> (f64, f64) {
        (
            x / 1000.0 * self.original.0 as f64,
            y / 1000.0 * self.original.1 as f64,
        )
    }
}

/// `v` on a side of `from` pixels, on a side of `to` pixels.
fn scale(v: f64, from: u32, to: u32) -> f64 {
    v * to as f64 / from as f64
}

/// Places parsed detections on their images, in original pixels.
///
/// `images` lists every image of the conversation in prompt order;
/// `default_image` is the one a detection belongs to unless the reply named
/// another ("Picture 2:"). Coordinates outside the space's range are
/// clamped with a warning; boxes that end up with no area, non-finite
/// numbers and detections with no image to land on are dropped with one.
pub fn map_detections(
    parsed: &ParsedReply,
    space: CoordinateSpace,
    images: &[ImageGeometry],
    default_image: Option<usize>,
) -> Grounding {
    let mut warnings = parsed.warnings.clone();
    let mut detections = Vec::new();
    let default_image = default_image.filter(|&i| i < images.len());
    let mut warned_hints: Vec<u32> = Vec::new();

    for raw in &parsed.detections {
        let hint = raw.image_hint;
        let image = match image_for(hint, images.len(), &mut warned_hints, &mut warnings) {
            Some(named) => Some(named),
            None => default_image,
        };
        let Some(image) = image else {
            warnings.push(format!(
                "{} box(es) or point(s) but no image in the conversation to place them on",
                parsed.detections.len()
            ));
            break;
        };
        let geometry = &images[image];
        let what = describe(&raw.label, &raw.shape);
        let shape = if geometry.is_usable() {
            place_shape(&raw.shape, space, geometry, &what)
        } else {
            Err(format!("image {image} has no pixels; {what} skipped"))
        };
        match shape {
            Err(skipped) => warnings.push(skipped),
            Ok((shape, clamped)) => {
                warnings.extend(clamped);
                detections.push(Detection {
                    label: raw.label.clone(),
                    image,
                    image_size: geometry.original,
                    colour: palette_colour(detections.len()),
                    shape,
                });
            }
        }
    }
    Grounding {
        detections,
        warnings: cap_warnings(warnings),
    }
}

/// The image the reply named for a detection ("Picture 2:"), if it names
/// one the conversation has; a number that names none is warned about once.
fn image_for(
    hint: Option<u32>,
    count: usize,
    warned_hints: &mut Vec<u32>,
    warnings: &mut Vec<String>,
) -> Option<usize> {
    match hint? {
        n if n >= 1 && (n as usize) <= count => Some(n as usize - 1),
        n => {
            if !warned_hints.contains(&n) {
                warned_hints.push(n);
                warnings.push(format!(
                    "the answer speaks of picture {n}, but the conversation has {count} image(s); \
                     its boxes were put on the default image"
                ));
            }
            None
        }
    }
}

/// `raw` in original pixels, clamped to the space's range with a warning
/// saying so; `Err` with a warning when it cannot be placed.
fn place_shape(
    raw: &RawShape,
    space: CoordinateSpace,
    geometry: &ImageGeometry,
    what: &str,
) -> Result<(Shape, Option<String>), String> {
    let limits = match space {
        CoordinateSpace::Relative1000 => (1000.0, 1000.0),
        CoordinateSpace::ModelInputPixels => {
            (geometry.model_input.0 as f64, geometry.model_input.1 as f64)
        }
    };
    let to_original = |x: f64, y: f64| match space {
        CoordinateSpace::Relative1000 => geometry.relative_to_original(x, y),
        CoordinateSpace::ModelInputPixels => geometry.model_to_original(x, y),
    };
    let numbers: &[f64] = match raw {
        RawShape::Box(v) => v,
        RawShape::Point(v) => v,
    };
    if numbers.iter().any(|v| !v.is_finite()) {
        return Err(format!("{what} has a number out of any range; skipped"));
    }
    let mut clamped = false;
    let mut clamp = |v: f64, max: f64| {
        let c = v.clamp(0.0, max);
        clamped |= c != v;
        c
    };
    let shape = match *raw {
        RawShape::Box([x1, y1, x2, y2]) => {
            let (x1, x2) = (clamp(x1, limits.0), clamp(x2, limits.0));
            let (y1, y2) = (clamp(y1, limits.1), clamp(y2, limits.1));
            // Swapped corners are common; the box is the same.
            let (left, right) = (x1.min(x2), x1.max(x2));
            let (top, bottom) = (y1.min(y2), y1.max(y2));
            if clamped && (left == right || top == bottom) {
                return Err(format!("{what} lies outside the image; skipped"));
            }
            let (ox1, oy1) = to_original(left, top);
            let (ox2, oy2) = to_original(right, bottom);
            Shape::Box([ox1, oy1, ox2, oy2])
        }
        RawShape::Point([x, y]) => {
            let (x, y) = (clamp(x, limits.0), clamp(y, limits.1));
            let (ox, oy) = to_original(x, y);
            Shape::Point([ox, oy])
        }
    };
    let range = || match space {
        CoordinateSpace::Relative1000 => "the 0–1000 grid".to_string(),
        CoordinateSpace::ModelInputPixels => format!(
            "the {}×{} model input",
            geometry.model_input.0, geometry.model_input.1
        ),
    };
    let note = clamped.then(|| format!("{what} reached outside {}; clamped to the image", range()));
    Ok((shape, note))
}

/// A detection as named in warnings: its label (or kind) and numbers.
fn describe(label: &str, shape: &RawShape) -> String {
    let name = if label.is_empty() {
        match shape {
            RawShape::Box(_) => "a box".to_string(),
            RawShape::Point(_) => "a point".to_string(),
        }
    } else {
        format!("{label:?}")
    };
    let nums: Vec<String> = match shape {
        RawShape::Box(v) => v.iter().map(|n| short(*n)).collect(),
        RawShape::Point(v) => v.iter().map(|n| short(*n)).collect(),
    };
    format!("{name} [{}]", nums.join(", "))
}

fn short(v: f64) -> String {
    if v.is_finite() && v.abs() < 1e9 {
        format!("{}", (v * 100.0).round() / 100.0)
    } else {
        format!("{v:e}")
    }
}

fn cap_warnings(mut warnings: Vec<String>) -> Vec<String> {
    let limit = super::parse::MAX_WARNINGS + 1;
    if warnings.len() > limit {
        let extra = warnings.len() - limit + 1;
        warnings.truncate(limit - 1);
        warnings.push(format!("{extra} more problems were not listed"));
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::super::parse::{parse_reply, RawDetection};
    use super::*;

    fn raw(shape: RawShape) -> ParsedReply {
        ParsedReply {
            detections: vec![RawDetection {
                label: "x".into(),
                shape,
                image_hint: None,
                offset: 0,
            }],
            warnings: vec![],
        }
    }

    fn geometry(original: (u32, u32), model_input: (u32, u32)) -> ImageGeometry {
        ImageGeometry {
            original,
            capped: original,
            model_input,
        }
    }

    #[test]
    fn both_resize_steps_are_undone_in_turn() {
        let cap = LongEdgeCap {
            threshold: 2000,
            target: 1920,
        };
        let g = ImageGeometry::compute(
            (4001, 2999),
            Some(&cap),
            &VisionPreprocessConfig::qwen2_vl_defaults(),
        )
        .unwrap();
        assert_eq!(g.capped, (1920, 1439));
        assert_eq!(g.model_input, (1932, 1428));
        let (x, y) = g.model_to_original(1932.0, 1428.0);
        assert!((x - 4001.0).abs() < 1e-9 && (y - 2999.0).abs() < 1e-9);
        let (x, y) = g.model_to_original(966.0, 714.0);
        assert!((x - 2000.5).abs() < 1e-9 && (y - 1499.5).abs() < 1e-9);
    }

    #[test]
    fn round_trips_on_odd_sizes_through_both_resizes() {
        let caps = [
            None,
            Some(LongEdgeCap::default()),
            Some(LongEdgeCap {
                threshold: 100,
                target: 77,
            }),
        ];
        let configs = [
            VisionPreprocessConfig::qwen2_vl_defaults(),
            VisionPreprocessConfig::qwen3_vl_defaults(),
        ];
        for size in [
            (1, 1),
            (17, 9),
            (333, 211),
            (1001, 999),
            (4097, 3),
            (2999, 4001),
        ] {
            for cap in &caps {
                for cfg in &configs {
                    let Ok(g) = ImageGeometry::compute(size, cap.as_ref(), cfg) else {
                        assert!(size.0 / size.1.max(1) > 200 || size.1 / size.0 > 200);
                        continue;
                    };
                    for (x, y) in [(0.0, 0.0), (0.37, 0.61), (1.0, 1.0)] {
                        let px = (x * size.0 as f64, y * size.1 as f64);
                        let m = g.original_to_model(px.0, px.1);
                        assert!(m.0 <= g.model_input.0 as f64 + 1e-9);
                        let back = g.model_to_original(m.0, m.1);
                        assert!(
                            (back.0 - px.0).abs() < 1e-6 && (back.1 - px.1).abs() < 1e-6,
                            "{size:?} {cap:?}: {px:?} -> {m:?} -> {back:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn model_pixels_scale_by_the_resize_and_relative_by_the_original() {
        let g = geometry((333, 211), (336, 224));
        let p = raw(RawShape::Box([0.0, 0.0, 336.0, 112.0]));
        let out = map_detections(&p, CoordinateSpace::ModelInputPixels, &[g], Some(0));
        assert_eq!(
            out.detections[0].shape,
            Shape::Box([0.0, 0.0, 333.0, 105.5])
        );
        let p = raw(RawShape::Point([500.0, 1000.0]));
        let out = map_detections(&p, CoordinateSpace::Relative1000, &[g], Some(0));
        assert_eq!(out.detections[0].shape, Shape::Point([166.5, 211.0]));
        assert!(out.warnings.is_empty());
    }

    #[test]
    fn swapped_corners_are_put_in_order() {
        let g = geometry((1000, 1000), (1000, 1000));
        let out = map_detections(
            &raw(RawShape::Box([700.0, 800.0, 100.0, 200.0])),
            CoordinateSpace::Relative1000,
            &[g],
            Some(0),
        );
        assert_eq!(
            out.detections[0].shape,
            Shape::Box([100.0, 200.0, 700.0, 800.0])
        );
    }

    #[test]
    fn out_of_range_numbers_are_clamped_or_dropped_with_a_warning() {
        let g = geometry((200, 100), (224, 112));
        let cases: [(RawShape, Option<Shape>, &str); 5] = [
            (
                RawShape::Box([-50.0, 500.0, 1200.0, 1500.0]),
                Some(Shape::Box([0.0, 50.0, 200.0, 100.0])),
                "clamped",
            ),
            (
                RawShape::Box([1100.0, 0.0, 1200.0, 500.0]),
                None,
                "outside the image",
            ),
            (
                RawShape::Box([f64::INFINITY, 0.0, 1.0, 1.0]),
                None,
                "out of any range",
            ),
            (RawShape::Point([f64::NAN, 1.0]), None, "out of any range"),
            (
                RawShape::Point([1e300, -1e300]),
                Some(Shape::Point([200.0, 0.0])),
                "clamped",
            ),
        ];
        for (shape, want, why) in cases {
            let out = map_detections(&raw(shape), CoordinateSpace::Relative1000, &[g], Some(0));
            assert_eq!(out.detections.first().map(|d| d.shape), want, "{shape:?}");
            assert!(
                out.warnings.iter().any(|w| w.contains(why)),
                "{shape:?}: {:?}",
                out.warnings
            );
        }
        let out = map_detections(
            &raw(RawShape::Box([0.0, 0.0, 300.0, 112.0])),
            CoordinateSpace::ModelInputPixels,
            &[g],
            Some(0),
        );
        assert!(
            out.warnings[0].contains("224×112 model input"),
            "{:?}",
            out.warnings
        );
    }

    #[test]
    fn picture_hints_choose_the_image_and_bad_hints_fall_back() {
        let a = geometry((100, 100), (112, 112));
        let b = geometry((300, 300), (308, 308));
        let p = parse_reply(
            "Picture 1: <|box_start|>(0,0),(1000,1000)<|box_end|> \
             Picture 2: <|box_start|>(0,0),(1000,1000)<|box_end|> \
             Picture 7: <|box_start|>(0,0),(500,500)<|box_end|>",
        );
        let out = map_detections(&p, CoordinateSpace::Relative1000, &[a, b], Some(1));
        let images: Vec<usize> = out.detections.iter().map(|d| d.image).collect();
        assert_eq!(images, vec![0, 1, 1]);
        assert_eq!(
            out.detections[0].shape,
            Shape::Box([0.0, 0.0, 100.0, 100.0])
        );
        assert!(out.warnings[0].contains("picture 7"), "{:?}", out.warnings);
    }

    #[test]
    fn without_an_image_nothing_is_placed() {
        let out = map_detections(
            &raw(RawShape::Point([1.0, 1.0])),
            CoordinateSpace::Relative1000,
            &[],
            None,
        );
        assert!(out.detections.is_empty());
        assert!(out.warnings[0].contains("no image"), "{:?}", out.warnings);
        let broken = geometry((0, 10), (0, 28));
        let out = map_detections(
            &raw(RawShape::Point([1.0, 1.0])),
            CoordinateSpace::ModelInputPixels,
            &[broken],
            Some(0),
        );
        assert!(out.detections.is_empty());
    }

    #[test]
    fn each_detection_gets_the_next_palette_colour() {
        let g = geometry((10, 10), (28, 28));
        let p = parse_reply(&"<|box_start|>(1,1),(9,9)<|box_end|>".repeat(3));
        let out = map_detections(&p, CoordinateSpace::Relative1000, &[g], Some(0));
        let colours: Vec<[u8; 3]> = out.detections.iter().map(|d| d.colour).collect();
        assert_eq!(colours, (0..3).map(palette_colour).collect::<Vec<_>>());
        assert_ne!(colours[0], colours[1]);
    }
}
