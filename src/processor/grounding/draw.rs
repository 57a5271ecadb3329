//! Drawing detections over a copy of an image: a coloured outline per box, a
//! ringed dot per point, and the label on a tag of the same colour. Line
//! width and lettering grow with the image, so marks stay visible on a 4000
//! px photo and do not swamp a 300 px crop.

use image::{Rgb, RgbImage};

use super::{Detection, Shape};
use crate::processor::font::fill_rect;
use crate::processor::lettering::Lettering;

/// Longest label drawn, in characters; longer ones end in "...".
const MAX_DRAWN_LABEL: usize = 40;

/// Outline width in pixels for an image of this size: about 1/320 of the
/// long edge, at least 1.
pub fn line_width((w, h): (u32, u32)) -> u32 {
    ((w.max(h) as f64 / 320.0).round() as u32).clamp(1, 32)
}

/// Size of one bitmap-font cell in pixels, which sets the size of all
/// lettering: capitals about 1/70 of the long edge tall, and never smaller
/// than the 7-pixel font itself.
fn font_scale((w, h): (u32, u32)) -> u32 {
    ((w.max(h) as f64 / 500.0).round() as u32).clamp(1, 16)
}

/// The text drawn beside the `index`-th detection (0-based): its label, or
/// `#n` when it has none.
pub fn label_text(detection: &Detection, index: usize) -> String {
    if detection.label.is_empty() {
        return format!("#{}", index + 1);
    }
    let mut chars = detection.label.chars();
    let mut out: String = chars.by_ref().take(MAX_DRAWN_LABEL).collect();
    if chars.next().is_some() {
        out.push_str("...");
    }
    out
}

/// A copy of `image` with `detections` drawn over it. Coordinates are scaled
/// from each detection's `image_size` to this image, so a downscaled preview
/// can be annotated directly. The `highlight`-ed detection (an index into
/// `detections`) is drawn last and twice as thick.
pub fn annotate(image: &RgbImage, detections: &[Detection], highlight: Option<usize>) -> RgbImage {
    draw(image, detections, highlight, true)
}

/// [`annotate`] without the tags, and with smaller dots: for copies too
/// small to letter, such as a half-block preview a few dozen pixels across,
/// where a tag would hide the object it names.
pub fn annotate_marks(
    image: &RgbImage,
    detections: &[Detection],
    highlight: Option<usize>,
) -> RgbImage {
    draw(image, detections, highlight, false)
}

fn draw(
    image: &RgbImage,
    detections: &[Detection],
    highlight: Option<usize>,
    tags: bool,
) -> RgbImage {
    let mut out = image.clone();
    let size = out.dimensions();
    if size.0 == 0 || size.1 == 0 {
        return out;
    }
    let width = line_width(size);
    let scale = font_scale(size);

    let mut order: Vec<usize> = (0..detections.len())
        .filter(|&i| Some(i) != highlight)
        .collect();
    if let Some(h) = highlight.filter(|&h| h < detections.len()) {
        order.push(h);
    }
    let placed: Vec<Placed> = order
        .iter()
        .map(|&i| place(&detections[i], size, i, highlight == Some(i), width, !tags))
        .collect();
    for p in &placed {
        p.draw_mark(&mut out);
    }
    if tags {
        // Tags go over every outline, so a later box never hides a name.
        for p in &placed {
            p.draw_tag(&mut out, scale);
        }
    }
    out
}

/// A detection in this image's pixels, ready to draw.
struct Placed {
    shape: Shape,
    colour: [u8; 3],
    width: u32,
    text: String,
    /// Dots just wider than the line, for tiny copies.
    small_dots: bool,
}

fn place(
    d: &Detection,
    size: (u32, u32),
    index: usize,
    highlighted: bool,
    width: u32,
    small_dots: bool,
) -> Placed {
    let sx = size.0 as f64 / d.image_size.0.max(1) as f64;
    let sy = size.1 as f64 / d.image_size.1.max(1) as f64;
    // Far outside the image nothing is drawn anyway; bounding the numbers
    // keeps the pixel arithmetic from overflowing.
    let bound = |v: f64| if v.is_nan() { 0.0 } else { v.clamp(-1e7, 1e7) };
    let shape = match d.shape {
        Shape::Box([l, t, r, b]) => {
            Shape::Box([bound(l * sx), bound(t * sy), bound(r * sx), bound(b * sy)])
        }
        Shape::Point([x, y]) => Shape::Point([bound(x * sx), bound(y * sy)]),
    };
    Placed {
        shape,
        colour: d.colour,
        width: if highlighted { width * 2 } else { width },
        text: label_text(d, index),
        small_dots,
    }
}

