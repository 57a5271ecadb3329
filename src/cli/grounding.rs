//! The grounding half of `glimpse ask`: boxes and points from the answer as
//! JSON, as a list on stderr, and drawn into `--annotate` files.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use image::RgbImage;
use serde_json::{json, Value};

use crate::conversation::Conversation;
use crate::engine::ImageFacts;
use crate::processor::grounding::{
    annotate, default_image, ground_reply, label_text, Detection, Grounding, GroundingFamily,
    ImageGeometry,
};
use crate::processor::image::{load_image_with, AlphaMode, LongEdgeCap};

/// The family whose conventions a `model_type` answers in.
pub fn family_of(model_type: &str) -> anyhow::Result<GroundingFamily> {
    GroundingFamily::from_model_type(model_type)
        .with_context(|| format!("model type {model_type:?} has no known grounding format"))
}

/// The detections in `reply`, placed on the conversation's images as the
/// engine prepared them (`facts`, in prompt order) under `cap`.
pub fn ground(
    reply: &str,
    family: GroundingFamily,
    facts: &[ImageFacts],
    cap: Option<&LongEdgeCap>,
    conversation: &Conversation,
) -> Grounding {
    let images: Vec<ImageGeometry> = facts.iter().map(|f| f.geometry(cap)).collect();
    ground_reply(reply, family, &images, default_image(conversation))
}

/// `detections` for `ask --json`: label, image index, `bbox` or `point` in
/// original pixels, and `coords: "original"`.
pub fn detections_json(grounding: &Grounding) -> Value {
    Value::Array(
        grounding
            .detections
            .iter()
            .map(|d| {
                let mut obj = json!({"label": d.label, "image": d.image});
                if let Some(b) = d.pixel_box() {
                    obj["bbox"] = json!(b);
                }
                if let Some(p) = d.pixel_point() {
                    obj["point"] = json!(p);
                }
                obj["coords"] = json!("original");
                obj
            })
            .collect(),
    )
}

/// One line per detection and warning, for people (stderr).
pub fn summary(grounding: &Grounding, image_paths: &[&Path]) -> Vec<String> {
    let mut lines = Vec::new();
    for (i, d) in grounding.detections.iter().enumerate() {
        let file = image_paths
            .get(d.image)
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        lines.push(format!(
            "{}. {}: {} in image {} ({file})",
            i + 1,
            label_text(d, i),
            describe_place(d),
            d.image
        ));
    }
    for w in &grounding.warnings {
        lines.push(format!("warning: {w}"));
    }
    lines
}

fn describe_place(d: &Detection) -> String {
    match (d.pixel_box(), d.pixel_point()) {
        (Some([l, t, r, b]), _) => format!("box ({l}, {t})–({r}, {b})"),
        (_, Some([x, y])) => format!("point ({x}, {y})"),
        (None, None) => String::new(),
    }
}

/// Refuses an `--annotate` file name whose format cannot be written, before
/// any work is done.
pub fn check_annotate_target(path: &Path, conversation: &Conversation) -> anyhow::Result<()> {
    image_format(path)?;
    if conversation.images().is_empty() {
        bail!("--annotate needs an image in the conversation; add one with --image");
    }
    Ok(())
}

fn image_format(path: &Path) -> anyhow::Result<image::ImageFormat> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("png") => Ok(image::ImageFormat::Png),
        Some("jpg" | "jpeg") => Ok(image::ImageFormat::Jpeg),
        _ => bail!(
            "--annotate writes PNG or JPEG; give a file name ending in .png or .jpg (got {})",
            path.display()
        ),
    }
}

/// The detections drawn over copies of the original images, each with its
/// index in the conversation: the image of the first detection first (or
/// the default image when there is none), then every other image with
/// detections.
pub fn annotated_images(
    conversation: &Conversation,
    grounding: &Grounding,
    alpha: AlphaMode,
) -> anyhow::Result<Vec<(usize, RgbImage)>> {
    let paths = conversation.images();
    let mut images: Vec<usize> = Vec::new();
    for d in &grounding.detections {
        if !images.contains(&d.image) {
            images.push(d.image);
        }
    }
    if images.is_empty() {
        images.extend(default_image(conversation));
    }
    let mut drawn = Vec::new();
    for image in images {
        let Some(source) = paths.get(image) else {
            continue;
        };
        let original = load_image_with(source, None, alpha)?;
        drawn.push((
            image,
            annotate(&original.rgb, &grounding.on_image(image), None),
        ));
    }
    Ok(drawn)
}

/// Writes [`annotated_images`]: `out` gets the first, every other one goes
/// next to it as `STEM-imageN.EXT`, N being its 0-based index. Returns the
/// files written.
pub fn write_annotations(out: &Path, drawn: &[(usize, RgbImage)]) -> anyhow::Result<Vec<PathBuf>> {
    let format = image_format(out)?;
    let mut written = Vec::new();
    for (n, (image, pixels)) in drawn.iter().enumerate() {
        let target = if n == 0 {
            out.to_path_buf()
        } else {
            sibling(out, *image)
        };
        pixels
            .save_with_format(&target, format)
            .with_context(|| format!("writing {}", target.display()))?;
        written.push(target);
    }
    Ok(written)
}

/// `shots/out.png` for image 2 → `shots/out-image2.png`.
fn sibling(out: &Path, image: usize) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = out
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    out.with_file_name(format!("{stem}-image{image}{ext}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_images_are_written_beside_the_named_file() {
        assert_eq!(
            sibling(Path::new("shots/out.png"), 2),
            PathBuf::from("shots/out-image2.png")
        );
    }

    #[test]
    fn only_png_and_jpeg_targets_are_accepted() {
        assert!(image_format(Path::new("a.PNG")).is_ok());
        assert!(image_format(Path::new("a.jpeg")).is_ok());
        let e = image_format(Path::new("a.gif")).unwrap_err().to_string();
        assert!(e.contains(".png or .jpg"), "{e}");
        assert!(image_format(Path::new("noext")).is_err());
    }
}
