//! AVX-512 VNNI kernels over one strip of tiles (16 outputs, all inputs).
//!
//! Each `vpdpbusd` multiplies 4 unsigned weight bytes of each of the 16 rows
//! by the same 4 signed input bytes (broadcast), summing into 16 lanes: the
//! 16 outputs come out side by side, with no horizontal sums. Up to
//! [`ROWS_AT_ONCE`] input rows share every weight load, so a prompt reads
//! each tile from cache once per 4 rows; the strip itself stays in cache
//! across all the rows.

use std::arch::x86_64::*;

use super::activations::Activations;
use super::layout::{TileQ4K, TileQ8_0, SUPER, TILE_ROWS};

const ROWS_AT_ONCE: usize = 4;
/// How many tiles ahead the q4k kernel asks for.
const AHEAD: usize = 2;

pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vnni")
}

pub enum Strip<'a> {
    Q4K(&'a [TileQ4K]),
    Q8_0(&'a [TileQ8_0]),
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
            (Strip::Q4K(t), 1) => q4k::<1>(t, acts, m, at, stride),
            (Strip::Q4K(t), 2) => q4k::<2>(t, acts, m, at, stride),
            (Strip::Q4K(t), 3) => q4k::<3>(t, acts, m, at, stride),
            (Strip::Q4K(t), _) => q4k::<4>(t, acts, m, at, stride),
            (Strip::Q8_0(t), 1) => q8_0::<1>(t, acts, m, at, stride),
            (Strip::Q8_0(t), 2) => q8_0::<2>(t, acts, m, at, stride),
            (Strip::Q8_0(t), 3) => q8_0::<3>(t, acts, m, at, stride),
            (Strip::Q8_0(t), _) => q8_0::<4>(t, acts, m, at, stride),
        }
        m += ROWS_AT_ONCE;
    }
}

#[inline(always)]
unsafe fn broadcast4(p: *const i8) -> __m512i {
    _mm512_set1_epi32(std::ptr::read_unaligned(p as *const i32))
}

#[inline(always)]
unsafe fn halves(bits: &[u16; TILE_ROWS]) -> __m512 {
    _mm512_cvtph_ps(_mm256_loadu_si256(bits.as_ptr().cast()))
}