impl Placed {
    /// Pixel bounds of a box: columns `x0..x1`, rows `y0..y1`, edges rounded
    /// as [`Detection::pixel_box`] rounds them, at least one pixel each way.
    fn box_pixels(l: f64, t: f64, r: f64, b: f64) -> (i64, i64, i64, i64) {
        let (x0, y0) = (l.round() as i64, t.round() as i64);
        let (x1, y1) = (
            (r.round() as i64).max(x0 + 1),
            (b.round() as i64).max(y0 + 1),
        );
        (x0, y0, x1, y1)
    }

    fn dot_radius(&self) -> i64 {
        if self.small_dots {
            self.width as i64
        } else {
            (2 * self.width as i64 + 1).max(3)
        }
    }

    fn draw_mark(&self, img: &mut RgbImage) {
        let w = self.width as i64;
        match self.shape {
            Shape::Box([l, t, r, b]) => {
                let (x0, y0, x1, y1) = Self::box_pixels(l, t, r, b);
                fill_rect(img, x0, y0, x1, y0 + w, self.colour);
                fill_rect(img, x0, y1 - w, x1, y1, self.colour);
                fill_rect(img, x0, y0, x0 + w, y1, self.colour);
                fill_rect(img, x1 - w, y0, x1, y1, self.colour);
            }
            Shape::Point([x, y]) => {
                let (cx, cy) = (x.floor() as i64, y.floor() as i64);
                let r = self.dot_radius();
                fill_disc(img, cx, cy, r + (w / 2).max(1), contrast(self.colour));
                fill_disc(img, cx, cy, r, self.colour);
            }
        }
    }

    fn draw_tag(&self, img: &mut RgbImage, scale: u32) {
        let (iw, ih) = (img.width() as i64, img.height() as i64);
        let lettering = Lettering::for_text(&self.text, scale);
        let (text_w, text_h) = lettering.size(&self.text);
        let pad = lettering.pad() as i64;
        let tag_w = text_w as i64 + 2 * pad;
        let tag_h = text_h as i64 + 2 * pad;
        let (x, y) = match self.shape {
            Shape::Box([l, t, r, b]) => {
                let (x0, y0, _, _) = Self::box_pixels(l, t, r, b);
                // Above the box when there is room, else just inside it.
                let y = if y0 >= tag_h { y0 - tag_h } else { y0.max(0) };
                (x0, y)
            }
            Shape::Point([px, py]) => {
                let r = self.dot_radius() + self.width as i64;
                (px.floor() as i64 + r, py.floor() as i64 - r - tag_h)
            }
        };
        let x = x.min(iw - tag_w).max(0);
        let y = y.min(ih - tag_h).max(0);
        fill_rect(img, x, y, x + tag_w, y + tag_h, self.colour);
        lettering.draw(img, x + pad, y + pad, &self.text, contrast(self.colour));
    }
}

/// Black on light colours, white on dark ones.
fn contrast([r, g, b]: [u8; 3]) -> [u8; 3] {
    let luma = 0.299 * r as f64 + 0.587 * g as f64 + 0.114 * b as f64;
    if luma > 150.0 {
        [0, 0, 0]
    } else {
        [255, 255, 255]
    }
}

