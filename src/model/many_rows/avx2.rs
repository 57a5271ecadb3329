//! The tile and the panel transposes for CPUs with AVX2 and FMA but not
//! AVX-512 (AMD Zen 2 and 3, Intel before Skylake-X), over the same panels.
//!
//! Sixteen 8-lane registers do not hold a 12×32 tile's sums, so a tile of
//! three rows or more is done as up to four parts of at most 6 rows × 16
//! outputs (12 sums, two of `W`'s vectors and a broadcast), each over all
//! of the tile's inputs: the part's 16 KB of `W` and 6 KB of `x` stay in L1
//! between the parts. One or two rows (decoding) run all 32 outputs at
//! once, so that `W` streams from memory once, in two or four independent
//! chains of sums per output vector.

use std::arch::x86_64::*;

use super::x86::{Ahead, Start};
use super::{MR, NR};

pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// Rows of a part.
const PART_ROWS: usize = 6;
/// Outputs of a part: two 8-lane registers.
const PART_COLS: usize = 16;

/// Mask of the first `n` (at most 8) lanes, for masked loads and stores.
#[inline(always)]
unsafe fn lanes(n: usize) -> __m256i {
    let n = n.min(8) as i32;
    let index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_cmpgt_epi32(_mm256_set1_epi32(n), index)
}

/// The first `n` floats at `p`, zeros after them. A masked move costs far
/// more than a plain one on some CPUs (a masked store is microcoded on AMD
/// Zen 2 and 3: loading a model's panels took three times as long), so
/// whole vectors take the plain one.
#[inline(always)]
unsafe fn load(p: *const f32, n: usize) -> __m256 {
    if n >= 8 {
        _mm256_loadu_ps(p)
    } else {
        _mm256_maskload_ps(p, lanes(n))
    }
}

/// Writes the first `n` lanes of `v` to `p`; see [`load`].
#[inline(always)]
unsafe fn store(p: *mut f32, n: usize, v: __m256) {
    if n >= 8 {
        _mm256_storeu_ps(p, v)
    } else {
        _mm256_maskstore_ps(p, lanes(n), v)
    }
}

/// [`super::x86::tile`] with AVX2: the same contract.
///
/// # Safety
/// As [`super::x86::tile`], with [`available`] in place of AVX-512.
#[allow(clippy::too_many_arguments)]
pub unsafe fn tile(
    a: *const f32,
    b: *const f32,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    start: Start,
    ahead: Ahead,
) {
    match rows {
        1 => whole_width::<1, 2>(a, b, kc, c, ldc, cols, start),
        2 => whole_width::<2, 1>(a, b, kc, c, ldc, cols, start),
        _ => {
            // Both row groups over one half of `W`'s panel, then the other:
            // a half (16 KB of lines) and `x`'s panel (12 KB) fit L1, the
            // whole panel (32 KB) and `x`'s do not.
            for half in 0..2 {
                let first_col = half * PART_COLS;
                if first_col >= cols {
                    break;
                }
                let part_cols = PART_COLS.min(cols - first_col);
                for (p, first_row) in (0..rows).step_by(PART_ROWS).enumerate() {
                    let part_rows = PART_ROWS.min(rows - first_row);
                    // The first part alone fetches what is ahead.
                    let ahead = if p == 0 && half == 0 {
                        ahead
                    } else {
                        Ahead::NOTHING
                    };
                    let (a, b) = (a.add(first_row), b.add(first_col));
                    let c = c.add(first_row * ldc + first_col);
                    let start = match start {
                        Start::Bias(bias) => Start::Bias(bias.wrapping_add(first_col)),
                        other => other,
                    };
                    macro_rules! rows {
                        ($($m:literal)*) => {
                            match part_rows {
                                $($m => part::<$m>(a, b, kc, c, ldc, part_cols, start, ahead),)*
                                _ => unreachable!("a part has 1 to {PART_ROWS} rows"),
                            }
                        };
                    }
                    rows!(1 2 3 4 5 6)
                }
            }
        }
    }
}

/// Rows `0..M` of a panel of `a` (offset to the part's first row) times 16
/// outputs of a panel of `b` (offset to the part's first output).
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn part<const M: usize>(
    a: *const f32,
    b: *const f32,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    start: Start,
    ahead: Ahead,
) {
    let mut lo = [_mm256_setzero_ps(); M];
    let mut hi = [_mm256_setzero_ps(); M];
    // Two loops rather than a test in one: the plain one is the most run.
    if ahead.at.is_null() {
        for q in 0..kc {
            part_step(a, b, q, &mut lo, &mut hi);
        }
    } else {
        for q in 0..kc {
            let next = ahead.at.wrapping_add(q * ahead.step) as *const i8;
            _mm_prefetch::<_MM_HINT_T1>(next);
            _mm_prefetch::<_MM_HINT_T1>(next.wrapping_add(64));
            part_step(a, b, q, &mut lo, &mut hi);
        }
    }
    let mut sums = [[_mm256_setzero_ps(); 2]; M];
    for i in 0..M {
        sums[i] = [lo[i], hi[i]];
    }
    finish(&sums, c, ldc, cols, start);
}

/// Input `q` of a part.
#[inline(always)]
unsafe fn part_step<const M: usize>(
    a: *const f32,
    b: *const f32,
    q: usize,
    lo: &mut [__m256; M],
    hi: &mut [__m256; M],
) {
    let b0 = _mm256_loadu_ps(b.add(q * NR));
    let b1 = _mm256_loadu_ps(b.add(q * NR + 8));
    for i in 0..M {
        let ai = _mm256_broadcast_ss(&*a.add(q * MR + i));
        lo[i] = _mm256_fmadd_ps(ai, b0, lo[i]);
        hi[i] = _mm256_fmadd_ps(ai, b1, hi[i]);
    }
}

