//! Target-size selection (`smart_resize`) and a bicubic resampler that gives
//! the same bytes as Pillow's `Image.resize((w, h), Image.BICUBIC)` on 8-bit
//! RGB images.
//!
//! # Bicubic resampling, the Pillow way
//!
//! Pillow resizes in two separable passes, one along rows (horizontal) and
//! one along columns (vertical); a pass whose size does not change is
//! skipped. Rows go first, except that since Pillow 13 the columns go first
//! when the height shrinks by more than twice as many pixels as the width. For each output sample the weights come from the Keys cubic
//! kernel with `a = -0.5`; when shrinking, the kernel is stretched by the
//! scale factor (antialiasing). Weights are computed in `f64`, normalised to
//! sum to one, converted to fixed point with 22 fractional bits, and each
//! output sample is accumulated in a 32-bit integer, rounded and clipped to
//! `0..=255`. The intermediate image between the two passes is 8-bit too,
//! so its rounding is part of the result. Every step below follows that
//! arithmetic, operation by operation, so the output is bit-identical.

use image::RgbImage;

/// Why [`smart_resize`] cannot produce a target size.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResizeError {
    /// One side of the input is zero pixels long.
    #[error("image has no pixels ({width}×{height})")]
    EmptyImage { height: u32, width: u32 },
    /// The long side is more than 200 times the short side; the model
    /// processors refuse such images.
    #[error(
        "image is too elongated ({width}×{height}, aspect ratio {ratio:.1}); \
         the long side may be at most 200 times the short side, crop it first"
    )]
    AspectRatio { height: u32, width: u32, ratio: f64 },
    /// `factor` was zero, or the pixel budget leaves no room for a single
    /// `factor × factor` block.
    #[error("invalid resize settings: factor {factor}, min_pixels {min_pixels}, max_pixels {max_pixels}")]
    InvalidSettings {
        factor: u32,
        min_pixels: u64,
        max_pixels: u64,
    },
}

/// Largest allowed ratio between the long and the short side.
pub const MAX_ASPECT_RATIO: f64 = 200.0;

/// Picks the size an image is resized to before it is cut into patches.
///
/// Returns `(height, width)`, both multiples of `factor`, with
/// `height * width` brought inside `[min_pixels, max_pixels]` while keeping
/// the aspect ratio as close as possible. This is the algorithm of
/// transformers 4.57 / 5.x:
///
/// * each side is rounded to the nearest multiple of `factor` with Python's
///   `round` (halves go to the even multiple: 70 at factor 28 gives 56);
/// * too many pixels: both sides shrink by `sqrt(h·w / max_pixels)` and are
///   floored to a multiple of `factor`, but never below `factor`;
/// * too few pixels: both sides grow by `sqrt(min_pixels / (h·w))` and are
///   ceiled to a multiple of `factor` (tiny images are upscaled);
/// * an aspect ratio above 200 is an error.
///
/// All floating-point work is done in `f64`, the way Python does it.
pub fn smart_resize(
    height: u32,
    width: u32,
    factor: u32,
    min_pixels: u64,
    max_pixels: u64,
) -> Result<(u32, u32), ResizeError> {
    let invalid = || ResizeError::InvalidSettings {
        factor,
        min_pixels,
        max_pixels,
    };
    if factor == 0 {
        return Err(invalid());
    }
    if height == 0 || width == 0 {
        return Err(ResizeError::EmptyImage { height, width });
    }
    let (h, w, f) = (height as f64, width as f64, factor as f64);
    let ratio = h.max(w) / h.min(w);
    if ratio > MAX_ASPECT_RATIO {
        return Err(ResizeError::AspectRatio {
            height,
            width,
            ratio,
        });
    }

    // Python's `round` sends halves to the even integer.
    let mut h_bar = (h / f).round_ties_even() * f;
    let mut w_bar = (w / f).round_ties_even() * f;
    // The rounded sides are exact integers; compare their product exactly.
    let rounded_area = h_bar as u128 * w_bar as u128;
    let area = height as u64 * width as u64;
    if rounded_area > max_pixels as u128 {
        let beta = (area as f64 / max_pixels as f64).sqrt();
        h_bar = f.max((h / beta / f).floor() * f);
        w_bar = f.max((w / beta / f).floor() * f);
    } else if rounded_area < min_pixels as u128 {
        let beta = (min_pixels as f64 / area as f64).sqrt();
        h_bar = (h * beta / f).ceil() * f;
        w_bar = (w * beta / f).ceil() * f;
    }

    let fits = |v: f64| (1.0..=u32::MAX as f64).contains(&v);
    if !fits(h_bar) || !fits(w_bar) {
        return Err(invalid());
    }
    Ok((h_bar as u32, w_bar as u32))
}