fn fill_disc(img: &mut RgbImage, cx: i64, cy: i64, r: i64, colour: [u8; 3]) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    for y in (cy - r).max(0)..(cy + r + 1).min(h) {
        for x in (cx - r).max(0)..(cx + r + 1).min(w) {
            let (dx, dy) = (x - cx, y - cy);
            if dx * dx + dy * dy <= r * r {
                img.put_pixel(x as u32, y as u32, Rgb(colour));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GREY: [u8; 3] = [128, 128, 128];
    const RED: [u8; 3] = [230, 25, 75];

    fn grey(w: u32, h: u32) -> RgbImage {
        RgbImage::from_pixel(w, h, Rgb(GREY))
    }

    fn det(label: &str, size: (u32, u32), shape: Shape) -> Detection {
        Detection {
            label: label.into(),
            image: 0,
            image_size: size,
            colour: RED,
            shape,
        }
    }

    fn px(img: &RgbImage, x: u32, y: u32) -> [u8; 3] {
        img.get_pixel(x, y).0
    }

    #[test]
    fn a_box_is_outlined_inside_its_edges_and_labelled_above() {
        let img = grey(640, 480);
        let d = det("cat", (640, 480), Shape::Box([100.0, 200.0, 300.0, 400.0]));
        let out = annotate(&img, &[d], None);
        assert_eq!(line_width((640, 480)), 2);
        for (x, y) in [(100, 200), (101, 300), (299, 300), (200, 399), (200, 398)] {
            assert_eq!(px(&out, x, y), RED, "edge pixel ({x}, {y})");
        }
        for (x, y) in [(99, 300), (300, 300), (200, 400), (102, 300), (200, 300)] {
            assert_eq!(px(&out, x, y), GREY, "pixel ({x}, {y}) stays as it was");
        }
        // The tag sits right above the top-left corner: 7 + 2 rows tall.
        assert_eq!(px(&out, 100, 191), RED);
        assert_eq!(px(&out, 100, 190), GREY);
        assert_eq!(img, grey(640, 480), "the input is not touched");
    }

    #[test]
    fn tags_carry_readable_letters() {
        let d = det("L", (100, 100), Shape::Box([10.0, 50.0, 90.0, 90.0]));
        let out = annotate(&grey(100, 100), &[d], None);
        // Tag at (10, 41), text origin (11, 42): "L" is a left stroke and a
        // bottom bar, in white on red.
        let white = [255, 255, 255];
        for y in 42..49 {
            assert_eq!(px(&out, 11, y), white, "stroke at row {y}");
        }
        assert_eq!(px(&out, 15, 48), white);
        assert_eq!(px(&out, 15, 47), RED);
    }

    #[test]
    fn labels_in_other_scripts_are_lettered_glyph_by_glyph() {
        let d = det("蓝色罐头", (100, 100), Shape::Box([10.0, 50.0, 90.0, 90.0]));
        let out = annotate(&grey(100, 100), &[d], None);
        // A 14 px em with a 1 px margin: the tag spans (10, 34) to (68, 50),
        // and each character has a 14 px square from (11 + 14 i, 35).
        assert_eq!(px(&out, 10, 34), RED);
        assert_eq!(px(&out, 67, 49), RED);
        assert_eq!(px(&out, 10, 33), GREY, "the tag ends above its top row");
        assert_eq!(px(&out, 68, 40), GREY, "and after the fourth character");
        let masks: Vec<Vec<bool>> = (0..4)
            .map(|i| {
                let x0 = 11 + 14 * i;
                let cell = (35..49).flat_map(|y| (x0..x0 + 14).map(move |x| (x, y)));
                cell.map(|(x, y)| px(&out, x, y) != RED).collect()
            })
            .collect();
        for (i, mask) in masks.iter().enumerate() {
            let ink = mask.iter().filter(|&&m| m).count();
            assert!(
                ink > 10 && ink < 180,
                "character {i} has ink, not a block: {ink}"
            );
        }
        for i in 0..4 {
            for j in i + 1..4 {
                assert_ne!(masks[i], masks[j], "characters {i} and {j} differ");
            }
        }
    }

    #[test]
    fn characters_without_a_glyph_become_hollow_boxes() {
        // An unassigned code point is in no font.
        let d = det("\u{378}", (100, 100), Shape::Box([10.0, 50.0, 90.0, 90.0]));
        let out = annotate(&grey(100, 100), &[d], None);
        // Tag at (10, 34), text at (11, 35), baseline at 47: the box spans
        // columns 12 to 18 and rows 37 to 46, in white on red.
        let white = [255, 255, 255];
        for (x, y) in [(12, 37), (18, 37), (12, 46), (18, 46)] {
            assert_eq!(px(&out, x, y), white, "box corner ({x}, {y})");
        }
        assert_eq!(px(&out, 15, 42), RED, "the box is hollow");
        assert_eq!(px(&out, 20, 42), RED, "the tag fits the box");
        assert_eq!(px(&out, 21, 42), GREY);
    }

    #[test]
    fn a_tag_near_the_top_goes_inside_the_box() {
        let d = det("top", (200, 200), Shape::Box([20.0, 2.0, 150.0, 100.0]));
        let out = annotate(&grey(200, 200), &[d], None);
        // The tag starts on the box's top row, so the "t" starts one row below.
        assert_eq!(px(&out, 22, 3), [255, 255, 255], "ink of the t");
        assert_eq!(px(&out, 21, 3), RED);
    }

    #[test]
    fn points_are_ringed_dots() {
        let d = det("", (200, 200), Shape::Point([100.0, 100.0]));
        let out = annotate(&grey(200, 200), &[d], None);
        assert_eq!(px(&out, 100, 100), RED);
        assert_eq!(px(&out, 100, 103), RED);
        assert_eq!(px(&out, 100, 104), [255, 255, 255], "ring");
        assert_eq!(px(&out, 100, 106), GREY);
    }

    #[test]
    fn coordinates_scale_to_a_smaller_copy() {
        let d = det("a", (1000, 500), Shape::Box([500.0, 250.0, 1000.0, 500.0]));
        let out = annotate(&grey(100, 50), &[d], None);
        assert_eq!(px(&out, 50, 40), RED);
        assert_eq!(px(&out, 99, 49), RED);
        assert_eq!(px(&out, 75, 40), GREY);
    }

    #[test]
    fn the_highlighted_detection_is_thicker_and_on_top() {
        let a = det("a", (100, 100), Shape::Box([10.0, 10.0, 90.0, 90.0]));
        let mut b = a.clone();
        b.colour = [0, 130, 200];
        let out = annotate(&grey(100, 100), &[a.clone(), b.clone()], Some(0));
        assert_eq!(px(&out, 10, 50), RED);
        assert_eq!(px(&out, 11, 50), RED, "twice the width");
        let out = annotate(&grey(100, 100), &[a, b], None);
        assert_eq!(
            px(&out, 10, 50),
            [0, 130, 200],
            "later ones on top otherwise"
        );
    }

    #[test]
    fn wild_coordinates_and_tiny_images_do_not_panic() {
        let shapes = [
            Shape::Box([-1e12, -5.0, 1e12, 1e300]),
            Shape::Box([f64::NAN, 0.0, f64::INFINITY, 3.0]),
            Shape::Box([50.0, 50.0, 50.0, 50.0]),
            Shape::Point([-100.0, 1e18]),
        ];
        for size in [(1, 1), (3, 200), (64, 64)] {
            let dets: Vec<Detection> = shapes
                .iter()
                .zip(
                    ["long label ", "长标签 ", "ラベル ", "\u{378}é "]
                        .iter()
                        .cycle(),
                )
                .map(|(&s, label)| det(&label.repeat(20), (100, 100), s))
                .collect();
            let out = annotate(&grey(size.0, size.1), &dets, Some(7));
            assert_eq!(out.dimensions(), size);
        }
        assert_eq!(
            annotate(&RgbImage::new(0, 0), &[], None).dimensions(),
            (0, 0)
        );
    }

    #[test]
    fn marks_only_leave_out_the_tags_and_keep_dots_small() {
        let b = det("cat", (100, 100), Shape::Box([10.0, 50.0, 90.0, 90.0]));
        let p = det("", (100, 100), Shape::Point([30.0, 20.0]));
        let out = annotate_marks(&grey(100, 100), &[b.clone(), p.clone()], None);
        assert_eq!(px(&out, 10, 60), RED, "the outline is drawn");
        assert_eq!(px(&out, 12, 45), GREY, "no tag above the box");
        assert_eq!(px(&out, 30, 20), RED, "the dot");
        assert_eq!(px(&out, 30, 22), [255, 255, 255], "its ring");
        assert_eq!(px(&out, 30, 23), GREY);
        assert_eq!(out, annotate_marks(&grey(100, 100), &[b, p], None));
    }

    #[test]
    fn marks_grow_with_the_image() {
        assert_eq!(line_width((333, 211)), 1);
        assert_eq!(line_width((1920, 1080)), 6);
        assert_eq!(line_width((211, 4000)), 13);
        assert_eq!(font_scale((640, 480)), 1);
        assert_eq!(font_scale((4000, 3000)), 8);
    }

    #[test]
    fn labels_are_shortened_and_unnamed_ones_numbered() {
        let d = det(&"x".repeat(50), (1, 1), Shape::Point([0.0, 0.0]));
        assert_eq!(label_text(&d, 0), "x".repeat(40) + "...");
        let d = det("", (1, 1), Shape::Point([0.0, 0.0]));
        assert_eq!(label_text(&d, 4), "#5");
    }
}
