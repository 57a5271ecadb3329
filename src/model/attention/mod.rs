//! Scaled dot-product attention for the decoder and the vision towers, run in
//! blocks of query rows so that the score matrix of a long prompt or a large
//! image stays within a fixed budget. Rows of a softmax are independent, so
//! the blocks compute exactly what one pass over all rows would.

mod by_heads;

use candle_core::{DType, Device, Result, Tensor};

/// Most score elements (batch × heads × query rows × keys) held at once, in the
/// decoder and in the vision tower: 64 Mi, i.e. 256 MiB in f32 plus the same
/// count in the model dtype. A 1920 px image (~10k patches) would otherwise
/// hold gigabytes of scores per layer.
pub const MAX_SCORES: usize = 1 << 26;

/// Which keys each query may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Every key (vision attention within one image or window).
    All,
    /// Decoder: the `past` cached keys and the chunk's keys up to the query itself.
    Causal { past: usize },
}

/// Where the softmax scale `1/√d` multiplies; the two agree up to rounding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scaling {
    /// `(q kᵀ) · s`, the order of the transformers reference (the decoder).
    Scores(f64),
    /// `(q · s) kᵀ`: L·d multiplications instead of L·T, which pays where
    /// thousands of patches attend to each other (the vision tower).
    Queries(f64),
}

/// Query rows per block so that `heads` rows of scores over `keys` keys each
/// stay within `max_scores`; at least one.
pub fn rows_per_block(max_scores: usize, heads: usize, keys: usize) -> usize {
    (max_scores / (heads * keys).max(1)).max(1)
}

/// `softmax(q kᵀ · s + mask) v` for `q` `(b, heads, L, d)` and `k`, `v`
/// `(b, kv_heads, T, d)` (grouped-query attention when there are fewer kv
/// heads); the softmax runs in f32 and the result, `(b, heads, L, d)`, is in
/// `v`'s dtype. The inputs may be narrowed views (the vision tower's segments).
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: Scaling,
    visibility: Visibility,
    max_scores: usize,
) -> Result<Tensor> {
    match by_heads::attention(q, k, v, scale, visibility)? {
        Some(out) => Ok(out),
        None => in_row_blocks(q, k, v, scale, visibility, max_scores),
    }
}

/// [`attention`] for every device and dtype: all heads at once, in blocks
/// of query rows within `max_scores`.
fn in_row_blocks(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: Scaling,
    visibility: Visibility,
    max_scores: usize,
) -> Result<Tensor> {
    let (b, heads, l, d) = q.dims4()?;
    let (kv_heads, t) = (k.dim(1)?, k.dim(2)?);
    // No copy of the keys and values per query head: the query heads sharing
    // a kv head are stacked along the rows of one product. Without sharing,
    // the extra axis is a view, so a narrowed `q` is not copied here.
    let q = if kv_heads == heads {
        q.unsqueeze(2)?
    } else {
        q.reshape((b, kv_heads, heads / kv_heads, l, d))?
    };
    let rows = rows_per_block(max_scores, b * heads, t);
    if rows >= l {
        return block(&q, k, v, scale, visibility, 0, l)?.reshape((b, heads, l, d));
    }
    let mut outs = Vec::with_capacity(l.div_ceil(rows));
    for start in (0..l).step_by(rows) {
        let n = rows.min(l - start);
        outs.push(block(
            &q.narrow(3, start, n)?,
            k,
            v,
            scale,
            visibility,
            start,
            l,
        )?);
    }
    Tensor::cat(&outs, 3)?.reshape((b, heads, l, d))
}

/// Query rows `first..first + n` of a chunk of `l` queries, `q` being
/// `(b, kv_heads, n_rep, n, d)`; the result has the same shape.
fn block(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: Scaling,
    visibility: Visibility,
    first: usize,
    l: usize,
) -> Result<Tensor> {
    let (b, kv_heads, n_rep, n, d) = q.dims5()?;
    let t = k.dim(2)?;
    let mut att = match scale {
        Scaling::Scores(s) => {
            let q = q.contiguous()?.reshape((b, kv_heads, n_rep * n, d))?;
            (q.matmul(&k.t()?)? * s)?
        }
        // The scaled copy is the contiguous one the product needs anyway.
        Scaling::Queries(s) => (q * s)?
            .reshape((b, kv_heads, n_rep * n, d))?
            .matmul(&k.t()?)?,
    };
    if let Visibility::Causal { past } = visibility {
        if l > 1 {
            let mask = causal_mask(first, n, past, l, att.dtype(), att.device())?;
            att = att
                .reshape((b, kv_heads, n_rep, n, t))?
                .broadcast_add(&mask)?
                .reshape((b, kv_heads, n_rep * n, t))?;
        }
    }
    let att = super::softmax::softmax_last_dim(&att.to_dtype(DType::F32)?)?.to_dtype(v.dtype())?;
    att.matmul(v)?.reshape((b, kv_heads, n_rep, n, d))
}