/// Rows `m0..m0 + M` against a q4k strip. Per block, the sub-blocks' integer
/// dot products are scaled by their 6-bit scales in integers, and the mins
/// times the inputs' sums come from one 16-bit multiply-add per pair of
/// sub-blocks; floats enter once per block. Sub-blocks go in pairs with
/// their own integer sums, so even one row has two chains of `vpdpbusd` in
/// flight.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn q4k<const M: usize>(
    tiles: &[TileQ4K],
    acts: &Activations,
    m0: usize,
    y: *mut f32,
    stride: usize,
) {
    let k = acts.inputs;
    let per_row = k / SUPER;
    let nibble = _mm512_set1_epi8(0x0F);
    let rows = acts.row_starts::<M>(m0);
    let mut acc = [_mm512_setzero_ps(); M];
    for (b, tile) in tiles.iter().enumerate() {
        let mut dots = [_mm512_setzero_si512(); M];
        let mut offsets = [_mm512_setzero_si512(); M];
        // The strip streams from memory: ask for the tile after next while
        // this one is multiplied (a quarter of its lines per pair), into L2,
        // which keeps more requests in flight than L1 (one row decoded 25 %
        // faster than with prefetches into L1; q8_0, with less work per
        // byte, gained nothing). Past the strip's end it reaches into the
        // next strip, which the run takes next; a prefetch never faults.
        let ahead = (tile as *const TileQ4K).wrapping_add(AHEAD) as *const i8;
        for pair in 0..4 {
            let (sa, sb) = (2 * pair, 2 * pair + 1);
            for line in (pair * 640..(pair + 1) * 640).step_by(64) {
                _mm_prefetch::<_MM_HINT_T1>(ahead.wrapping_add(line));
            }
            let mut ia = [_mm512_setzero_si512(); M];
            let mut ib = [_mm512_setzero_si512(); M];
            for g in 0..4 {
                let wa = _mm512_loadu_si512(tile.qs.as_ptr().add((sa * 4 + g) * 64).cast());
                let wb = _mm512_loadu_si512(tile.qs.as_ptr().add((sb * 4 + g) * 64).cast());
                let lo_a = _mm512_and_si512(wa, nibble);
                let hi_a = _mm512_and_si512(_mm512_srli_epi16(wa, 4), nibble);
                let lo_b = _mm512_and_si512(wb, nibble);
                let hi_b = _mm512_and_si512(_mm512_srli_epi16(wb, 4), nibble);
                for m in 0..M {
                    let pa = rows[m].add(b * SUPER + sa * 32 + g * 8);
                    let pb = rows[m].add(b * SUPER + sb * 32 + g * 8);
                    ia[m] = _mm512_dpbusd_epi32(ia[m], lo_a, broadcast4(pa));
                    ia[m] = _mm512_dpbusd_epi32(ia[m], hi_a, broadcast4(pa.add(4)));
                    ib[m] = _mm512_dpbusd_epi32(ib[m], lo_b, broadcast4(pb));
                    ib[m] = _mm512_dpbusd_epi32(ib[m], hi_b, broadcast4(pb.add(4)));
                }
            }
            let scale_a = _mm512_cvtepu8_epi32(_mm_loadu_si128(tile.scales[sa].as_ptr().cast()));
            let scale_b = _mm512_cvtepu8_epi32(_mm_loadu_si128(tile.scales[sb].as_ptr().cast()));
            let mins = _mm512_cvtepu8_epi16(_mm256_loadu_si256(tile.mins[pair].as_ptr().cast()));
            for m in 0..M {
                let scaled = _mm512_add_epi32(
                    _mm512_mullo_epi32(ia[m], scale_a),
                    _mm512_mullo_epi32(ib[m], scale_b),
                );
                dots[m] = _mm512_add_epi32(dots[m], scaled);
                // The two sub-blocks' input sums, side by side as 16 bits.
                let at = ((m0 + m) * per_row + b) * 8 + sa;
                let sums = std::ptr::read_unaligned(acts.sums.as_ptr().add(at) as *const i32);
                offsets[m] = _mm512_dpwssd_epi32(offsets[m], mins, _mm512_set1_epi32(sums));
            }
        }
        let d = halves(&tile.d);
        let dmin = halves(&tile.dmin);
        for m in 0..M {
            let ad = _mm512_set1_ps(acts.scales[(m0 + m) * per_row + b]);
            let dot = _mm512_cvtepi32_ps(dots[m]);
            acc[m] = _mm512_fmadd_ps(dot, _mm512_mul_ps(d, ad), acc[m]);
            let offset = _mm512_cvtepi32_ps(offsets[m]);
            acc[m] = _mm512_fnmadd_ps(offset, _mm512_mul_ps(dmin, ad), acc[m]);
        }
    }
    for (m, acc) in acc.iter().enumerate() {
        _mm512_storeu_ps(y.add(m * stride), *acc);
    }
}

/// Rows `m0..m0 + M` against a q8_0 strip, two blocks at a time with their
/// own integer sums.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn q8_0<const M: usize>(
    tiles: &[TileQ8_0],
    acts: &Activations,
    m0: usize,
    y: *mut f32,
    stride: usize,
) {
    let k = acts.inputs;
    let per_row = k / SUPER;
    let a = acts.row_starts::<M>(m0);
    let mut acc = [_mm512_setzero_ps(); M];
    for (pair, two) in tiles.chunks_exact(2).enumerate() {
        let (ba, bb) = (2 * pair, 2 * pair + 1);
        let mut ia = [_mm512_setzero_si512(); M];
        let mut ib = [_mm512_setzero_si512(); M];
        for g in 0..8 {
            let wa = _mm512_loadu_si512(two[0].qs.as_ptr().add(g * 64).cast());
            let wb = _mm512_loadu_si512(two[1].qs.as_ptr().add(g * 64).cast());
            for m in 0..M {
                ia[m] = _mm512_dpbusd_epi32(ia[m], wa, broadcast4(a[m].add(ba * 32 + g * 4)));
                ib[m] = _mm512_dpbusd_epi32(ib[m], wb, broadcast4(a[m].add(bb * 32 + g * 4)));
            }
        }
        for (blk, tile, sums_of) in [(ba, &two[0], &ia), (bb, &two[1], &ib)] {
            let d = halves(&tile.d);
            for m in 0..M {
                let row = m0 + m;
                let ad = acts.scales[row * per_row + blk / 8];
                // The weights are q + 128: take 128 × the inputs' sum off.
                let offset = 128.0 * f32::from(acts.sums[row * (k / 32) + blk]);
                let dot = _mm512_sub_ps(_mm512_cvtepi32_ps(sums_of[m]), _mm512_set1_ps(offset));
                acc[m] = _mm512_fmadd_ps(dot, _mm512_mul_ps(d, _mm512_set1_ps(ad)), acc[m]);
            }
        }
    }
    for (m, acc) in acc.iter().enumerate() {
        _mm512_storeu_ps(y.add(m * stride), *acc);
    }
}
