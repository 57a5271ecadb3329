//! Turning image files into 8-bit RGB pixels.
//!
//! * Decoding happens in memory, with the format recognised from the content
//!   (a PNG called `photo.jpg` still works) and with hard limits, so a
//!   hostile header claiming 40000×40000 pixels is refused before anything
//!   large is allocated.
//! * The EXIF orientation is applied, so the image is upright as a viewer
//!   shows it.
//! * Transparency is flattened onto white with Pillow's `alpha_composite`
//!   arithmetic, as qwen-vl-utils and transformers' compositing converters
//!   (idefics2, mllama) do. transformers' generic `convert_to_rgb`, which the
//!   Qwen image processors call, only does `convert("RGB")` and so drops
//!   alpha; for opaque images both are the same.
//! * 16-bit samples keep their high byte, as Pillow does when it opens
//!   16-bit PNGs.
//! * Optionally the long edge is capped (e.g. 4000 px → 1920 px) with the
//!   Pillow-exact bicubic resampler, remembering the size before the cap so
//!   coordinates can be mapped back later.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage, RgbaImage};

use super::resize::resize_bicubic;

/// Longest side, in pixels, an image may have to be decoded at all.
pub const MAX_SIDE: u32 = 16_384;

/// Most bytes the decoded pixels (and the decoder's own buffers) may take.
pub const MAX_DECODE_BYTES: u64 = 1 << 30;

/// Shrinks very large images before anything else happens: when the long
/// edge exceeds `threshold`, the image is resized so the long edge is
/// `target`, keeping the aspect ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongEdgeCap {
    pub threshold: u32,
    pub target: u32,
}

impl Default for LongEdgeCap {
    fn default() -> Self {
        Self {
            threshold: 2000,
            target: 1920,
        }
    }
}

impl LongEdgeCap {
    /// The `(width, height)` an image of the given size is brought to, or
    /// `None` when it is within the threshold. The short edge is rounded to
    /// the nearest pixel (halves up) and is at least one pixel.
    pub fn capped_size(&self, width: u32, height: u32) -> Option<(u32, u32)> {
        let long = width.max(height);
        if long <= self.threshold || long == 0 {
            return None;
        }
        let target = self.target.max(1);
        let scale_short = |short: u32| {
            ((short as u64 * target as u64 * 2 + long as u64) / (2 * long as u64)).max(1) as u32
        };
        Some(if width >= height {
            (target, scale_short(height))
        } else {
            (scale_short(width), target)
        })
    }
}

/// An image ready for the processor: 8-bit RGB, upright, alpha flattened,
/// possibly shrunk by a [`LongEdgeCap`].
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedImage {
    pub rgb: RgbImage,
    /// Width before the long-edge cap (after EXIF orientation).
    pub original_width: u32,
    /// Height before the long-edge cap (after EXIF orientation).
    pub original_height: u32,
}

/// Why an image could not be loaded. Each message names the file and says
/// what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file could not be read from disk.
    #[error("cannot read image {file}: {source}")]
    Unreadable {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not an image format that can be decoded here.
    #[error(
        "{file} is not an image glimpse can read ({detail}); \
         convert it to PNG, JPEG, WebP, GIF, BMP or TIFF"
    )]
    Unsupported { file: String, detail: String },
    /// The format is known but the data is damaged or cut short.
    #[error("{file} looks like an image but cannot be decoded ({detail}); the file may be damaged or incomplete")]
    Corrupt { file: String, detail: String },
    /// Decoding would exceed the size or memory limits.
    #[error(
        "{file} is too large to load ({detail}); scale it down to at most \
         {max}×{max} pixels first",
        max = MAX_SIDE
    )]
    TooLarge { file: String, detail: String },
    /// The file is empty or the image has no pixels.
    #[error("{file} contains no image ({detail})")]
    Empty { file: String, detail: String },
}

/// What becomes of transparency when an image is flattened to RGB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AlphaMode {
    /// Composite onto white, so dark content on a transparent background stays
    /// readable.
    #[default]
    White,
    /// Discard the alpha channel and keep the stored colours, as transformers'
    /// `load_image` (PIL `convert("RGB")`) does; for exact parity.
    Drop,
}

impl std::str::FromStr for AlphaMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "white" => Ok(AlphaMode::White),
            "drop" => Ok(AlphaMode::Drop),
            _ => Err(format!("unknown alpha mode {s:?}; use white or drop")),
        }
    }
}

/// Reads and decodes an image file. See [`decode_image`].
pub fn load_image(path: &Path, cap: Option<&LongEdgeCap>) -> Result<DecodedImage, ImageError> {
    load_image_with(path, cap, AlphaMode::White)
}

