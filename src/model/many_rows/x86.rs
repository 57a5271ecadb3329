//! The AVX-512 parts: the tile of up to 12×32 and the 16×16 transposes that lay `W`
//! and `x` out in panels; where the CPU has only AVX2, these hand over to
//! [`super::avx2`].

use std::arch::x86_64::*;

use super::{MR, NR};

/// Whether this CPU runs the tile, with AVX-512 or with AVX2.
pub fn available() -> bool {
    wide() || super::avx2::available()
}

/// Whether the AVX-512 kernels run here (else the AVX2 ones do).
fn wide() -> bool {
    static WIDE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WIDE.get_or_init(|| std::arch::is_x86_feature_detected!("avx512f"))
}

/// Mask of the first `n` (at most 16) lanes.
fn lanes(n: usize) -> __mmask16 {
    if n >= 16 {
        0xFFFF
    } else {
        (1u16 << n) - 1
    }
}

/// What a tile fetches into L2 while it runs, one step of `step` floats
/// (two cache lines) for each of its inputs: the panel the next tile will
/// read from memory. Without it the first tile over each panel of `W`
/// waited on memory for a sixth of its time.
#[derive(Clone, Copy)]
pub struct Ahead {
    pub at: *const f32,
    pub step: usize,
}

impl Ahead {
    pub const NOTHING: Ahead = Ahead {
        at: std::ptr::null(),
        step: 0,
    };
}

/// What a tile's sums start from.
#[derive(Clone, Copy)]
pub enum Start {
    /// Zero: the tile writes `c`.
    Zero,
    /// What `c` holds (the sums of earlier inputs): the tile adds to it.
    Sums,
    /// A bias for each of the tile's columns, from this one on: the tile
    /// writes `c`.
    Bias(*const f32),
}

/// Writes to `c` (`rows` × `cols` of a matrix `ldc` floats wide) `start`
/// plus the product of an `MR`-row panel `a` and an `NR`-output panel `b`
/// over `kc` inputs. Only the panel's first `rows`
/// rows are multiplied, so a short last panel (or one row while decoding)
/// costs what its rows need.
///
/// # Safety
/// [`available`] holds; `a` holds `kc × MR` floats, `b` `kc × NR`, `c`
/// has `1 ≤ rows ≤ MR` rows of `cols ≤ NR` floats, and a bias `cols`.
/// `ahead` may run past what it points into: a prefetch never faults.
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
    if !wide() {
        return super::avx2::tile(a, b, kc, c, ldc, rows, cols, start, ahead);
    }
    macro_rules! rows {
        ($($m:literal)*) => {
            match rows {
                1 => tile_of::<1, 8>(a, b, kc, c, ldc, cols, start, ahead),
                2 => tile_of::<2, 4>(a, b, kc, c, ldc, cols, start, ahead),
                $($m => tile_of::<$m, 1>(a, b, kc, c, ldc, cols, start, ahead),)*
                _ => unreachable!("a tile has 1 to {MR} rows"),
            }
        };
    }
    rows!(3 4 5 6 7 8 9 10 11 12)
}

/// `S` sets of sums, each over its own run of the inputs: one or two rows
/// (decoding) would otherwise leave the FMAs waiting on each other (4
/// cycles a sum) and read `W` from memory as one stream, which one core
/// cannot pull at the speed of several.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_of<const M: usize, const S: usize>(
    a: *const f32,
    b: *const f32,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    start: Start,
    ahead: Ahead,
) {
    let mut lo_sets = [[_mm512_setzero_ps(); M]; S];
    let mut hi_sets = [[_mm512_setzero_ps(); M]; S];
    // Set `s` sums its own run of inputs: `S` streams read from memory at
    // once, as well as `S` chains of sums.
    let part = kc / S;
    // Two loops rather than a test in one: the plain one is the most run.
    if ahead.at.is_null() {
        for p in 0..part {
            for s in 0..S {
                let q = s * part + p;
                step::<M>(
                    a.add(q * MR),
                    b.add(q * NR),
                    &mut lo_sets[s],
                    &mut hi_sets[s],
                );
            }
        }
    } else {
        for p in 0..part {
            for s in 0..S {
                let q = s * part + p;
                let next = ahead.at.wrapping_add(q * ahead.step) as *const i8;
                _mm_prefetch::<_MM_HINT_T1>(next);
                _mm_prefetch::<_MM_HINT_T1>(next.wrapping_add(64));
                step::<M>(
                    a.add(q * MR),
                    b.add(q * NR),
                    &mut lo_sets[s],
                    &mut hi_sets[s],
                );
            }
        }
    }
    for q in S * part..kc {
        step::<M>(
            a.add(q * MR),
            b.add(q * NR),
            &mut lo_sets[S - 1],
            &mut hi_sets[S - 1],
        );
    }
    let (mut lo, mut hi) = (lo_sets[0], hi_sets[0]);
    for s in 1..S {
        for i in 0..M {
            lo[i] = _mm512_add_ps(lo[i], lo_sets[s][i]);
            hi[i] = _mm512_add_ps(hi[i], hi_sets[s][i]);
        }
    }
    let (m0, m1) = (lanes(cols), lanes(cols.saturating_sub(16)));
    let bias = match start {
        Start::Bias(b) => Some((
            _mm512_maskz_loadu_ps(m0, b),
            _mm512_maskz_loadu_ps(m1, b.wrapping_add(16)),
        )),
        Start::Zero | Start::Sums => None,
    };
    for i in 0..M {
        let ci = c.add(i * ldc);
        let (mut v0, mut v1) = (lo[i], hi[i]);
        if let Start::Sums = start {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, ci));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, ci.add(16)));
        } else if let Some((b0, b1)) = bias {
            v0 = _mm512_add_ps(v0, b0);
            v1 = _mm512_add_ps(v1, b1);
        }
        _mm512_mask_storeu_ps(ci, m0, v0);
        _mm512_mask_storeu_ps(ci.add(16), m1, v1);
    }
}

