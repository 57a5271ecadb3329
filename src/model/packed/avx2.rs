//! AVX2 kernels over the same tiles, for CPUs without AVX-512 VNNI (AMD Zen
//! 2 and 3, Intel before Ice Lake), with the same sums as the VNNI kernels
//! to the last bit.
//!
//! AVX2 has no `vpdpbusd`; `vpmaddubsw` multiplies unsigned by signed bytes
//! into 16-bit sums of pairs, and `vpmaddwd` widens those to 32 bits. One
//! 32-byte half of a tile's 64-byte line holds 4 weights of each of 8
//! outputs, so a half gives 8 outputs side by side as a VNNI line gives 16.
//! - q4k: the nibbles are unsigned and small (a pair sums to at most 2 ×
//!   15 × 127), so a whole sub-block of 32 inputs adds up in 16 bits, and
//!   the widening `vpmaddwd` multiplies by the sub-block's scales on the way.
//! - q8_0: the weights are stored plus 128; back to signed, `vpmaddubsw`
//!   takes their magnitudes and the inputs with their signs (a pair then
//!   sums to at most 2 × 127 × 127, no saturation), and no offset is left to
//!   take off.
//!
//! A tile is read as its two halves together for one or two input rows
//! (decoding: the strip streams from memory once), and a half at a time for
//! three or four, so that the sums of every row stay in the 16 registers.

use std::arch::x86_64::*;

use super::activations::Activations;
use super::layout::{TileQ4K, TileQ8_0, SUPER};
use super::x86::Strip;

const ROWS_AT_ONCE: usize = 4;
/// Outputs in a half of a tile.
const HALF: usize = 8;

pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c")
}

/// Writes the strip's 16 outputs for every row of `acts` at `y`, row `m` at
/// `y + m·stride`.
///
/// # Safety
/// [`available`] holds, and `y` has room for every row.
pub unsafe fn strip(strip: Strip<'_>, acts: &Activations, y: *mut f32, stride: usize) {
    let mut m = 0;
    while m < acts.rows {
        let left = acts.rows - m;
        let at = y.add(m * stride);
        match (&strip, left.min(ROWS_AT_ONCE)) {
            (Strip::Q4K(t), 1) => q4k::<1, 2>(t, acts, m, at, stride, 0),
            (Strip::Q4K(t), 2) => q4k::<2, 2>(t, acts, m, at, stride, 0),
            (Strip::Q4K(t), 3) => (0..2).for_each(|h| q4k::<3, 1>(t, acts, m, at, stride, h)),
            (Strip::Q4K(t), _) => (0..2).for_each(|h| q4k::<4, 1>(t, acts, m, at, stride, h)),
            (Strip::Q8_0(t), 1) => q8_0::<1, 2>(t, acts, m, at, stride, 0),
            (Strip::Q8_0(t), 2) => q8_0::<2, 2>(t, acts, m, at, stride, 0),
            (Strip::Q8_0(t), 3) => (0..2).for_each(|h| q8_0::<3, 1>(t, acts, m, at, stride, h)),
            (Strip::Q8_0(t), _) => (0..2).for_each(|h| q8_0::<4, 1>(t, acts, m, at, stride, h)),
        }
        m += ROWS_AT_ONCE;
    }
}

/// Tiles ahead that the decoding kernels ask for (4.7 KB of q4k, 2.2 KB of
/// q8_0). Without it the hardware's prefetchers left a one-row q8_0 product
/// at 15–17 GB/s while f32 streamed at 25 (`examples/decode_stream.rs`);
/// with it q8_0 reached 27–29.
const Q4K_AHEAD: usize = 2;
const Q8_0_AHEAD: usize = 4;

/// Asks for the tile `ahead` tiles past `tile` into L2 (which keeps more
/// requests in flight than L1), a line at a time. Past the strip's end it
/// reaches into the next strip, which the run takes next; a prefetch never
/// faults.
#[inline(always)]
unsafe fn fetch_ahead<T>(tile: &T, ahead: usize) {
    let size = std::mem::size_of::<T>();
    let at = (tile as *const T as *const i8).wrapping_add(ahead * size);
    for line in (0..size + 63).step_by(64) {
        _mm_prefetch::<_MM_HINT_T1>(at.wrapping_add(line));
    }
}

/// Four input bytes at `p`, in every 32-bit lane.
#[inline(always)]
unsafe fn broadcast4(p: *const i8) -> __m256i {
    _mm256_set1_epi32(std::ptr::read_unaligned(p as *const i32))
}

/// Eight f16 values of a half, as f32.
#[inline(always)]
unsafe fn halves(bits: *const u16) -> __m256 {
    _mm256_cvtph_ps(_mm_loadu_si128(bits.cast()))
}