/// [`load_image`] with a choice of how transparency is flattened.
pub fn load_image_with(
    path: &Path,
    cap: Option<&LongEdgeCap>,
    alpha: AlphaMode,
) -> Result<DecodedImage, ImageError> {
    let file = path.display().to_string();
    let unreadable = |source| ImageError::Unreadable {
        file: file.clone(),
        source,
    };
    let len = std::fs::metadata(path).map_err(unreadable)?.len();
    if len > MAX_DECODE_BYTES {
        return Err(ImageError::TooLarge {
            file,
            detail: format!("the file is {} MiB", len >> 20),
        });
    }
    let bytes = std::fs::read(path).map_err(unreadable)?;
    decode_image_with(&bytes, &file, cap, alpha)
}

/// Decodes an image held in memory.
///
/// `source` names the image in error messages (a path, "clipboard", …).
/// The format is recognised from the bytes, not from any file name. The
/// result is upright (EXIF orientation applied), 8-bit RGB with any
/// transparency composited onto white, and shrunk by `cap` if given.
pub fn decode_image(
    bytes: &[u8],
    source: &str,
    cap: Option<&LongEdgeCap>,
) -> Result<DecodedImage, ImageError> {
    decode_image_with(bytes, source, cap, AlphaMode::White)
}

/// [`decode_image`] with a choice of how transparency is flattened.
pub fn decode_image_with(
    bytes: &[u8],
    source: &str,
    cap: Option<&LongEdgeCap>,
    alpha: AlphaMode,
) -> Result<DecodedImage, ImageError> {
    let file = source.to_string();
    if bytes.is_empty() {
        return Err(ImageError::Empty {
            file,
            detail: "the file is 0 bytes long".into(),
        });
    }

    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Corrupt {
            file: file.clone(),
            detail: e.to_string(),
        })?;
    if reader.format().is_none() {
        return Err(ImageError::Unsupported {
            file,
            detail: describe_unknown(bytes),
        });
    }
    // Dimension limits are checked below so the message can show the size;
    // the allocation limit is enforced by the decoders themselves too.
    let mut limits = Limits::no_limits();
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);

    let mut decoder = reader.into_decoder().map_err(|e| decode_error(e, &file))?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(ImageError::Empty {
            file,
            detail: format!("it is {width}×{height} pixels"),
        });
    }
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(ImageError::TooLarge {
            file,
            detail: format!("{width}×{height} pixels"),
        });
    }
    if decoder.total_bytes() > MAX_DECODE_BYTES {
        return Err(ImageError::TooLarge {
            file,
            detail: format!(
                "{width}×{height} pixels would need {} MiB",
                decoder.total_bytes() >> 20
            ),
        });
    }
    // A broken EXIF block should not make an otherwise fine image unusable.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let dynamic = DynamicImage::from_decoder(decoder).map_err(|e| decode_error(e, &file))?;

    let mut upright = DynamicImage::ImageRgb8(to_rgb8(dynamic, alpha));
    upright.apply_orientation(orientation);
    let DynamicImage::ImageRgb8(rgb) = upright else {
        unreachable!("orientation keeps the pixel type");
    };

    let (original_width, original_height) = rgb.dimensions();
    let rgb = match cap.and_then(|c| c.capped_size(original_width, original_height)) {
        Some((w, h)) => resize_bicubic(&rgb, w, h),
        None => rgb,
    };
    Ok(DecodedImage {
        rgb,
        original_width,
        original_height,
    })
}

/// Flattens an RGBA image onto an opaque white background.
///
/// Bit-exact with Pillow's
/// `Image.alpha_composite(Image.new("RGBA", size, (255, 255, 255)), img).convert("RGB")`
/// (and with pasting onto white through the alpha mask, which gives the same
/// bytes): fully transparent pixels become white, opaque ones keep their
/// colour, the rest are blended with Pillow's 7-bit fixed-point weights.
pub fn composite_on_white(rgba: &RgbaImage) -> RgbImage {
    let (w, h) = rgba.dimensions();
    let mut out = Vec::with_capacity(w as usize * h as usize * 3);
    for p in rgba.pixels() {
        let [r, g, b, a] = p.0;
        out.extend_from_slice(&blend_over_white([r, g, b], a));
    }
    RgbImage::from_raw(w, h, out).expect("three bytes per pixel")
}

