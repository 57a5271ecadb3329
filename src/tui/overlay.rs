//! The boxes drawn over an image preview: on a copy of the image scaled to
//! the pixels the preview will really show, so that no line is lost when
//! the preview is made smaller.
//!
//! Graphics protocols (kitty, sixel, iTerm2) show the preview at the
//! terminal's cell size in pixels: the copy is scaled to that and lettered.
//! Half-blocks show two pixels per cell, so the copy is scaled to that grid,
//! marked there (a tag would hide the object at a few dozen pixels across;
//! the list under the answer names them), and blown up pixel for pixel to
//! the size the preview pipeline expects, which then shrinks it back.

use std::collections::HashMap;

use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage};

use super::layout::PREVIEW_ROWS;
use super::msg::ImageId;
use crate::processor::grounding::{annotate, annotate_marks, Detection};

/// Whether boxes are drawn, and what each overlay preview was last made
/// from (so it is drawn and encoded again only when that changes).
#[derive(Debug, Default)]
pub struct OverlayState {
    /// Off shows the plain preview under an answer.
    pub hidden: bool,
    pub(crate) made: HashMap<ImageId, OverlayKey>,
    /// Each image brought down once to the largest preview it can get
    /// ([`preview_source`]): scaling a photo down takes tens of
    /// milliseconds, scaling that copy and drawing on it almost nothing, so
    /// moving the highlight or resizing the window stays quick.
    pub(crate) sources: HashMap<ImageId, RgbImage>,
}

/// What an overlay preview shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverlayKey {
    pub image: ImageId,
    pub highlight: usize,
    pub cells: (u16, u16),
}

impl OverlayState {
    pub fn on(&self) -> bool {
        !self.hidden
    }
}

/// How a preview is drawn in the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewKind {
    /// Real pixels at `font` pixels per cell.
    Graphics,
    /// Two coloured half cells per character cell.
    HalfBlocks,
}

impl PreviewKind {
    /// The kind of a protocol by the name the runtime gives it.
    pub fn of_protocol(name: &str) -> Self {
        if name == "halfblocks" {
            Self::HalfBlocks
        } else {
            Self::Graphics
        }
    }
}

/// How an image of some size is drawn as a preview of `cells`, with
/// terminal cells `font` pixels big.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreviewPlan {
    /// The size the image is scaled to before the boxes are drawn.
    pub scaled: (u32, u32),
    /// Half-blocks: the grid of half cells the scaled image sits in (top
    /// left, black around it) and the size that grid is blown up to.
    pub canvas: Option<((u32, u32), (u32, u32))>,
}

impl PreviewPlan {
    pub fn new(size: (u32, u32), cells: (u16, u16), font: (u16, u16), kind: PreviewKind) -> Self {
        let (fw, fh) = (font.0.max(1) as u32, font.1.max(1) as u32);
        let (bw, bh) = (size.0.max(1), size.1.max(1));
        // The size the preview pipeline fits the image to: the cells'
        // pixels, never larger than the image.
        let (w, h) = fit(
            (bw, bh),
            (bw.min(cells.0 as u32 * fw), bh.min(cells.1 as u32 * fh)),
        );
        match kind {
            PreviewKind::Graphics => PreviewPlan {
                scaled: (w, h),
                canvas: None,
            },
            PreviewKind::HalfBlocks => {
                // The cells the preview takes, and its two pixels per cell;
                // the image fills them from the top left, as the pipeline
                // pads it.
                let area = (w.div_ceil(fw), h.div_ceil(fh));
                let grid = (area.0, 2 * area.1);
                let content = (
                    ((w as f64 / fw as f64).round() as u32).clamp(1, grid.0),
                    ((2.0 * h as f64 / fh as f64).round() as u32).clamp(1, grid.1),
                );
                PreviewPlan {
                    scaled: content,
                    canvas: Some((grid, (area.0 * fw, area.1 * fh))),
                }
            }
        }
    }
}

/// The annotated copy of `base` to encode as a preview of `cells`, with
/// terminal cells `font` pixels big. `highlight` indexes `detections`.
pub fn overlay_pixels(
    base: &RgbImage,
    detections: &[Detection],
    highlight: Option<usize>,
    cells: (u16, u16),
    font: (u16, u16),
    kind: PreviewKind,
) -> RgbImage {
    if base.width() == 0 || base.height() == 0 {
        return base.clone();
    }
    let plan = PreviewPlan::new(base.dimensions(), cells, font, kind);
    draw_scaled(&scale(base, plan.scaled), &plan, detections, highlight)
}

/// [`overlay_pixels`] on an image already scaled to `plan.scaled`.
pub fn draw_scaled(
    scaled: &RgbImage,
    plan: &PreviewPlan,
    detections: &[Detection],
    highlight: Option<usize>,
) -> RgbImage {
    match plan.canvas {
        None => annotate(scaled, detections, highlight),
        Some((grid, blown)) => {
            let marked = annotate_marks(scaled, detections, highlight);
            let mut canvas = RgbImage::from_pixel(grid.0, grid.1, Rgb([0, 0, 0]));
            imageops::overlay(&mut canvas, &marked, 0, 0);
            imageops::resize(&canvas, blown.0, blown.1, FilterType::Nearest)
        }
    }
}

