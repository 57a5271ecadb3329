//! From a decoded image to the `pixel_values` rows the vision tower eats.
//!
//! Steps, as in transformers' PIL-backend `Qwen2VLImageProcessor` (used for
//! Qwen2-VL, Qwen2.5-VL and Qwen3-VL alike):
//!
//! 1. `smart_resize` picks a size that is a multiple of `patch × merge`;
//! 2. Pillow-exact bicubic resize (skipped when the size already fits);
//! 3. rescale and normalise per channel:
//!    `r = f32(u8 as f64 × (1/255 as f64))`, then `x = (r − mean) / std` in
//!    `f32` with `mean`/`std` rounded to `f32` first — exactly numpy's
//!    `rescale` (f64 multiply, cast to f32) followed by `normalize` (f32);
//! 4. the single frame is repeated `temporal_patch_size` times;
//! 5. patches are flattened with rows in merge-block order and columns in
//!    `(channel, time, y, x)` order.

use std::path::Path;

use serde_json::Value;

use super::image::DecodedImage;
use super::resize::{resize_bicubic, smart_resize, ResizeError};

// The digits are written as published (OpenAI CLIP, transformers'
// `OPENAI_CLIP_MEAN`/`OPENAI_CLIP_STD`); they round to the same `f32`s that
// numpy's `np.array(mean, dtype=np.float32)` produces.
/// CLIP's per-channel mean, used by Qwen2-VL and Qwen2.5-VL.
#[allow(clippy::excessive_precision)]
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// CLIP's per-channel standard deviation, used by Qwen2-VL and Qwen2.5-VL.
#[allow(clippy::excessive_precision)]
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

/// transformers' default `rescale_factor`, `1/255` as a Python float.
const RESCALE_FACTOR: f64 = 1.0 / 255.0;

/// The numbers that shape preprocessing for one model.
#[derive(Debug, Clone, PartialEq)]
pub struct VisionPreprocessConfig {
    pub patch_size: usize,
    pub merge_size: usize,
    pub temporal_patch_size: usize,
    pub min_pixels: u64,
    pub max_pixels: u64,
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
}