fn flatten(rgba: &RgbaImage, alpha: AlphaMode) -> RgbImage {
    match alpha {
        AlphaMode::White => composite_on_white(rgba),
        AlphaMode::Drop => {
            let (w, h) = rgba.dimensions();
            let raw = rgba
                .as_raw()
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect();
            RgbImage::from_raw(w, h, raw).expect("three bytes per pixel")
        }
    }
}

/// Pillow's `alpha_composite` for one pixel with an opaque white destination.
fn blend_over_white(src: [u8; 3], alpha: u8) -> [u8; 3] {
    const PRECISION_BITS: u32 = 7;
    const DST: u32 = 255;
    const DST_ALPHA: u32 = 255;
    if alpha == 0 {
        return [255; 3];
    }
    let a = alpha as u32;
    let blend = DST_ALPHA * (255 - a);
    let out_a255 = a * 255 + blend;
    let coef1 = a * 255 * 255 * (1 << PRECISION_BITS) / out_a255;
    let coef2 = 255 * (1 << PRECISION_BITS) - coef1;
    // Division by 255 with rounding, done with shifts as Pillow does.
    let div255 = |v: u32| ((v >> 8) + v) >> 8;
    src.map(|s| {
        let tmp = s as u32 * coef1 + DST * coef2 + (0x80 << PRECISION_BITS);
        (div255(tmp) >> PRECISION_BITS) as u8
    })
}

/// Converts any decoded pixel type to 8-bit RGB, compositing alpha on white.
fn to_rgb8(img: DynamicImage, alpha: AlphaMode) -> RgbImage {
    let composite_on_white = |rgba: &RgbaImage| flatten(rgba, alpha);
    match img {
        DynamicImage::ImageRgb8(rgb) => rgb,
        DynamicImage::ImageRgba8(rgba) => composite_on_white(&rgba),
        DynamicImage::ImageLuma8(gray) => {
            let (w, h) = gray.dimensions();
            let raw = gray.into_raw().into_iter().flat_map(|v| [v; 3]).collect();
            RgbImage::from_raw(w, h, raw).expect("three bytes per pixel")
        }
        DynamicImage::ImageLumaA8(gray) => {
            let (w, h) = gray.dimensions();
            let raw = gray
                .into_raw()
                .chunks_exact(2)
                .flat_map(|p| [p[0], p[0], p[0], p[1]])
                .collect();
            composite_on_white(&RgbaImage::from_raw(w, h, raw).expect("four bytes per pixel"))
        }
        // 16-bit samples: keep the high byte, as Pillow's 16-bit PNG readers do.
        DynamicImage::ImageRgb16(img) => {
            let (w, h) = img.dimensions();
            let raw = img.into_raw().into_iter().map(high_byte).collect();
            RgbImage::from_raw(w, h, raw).expect("three bytes per pixel")
        }
        DynamicImage::ImageRgba16(img) => {
            let (w, h) = img.dimensions();
            let raw = img.into_raw().into_iter().map(high_byte).collect();
            composite_on_white(&RgbaImage::from_raw(w, h, raw).expect("four bytes per pixel"))
        }
        DynamicImage::ImageLuma16(img) => {
            let (w, h) = img.dimensions();
            let raw = img
                .into_raw()
                .into_iter()
                .flat_map(|v| [high_byte(v); 3])
                .collect();
            RgbImage::from_raw(w, h, raw).expect("three bytes per pixel")
        }
        DynamicImage::ImageLumaA16(img) => {
            let (w, h) = img.dimensions();
            let raw = img
                .into_raw()
                .chunks_exact(2)
                .flat_map(|p| {
                    let (v, a) = (high_byte(p[0]), high_byte(p[1]));
                    [v, v, v, a]
                })
                .collect();
            composite_on_white(&RgbaImage::from_raw(w, h, raw).expect("four bytes per pixel"))
        }
        other if other.color().has_alpha() => composite_on_white(&other.to_rgba8()),
        other => other.to_rgb8(),
    }
}

fn high_byte(v: u16) -> u8 {
    (v >> 8) as u8
}

/// Maps a decoder failure onto the user-facing categories.
fn decode_error(err: image::ImageError, file: &str) -> ImageError {
    use image::error::{ImageFormatHint, LimitErrorKind, UnsupportedErrorKind};
    let file = file.to_string();
    match err {
        image::ImageError::Limits(limit) => ImageError::TooLarge {
            file,
            detail: match limit.kind() {
                LimitErrorKind::DimensionError => "its dimensions exceed the limit".into(),
                LimitErrorKind::InsufficientMemory => {
                    format!("decoding needs more than {} MiB", MAX_DECODE_BYTES >> 20)
                }
                _ => limit.to_string(),
            },
        },
        image::ImageError::Unsupported(unsupported) => {
            let detail = match unsupported.kind() {
                UnsupportedErrorKind::Format(ImageFormatHint::Unknown) => {
                    "unrecognised data".to_string()
                }
                UnsupportedErrorKind::Format(hint) => format!("{hint} images are not supported"),
                _ => unsupported.to_string(),
            };
            ImageError::Unsupported { file, detail }
        }
        image::ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            ImageError::Corrupt {
                file,
                detail: "the data ends too early".into(),
            }
        }
        other => ImageError::Corrupt {
            file,
            detail: shorten(&other.to_string()),
        },
    }
}