/// One input of a tile: `M` rows of `a` times the 32 outputs of `b`.
#[inline(always)]
unsafe fn step<const M: usize>(
    a: *const f32,
    b: *const f32,
    lo: &mut [__m512; M],
    hi: &mut [__m512; M],
) {
    let b0 = _mm512_loadu_ps(b);
    let b1 = _mm512_loadu_ps(b.add(16));
    for i in 0..M {
        let ai = _mm512_set1_ps(*a.add(i));
        lo[i] = _mm512_fmadd_ps(ai, b0, lo[i]);
        hi[i] = _mm512_fmadd_ps(ai, b1, hi[i]);
    }
}

/// Lays out `lanes` (at most `width`) rows of `inputs` floats from `m` as a
/// panel `[input][width]` at `dst`, with zeros in the lanes past them: a
/// panel of `W`'s outputs ([`NR`] wide) or of `x`'s rows ([`MR`] wide).
///
/// # Safety
/// [`available`] holds; `m` holds `lanes × inputs` floats, `dst` has room
/// for `inputs × width`, and nothing else writes there meanwhile.
pub unsafe fn transpose_into_panel(
    m: *const f32,
    lanes_: usize,
    inputs: usize,
    width: usize,
    dst: *mut f32,
) {
    if wide() {
        transpose_into_panel_wide(m, lanes_, inputs, width, dst)
    } else {
        super::avx2::transpose_into_panel(m, lanes_, inputs, width, dst)
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn transpose_into_panel_wide(
    m: *const f32,
    lanes_: usize,
    inputs: usize,
    width: usize,
    dst: *mut f32,
) {
    for first in (0..width).step_by(16) {
        let rows = lanes_.saturating_sub(first).min(16);
        let store = lanes(width - first);
        for k0 in (0..inputs).step_by(16) {
            let kv = (inputs - k0).min(16);
            let mask = lanes(kv);
            let mut r = [_mm512_setzero_ps(); 16];
            for (i, ri) in r.iter_mut().enumerate() {
                if i < rows {
                    *ri = _mm512_maskz_loadu_ps(mask, m.add((first + i) * inputs + k0));
                }
            }
            let t = transpose16(r);
            for (q, tq) in t.iter().enumerate().take(kv) {
                _mm512_mask_storeu_ps(dst.add((k0 + q) * width + first), store, *tq);
            }
        }
    }
}

/// Rows become columns: lane `i` of output `q` is lane `q` of input `i`.
#[inline(always)]
unsafe fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    // Pairs of rows interleaved by 32 bits, then by 64 bits: each 128-bit
    // lane then holds one column of four rows.
    let mut t = [_mm512_setzero_ps(); 16];
    for j in 0..8 {
        t[2 * j] = _mm512_unpacklo_ps(r[2 * j], r[2 * j + 1]);
        t[2 * j + 1] = _mm512_unpackhi_ps(r[2 * j], r[2 * j + 1]);
    }
    let mut u = [_mm512_setzero_ps(); 16];
    for g in 0..4 {
        let (a0, a1, a2, a3) = (t[4 * g], t[4 * g + 1], t[4 * g + 2], t[4 * g + 3]);
        let pd = _mm512_castps_pd;
        let ps = _mm512_castpd_ps;
        u[4 * g] = ps(_mm512_unpacklo_pd(pd(a0), pd(a2)));
        u[4 * g + 1] = ps(_mm512_unpackhi_pd(pd(a0), pd(a2)));
        u[4 * g + 2] = ps(_mm512_unpacklo_pd(pd(a1), pd(a3)));
        u[4 * g + 3] = ps(_mm512_unpackhi_pd(pd(a1), pd(a3)));
    }
    // u[4g + j], 128-bit lane l: column 4l + j of rows 4g..4g+4. Gather
    // the four row groups' lanes of each column.
    let mut out = [_mm512_setzero_ps(); 16];
    for j in 0..4 {
        let x0 = _mm512_shuffle_f32x4::<0x88>(u[j], u[4 + j]);
        let x1 = _mm512_shuffle_f32x4::<0xdd>(u[j], u[4 + j]);
        let y0 = _mm512_shuffle_f32x4::<0x88>(u[8 + j], u[12 + j]);
        let y1 = _mm512_shuffle_f32x4::<0xdd>(u[8 + j], u[12 + j]);
        out[j] = _mm512_shuffle_f32x4::<0x88>(x0, y0);
        out[8 + j] = _mm512_shuffle_f32x4::<0xdd>(x0, y0);
        out[4 + j] = _mm512_shuffle_f32x4::<0x88>(x1, y1);
        out[12 + j] = _mm512_shuffle_f32x4::<0xdd>(x1, y1);
    }
    out
}