/// Why preprocessing settings or an image could not be turned into input.
#[derive(Debug, thiserror::Error)]
pub enum VisionInputError {
    #[error("cannot read {path}: {source}")]
    ConfigRead {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON: {source}")]
    ConfigJson {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: `{key}` {problem}")]
    ConfigValue {
        path: String,
        key: String,
        problem: String,
    },
    #[error("invalid preprocessing settings: {0}")]
    InvalidConfig(String),
    #[error("cannot prepare the image for the model: {0}")]
    Resize(#[from] ResizeError),
}

impl VisionPreprocessConfig {
    /// Qwen2-VL and Qwen2.5-VL: patch 14, merge 2, temporal 2,
    /// 3136 ..= 12845056 pixels, CLIP mean and std.
    pub fn qwen2_vl_defaults() -> Self {
        Self {
            patch_size: 14,
            merge_size: 2,
            temporal_patch_size: 2,
            min_pixels: 3136,
            max_pixels: 12_845_056,
            image_mean: CLIP_MEAN,
            image_std: CLIP_STD,
        }
    }

    /// Qwen3-VL: patch 16, merge 2, temporal 2, 65536 ..= 16777216 pixels,
    /// mean and std 0.5.
    pub fn qwen3_vl_defaults() -> Self {
        Self {
            patch_size: 16,
            merge_size: 2,
            temporal_patch_size: 2,
            min_pixels: 65_536,
            max_pixels: 16_777_216,
            image_mean: [0.5; 3],
            image_std: [0.5; 3],
        }
    }

    /// Side length both resized edges must be a multiple of: `patch × merge`.
    pub fn factor(&self) -> u32 {
        (self.patch_size * self.merge_size) as u32
    }

    /// Reads `preprocessor_config.json` from a model directory if present,
    /// falling back field by field to `defaults`.
    ///
    /// Understood keys: `patch_size`, `merge_size`, `temporal_patch_size`,
    /// `image_mean`, `image_std` (three numbers or one), and the pixel
    /// budget either as `min_pixels` / `max_pixels` or inside `size` as
    /// `shortest_edge` / `longest_edge` (pixel counts, despite the names) or
    /// `min_pixels` / `max_pixels`. Top-level `min_pixels` / `max_pixels`
    /// win over `size`, as in transformers. Other keys are ignored.
    pub fn from_model_dir(dir: &Path, defaults: Self) -> Result<Self, VisionInputError> {
        let path = dir.join("preprocessor_config.json");
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(defaults),
            Err(source) => {
                return Err(VisionInputError::ConfigRead {
                    path: shown,
                    source,
                })
            }
        };
        let json: Value =
            serde_json::from_str(&text).map_err(|source| VisionInputError::ConfigJson {
                path: shown.clone(),
                source,
            })?;
        Self::from_json(&json, defaults).map_err(|(key, problem)| VisionInputError::ConfigValue {
            path: shown,
            key,
            problem,
        })
    }

    /// Applies the keys of a parsed `preprocessor_config.json` on top of
    /// `defaults`. Errors name the key and what is wrong with it.
    fn from_json(json: &Value, defaults: Self) -> Result<Self, (String, String)> {
        let Some(obj) = json.as_object() else {
            return Err(("(top level)".into(), "must be a JSON object".into()));
        };
        let mut cfg = defaults;

        if let Some(v) = obj.get("patch_size") {
            cfg.patch_size = positive(v, "patch_size")? as usize;
        }
        if let Some(v) = obj.get("merge_size") {
            cfg.merge_size = positive(v, "merge_size")? as usize;
        }
        if let Some(v) = obj.get("temporal_patch_size") {
            cfg.temporal_patch_size = positive(v, "temporal_patch_size")? as usize;
        }
        if let Some(v) = obj.get("image_mean") {
            cfg.image_mean = triple(v, "image_mean")?;
        }
        if let Some(v) = obj.get("image_std") {
            cfg.image_std = triple(v, "image_std")?;
            if cfg.image_std.contains(&0.0) {
                return Err(("image_std".into(), "must not contain zero".into()));
            }
        }

        match obj.get("size") {
            None | Some(Value::Null) => {}
            Some(Value::Object(size)) => {
                let read = |key: &str| -> Result<Option<u64>, (String, String)> {
                    match size.get(key).filter(|v| !v.is_null()) {
                        Some(v) => positive(v, &format!("size.{key}")).map(Some),
                        None => Ok(None),
                    }
                };
                if let Some(n) = read("min_pixels")?.or(read("shortest_edge")?) {
                    cfg.min_pixels = n;
                }
                if let Some(n) = read("max_pixels")?.or(read("longest_edge")?) {
                    cfg.max_pixels = n;
                }
            }
            Some(_) => return Err(("size".into(), "must be an object".into())),
        }
        if let Some(v) = obj.get("min_pixels").filter(|v| !v.is_null()) {
            cfg.min_pixels = positive(v, "min_pixels")?;
        }
        if let Some(v) = obj.get("max_pixels").filter(|v| !v.is_null()) {
            cfg.max_pixels = positive(v, "max_pixels")?;
        }
        if cfg.min_pixels > cfg.max_pixels {
            return Err((
                "min_pixels".into(),
                format!(
                    "({}) must not exceed max_pixels ({})",
                    cfg.min_pixels, cfg.max_pixels
                ),
            ));
        }
        Ok(cfg)
    }

    /// The `(width, height)` an image of the given size is resized to for the
    /// model (`smart_resize` with this config's factor and pixel budget).
    pub fn model_input_size(
        &self,
        width: u32,
        height: u32,
    ) -> Result<(u32, u32), VisionInputError> {
        let (h, w) = smart_resize(
            height,
            width,
            self.factor(),
            self.min_pixels,
            self.max_pixels,
        )?;
        Ok((w, h))
    }

    fn validate(&self) -> Result<(), VisionInputError> {
        if self.patch_size == 0 || self.merge_size == 0 || self.temporal_patch_size == 0 {
            return Err(VisionInputError::InvalidConfig(format!(
                "patch_size ({}), merge_size ({}) and temporal_patch_size ({}) must be positive",
                self.patch_size, self.merge_size, self.temporal_patch_size
            )));
        }
        if self.image_std.contains(&0.0) {
            return Err(VisionInputError::InvalidConfig(
                "image_std must not contain zero".into(),
            ));
        }
        Ok(())
    }
}

/// A positive integer, also accepting floats with no fractional part
/// (`3136.0`), which some exported configs contain.
fn positive(v: &Value, key: &str) -> Result<u64, (String, String)> {
    let n = v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1e18)
            .map(|f| f as u64)
    });
    match n {
        Some(n) if n > 0 => Ok(n),
        _ => Err((key.into(), format!("must be a positive integer, found {v}"))),
    }
}

