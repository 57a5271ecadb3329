//! Attention in f32 on a CPU with AVX-512 or AVX2, one head at a time on each
//! thread: a head's scores for its queries (768 × 768 floats for a 448×336
//! image) stay in cache between the product that makes them, the softmax
//! and the product with the values. Done for all heads at once, the score
//! tensor (16 × 768 × 768 floats) went through memory three times in every
//! layer and was a fresh allocation each time; that took three times as
//! long as torch's attention. The sums are the general path's, up to the
//! order of additions inside the products.

use std::cell::RefCell;

use candle_core::{DType, Device, Result, Storage, Tensor};

use super::{Scaling, Visibility};
use crate::model::disjoint::DisjointWrites;
use crate::model::many_rows::{self, Matrix, Threads};
use crate::model::softmax::softmax_in_place;

/// Fewer queries (decoding) stay on the general path: copying a head's keys
/// into the kernel's panels would cost more than the product.
const MIN_QUERIES: usize = 16;
/// Most scores a thread holds at once: query rows of a head are taken in
/// blocks of at most this many scores (4 MB).
const MAX_SCORES_PER_THREAD: usize = 1 << 20;

thread_local! {
    /// A thread's score block and its output block transposed, kept from
    /// layer to layer.
    static SCORES: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// `softmax(q kᵀ · s + mask) v` as [`super::attention`] defines it, or
/// `None` where this path does not apply (another device or dtype, a CPU
/// without AVX-512 or AVX2, a handful of queries).
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: Scaling,
    visibility: Visibility,
) -> Result<Option<Tensor>> {
    let (b, heads, l, d) = q.dims4()?;
    let (kv_heads, t) = (k.dim(1)?, k.dim(2)?);
    let applies = matches!(q.device(), Device::Cpu)
        && [q, k, v].iter().all(|x| x.dtype() == DType::F32)
        && l >= MIN_QUERIES
        && t > 0
        && d > 0
        && heads % kv_heads == 0
        && many_rows::available();
    if !applies {
        return Ok(None);
    }
    let q = match scale {
        Scaling::Queries(s) => (q * s)?,
        Scaling::Scores(_) => q.contiguous()?,
    };
    let score_scale = match scale {
        Scaling::Scores(s) => Some(s),
        Scaling::Queries(_) => None,
    };
    let (k, v) = (k.contiguous()?, v.contiguous()?);
    let (qg, ql) = q.storage_and_layout();
    let (kg, kl) = k.storage_and_layout();
    let (vg, vl) = v.storage_and_layout();
    let (Storage::Cpu(qc), Storage::Cpu(kc), Storage::Cpu(vc)) = (&*qg, &*kg, &*vg) else {
        return Ok(None);
    };
    let qs = &qc.as_slice::<f32>()?[ql.start_offset()..][..q.elem_count()];
    let ks = &kc.as_slice::<f32>()?[kl.start_offset()..][..k.elem_count()];
    let vs = &vc.as_slice::<f32>()?[vl.start_offset()..][..v.elem_count()];

    let rows_per_block = (MAX_SCORES_PER_THREAD / t).clamp(1, l);
    let blocks = l.div_ceil(rows_per_block);
    let group = heads / kv_heads;
    let mut out = vec![0f32; b * heads * l * d];
    // Each (head, block) writes its own rows.
    let target = DisjointWrites::new(out.as_mut_ptr());
    candle_core::utils::barrier_pool().execute_chunked(b * heads * blocks, |items| {
        for item in items {
            let (head, block) = (item / blocks, item % blocks);
            let kv = (head / heads) * kv_heads + (head % heads) / group;
            let first = block * rows_per_block;
            let rows = rows_per_block.min(l - first);
            let queries = &qs[(head * l + first) * d..][..rows * d];
            let keys = &ks[kv * t * d..][..t * d];
            let values = &vs[kv * t * d..][..t * d];
            SCORES.with(|buffers| {
                let mut buffers = buffers.borrow_mut();
                let (scores, transposed) = &mut *buffers;
                if scores.len() < rows * t {
                    scores.resize(rows * t, 0.0);
                }
                if transposed.len() < rows * d {
                    transposed.resize(rows * d, 0.0);
                }
                let p = &mut scores[..rows * t];
                let queries = Matrix::Rows(queries);
                many_rows::product(queries, rows, Matrix::Rows(keys), t, p, Threads::Caller);
                for (i, row) in p.chunks_mut(t).enumerate() {
                    if let Some(s) = score_scale {
                        let s = s as f32;
                        row.iter_mut().for_each(|x| *x *= s);
                    }
                    // A query sees the cached keys and the chunk up to itself.
                    let visible = match visibility {
                        Visibility::All => t,
                        Visibility::Causal { past } => (past + first + i + 1).min(t),
                    };
                    softmax_in_place(&mut row[..visible]);
                    row[visible..].fill(0.0);
                }
                // SAFETY: each (head, block) writes its own rows of `out`.
                let y = unsafe {
                    std::slice::from_raw_parts_mut(target.at((head * l + first) * d), rows * d)
                };
                let values = Matrix::Columns(values);
                if d % many_rows::OUTPUTS_PER_PANEL == 0 {
                    // A head size in whole panels of outputs (64 in Qwen3-VL's
                    // tower, 128 in the decoders): `p v` straight into `out`.
                    many_rows::product(Matrix::Rows(p), rows, values, d, y, Threads::Caller);
                } else {
                    // (p v)ᵀ = vᵀ pᵀ: the scores are then the operand laid
                    // out by 16×16 transposes, and the head size (80 in
                    // Qwen2-VL's tower) is the side rounded up to 12 rather
                    // than to 32.
                    let yt = &mut transposed[..rows * d];
                    many_rows::product(values, d, Matrix::Rows(p), rows, yt, Threads::Caller);
                    for (j, column) in yt.chunks(rows).enumerate() {
                        for (i, v) in column.iter().enumerate() {
                            y[i * d + j] = *v;
                        }
                    }
                }
            });
        }
    });
    drop((qg, kg, vg));
    Tensor::from_vec(out, (b, heads, l, d), &Device::Cpu).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::attention::in_row_blocks;
    use crate::model::test_util::{max_abs_diff, uniform};

    /// Values in [-2, 2), so that some scores are large.
    fn random(shape: (usize, usize, usize, usize), seed: u64) -> Tensor {
        (uniform(shape, seed) * 2.0).unwrap()
    }

    fn agree(q: &Tensor, k: &Tensor, v: &Tensor, scale: Scaling, vis: Visibility) {
        let fused = attention(q, k, v, scale, vis)
            .unwrap()
            .expect("the path applies");
        let general = in_row_blocks(q, k, v, scale, vis, usize::MAX).unwrap();
        assert_eq!(fused.dims(), general.dims());
        let d = max_abs_diff(&fused, &general);
        assert!(d < 2e-6, "{:?} {scale:?} {vis:?}: differs by {d}", q.dims());
    }

    #[test]
    fn heads_one_at_a_time_give_what_all_at_once_give() {
        if !many_rows::available() {
            return;
        }
        // A vision-like case (every key), a causal prompt after cached
        // positions with shared kv heads, a batch of two, odd sizes.
        let cases = [
            ((1, 3, 40, 24), (1, 3, 40, 24), Visibility::All),
            (
                (1, 4, 37, 16),
                (1, 2, 45, 16),
                Visibility::Causal { past: 8 },
            ),
            ((2, 2, 16, 8), (2, 2, 16, 8), Visibility::Causal { past: 0 }),
            ((1, 2, 19, 40), (1, 1, 19, 40), Visibility::All),
            // Head sizes in whole panels, which multiply `p v` directly.
            ((1, 2, 40, 64), (1, 2, 40, 64), Visibility::All),
            (
                (1, 4, 30, 32),
                (1, 2, 37, 32),
                Visibility::Causal { past: 7 },
            ),
        ];
        for (i, (qs, ks, vis)) in cases.into_iter().enumerate() {
            let seed = 10 * i as u64;
            let (q, k, v) = (random(qs, seed), random(ks, seed + 1), random(ks, seed + 2));
            for scale in [Scaling::Scores(0.3), Scaling::Queries(0.3)] {
                agree(&q, &k, &v, scale, vis);
            }
        }
    }

    #[test]
    fn narrowed_views_and_long_rows_in_blocks() {
        if !many_rows::available() {
            return;
        }
        // A segment of a longer sequence (the vision tower's windows).
        let [q, k, v] = [1, 2, 3].map(|s| random((1, 2, 80, 8), s));
        let part = |t: &Tensor| t.narrow(2, 20, 50).unwrap();
        agree(
            &part(&q),
            &part(&k),
            &part(&v),
            Scaling::Queries(0.5),
            Visibility::All,
        );
        // 3000 keys: a thread takes the 400 queries in blocks of 349 rows.
        let q = random((1, 1, 400, 4), 4);
        let [k, v] = [5, 6].map(|s| random((1, 1, 3000, 4), s));
        agree(
            &q,
            &k,
            &v,
            Scaling::Scores(0.5),
            Visibility::Causal { past: 2600 },
        );
    }

    #[test]
    fn a_handful_of_queries_takes_the_general_path() {
        let q = random((1, 2, MIN_QUERIES - 1, 8), 1);
        let k = random((1, 2, 30, 8), 2);
        let out = attention(&q, &k, &k, Scaling::Scores(1.0), Visibility::All).unwrap();
        assert!(out.is_none());
    }
}