/// Rows `m0..m0 + M` against halves `first..first + H` of a q4k strip.
// Rows and halves index several arrays of registers at once.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4k<const M: usize, const H: usize>(
    tiles: &[TileQ4K],
    acts: &Activations,
    m0: usize,
    y: *mut f32,
    stride: usize,
    first: usize,
) {
    let per_row = acts.inputs / SUPER;
    let nibble = _mm256_set1_epi8(0x0F);
    let rows = acts.row_starts::<M>(m0);
    let mut acc = [[_mm256_setzero_ps(); H]; M];
    for (b, tile) in tiles.iter().enumerate() {
        // Decoding (both halves at once) streams the strip from memory once.
        if H == 2 {
            fetch_ahead(tile, Q4K_AHEAD);
        }
        let mut dots = [[_mm256_setzero_si256(); H]; M];
        for sub in 0..8 {
            // At most 8 × 2 × 15 × 127 = 30 480 in a 16-bit lane.
            let mut pairs = [[_mm256_setzero_si256(); H]; M];
            for g in 0..4 {
                for h in 0..H {
                    let line = tile.qs.as_ptr().add((sub * 4 + g) * 64 + (first + h) * 32);
                    let w = _mm256_loadu_si256(line.cast());
                    let lo = _mm256_and_si256(w, nibble);
                    let hi = _mm256_and_si256(_mm256_srli_epi16(w, 4), nibble);
                    for m in 0..M {
                        let p = rows[m].add(b * SUPER + sub * 32 + g * 8);
                        let s = _mm256_add_epi16(
                            _mm256_maddubs_epi16(lo, broadcast4(p)),
                            _mm256_maddubs_epi16(hi, broadcast4(p.add(4))),
                        );
                        pairs[m][h] = _mm256_add_epi16(pairs[m][h], s);
                    }
                }
            }
            for h in 0..H {
                // Each output's scale in both of its 16-bit lanes.
                let s8 = _mm_loadl_epi64(tile.scales[sub].as_ptr().add((first + h) * HALF).cast());
                let scales = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(s8, s8));
                for m in 0..M {
                    dots[m][h] =
                        _mm256_add_epi32(dots[m][h], _mm256_madd_epi16(pairs[m][h], scales));
                }
            }
        }
        let mut offsets = [[_mm256_setzero_si256(); H]; M];
        for pair in 0..4 {
            for h in 0..H {
                let mins = _mm256_cvtepu8_epi16(_mm_loadu_si128(
                    tile.mins[pair].as_ptr().add((first + h) * 2 * HALF).cast(),
                ));
                for m in 0..M {
                    // The two sub-blocks' input sums, side by side as 16 bits.
                    let at = ((m0 + m) * per_row + b) * 8 + 2 * pair;
                    let sums = std::ptr::read_unaligned(acts.sums.as_ptr().add(at) as *const i32);
                    let o = _mm256_madd_epi16(mins, _mm256_set1_epi32(sums));
                    offsets[m][h] = _mm256_add_epi32(offsets[m][h], o);
                }
            }
        }
        for h in 0..H {
            let d = halves(tile.d.as_ptr().add((first + h) * HALF));
            let dmin = halves(tile.dmin.as_ptr().add((first + h) * HALF));
            for m in 0..M {
                let ad = _mm256_set1_ps(acts.scales[(m0 + m) * per_row + b]);
                let dot = _mm256_cvtepi32_ps(dots[m][h]);
                acc[m][h] = _mm256_fmadd_ps(dot, _mm256_mul_ps(d, ad), acc[m][h]);
                let offset = _mm256_cvtepi32_ps(offsets[m][h]);
                acc[m][h] = _mm256_fnmadd_ps(offset, _mm256_mul_ps(dmin, ad), acc[m][h]);
            }
        }
    }
    for (m, acc) in acc.iter().enumerate() {
        for (h, acc) in acc.iter().enumerate() {
            _mm256_storeu_ps(y.add(m * stride + (first + h) * HALF), *acc);
        }
    }
}

/// Rows `m0..m0 + M` against halves `first..first + H` of a q8_0 strip.
// Rows and halves index several arrays of registers at once.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0<const M: usize, const H: usize>(
    tiles: &[TileQ8_0],
    acts: &Activations,
    m0: usize,
    y: *mut f32,
    stride: usize,
    first: usize,
) {
    let per_row = acts.inputs / SUPER;
    let plus_128 = _mm256_set1_epi8(-128);
    let ones = _mm256_set1_epi16(1);
    let a = acts.row_starts::<M>(m0);
    let mut acc = [[_mm256_setzero_ps(); H]; M];
    for (blk, tile) in tiles.iter().enumerate() {
        if H == 2 {
            fetch_ahead(tile, Q8_0_AHEAD);
        }
        let mut dots = [[_mm256_setzero_si256(); H]; M];
        for g in 0..8 {
            for h in 0..H {
                let line = tile.qs.as_ptr().add(g * 64 + (first + h) * 32);
                let signed = _mm256_xor_si256(_mm256_loadu_si256(line.cast()), plus_128);
                let size = _mm256_sign_epi8(signed, signed);
                for m in 0..M {
                    let x = _mm256_sign_epi8(broadcast4(a[m].add(blk * 32 + g * 4)), signed);
                    let pairs = _mm256_maddubs_epi16(size, x);
                    dots[m][h] = _mm256_add_epi32(dots[m][h], _mm256_madd_epi16(pairs, ones));
                }
            }
        }
        for h in 0..H {
            let d = halves(tile.d.as_ptr().add((first + h) * HALF));
            for m in 0..M {
                let ad = acts.scales[(m0 + m) * per_row + blk / 8];
                let dot = _mm256_cvtepi32_ps(dots[m][h]);
                acc[m][h] = _mm256_fmadd_ps(dot, _mm256_mul_ps(d, _mm256_set1_ps(ad)), acc[m][h]);
            }
        }
    }
    for (m, acc) in acc.iter().enumerate() {
        for (h, acc) in acc.iter().enumerate() {
            _mm256_storeu_ps(y.add(m * stride + (first + h) * HALF), *acc);
        }
    }
}