/// Three numbers, or one number used for every channel.
fn triple(v: &Value, key: &str) -> Result<[f32; 3], (String, String)> {
    let bad = || {
        (
            key.to_string(),
            format!("must be a number or a list of three numbers, found {v}"),
        )
    };
    match v {
        Value::Number(n) => Ok([n.as_f64().ok_or_else(bad)? as f32; 3]),
        Value::Array(items) if items.len() == 3 => {
            let mut out = [0f32; 3];
            for (slot, item) in out.iter_mut().zip(items) {
                *slot = item.as_f64().ok_or_else(bad)? as f32;
            }
            Ok(out)
        }
        _ => Err(bad()),
    }
}

/// Model input for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct PreprocessedImage {
    /// `rows × cols` values, row-major.
    pub pixel_values: Vec<f32>,
    /// Number of patches: `grid_h × grid_w` (one temporal slice for an image).
    pub rows: usize,
    /// Values per patch: `3 × temporal_patch_size × patch_size²`.
    pub cols: usize,
    /// `[1, grid_h, grid_w]` in patches.
    pub grid_thw: [usize; 3],
    pub resized_width: u32,
    pub resized_height: u32,
    /// Size of the image as the user supplied it (before any long-edge cap).
    pub original_width: u32,
    pub original_height: u32,
}

impl PreprocessedImage {
    /// How many `<|image_pad|>` tokens stand for this image in the prompt:
    /// patches divided by `merge_size²`.
    pub fn num_image_tokens(&self, merge_size: usize) -> usize {
        let [t, h, w] = self.grid_thw;
        t * h * w / (merge_size * merge_size).max(1)
    }
}

/// Converts one 8-bit channel value the way transformers' PIL backend does:
/// rescale in `f64`, store as `f32`, then normalise in `f32`.
#[inline]
fn normalize_value(v: u8, mean: f32, std: f32) -> f32 {
    let rescaled = (v as f64 * RESCALE_FACTOR) as f32;
    (rescaled - mean) / std
}