/// Keeps decoder messages to one readable clause: they can carry long
/// debug dumps of chunk headers.
fn shorten(detail: &str) -> String {
    const MAX_CHARS: usize = 100;
    let detail = detail.trim().trim_end_matches('.');
    if detail.chars().count() <= MAX_CHARS {
        return detail.to_string();
    }
    let cut: String = detail.chars().take(MAX_CHARS).collect();
    format!("{}…", cut.trim_end())
}

/// A short description of bytes no decoder recognised, naming common
/// formats that are deliberately not supported.
fn describe_unknown(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(64)];
    let starts = |sig: &[u8]| head.starts_with(sig);
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        let brand = &head[8..12];
        if brand == b"avif" || brand == b"avis" {
            return "AVIF images are not supported".into();
        }
        if [
            b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1",
        ]
        .iter()
        .any(|b| brand == *b)
        {
            return "HEIC/HEIF images are not supported".into();
        }
        return "it is a video or ISO media file".into();
    }
    if starts(b"%PDF") {
        return "it is a PDF document".into();
    }
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    if text.contains("<svg") || (text.trim_start().starts_with("<?xml") && text.contains("svg")) {
        return "SVG vector images are not supported".into();
    }
    if head
        .iter()
        .all(|&b| b == b'\n' || b == b'\r' || b == b'\t' || (0x20..0x7f).contains(&b))
    {
        return "it is a text file".into();
    }
    "unrecognised data".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_bytes(img: &DynamicImage) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    /// CRC-32 (the PNG/zlib polynomial), for hand-made PNG chunks.
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in data {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc_input = kind.to_vec();
        crc_input.extend_from_slice(data);
        out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
        out
    }

    /// A PNG signature and IHDR chunk for an 8-bit RGB image of any claimed size.
    fn png_header(width: u32, height: u32) -> Vec<u8> {
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        out.extend(png_chunk(b"IHDR", &ihdr));
        out
    }

    #[test]
    fn decodes_a_png_regardless_of_its_name() {
        let img = RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8 * 40, y as u8 * 80, 7]));
        let bytes = png_bytes(&DynamicImage::ImageRgb8(img.clone()));
        let decoded = decode_image(&bytes, "holiday.jpg", None).unwrap();
        assert_eq!(decoded.rgb, img);
        assert_eq!((decoded.original_width, decoded.original_height), (5, 3));
    }

    #[test]
    fn text_is_refused_as_unsupported() {
        let err = decode_image(b"hello, this is not a picture\n", "notes.jpg", None).unwrap_err();
        assert!(matches!(err, ImageError::Unsupported { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("notes.jpg") && msg.contains("text file"),
            "{msg}"
        );
    }

    #[test]
    fn empty_input_is_refused() {
        let err = decode_image(b"", "blank.png", None).unwrap_err();
        assert!(matches!(err, ImageError::Empty { .. }), "{err:?}");
        assert!(err.to_string().contains("blank.png"));
    }

    #[test]
    fn truncated_png_is_refused_as_corrupt() {
        let img = RgbImage::from_fn(64, 64, |x, y| image::Rgb([(x * y) as u8, x as u8, y as u8]));
        let bytes = png_bytes(&DynamicImage::ImageRgb8(img));
        for cut in [bytes.len() / 2, 40, 20] {
            let err = decode_image(&bytes[..cut], "cut.png", None).unwrap_err();
            assert!(
                matches!(err, ImageError::Corrupt { .. }),
                "cut {cut}: {err:?}"
            );
            assert!(err.to_string().contains("cut.png"));
        }
    }

    #[test]
    fn huge_png_header_is_refused_before_allocating() {
        let mut bytes = png_header(40_000, 40_000);
        bytes.extend(png_chunk(
            b"IDAT",
            &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
        ));
        bytes.extend(png_chunk(b"IEND", &[]));
        let started = std::time::Instant::now();
        let err = decode_image(&bytes, "bomb.png", None).unwrap_err();
        assert!(started.elapsed().as_secs() < 2);
        assert!(matches!(err, ImageError::TooLarge { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("bomb.png") && msg.contains("40000×40000"),
            "{msg}"
        );
    }

    #[test]
    fn long_decoder_messages_are_shortened() {
        assert_eq!(shorten("bad chunk."), "bad chunk");
        let long = "x".repeat(300);
        let short = shorten(&long);
        assert_eq!(short.chars().count(), 101);
        assert!(short.ends_with('…'));
    }

    #[test]
    fn heic_is_named_in_the_error() {
        let mut bytes = vec![0, 0, 0, 24];
        bytes.extend_from_slice(b"ftypheic\0\0\0\0mif1heic");
        let err = decode_image(&bytes, "IMG_0001.HEIC", None).unwrap_err();
        assert!(err.to_string().contains("HEIC"), "{err}");
    }

    #[test]
    fn missing_file_is_unreadable() {
        let err = load_image(Path::new("does/not/exist.png"), None).unwrap_err();
        assert!(matches!(err, ImageError::Unreadable { .. }), "{err:?}");
        assert!(err.to_string().contains("exist.png"));
    }

    #[test]
    fn alpha_is_composited_on_white() {
        assert_eq!(blend_over_white([10, 20, 30], 0), [255, 255, 255]);
        assert_eq!(blend_over_white([10, 20, 30], 255), [10, 20, 30]);
        // Half-transparent black on white is mid grey.
        assert_eq!(blend_over_white([0, 0, 0], 128), [127, 127, 127]);
    }

    #[test]
    fn opaque_pixels_survive_compositing_unchanged() {
        for v in 0..=255u8 {
            assert_eq!(blend_over_white([v, v, v], 255), [v, v, v]);
        }
    }

    #[test]
    fn rgba_and_gray_alpha_pngs_are_flattened() {
        let rgba = RgbaImage::from_fn(4, 1, |x, _| image::Rgba([0, 0, 0, (x * 85) as u8]));
        let decoded = decode_image(
            &png_bytes(&DynamicImage::ImageRgba8(rgba.clone())),
            "a.png",
            None,
        )
        .unwrap();
        assert_eq!(decoded.rgb, composite_on_white(&rgba));
        assert_eq!(decoded.rgb.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(decoded.rgb.get_pixel(3, 0).0, [0, 0, 0]);

        let la = image::GrayAlphaImage::from_fn(2, 1, |x, _| image::LumaA([50, x as u8 * 255]));
        let decoded =
            decode_image(&png_bytes(&DynamicImage::ImageLumaA8(la)), "la.png", None).unwrap();
        assert_eq!(decoded.rgb.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(decoded.rgb.get_pixel(1, 0).0, [50, 50, 50]);
    }

    #[test]
    fn sixteen_bit_samples_keep_their_high_byte() {
        let img = image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(3, 1, |x, _| {
            image::Rgb([[0x00ff, 0x0100, 0xff80][x as usize]; 3])
        });
        let decoded =
            decode_image(&png_bytes(&DynamicImage::ImageRgb16(img)), "deep.png", None).unwrap();
        let row: Vec<u8> = decoded.rgb.pixels().map(|p| p.0[0]).collect();
        assert_eq!(row, vec![0x00, 0x01, 0xff]);
    }

    #[test]
    fn long_edge_cap_keeps_aspect_and_original_size() {
        let cap = LongEdgeCap::default();
        assert_eq!(cap.capped_size(2000, 1000), None);
        assert_eq!(cap.capped_size(4000, 3000), Some((1920, 1440)));
        assert_eq!(cap.capped_size(3000, 4001), Some((1440, 1920)));
        assert_eq!(cap.capped_size(30000, 10), Some((1920, 1)));
        // 1000 · 1920 / 2001 = 959.52 → 960.
        assert_eq!(cap.capped_size(2001, 1000), Some((1920, 960)));

        let small = LongEdgeCap {
            threshold: 8,
            target: 4,
        };
        let img = RgbImage::from_pixel(10, 5, image::Rgb([9, 9, 9]));
        let bytes = png_bytes(&DynamicImage::ImageRgb8(img));
        let decoded = decode_image(&bytes, "wide.png", Some(&small)).unwrap();
        assert_eq!(decoded.rgb.dimensions(), (4, 2));
        assert_eq!((decoded.original_width, decoded.original_height), (10, 5));
    }

    #[test]
    fn default_cap_is_2000_to_1920() {
        assert_eq!(
            LongEdgeCap::default(),
            LongEdgeCap {
                threshold: 2000,
                target: 1920
            }
        );
    }
}