/// Rows `0..M` of a panel of `a` times all 32 outputs of a panel of `b`,
/// in `S` sets of sums over their own runs of the inputs.
#[target_feature(enable = "avx2,fma")]
unsafe fn whole_width<const M: usize, const S: usize>(
    a: *const f32,
    b: *const f32,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    start: Start,
) {
    let mut sets = [[[_mm256_setzero_ps(); 4]; M]; S];
    let part = kc / S;
    for p in 0..part {
        for (s, sums) in sets.iter_mut().enumerate() {
            whole_step(a, b, s * part + p, sums);
        }
    }
    for q in S * part..kc {
        whole_step(a, b, q, &mut sets[S - 1]);
    }
    let (first, rest) = sets.split_at_mut(1);
    for set in rest.iter() {
        for (total, sums) in first[0].iter_mut().zip(set) {
            for (t, s) in total.iter_mut().zip(sums) {
                *t = _mm256_add_ps(*t, *s);
            }
        }
    }
    finish(&first[0], c, ldc, cols, start);
}

/// Input `q` of `M` rows times all 32 outputs.
#[inline(always)]
unsafe fn whole_step<const M: usize>(
    a: *const f32,
    b: *const f32,
    q: usize,
    sums: &mut [[__m256; 4]; M],
) {
    let mut w = [_mm256_setzero_ps(); 4];
    for (v, w) in w.iter_mut().enumerate() {
        *w = _mm256_loadu_ps(b.add(q * NR + 8 * v));
    }
    for (i, sums) in sums.iter_mut().enumerate() {
        let ai = _mm256_broadcast_ss(&*a.add(q * MR + i));
        for (s, w) in sums.iter_mut().zip(w) {
            *s = _mm256_fmadd_ps(ai, w, *s);
        }
    }
}

/// Writes `M` rows of sums, `8·V` outputs each (the first `cols` of them),
/// to `c`, from `start`.
#[inline(always)]
unsafe fn finish<const M: usize, const V: usize>(
    sums: &[[__m256; V]; M],
    c: *mut f32,
    ldc: usize,
    cols: usize,
    start: Start,
) {
    for v in 0..V {
        let first = v * 8;
        if first >= cols {
            break;
        }
        let n = cols - first;
        let bias = match start {
            Start::Bias(b) => Some(load(b.add(first), n)),
            Start::Zero | Start::Sums => None,
        };
        for (i, row) in sums.iter().enumerate() {
            let at = c.add(i * ldc + first);
            let mut s = row[v];
            if let Start::Sums = start {
                s = _mm256_add_ps(s, load(at, n));
            } else if let Some(b) = bias {
                s = _mm256_add_ps(s, b);
            }
            store(at, n, s);
        }
    }
}

/// [`super::x86::transpose_into_panel`] with AVX2: the same contract.
///
/// # Safety
/// As [`super::x86::transpose_into_panel`], with [`available`] in place
/// of AVX-512.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn transpose_into_panel(
    m: *const f32,
    lanes_: usize,
    inputs: usize,
    width: usize,
    dst: *mut f32,
) {
    for first in (0..width).step_by(8) {
        let rows = lanes_.saturating_sub(first).min(8);
        let stored = width - first;
        for k0 in (0..inputs).step_by(8) {
            let kv = (inputs - k0).min(8);
            let mut r = [_mm256_setzero_ps(); 8];
            for (i, ri) in r.iter_mut().enumerate().take(rows) {
                *ri = load(m.add((first + i) * inputs + k0), kv);
            }
            let t = transpose8(r);
            for (q, tq) in t.iter().enumerate().take(kv) {
                store(dst.add((k0 + q) * width + first), stored, *tq);
            }
        }
    }
}

/// Rows become columns: lane `i` of output `q` is lane `q` of input `i`.
#[inline(always)]
unsafe fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    // Interleaved by 32 bits, then by 64 bits: each 128-bit half then holds
    // one column of four rows; the halves are put together last.
    let mut t = [_mm256_setzero_ps(); 8];
    for j in 0..4 {
        t[2 * j] = _mm256_unpacklo_ps(r[2 * j], r[2 * j + 1]);
        t[2 * j + 1] = _mm256_unpackhi_ps(r[2 * j], r[2 * j + 1]);
    }
    let mut u = [_mm256_setzero_ps(); 8];
    for g in 0..2 {
        let (a0, a1, a2, a3) = (t[4 * g], t[4 * g + 1], t[4 * g + 2], t[4 * g + 3]);
        u[4 * g] = _mm256_shuffle_ps::<0x44>(a0, a2);
        u[4 * g + 1] = _mm256_shuffle_ps::<0xEE>(a0, a2);
        u[4 * g + 2] = _mm256_shuffle_ps::<0x44>(a1, a3);
        u[4 * g + 3] = _mm256_shuffle_ps::<0xEE>(a1, a3);
    }
    // u[j] (rows 0..4) and u[4 + j] (rows 4..8), 128-bit half h: column
    // 4h + j.
    let mut out = [_mm256_setzero_ps(); 8];
    for j in 0..4 {
        out[j] = _mm256_permute2f128_ps::<0x20>(u[j], u[4 + j]);
        out[4 + j] = _mm256_permute2f128_ps::<0x31>(u[j], u[4 + j]);
    }
    out
}