/// Resizes, normalises and patchifies one image.
///
/// The returned `pixel_values` hold `rows = grid_h · grid_w` patches of
/// `cols = 3 · T · P · P` values each. Row `r` is patch
/// `(bh, bw, ih, iw)` with `r = ((bh · gw/m + bw) · m + ih) · m + iw`, i.e.
/// every `m²` consecutive rows form one merge window (raster order inside
/// it) and windows follow each other in raster order. Column
/// `((c · T + t) · P + py) · P + px` holds channel `c` of pixel
/// `(x0 + px, y0 + py)`; the `T` temporal slices are identical copies.
pub fn preprocess_image(
    img: &DecodedImage,
    cfg: &VisionPreprocessConfig,
) -> Result<PreprocessedImage, VisionInputError> {
    cfg.validate()?;
    let (in_w, in_h) = img.rgb.dimensions();
    let (width, height) = cfg.model_input_size(in_w, in_h)?;
    let resized;
    let rgb = if (width, height) == (in_w, in_h) {
        &img.rgb
    } else {
        resized = resize_bicubic(&img.rgb, width, height);
        &resized
    };

    let (w, h) = (width as usize, height as usize);
    let (p, m, t_size) = (cfg.patch_size, cfg.merge_size, cfg.temporal_patch_size);

    // Channel planes of normalised values, each h × w.
    let mut planes = vec![0f32; 3 * h * w];
    {
        let (r_plane, rest) = planes.split_at_mut(h * w);
        let (g_plane, b_plane) = rest.split_at_mut(h * w);
        // One lookup table per channel: 256 possible inputs each.
        let table: [Vec<f32>; 3] = std::array::from_fn(|c| {
            (0..=255u8)
                .map(|v| normalize_value(v, cfg.image_mean[c], cfg.image_std[c]))
                .collect()
        });
        for (i, px) in rgb.as_raw().chunks_exact(3).enumerate() {
            r_plane[i] = table[0][px[0] as usize];
            g_plane[i] = table[1][px[1] as usize];
            b_plane[i] = table[2][px[2] as usize];
        }
    }

    let (grid_h, grid_w) = (h / p, w / p);
    let rows = grid_h * grid_w;
    let cols = 3 * t_size * p * p;
    let mut pixel_values = vec![0f32; rows * cols];

    let mut row = 0;
    for bh in 0..grid_h / m {
        for bw in 0..grid_w / m {
            for ih in 0..m {
                for iw in 0..m {
                    let y0 = (bh * m + ih) * p;
                    let x0 = (bw * m + iw) * p;
                    let dst = &mut pixel_values[row * cols..(row + 1) * cols];
                    let mut col = 0;
                    for c in 0..3 {
                        let plane = &planes[c * h * w..(c + 1) * h * w];
                        for _t in 0..t_size {
                            for py in 0..p {
                                let start = (y0 + py) * w + x0;
                                dst[col..col + p].copy_from_slice(&plane[start..start + p]);
                                col += p;
                            }
                        }
                    }
                    row += 1;
                }
            }
        }
    }

    Ok(PreprocessedImage {
        pixel_values,
        rows,
        cols,
        grid_thw: [1, grid_h, grid_w],
        resized_width: width,
        resized_height: height,
        original_width: img.original_width,
        original_height: img.original_height,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;

    fn decoded(rgb: RgbImage) -> DecodedImage {
        let (w, h) = rgb.dimensions();
        DecodedImage {
            rgb,
            original_width: w,
            original_height: h,
        }
    }

    /// A tiny config where the numbers are easy to follow: patch 2, merge 2,
    /// so an 8×4 image is 4×2 patches in two merge windows side by side.
    fn tiny_config() -> VisionPreprocessConfig {
        VisionPreprocessConfig {
            patch_size: 2,
            merge_size: 2,
            temporal_patch_size: 2,
            min_pixels: 1,
            max_pixels: 1 << 20,
            // mean 0, std 1: every value is just the rescaled byte.
            image_mean: [0.0; 3],
            image_std: [1.0; 3],
        }
    }

    #[test]
    fn patches_follow_merge_block_order_and_channel_time_y_x_columns() {
        // Each pixel encodes its position: R = x, G = y, B = 100 + x + 10·y.
        let (w, h) = (8u32, 4u32);
        let img = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([x as u8, y as u8, (100 + x + 10 * y) as u8])
        });
        let cfg = tiny_config();
        let out = preprocess_image(&decoded(img), &cfg).unwrap();
        let (p, m, t) = (2usize, 2usize, 2usize);
        assert_eq!(out.grid_thw, [1, 2, 4]);
        assert_eq!(out.rows, 8);
        assert_eq!(out.cols, 3 * t * p * p);
        assert_eq!(out.pixel_values.len(), out.rows * out.cols);
        assert_eq!((out.resized_width, out.resized_height), (8, 4));

        let (gh, gw) = (2usize, 4usize);
        for bh in 0..gh / m {
            for bw in 0..gw / m {
                for ih in 0..m {
                    for iw in 0..m {
                        let r = ((bh * (gw / m) + bw) * m + ih) * m + iw;
                        let (y0, x0) = ((bh * m + ih) * p, (bw * m + iw) * p);
                        for c in 0..3 {
                            for tt in 0..t {
                                for py in 0..p {
                                    for px in 0..p {
                                        let col = ((c * t + tt) * p + py) * p + px;
                                        let (x, y) = (x0 + px, y0 + py);
                                        let byte = [x, y, 100 + x + 10 * y][c] as u8;
                                        let expected = normalize_value(byte, 0.0, 1.0);
                                        assert_eq!(
                                            out.pixel_values[r * out.cols + col],
                                            expected,
                                            "row {r} col {col}"
                                        );
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        // The second row is the top-right patch of the first window: x 2..4.
        let second = &out.pixel_values[out.cols..2 * out.cols];
        assert_eq!(second[0], normalize_value(2, 0.0, 1.0));
        // The third row is the bottom-left patch of the first window: y 2..4.
        let third = &out.pixel_values[2 * out.cols..3 * out.cols];
        assert_eq!(third[p * p * t], normalize_value(2, 0.0, 1.0)); // G channel, y = 2
    }

    #[test]
    fn normalisation_matches_numpy_float32_arithmetic() {
        // Values computed with numpy: (np.float32(np.float64(v) * (1/255))
        // - np.float32(mean)) / np.float32(std).
        let q2 = VisionPreprocessConfig::qwen2_vl_defaults();
        let got = |v: u8, c: usize| normalize_value(v, q2.image_mean[c], q2.image_std[c]);
        assert_eq!(got(0, 0), -1.792_262_6);
        assert_eq!(got(255, 0), 1.930_336_1);
        assert_eq!(got(128, 1), 0.168_897_32);
        assert_eq!(got(255, 2), 2.145_897);
        let q3 = VisionPreprocessConfig::qwen3_vl_defaults();
        assert_eq!(normalize_value(0, q3.image_mean[0], q3.image_std[0]), -1.0);
        assert_eq!(normalize_value(255, q3.image_mean[0], q3.image_std[0]), 1.0);
        assert_eq!(normalize_value(128, 0.5, 0.5), 0.003_921_628);
    }

    #[test]
    fn defaults_carry_the_published_constants() {
        let q2 = VisionPreprocessConfig::qwen2_vl_defaults();
        assert_eq!(q2.factor(), 28);
        assert_eq!((q2.min_pixels, q2.max_pixels), (3136, 12_845_056));
        // f32 bit patterns of the published CLIP constants.
        let bits = |v: [f32; 3]| v.map(f32::to_bits);
        assert_eq!(bits(q2.image_mean), [0x3ef6_813a, 0x3eea_685e, 0x3ed1_00ff]);
        assert_eq!(bits(q2.image_std), [0x3e89_89d0, 0x3e85_c974, 0x3e8d_32a8]);
        let q3 = VisionPreprocessConfig::qwen3_vl_defaults();
        assert_eq!(q3.factor(), 32);
        assert_eq!((q3.min_pixels, q3.max_pixels), (65_536, 16_777_216));
    }

    #[test]
    fn image_of_the_right_size_is_not_resized_and_counts_tokens() {
        let img = RgbImage::from_fn(640, 480, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let out =
            preprocess_image(&decoded(img), &VisionPreprocessConfig::qwen3_vl_defaults()).unwrap();
        assert_eq!((out.resized_width, out.resized_height), (640, 480));
        assert_eq!(out.grid_thw, [1, 30, 40]);
        assert_eq!(out.cols, 1536);
        assert_eq!(out.num_image_tokens(2), 300);
        // First value: pixel (0, 0), red, = (0/255 - 0.5) / 0.5.
        assert_eq!(out.pixel_values[0], -1.0);
    }

    #[test]
    fn small_image_is_upscaled_and_original_size_kept() {
        let img = RgbImage::from_pixel(20, 20, image::Rgb([255, 255, 255]));
        let mut d = decoded(img);
        d.original_width = 40;
        d.original_height = 40;
        let out = preprocess_image(&d, &VisionPreprocessConfig::qwen2_vl_defaults()).unwrap();
        assert_eq!((out.resized_width, out.resized_height), (56, 56));
        assert_eq!(out.grid_thw, [1, 4, 4]);
        assert_eq!(out.cols, 1176);
        assert_eq!(out.num_image_tokens(2), 4);
        assert_eq!((out.original_width, out.original_height), (40, 40));
    }

    #[test]
    fn elongated_image_is_an_error() {
        let img = RgbImage::new(1000, 4);
        let err = preprocess_image(&decoded(img), &VisionPreprocessConfig::qwen2_vl_defaults())
            .unwrap_err();
        assert!(matches!(
            err,
            VisionInputError::Resize(ResizeError::AspectRatio { .. })
        ));
    }

    fn parse(json: &str, defaults: VisionPreprocessConfig) -> VisionPreprocessConfig {
        VisionPreprocessConfig::from_json(&serde_json::from_str(json).unwrap(), defaults).unwrap()
    }

    #[test]
    fn config_reads_flat_min_max_pixels() {
        let cfg = parse(
            r#"{"min_pixels": 3136, "max_pixels": 1003520, "patch_size": 14,
                "merge_size": 2, "temporal_patch_size": 2,
                "image_mean": [0.48145466, 0.4578275, 0.40821073],
                "image_std": [0.26862954, 0.26130258, 0.27577711],
                "image_processor_type": "Qwen2VLImageProcessor"}"#,
            VisionPreprocessConfig::qwen3_vl_defaults(),
        );
        assert_eq!(cfg.patch_size, 14);
        assert_eq!((cfg.min_pixels, cfg.max_pixels), (3136, 1_003_520));
        assert_eq!(cfg.image_mean, CLIP_MEAN);
        assert_eq!(cfg.image_std, CLIP_STD);
    }

    #[test]
    fn config_reads_size_shortest_longest_edge_as_pixel_counts() {
        let cfg = parse(
            r#"{"size": {"shortest_edge": 65536, "longest_edge": 16777216},
                "patch_size": 16, "image_mean": [0.5, 0.5, 0.5], "image_std": 0.5}"#,
            VisionPreprocessConfig::qwen2_vl_defaults(),
        );
        assert_eq!(cfg.patch_size, 16);
        assert_eq!(cfg.merge_size, 2);
        assert_eq!((cfg.min_pixels, cfg.max_pixels), (65_536, 16_777_216));
        assert_eq!(cfg.image_std, [0.5; 3]);
        assert_eq!(cfg.factor(), 32);
    }

    #[test]
    fn config_flat_keys_win_over_size_and_missing_keys_fall_back() {
        let cfg = parse(
            r#"{"size": {"min_pixels": 100, "max_pixels": 200000}, "max_pixels": 500000}"#,
            VisionPreprocessConfig::qwen2_vl_defaults(),
        );
        assert_eq!((cfg.min_pixels, cfg.max_pixels), (100, 500_000));
        assert_eq!(cfg.patch_size, 14);
        assert_eq!(cfg.image_mean, CLIP_MEAN);
    }

    #[test]
    fn config_rejects_bad_values_naming_the_key() {
        let bad = |json: &str| {
            VisionPreprocessConfig::from_json(
                &serde_json::from_str(json).unwrap(),
                VisionPreprocessConfig::qwen2_vl_defaults(),
            )
            .unwrap_err()
            .0
        };
        assert_eq!(bad(r#"{"patch_size": "14"}"#), "patch_size");
        assert_eq!(bad(r#"{"patch_size": 0}"#), "patch_size");
        assert_eq!(bad(r#"{"image_mean": [0.5, 0.5]}"#), "image_mean");
        assert_eq!(
            bad(r#"{"size": {"longest_edge": -1}}"#),
            "size.longest_edge"
        );
        assert_eq!(bad(r#"{"min_pixels": 10, "max_pixels": 5}"#), "min_pixels");
    }

    #[test]
    fn config_file_is_optional_and_read_from_the_model_dir() {
        let dir = std::env::temp_dir().join(format!("glimpse-vcfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let defaults = VisionPreprocessConfig::qwen3_vl_defaults();
        assert_eq!(
            VisionPreprocessConfig::from_model_dir(&dir, defaults.clone()).unwrap(),
            defaults
        );

        let file = dir.join("preprocessor_config.json");
        std::fs::write(&file, r#"{"max_pixels": 1048576}"#).unwrap();
        let cfg = VisionPreprocessConfig::from_model_dir(&dir, defaults.clone()).unwrap();
        assert_eq!(cfg.max_pixels, 1_048_576);
        assert_eq!(cfg.min_pixels, defaults.min_pixels);

        std::fs::write(&file, "{not json").unwrap();
        let err = VisionPreprocessConfig::from_model_dir(&dir, defaults.clone()).unwrap_err();
        assert!(matches!(err, VisionInputError::ConfigJson { .. }));
        assert!(err.to_string().contains("preprocessor_config.json"));

        std::fs::write(&file, r#"{"merge_size": 2.5}"#).unwrap();
        let err = VisionPreprocessConfig::from_model_dir(&dir, defaults).unwrap_err();
        assert!(err.to_string().contains("merge_size"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
