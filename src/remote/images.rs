//! Images sent to a server at the size the model will see: upright, under the
//! long-edge cap, and smart-resized for the family when it is known, so the
//! server's processor leaves them alone and the model's boxes map back to the
//! original pixels exactly as they do locally.

use std::io::Cursor;
use std::path::Path;

use base64::Engine as _;
use image::{ImageFormat, RgbImage};

use crate::engine::ImageFacts;
use crate::processor::image::{load_image_with, AlphaMode, LongEdgeCap};
use crate::processor::resize::resize_bicubic;
use crate::processor::vision_input::VisionPreprocessConfig;

/// The preprocessing of a family given by its `model_type`, or guessed from
/// a model name as servers list it (`Qwen/Qwen2.5-VL-72B-Instruct`,
/// `qwen3-vl:8b`).
pub fn family_from_name(name: &str) -> Option<&'static str> {
    let n = name.to_ascii_lowercase().replace(['_', '.'], "-");
    [
        ("qwen3-vl", "qwen3_vl"),
        ("qwen2-5-vl", "qwen2_5_vl"),
        ("qwen2-vl", "qwen2_vl"),
    ]
    .into_iter()
    .find(|(pattern, _)| n.contains(pattern))
    .map(|(_, model_type)| model_type)
}

/// A family's default preprocessing, by `model_type`.
pub fn family_preprocess(model_type: &str) -> Option<VisionPreprocessConfig> {
    match model_type {
        "qwen2_vl" | "qwen2_5_vl" => Some(VisionPreprocessConfig::qwen2_vl_defaults()),
        // Qwen3.5 and the mixture-of-experts families keep Qwen3-VL's processor.
        "qwen3_vl" | "qwen3_vl_moe" | "qwen3_5" | "qwen3_5_moe" => {
            Some(VisionPreprocessConfig::qwen3_vl_defaults())
        }
        _ => None,
    }
}

/// One image ready to send, and what the chat shows and grounds with.
pub struct PreparedImage {
    pub data_url: String,
    pub facts: ImageFacts,
}

/// Loads `path` and brings it to the model's size; without `preprocess`
/// (an unknown family) only orientation and the cap apply, and the grid is
/// left at zero.
pub fn prepare(
    path: &Path,
    cap: Option<&LongEdgeCap>,
    alpha: AlphaMode,
    preprocess: Option<&VisionPreprocessConfig>,
) -> anyhow::Result<PreparedImage> {
    let decoded = load_image_with(path, cap, alpha)?;
    let (in_w, in_h) = decoded.rgb.dimensions();
    let (rgb, grid_thw, tokens) = match preprocess {
        Some(cfg) => {
            let (w, h) = cfg.model_input_size(in_w, in_h)?;
            let rgb = if (w, h) == (in_w, in_h) {
                decoded.rgb
            } else {
                resize_bicubic(&decoded.rgb, w, h)
            };
            let p = cfg.patch_size;
            let grid = [1, h as usize / p, w as usize / p];
            let tokens = grid[1] * grid[2] / (cfg.merge_size * cfg.merge_size);
            (rgb, grid, tokens)
        }
        None => (decoded.rgb, [0, 0, 0], 0),
    };
    let facts = ImageFacts {
        path: path.to_path_buf(),
        original_size: [decoded.original_width, decoded.original_height],
        model_size: [rgb.width(), rgb.height()],
        grid_thw,
        tokens,
    };
    Ok(PreparedImage {
        data_url: png_data_url(&rgb)?,
        facts,
    })
}

/// PNG keeps every pixel, so the server decodes exactly what was prepared.
fn png_data_url(rgb: &RgbImage) -> anyhow::Result<String> {
    let mut png = Vec::new();
    rgb.write_to(&mut Cursor::new(&mut png), ImageFormat::Png)?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&png);
    Ok(format!("data:image/png;base64,{b64}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_told_from_the_names_servers_use() {
        assert_eq!(
            family_from_name("Qwen/Qwen2.5-VL-72B-Instruct"),
            Some("qwen2_5_vl")
        );
        assert_eq!(family_from_name("qwen3-vl:8b"), Some("qwen3_vl"));
        assert_eq!(family_from_name("Qwen2-VL-2B"), Some("qwen2_vl"));
        assert_eq!(family_from_name("qwen2_5_vl-gguf"), Some("qwen2_5_vl"));
        assert_eq!(family_from_name("llava"), None);
    }

    #[test]
    fn an_image_is_sent_at_the_size_the_model_sees() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wide.png");
        RgbImage::from_pixel(300, 100, image::Rgb([200, 10, 10]))
            .save(&path)
            .unwrap();
        let cfg = VisionPreprocessConfig::qwen2_vl_defaults();
        let p = prepare(&path, None, AlphaMode::White, Some(&cfg)).unwrap();
        assert_eq!(p.facts.original_size, [300, 100]);
        assert_eq!(p.facts.model_size, [308, 112], "multiples of 28");
        assert_eq!(p.facts.grid_thw, [1, 8, 22]);
        assert_eq!(p.facts.tokens, 44);
        let b64 = p.data_url.strip_prefix("data:image/png;base64,").unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let back = image::load_from_memory(&png).unwrap();
        assert_eq!((back.width(), back.height()), (308, 112));
        let raw = prepare(&path, None, AlphaMode::White, None).unwrap();
        assert_eq!(raw.facts.model_size, [300, 100]);
    }
}