/// Fractional bits of Pillow's fixed-point weights for 8-bit images
/// (32 bits minus 8 for the sample minus 2 for overshoot of the kernel).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Support radius of the bicubic kernel before stretching.
const BICUBIC_SUPPORT: f64 = 2.0;

/// Keys cubic convolution kernel with `a = -0.5`, evaluated with the same
/// operation order as Pillow so the weights agree to the last bit.
fn bicubic_kernel(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Fixed-point weights of one resampling pass along one axis.
struct PassWeights {
    /// First input index used by each output sample.
    first: Vec<usize>,
    /// Number of input samples used by each output sample.
    count: Vec<usize>,
    /// `count[i]` weights for output `i`, stored at `i * stride`.
    weights: Vec<i32>,
    stride: usize,
}

impl PassWeights {
    fn of(&self, out: usize) -> (usize, &[i32]) {
        let start = out * self.stride;
        (
            self.first[out],
            &self.weights[start..start + self.count[out]],
        )
    }
}

/// Computes the weights that map `in_size` samples onto `out_size` samples
/// (the whole input range, no crop box).
fn pass_weights(in_size: usize, out_size: usize) -> PassWeights {
    // Pillow converts the box edges to `float` and subtracts them there; for
    // sizes below 2^24 that is exact, so plain f64 arithmetic is the same.
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = BICUBIC_SUPPORT * filterscale;
    let stride = support.ceil() as usize * 2 + 1;
    let inv_filterscale = 1.0 / filterscale;

    let mut first = Vec::with_capacity(out_size);
    let mut count = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * stride];
    let mut raw = vec![0f64; stride];

    for out in 0..out_size {
        let center = (out as f64 + 0.5) * scale;
        // `as i32` truncates toward zero, like C's `(int)` cast.
        let lo = ((center - support + 0.5) as i32).max(0);
        let hi = ((center + support + 0.5) as i32).min(in_size as i32);
        let n = (hi - lo).max(0) as usize;

        let mut sum = 0.0f64;
        for (k, slot) in raw.iter_mut().take(n).enumerate() {
            let w = bicubic_kernel(((k as i32 + lo) as f64 - center + 0.5) * inv_filterscale);
            *slot = w;
            sum += w;
        }
        let row = &mut weights[out * stride..out * stride + n];
        for (dst, &w) in row.iter_mut().zip(&raw[..n]) {
            let w = if sum != 0.0 { w / sum } else { w };
            let fixed = w * (1u32 << PRECISION_BITS) as f64;
            // Round half away from zero, then truncate, as Pillow does.
            *dst = if w < 0.0 {
                (fixed - 0.5) as i32
            } else {
                (fixed + 0.5) as i32
            };
        }
        first.push(lo as usize);
        count.push(n);
    }
    PassWeights {
        first,
        count,
        weights,
        stride,
    }
}

/// Turns an accumulator back into a byte: drop the fraction bits and clip.
#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Rounding offset every accumulator starts from (one half in fixed point).
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Whether Pillow (since 13.0) runs the vertical pass before the horizontal
/// one: when the height shrinks by more than twice as many pixels as the
/// width does. Otherwise rows are resampled first, as in older versions.
fn vertical_first(in_w: usize, in_h: usize, out_w: usize, out_h: usize) -> bool {
    out_h < in_h && (in_h - out_h) as i64 > 2 * (in_w as i64 - out_w as i64)
}