/// Additive mask `(n, past + l)` for query rows `first..first + n` of a chunk of
/// `l` new positions: a query sees everything cached and the chunk up to itself.
/// Built on the device, so nothing crosses the bus per layer.
fn causal_mask(
    first: usize,
    n: usize,
    past: usize,
    l: usize,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let total = past + l;
    let query = Tensor::arange((past + first) as u32, (past + first + n) as u32, device)?
        .reshape((n, 1))?;
    let key = Tensor::arange(0u32, total as u32, device)?.reshape((1, total))?;
    let hidden = key.broadcast_gt(&query)?;
    let blocked = Tensor::full(f32::NEG_INFINITY, (n, total), device)?.to_dtype(dtype)?;
    let open = Tensor::zeros((n, total), dtype, device)?;
    hidden.where_cond(&blocked, &open)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_util::{max_abs_diff, uniform as random};

    #[test]
    fn large_images_attend_in_row_blocks() {
        // 1920×1080 at patch 14: ~10.5k patches, 16 heads.
        let rows = rows_per_block(MAX_SCORES, 16, 10_488);
        assert!(rows < 10_488 && rows * 16 * 10_488 <= MAX_SCORES);
        assert_eq!(rows_per_block(1000, 2, 64), 7);
        assert_eq!(rows_per_block(10, 2, 64), 1);
    }

    #[test]
    fn blocks_of_rows_give_the_same_result_as_one_pass() {
        let q = random((1, 3, 10, 8), 1);
        let k = random((1, 3, 14, 8), 2);
        let v = random((1, 3, 14, 8), 3);
        for vis in [Visibility::All, Visibility::Causal { past: 4 }] {
            for scale in [Scaling::Scores(0.35), Scaling::Queries(0.35)] {
                let whole = attention(&q, &k, &v, scale, vis, usize::MAX).unwrap();
                // 3 heads × 14 keys × 3 rows per block: blocks of 3, 3, 3 and 1 rows.
                let blocked = attention(&q, &k, &v, scale, vis, 3 * 14 * 3).unwrap();
                assert_eq!(blocked.dims(), [1, 3, 10, 8]);
                let d = max_abs_diff(&whole, &blocked);
                assert!(d < 1e-6, "{vis:?} {scale:?}: blocks differ by {d}");
            }
        }
        // Where the scale goes changes only the rounding.
        let scores = attention(&q, &k, &v, Scaling::Scores(0.35), Visibility::All, 42).unwrap();
        let queries = attention(&q, &k, &v, Scaling::Queries(0.35), Visibility::All, 42).unwrap();
        assert!(max_abs_diff(&scores, &queries) < 1e-6);
    }

    #[test]
    fn segments_narrowed_from_a_longer_sequence_attend_only_to_themselves() {
        // The vision tower's way: one image (or window), rows 4..11 of 16.
        let [q, k, v] = [21, 22, 23].map(|seed| random((1, 2, 16, 8), seed));
        let part = |t: &Tensor| t.narrow(2, 4, 7).unwrap();
        let copy = |t: &Tensor| part(t).contiguous().unwrap();
        let run = |q: &Tensor, k: &Tensor, v: &Tensor, budget: usize| {
            attention(q, k, v, Scaling::Queries(0.4), Visibility::All, budget).unwrap()
        };
        let whole = run(&copy(&q), &copy(&k), &copy(&v), usize::MAX);
        for budget in [usize::MAX, 2 * 7 * 3] {
            let views = run(&part(&q), &part(&k), &part(&v), budget);
            assert_eq!(views.dims(), [1, 2, 7, 8]);
            assert!(max_abs_diff(&whole, &views) < 1e-6, "budget {budget}");
        }
    }

    #[test]
    fn shared_kv_heads_give_what_repeated_ones_give() {
        // 4 query heads over 2 kv heads: the same as repeating each kv head twice.
        let q = random((1, 4, 6, 8), 11);
        let k = random((1, 2, 9, 8), 12);
        let v = random((1, 2, 9, 8), 13);
        let repeat = |t: &Tensor| {
            let (b, h, n, d) = t.dims4().unwrap();
            t.unsqueeze(2)
                .unwrap()
                .expand((b, h, 2, n, d))
                .unwrap()
                .reshape((b, h * 2, n, d))
                .unwrap()
        };
        let causal = Visibility::Causal { past: 3 };
        for budget in [usize::MAX, 4 * 9 * 2] {
            let scale = Scaling::Scores(0.3);
            let shared = attention(&q, &k, &v, scale, causal, budget).unwrap();
            let repeated = attention(&q, &repeat(&k), &repeat(&v), scale, causal, budget).unwrap();
            assert!(max_abs_diff(&shared, &repeated) < 1e-6, "budget {budget}");
        }
    }

    #[test]
    fn the_mask_hides_exactly_the_later_keys() {
        // Rows 1..3 of a 3-token chunk after 2 cached positions.
        let m: Vec<Vec<f32>> = causal_mask(1, 2, 2, 3, DType::F32, &Device::Cpu)
            .unwrap()
            .to_vec2()
            .unwrap();
        let inf = f32::NEG_INFINITY;
        assert_eq!(m, [[0.0, 0.0, 0.0, 0.0, inf], [0.0, 0.0, 0.0, 0.0, 0.0]]);
    }

    #[test]
    fn a_causal_query_ignores_later_keys() {
        // Two new positions after 2 cached ones: the first new query must not
        // see the last key, so changing that key's value leaves its row alone.
        let q = random((1, 1, 2, 4), 5);
        let k = random((1, 1, 4, 4), 6);
        let v = random((1, 1, 4, 4), 7);
        let v2 = v
            .slice_assign(
                &[0..1, 0..1, 3..4, 0..4],
                &Tensor::ones((1, 1, 1, 4), DType::F32, &Device::Cpu).unwrap(),
            )
            .unwrap();
        let causal = Visibility::Causal { past: 2 };
        let a = attention(&q, &k, &v, Scaling::Scores(0.5), causal, 2).unwrap();
        let b = attention(&q, &k, &v2, Scaling::Scores(0.5), causal, 2).unwrap();
        let row = |t: &Tensor, i| t.narrow(2, i, 1).unwrap();
        assert_eq!(max_abs_diff(&row(&a, 0), &row(&b, 0)), 0.0);
        assert!(max_abs_diff(&row(&a, 1), &row(&b, 1)) > 0.0);
    }
}