/// `image` no taller than the tallest preview ([`PREVIEW_ROWS`] rows of
/// `font`-sized cells): every preview of it can be scaled from this copy.
pub fn preview_source(image: &RgbImage, font: (u16, u16)) -> RgbImage {
    let (w, h) = image.dimensions();
    let tallest = PREVIEW_ROWS as u32 * font.1.max(1) as u32;
    if w == 0 || h <= tallest {
        return image.clone();
    }
    scale(image, fit((w, h), (w, tallest)))
}

/// `base` at `size` (a copy when it already is).
pub fn scale(base: &RgbImage, (w, h): (u32, u32)) -> RgbImage {
    if base.dimensions() == (w, h) {
        base.clone()
    } else {
        // Area averaging: fast, and fair to thin details.
        imageops::thumbnail(base, w, h)
    }
}

/// The largest size with the aspect ratio of `size` inside `bounds`.
fn fit(size: (u32, u32), bounds: (u32, u32)) -> (u32, u32) {
    let ratio = f64::min(
        bounds.0 as f64 / size.0 as f64,
        bounds.1 as f64 / size.1 as f64,
    );
    (
        ((size.0 as f64 * ratio).round() as u32).max(1),
        ((size.1 as f64 * ratio).round() as u32).max(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::grounding::Shape;

    const RED: [u8; 3] = [230, 25, 75];
    const GREY: [u8; 3] = [128, 128, 128];

    fn boxed(size: (u32, u32), b: [f64; 4]) -> Detection {
        Detection {
            label: "thing".into(),
            image: 0,
            image_size: size,
            colour: RED,
            shape: Shape::Box(b),
        }
    }

    #[test]
    fn graphics_previews_are_drawn_at_the_cells_pixel_size() {
        let base = RgbImage::from_pixel(1000, 500, Rgb(GREY));
        let d = boxed((1000, 500), [100.0, 100.0, 500.0, 400.0]);
        let out = overlay_pixels(
            &base,
            &[d],
            Some(0),
            (30, 8),
            (10, 20),
            PreviewKind::Graphics,
        );
        assert_eq!(out.dimensions(), (300, 150));
        assert_eq!(out.get_pixel(30, 75).0, RED, "left edge, scaled");
        assert_eq!(out.get_pixel(90, 75).0, GREY, "inside");
    }

    #[test]
    fn half_block_previews_keep_one_line_per_half_cell() {
        let base = RgbImage::from_pixel(1000, 500, Rgb(GREY));
        let d = boxed((1000, 500), [100.0, 100.0, 500.0, 400.0]);
        let out = overlay_pixels(
            &base,
            &[d],
            None,
            (30, 8),
            (10, 20),
            PreviewKind::HalfBlocks,
        );
        // 300×150 px of image take 30×8 cells: a 30×16 grid, blown up ×10.
        assert_eq!(out.dimensions(), (300, 160));
        // The grid's content is 30×15; the box's left edge is grid column 3.
        for x in 30..40 {
            assert_eq!(out.get_pixel(x, 75).0, RED, "column {x}");
        }
        assert_eq!(out.get_pixel(45, 75).0, GREY);
        assert_eq!(out.get_pixel(5, 155).0, [0, 0, 0], "padding below");
    }

    #[test]
    fn a_source_copy_is_as_tall_as_the_tallest_preview() {
        let big = RgbImage::from_pixel(1920, 1080, Rgb(GREY));
        assert_eq!(preview_source(&big, (10, 20)).dimensions(), (356, 200));
        let small = RgbImage::from_pixel(300, 150, Rgb(GREY));
        assert_eq!(preview_source(&small, (10, 20)).dimensions(), (300, 150));
        // Drawing from the source gives what drawing from the image gives.
        let d = boxed((1920, 1080), [192.0, 108.0, 960.0, 540.0]);
        let source = preview_source(&big, (10, 20));
        for kind in [PreviewKind::Graphics, PreviewKind::HalfBlocks] {
            for cells in [(36, 10), (20, 6)] {
                let plan = PreviewPlan::new((1920, 1080), cells, (10, 20), kind);
                let from_source = draw_scaled(
                    &scale(&source, plan.scaled),
                    &plan,
                    std::slice::from_ref(&d),
                    None,
                );
                let direct =
                    overlay_pixels(&big, std::slice::from_ref(&d), None, cells, (10, 20), kind);
                assert_eq!(from_source, direct, "{kind:?} {cells:?}");
            }
        }
    }

    #[test]
    fn small_images_are_not_blown_up_and_empty_ones_pass() {
        let base = RgbImage::from_pixel(40, 30, Rgb(GREY));
        let out = overlay_pixels(&base, &[], None, (4, 2), (10, 20), PreviewKind::Graphics);
        assert_eq!(out.dimensions(), (40, 30));
        let empty = RgbImage::new(0, 0);
        let out = overlay_pixels(&empty, &[], None, (4, 2), (10, 20), PreviewKind::HalfBlocks);
        assert_eq!(out.dimensions(), (0, 0));
    }
}