/// Resamples the rows `rows` of an RGB buffer `in_w` pixels wide to `out_w`
/// pixels each.
fn horizontal_pass(
    src: &[u8],
    in_w: usize,
    rows: std::ops::Range<usize>,
    weights: &PassWeights,
    out_w: usize,
) -> Vec<u8> {
    let mut out = vec![0u8; rows.len() * out_w * 3];
    for (y, out_row) in rows.zip(out.chunks_exact_mut(out_w * 3)) {
        let in_row = &src[y * in_w * 3..(y + 1) * in_w * 3];
        for (x, out_px) in out_row.chunks_exact_mut(3).enumerate() {
            let (first, ws) = weights.of(x);
            let taps = &in_row[first * 3..(first + ws.len()) * 3];
            let (mut r, mut g, mut b) = (HALF, HALF, HALF);
            for (px, &w) in taps.chunks_exact(3).zip(ws) {
                r = r.wrapping_add((px[0] as i32).wrapping_mul(w));
                g = g.wrapping_add((px[1] as i32).wrapping_mul(w));
                b = b.wrapping_add((px[2] as i32).wrapping_mul(w));
            }
            out_px[0] = clip8(r);
            out_px[1] = clip8(g);
            out_px[2] = clip8(b);
        }
    }
    out
}

