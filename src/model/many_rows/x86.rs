//! The AVX-512 parts: the 12×32 tile and the 16×16 transposes that lay `W`
//! out in panels.

use std::arch::x86_64::*;

use super::{MR, NR};

pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// Mask of the first `n` (at most 16) lanes.
fn lanes(n: usize) -> __mmask16 {
    if n >= 16 {
        0xFFFF
    } else {
        (1u16 << n) - 1
    }
}

/// Adds (or, unless `accumulate`, writes) to `c` (`rows` × `cols` of a
/// matrix `ldc` floats wide) the product of an `MR`-row panel `a` and an
/// `NR`-output panel `b` over `kc` inputs.
///
/// # Safety
/// [`available`] holds; `a` holds `kc × MR` floats, `b` `kc × NR`, and `c`
/// has `rows ≤ MR` rows of `cols ≤ NR` floats.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn tile(
    a: *const f32,
    b: *const f32,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    accumulate: bool,
) {
    let mut lo = [_mm512_setzero_ps(); MR];
    let mut hi = [_mm512_setzero_ps(); MR];
    for p in 0..kc {
        let b0 = _mm512_loadu_ps(b.add(p * NR));
        let b1 = _mm512_loadu_ps(b.add(p * NR + 16));
        let ap = a.add(p * MR);
        for i in 0..MR {
            let ai = _mm512_set1_ps(*ap.add(i));
            lo[i] = _mm512_fmadd_ps(ai, b0, lo[i]);
            hi[i] = _mm512_fmadd_ps(ai, b1, hi[i]);
        }
    }
    let (m0, m1) = (lanes(cols), lanes(cols.saturating_sub(16)));
    // Constant indices keep the sums in registers; `rows` only guards.
    for i in 0..MR {
        if i < rows {
            let ci = c.add(i * ldc);
            let (mut v0, mut v1) = (lo[i], hi[i]);
            if accumulate {
                v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, ci));
                v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, ci.add(16)));
            }
            _mm512_mask_storeu_ps(ci, m0, v0);
            _mm512_mask_storeu_ps(ci.add(16), m1, v1);
        }
    }
}

/// Lays out `lanes` (at most `NR`) rows of `inputs` floats from `w` as a
/// panel `[input][NR]` at `dst`, with zeros in the lanes past them.
///
/// # Safety
/// [`available`] holds; `w` holds `lanes × inputs` floats, `dst` has room
/// for `inputs × NR`.
#[target_feature(enable = "avx512f")]
pub unsafe fn transpose_into_panel(w: *const f32, lanes_: usize, inputs: usize, dst: *mut f32) {
    for half in 0..NR / 16 {
        let first = half * 16;
        let rows = lanes_.saturating_sub(first).min(16);
        for k0 in (0..inputs).step_by(16) {
            let kv = (inputs - k0).min(16);
            let mask = lanes(kv);
            let mut r = [_mm512_setzero_ps(); 16];
            for (i, ri) in r.iter_mut().enumerate() {
                if i < rows {
                    *ri = _mm512_maskz_loadu_ps(mask, w.add((first + i) * inputs + k0));
                }
            }
            let t = transpose16(r);
            for (q, tq) in t.iter().enumerate().take(kv) {
                _mm512_storeu_ps(dst.add((k0 + q) * NR + first), *tq);
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