/// Resamples the columns of an RGB buffer `width` pixels wide to `out_h`
/// rows. `src` holds input rows from `first_row` on.
fn vertical_pass(
    src: &[u8],
    width: usize,
    first_row: usize,
    weights: &PassWeights,
    out_h: usize,
) -> Vec<u8> {
    let stride = width * 3;
    let mut out = vec![0u8; out_h * stride];
    let mut acc = vec![0i32; stride];
    for (y, out_row) in out.chunks_exact_mut(stride).enumerate() {
        let (first, ws) = weights.of(y);
        acc.fill(HALF);
        for (k, &w) in ws.iter().enumerate() {
            let row = first + k - first_row;
            let in_row = &src[row * stride..(row + 1) * stride];
            for (a, &v) in acc.iter_mut().zip(in_row) {
                *a = a.wrapping_add((v as i32).wrapping_mul(w));
            }
        }
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    out
}

/// Resizes an RGB image to `width × height` with Pillow's bicubic filter.
///
/// The result is byte-for-byte what `Image.resize((width, height),
/// Image.BICUBIC)` returns for the same 8-bit RGB input with Pillow 13,
/// including its choice of which pass runs first. If the size is unchanged
/// the image is returned as a copy. A zero `width` or `height` gives an
/// empty image.
pub fn resize_bicubic(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (in_w, in_h) = img.dimensions();
    if (in_w, in_h) == (width, height) {
        return img.clone();
    }
    if width == 0 || height == 0 || in_w == 0 || in_h == 0 {
        return RgbImage::new(width, height);
    }
    let (in_w, in_h) = (in_w as usize, in_h as usize);
    let (out_w, out_h) = (width as usize, height as usize);
    let src = img.as_raw().as_slice();

    let raw = match (out_w != in_w, out_h != in_h) {
        (true, false) => horizontal_pass(src, in_w, 0..in_h, &pass_weights(in_w, out_w), out_w),
        (false, true) => vertical_pass(src, in_w, 0, &pass_weights(in_h, out_h), out_h),
        _ if vertical_first(in_w, in_h, out_w, out_h) => {
            let mid = vertical_pass(src, in_w, 0, &pass_weights(in_h, out_h), out_h);
            horizontal_pass(&mid, in_w, 0..out_h, &pass_weights(in_w, out_w), out_w)
        }
        _ => {
            // Only the input rows the vertical pass will read are resampled
            // horizontally; the intermediate image is 8-bit like the output.
            let vertical = pass_weights(in_h, out_h);
            let rows = vertical.first[0]..vertical.first[out_h - 1] + vertical.count[out_h - 1];
            let first_row = rows.start;
            let mid = horizontal_pass(src, in_w, rows, &pass_weights(in_w, out_w), out_w);
            vertical_pass(&mid, out_w, first_row, &vertical, out_h)
        }
    };
    RgbImage::from_raw(width, height, raw).expect("buffer length matches the output size")
}

#[cfg(test)]
mod tests {
    use super::*;

    const QWEN2_MIN: u64 = 3136;
    const QWEN2_MAX: u64 = 12_845_056;
    const QWEN3_MIN: u64 = 65_536;
    const QWEN3_MAX: u64 = 16_777_216;

    fn qwen2(h: u32, w: u32) -> (u32, u32) {
        smart_resize(h, w, 28, QWEN2_MIN, QWEN2_MAX).unwrap()
    }

    fn qwen3(h: u32, w: u32) -> (u32, u32) {
        smart_resize(h, w, 32, QWEN3_MIN, QWEN3_MAX).unwrap()
    }

    #[test]
    fn smart_resize_matches_reference_vectors_for_qwen2() {
        assert_eq!(qwen2(480, 640), (476, 644));
        assert_eq!(qwen2(70, 70), (56, 56));
        assert_eq!(qwen2(20, 20), (56, 56));
        assert_eq!(qwen2(1080, 1920), (1092, 1932));
        assert_eq!(qwen2(4000, 3000), (4004, 2996));
        assert_eq!(qwen2(100, 300), (112, 308));
    }

    #[test]
    fn smart_resize_matches_reference_vectors_for_qwen3() {
        assert_eq!(qwen3(480, 640), (480, 640));
        assert_eq!(qwen3(224, 224), (256, 256));
        assert_eq!(qwen3(1080, 1920), (1088, 1920));
        assert_eq!(qwen3(4000, 3000), (4000, 3008));
        assert_eq!(qwen3(100, 300), (160, 448));
    }

    #[test]
    fn smart_resize_rounds_halves_to_the_even_multiple() {
        // 70 / 28 = 2.5 → 2, 126 / 28 = 4.5 → 4, 98 / 28 = 3.5 → 4.
        let big = u64::MAX;
        assert_eq!(smart_resize(70, 126, 28, 0, big).unwrap(), (56, 112));
        assert_eq!(smart_resize(98, 98, 28, 0, big).unwrap(), (112, 112));
        // 80 / 32 = 2.5 → 2, 112 / 32 = 3.5 → 4.
        assert_eq!(smart_resize(80, 112, 32, 0, big).unwrap(), (64, 128));
    }

    #[test]
    fn smart_resize_never_shrinks_a_side_below_the_factor() {
        // Shrinking 30×5000 into four blocks would floor the short side to
        // zero; it is held at one block instead (the budget is then exceeded,
        // as in transformers).
        assert_eq!(
            smart_resize(30, 5000, 28, 0, 28 * 28 * 4).unwrap(),
            (28, 700)
        );
    }

    #[test]
    fn smart_resize_respects_the_pixel_budget() {
        for &(h, w) in &[(4000, 3000), (9000, 16000), (16384, 100), (3, 500)] {
            let (rh, rw) = qwen3(h, w);
            assert_eq!(rh % 32, 0);
            assert_eq!(rw % 32, 0);
            let area = rh as u64 * rw as u64;
            assert!(area <= QWEN3_MAX, "{h}x{w} -> {rh}x{rw}");
            assert!(area >= QWEN3_MIN, "{h}x{w} -> {rh}x{rw}");
        }
    }

    #[test]
    fn smart_resize_refuses_aspect_ratio_above_200() {
        assert!(matches!(
            smart_resize(10, 2001, 28, QWEN2_MIN, QWEN2_MAX),
            Err(ResizeError::AspectRatio { .. })
        ));
        assert!(matches!(
            smart_resize(3000, 14, 32, QWEN3_MIN, QWEN3_MAX),
            Err(ResizeError::AspectRatio { .. })
        ));
        // Exactly 200 is still accepted.
        assert!(smart_resize(10, 2000, 28, QWEN2_MIN, QWEN2_MAX).is_ok());
    }

    #[test]
    fn smart_resize_refuses_empty_images_and_zero_factor() {
        assert!(matches!(
            smart_resize(0, 10, 28, QWEN2_MIN, QWEN2_MAX),
            Err(ResizeError::EmptyImage { .. })
        ));
        assert!(matches!(
            smart_resize(10, 10, 0, QWEN2_MIN, QWEN2_MAX),
            Err(ResizeError::InvalidSettings { .. })
        ));
    }

    #[test]
    fn bicubic_kernel_has_the_keys_shape() {
        assert_eq!(bicubic_kernel(0.0), 1.0);
        assert_eq!(bicubic_kernel(1.0), 0.0);
        assert_eq!(bicubic_kernel(2.0), 0.0);
        assert_eq!(bicubic_kernel(0.5), 0.5625);
        assert_eq!(bicubic_kernel(-1.5), -0.0625);
    }

    #[test]
    fn columns_go_first_only_when_height_shrinks_much_more_than_width() {
        // 67×45 → 68×44: wider but shorter, so columns first.
        assert!(vertical_first(67, 45, 68, 44));
        // Both shrink by similar amounts: rows first.
        assert!(!vertical_first(84, 46, 78, 36));
        // Height shrinks by 20, width by 9: 20 > 18, columns first.
        assert!(vertical_first(87, 72, 78, 52));
        // Height grows: always rows first.
        assert!(!vertical_first(10, 10, 100, 20));
        assert!(!vertical_first(100, 10, 10, 20));
    }

    #[test]
    fn fixed_point_weights_sum_to_about_one() {
        for &(i, o) in &[(10, 3), (3, 10), (1000, 7), (7, 1000), (5, 5), (1, 9)] {
            let pw = pass_weights(i, o);
            for out in 0..o {
                let (first, ws) = pw.of(out);
                assert!(first + ws.len() <= i);
                let sum: i64 = ws.iter().map(|&w| w as i64).sum();
                assert!((sum - (1 << PRECISION_BITS)).abs() <= ws.len() as i64);
            }
        }
    }

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 7 + y) as u8, (y * 5) as u8, ((x ^ y) * 3) as u8])
        })
    }

    #[test]
    fn resize_to_the_same_size_is_a_copy() {
        let img = gradient(13, 7);
        assert_eq!(resize_bicubic(&img, 13, 7), img);
    }

    #[test]
    fn resize_keeps_a_flat_colour_flat() {
        let img = RgbImage::from_pixel(17, 9, image::Rgb([200, 10, 77]));
        for &(w, h) in &[(5, 3), (40, 21), (1, 1), (17, 30), (3, 9)] {
            let out = resize_bicubic(&img, w, h);
            assert_eq!(out.dimensions(), (w, h));
            assert!(out.pixels().all(|p| p.0 == [200, 10, 77]), "{w}x{h}");
        }
    }

    #[test]
    fn resize_handles_single_row_and_column_images() {
        let row = gradient(31, 1);
        assert_eq!(resize_bicubic(&row, 8, 1).dimensions(), (8, 1));
        assert_eq!(resize_bicubic(&row, 8, 5).dimensions(), (8, 5));
        let col = gradient(1, 31);
        assert_eq!(resize_bicubic(&col, 1, 64).dimensions(), (1, 64));
        assert_eq!(resize_bicubic(&col, 4, 4).dimensions(), (4, 4));
    }

    #[test]
    fn resize_to_zero_gives_an_empty_image() {
        assert_eq!(resize_bicubic(&gradient(4, 4), 0, 3).dimensions(), (0, 3));
    }
}
