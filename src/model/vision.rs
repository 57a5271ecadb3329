//! Vision towers of the three families: patch embedding, 2-D rotary attention
//! restricted to each image (or to windows, Qwen2.5-VL), the patch merger, and
//! Qwen3-VL's learned position table and DeepStack taps.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{layer_norm, LayerNorm, RmsNorm, VarBuilder};

use super::attention::{attention, Scaling, Visibility, MAX_SCORES};
use super::config::{Family, VisionAct, VisionConfig};
use super::linear::{Linear, Quantiser};
use super::rope::{vision_tables, RopeTables};
use super::rope_index::Grid;
use super::sigmoid_gelu::{gelu, gelu_in_place, Gelu};
use super::window::{window_partition, WindowPartition};

const VISION_NORM_EPS: f64 = 1e-6;

/// Merged image tokens of all images, in prompt order, plus Qwen3-VL's
/// DeepStack features (same rows, one tensor per tapped layer).
#[derive(Clone)]
pub struct VisionOutput {
    pub embeds: Tensor,
    pub deepstack: Vec<Tensor>,
}

enum Norm {
    Layer(LayerNorm),
    Rms(RmsNorm),
}

impl Norm {
    fn load(family: Family, dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(match family {
            Family::Qwen25Vl => Norm::Rms(candle_nn::rms_norm(dim, VISION_NORM_EPS, vb)?),
            _ => Norm::Layer(layer_norm(dim, VISION_NORM_EPS, vb)?),
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Norm::Layer(n) => n.forward(x),
            Norm::Rms(n) => n.forward(x),
        }
    }
}

fn activate(x: &Tensor, act: VisionAct) -> Result<Tensor> {
    match act {
        VisionAct::QuickGelu => gelu(x, Gelu::Quick),
        VisionAct::Silu => x.silu(),
        VisionAct::GeluTanh => gelu(x, Gelu::Tanh),
        VisionAct::GeluErf => x.gelu_erf(),
    }
}

/// `act(fc1(x))`: activated as the product is made where `fc1` is in
/// panels and the activation has a form that works in place, which saves
/// a pass over the tower's widest activations; else after it.
fn activated(fc1: &Linear, x: &Tensor, act: VisionAct) -> Result<Tensor> {
    let kind = match act {
        VisionAct::QuickGelu => Some(Gelu::Quick),
        VisionAct::GeluTanh => Some(Gelu::Tanh),
        VisionAct::Silu | VisionAct::GeluErf => None,
    };
    if let Some(kind) = kind {
        if let Some(y) = fc1.forward_then(x, &|part: &mut [f32]| gelu_in_place(part, kind))? {
            return Ok(y);
        }
    }
    activate(&fc1.forward(x)?, act)
}

enum Mlp {
    /// fc1 → activation → fc2 (Qwen2-VL, Qwen3-VL).
    Plain {
        fc1: Linear,
        fc2: Linear,
        act: VisionAct,
    },
    /// down(act(gate) ⊙ up), all with bias (Qwen2.5-VL).
    Gated {
        gate: Linear,
        up: Linear,
        down: Linear,
        act: VisionAct,
    },
}

impl Mlp {
    fn load(family: Family, cfg: &VisionConfig, vb: VarBuilder, q: &Quantiser) -> Result<Self> {
        let (d, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(match family {
            Family::Qwen2Vl => Mlp::Plain {
                fc1: Linear::load(d, i, true, vb.pp("fc1"), q)?,
                fc2: Linear::load(i, d, true, vb.pp("fc2"), q)?,
                act: cfg.hidden_act,
            },
            Family::Qwen25Vl => Mlp::Gated {
                gate: Linear::load(d, i, true, vb.pp("gate_proj"), q)?,
                up: Linear::load(d, i, true, vb.pp("up_proj"), q)?,
                down: Linear::load(i, d, true, vb.pp("down_proj"), q)?,
                act: cfg.hidden_act,
            },
            Family::Qwen3Vl | Family::Qwen35 | Family::Qwen3VlMoe | Family::Qwen35Moe => {
                Mlp::Plain {
                    fc1: Linear::load(d, i, true, vb.pp("linear_fc1"), q)?,
                    fc2: Linear::load(i, d, true, vb.pp("linear_fc2"), q)?,
                    act: cfg.hidden_act,
                }
            }
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Mlp::Plain { fc1, fc2, act } => fc2.forward(&activated(fc1, x, *act)?),
            Mlp::Gated {
                gate,
                up,
                down,
                act,
            } => {
                let g = activate(&gate.forward(x)?, *act)?;
                down.forward(&(g * up.forward(x)?)?)
            }
        }
    }
}

struct Block {
    norm1: Norm,
    norm2: Norm,
    qkv: Linear,
    proj: Linear,
    mlp: Mlp,
    num_heads: usize,
    head_dim: usize,
}

impl Block {
    fn load(family: Family, cfg: &VisionConfig, vb: VarBuilder, q: &Quantiser) -> Result<Self> {
        let d = cfg.hidden_size;
        Ok(Block {
            norm1: Norm::load(family, d, vb.pp("norm1"))?,
            norm2: Norm::load(family, d, vb.pp("norm2"))?,
            qkv: Linear::load(d, 3 * d, true, vb.pp("attn.qkv"), q)?,
            proj: Linear::load(d, d, true, vb.pp("attn.proj"), q)?,
            mlp: Mlp::load(family, cfg, vb.pp("mlp"), q)?,
            num_heads: cfg.num_heads,
            head_dim: cfg.head_dim(),
        })
    }

    fn forward(
        &self,
        h: &Tensor,
        rope: &RopeTables,
        segments: &[(usize, usize)],
        max_scores: usize,
    ) -> Result<Tensor> {
        let a = self.attention(&self.norm1.forward(h)?, rope, segments, max_scores)?;
        let h = (h + a)?;
        let m = self.mlp.forward(&self.norm2.forward(&h)?)?;
        h + m
    }

    /// Attention within each `(start, len)` segment of the rows: one image
    /// (frame) or one window sees only itself.
    fn attention(
        &self,
        x: &Tensor,
        rope: &RopeTables,
        segments: &[(usize, usize)],
        max_scores: usize,
    ) -> Result<Tensor> {
        let (n, d) = x.dims2()?;
        let qkv = self.qkv.forward(x)?;
        let [q, k, v] = heads_rotated(&qkv, self.num_heads, self.head_dim, rope)?;
        let scale = Scaling::Queries(1.0 / (self.head_dim as f64).sqrt());
        let outs = segments
            .iter()
            .map(|&(start, len)| {
                let part = |t: &Tensor| t.narrow(2, start, len);
                attention(
                    &part(&q)?,
                    &part(&k)?,
                    &part(&v)?,
                    scale,
                    Visibility::All,
                    max_scores,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let out = Tensor::cat(&outs, 2)?; // (1, heads, N, head_dim)
        let out = out.squeeze(0)?.transpose(0, 1)?.reshape((n, d))?;
        self.proj.forward(&out)
    }
}

/// q, k and v of a fused projection `qkv` `(N, 3 · heads · head_dim)`,
/// each `(1, heads, N, head_dim)`, q and k turned by `rope`. The rotation
/// runs in f32 whatever the model dtype, as in the reference.
fn heads_rotated(
    qkv: &Tensor,
    heads: usize,
    head_dim: usize,
    rope: &RopeTables,
) -> Result<[Tensor; 3]> {
    if let Some(parts) = heads_rotated_in_one_pass(qkv, heads, head_dim, rope)? {
        return Ok(parts);
    }
    let n = qkv.dim(0)?;
    let dtype = qkv.dtype();
    let qkv = qkv
        .reshape((n, 3, heads, head_dim))?
        .permute((1, 2, 0, 3))?; // (3, heads, N, head_dim)
    let take = |i: usize| -> Result<Tensor> { qkv.get(i)?.unsqueeze(0)?.contiguous() };
    let rotate = |t: Tensor| -> Result<Tensor> {
        candle_nn::rotary_emb::rope(&t.to_dtype(DType::F32)?, &rope.cos, &rope.sin)?.to_dtype(dtype)
    };
    Ok([rotate(take(0)?)?, rotate(take(1)?)?, take(2)?])
}

/// [`heads_rotated`] for f32 on the CPU: one pass from the projection's
/// rows to the three parts, rotating on the way, with candle's rotation
/// arithmetic. The general route copied each part out of the projection,
/// then rotated q and k into fresh tensors: five passes, which took as long
/// as the attention's output projection. `None` elsewhere.
fn heads_rotated_in_one_pass(
    qkv: &Tensor,
    heads: usize,
    head_dim: usize,
    rope: &RopeTables,
) -> Result<Option<[Tensor; 3]>> {
    use candle_core::Storage;
    use rayon::prelude::*;

    let all_f32 = [qkv, &rope.cos, &rope.sin]
        .iter()
        .all(|t| t.dtype() == DType::F32 && t.device().is_cpu());
    if !all_f32 || !head_dim.is_multiple_of(2) {
        return Ok(None);
    }
    let (n, width) = qkv.dims2()?;
    let half = head_dim / 2;
    if width != 3 * heads * head_dim || rope.cos.dims() != [n, half] {
        candle_core::bail!("qkv is {n}×{width}, rope {:?}", rope.cos.dims());
    }
    let (qkv, cos, sin) = (
        qkv.contiguous()?,
        rope.cos.contiguous()?,
        rope.sin.contiguous()?,
    );
    let slice = |t: &Tensor| -> Result<Vec<f32>> { t.flatten_all()?.to_vec1::<f32>() };
    let (cos, sin) = (slice(&cos)?, slice(&sin)?);
    let (storage, layout) = qkv.storage_and_layout();
    let (Storage::Cpu(cpu), Some((start, end))) = (&*storage, layout.contiguous_offsets()) else {
        return Ok(None);
    };
    let src = &cpu.as_slice::<f32>()?[start..end];
    let mut out = vec![0f32; 3 * heads * n * head_dim];
    // One task per part and head: its rows are contiguous in the output.
    out.par_chunks_mut(n * head_dim)
        .enumerate()
        .for_each(|(part_head, dst)| {
            let rotated = part_head < 2 * heads;
            for (t, o) in dst.chunks_exact_mut(head_dim).enumerate() {
                let s = &src[t * width + part_head * head_dim..][..head_dim];
                if !rotated {
                    o.copy_from_slice(s);
                    continue;
                }
                let (c, si) = (&cos[t * half..][..half], &sin[t * half..][..half]);
                let (s1, s2) = s.split_at(half);
                let (o1, o2) = o.split_at_mut(half);
                for i in 0..half {
                    o1[i] = s1[i] * c[i] - s2[i] * si[i];
                    o2[i] = s1[i] * si[i] + s2[i] * c[i];
                }
            }
        });
    drop(storage);
    let parts = Tensor::from_vec(out, (3, 1, heads, n, head_dim), &candle_core::Device::Cpu)?;
    Ok(Some([parts.get(0)?, parts.get(1)?, parts.get(2)?]))
}

struct Merger {
    norm: Norm,
    fc1: Linear,
    fc2: Linear,
    /// Normalise after grouping 2×2 patches (Qwen3-VL DeepStack mergers).
    postshuffle: bool,
    group_dim: usize,
}

impl Merger {
    fn load(
        family: Family,
        cfg: &VisionConfig,
        postshuffle: bool,
        vb: VarBuilder,
        q: &Quantiser,
    ) -> Result<Self> {
        let d = cfg.hidden_size;
        let group_dim = d * cfg.spatial_merge_size * cfg.spatial_merge_size;
        let norm_dim = if postshuffle { group_dim } else { d };
        let (norm_name, fc1_name, fc2_name) = match family {
            Family::Qwen3Vl => ("norm", "linear_fc1", "linear_fc2"),
            _ => ("ln_q", "mlp.0", "mlp.2"),
        };
        Ok(Merger {
            norm: Norm::load(family, norm_dim, vb.pp(norm_name))?,
            fc1: Linear::load(group_dim, group_dim, true, vb.pp(fc1_name), q)?,
            fc2: Linear::load(group_dim, cfg.out_hidden_size, true, vb.pp(fc2_name), q)?,
            postshuffle,
            group_dim,
        })
    }

    fn forward(&self, h: &Tensor) -> Result<Tensor> {
        let x = if self.postshuffle {
            self.norm.forward(&h.reshape(((), self.group_dim))?)?
        } else {
            self.norm.forward(h)?.reshape(((), self.group_dim))?
        };
        self.fc2.forward(&self.fc1.forward(&x)?.gelu_erf()?)
    }
}

pub struct VisionTower {
    family: Family,
    cfg: VisionConfig,
    patch_weight: Tensor,
    patch_bias: Option<Tensor>,
    pos_embed: Option<Tensor>,
    blocks: Vec<Block>,
    merger: Merger,
    deepstack_mergers: Vec<Merger>,
    pub(crate) full_attention_everywhere: bool,
    /// Memory/speed trade-off of the per-image attention (see [`MAX_SCORES`]).
    pub(crate) max_scores: usize,
}

impl VisionTower {
    /// Loads the tower; its linear layers stored as `q` says.
    pub fn load(family: Family, cfg: &VisionConfig, vb: VarBuilder, q: &Quantiser) -> Result<Self> {
        let d = cfg.hidden_size;
        let (c, t, p) = (cfg.in_channels, cfg.temporal_patch_size, cfg.patch_size);
        // The Conv3d's stride equals its kernel, so it is one matrix product with
        // the kernel flattened in (channel, frame, row, column) order.
        let patch_weight = vb
            .get((d, c, t, p, p), "patch_embed.proj.weight")?
            .reshape((d, cfg.patch_dim()))?;
        let patch_bias = match family {
            Family::Qwen3Vl => Some(vb.get(d, "patch_embed.proj.bias")?),
            _ => None,
        };
        let pos_embed = match family {
            Family::Qwen3Vl => Some(vb.get((cfg.num_position_embeddings, d), "pos_embed.weight")?),
            _ => None,
        };
        let blocks = (0..cfg.depth)
            .map(|i| Block::load(family, cfg, vb.pp(format!("blocks.{i}")), q))
            .collect::<Result<Vec<_>>>()?;
        let merger = Merger::load(family, cfg, false, vb.pp("merger"), q)?;
        let deepstack_mergers = (0..cfg.deepstack_visual_indexes.len())
            .map(|k| {
                Merger::load(
                    family,
                    cfg,
                    true,
                    vb.pp(format!("deepstack_merger_list.{k}")),
                    q,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(VisionTower {
            family,
            cfg: cfg.clone(),
            patch_weight,
            patch_bias,
            pos_embed,
            blocks,
            merger,
            deepstack_mergers,
            full_attention_everywhere: false,
            max_scores: MAX_SCORES,
        })
    }

    pub fn dtype(&self) -> DType {
        self.patch_weight.dtype()
    }

    /// `pixel_values` `(rows, patch_dim)` for all images, rows in merge-block order;
    /// one grid per image.
    pub fn forward(&self, pixel_values: &Tensor, grids: &[Grid]) -> Result<VisionOutput> {
        let m = self.cfg.spatial_merge_size;
        let total: usize = grids.iter().map(|g| g[0] * g[1] * g[2]).sum();
        let (rows, cols) = pixel_values.dims2()?;
        if rows != total || cols != self.cfg.patch_dim() {
            candle_core::bail!(
                "pixel_values are {rows}×{cols} but the grids {grids:?} need {total}×{}",
                self.cfg.patch_dim()
            );
        }
        let x = pixel_values.to_dtype(self.dtype())?;
        let mut h = x.matmul(&self.patch_weight.t()?)?;
        if let Some(b) = &self.patch_bias {
            h = h.broadcast_add(b)?;
        }
        if let Some(table) = &self.pos_embed {
            h = (h + self.interpolated_positions(table, grids)?)?;
        }

        let coords = patch_coordinates(grids, m);
        let mut rope = vision_tables(&coords, self.cfg.head_dim(), h.device())?;
        let frames: Vec<(usize, usize)> = frame_segments(grids);

        let windows = match self.family {
            Family::Qwen25Vl => {
                let part =
                    window_partition(grids, m, self.cfg.window_size / m / self.cfg.patch_size);
                h = permute_units(&h, &part.order, m * m)?;
                rope = RopeTables {
                    cos: permute_units(&rope.cos, &part.order, m * m)?,
                    sin: permute_units(&rope.sin, &part.order, m * m)?,
                };
                Some(part)
            }
            _ => None,
        };

        let mut deepstack = Vec::with_capacity(self.deepstack_mergers.len());
        for (i, block) in self.blocks.iter().enumerate() {
            let segments: &[(usize, usize)] = match &windows {
                Some(WindowPartition { segments, .. })
                    if !self.full_attention_everywhere
                        && !self.cfg.fullatt_block_indexes.contains(&i) =>
                {
                    segments
                }
                _ => &frames,
            };
            h = block.forward(&h, &rope, segments, self.max_scores)?;
            if let Some(k) = self
                .cfg
                .deepstack_visual_indexes
                .iter()
                .position(|&b| b == i)
            {
                deepstack.push(self.deepstack_mergers[k].forward(&h)?);
            }
        }
        let mut embeds = self.merger.forward(&h)?;
        if let Some(part) = &windows {
            let inverse = Tensor::new(part.inverse_order(), embeds.device())?;
            embeds = embeds.index_select(&inverse, 0)?;
        }
        Ok(VisionOutput { embeds, deepstack })
    }

    /// Qwen3-VL: the learned square position table, bilinearly resampled
    /// (align-corners) to each image's patch grid, rows in merge-block order.
    fn interpolated_positions(&self, table: &Tensor, grids: &[Grid]) -> Result<Tensor> {
        let side = (self.cfg.num_position_embeddings as f64).sqrt() as usize;
        let m = self.cfg.spatial_merge_size;
        let mut idx: [Vec<u32>; 4] = Default::default();
        let mut wgt: [Vec<f32>; 4] = Default::default();
        for &[t, gh, gw] in grids {
            let rows = bilinear_axis(gh, side);
            let cols = bilinear_axis(gw, side);
            for _ in 0..t {
                for (r, c) in merge_block_order(gh, gw, m) {
                    let (r0, r1, dr) = rows[r];
                    let (c0, c1, dc) = cols[c];
                    let corners = [
                        (r0 * side + c0, (1.0 - dr) * (1.0 - dc)),
                        (r0 * side + c1, (1.0 - dr) * dc),
                        (r1 * side + c0, dr * (1.0 - dc)),
                        (r1 * side + c1, dr * dc),
                    ];
                    for (k, (i, w)) in corners.into_iter().enumerate() {
                        idx[k].push(i as u32);
                        wgt[k].push(w);
                    }
                }
            }
        }
        let dev = table.device();
        let table_f32 = table.to_dtype(DType::F32)?;
        let mut sum: Option<Tensor> = None;
        for k in 0..4 {
            let n = idx[k].len();
            let rows = table_f32.index_select(&Tensor::new(idx[k].as_slice(), dev)?, 0)?;
            let w = Tensor::from_vec(std::mem::take(&mut wgt[k]), (n, 1), dev)?;
            let term = rows.broadcast_mul(&w)?;
            sum = Some(match sum {
                None => term,
                Some(s) => (s + term)?,
            });
        }
        sum.expect("four corners").to_dtype(self.dtype())
    }
}

/// For each index along an axis of `n` patches: the two table rows it falls
/// between and the weight of the second, with torch.linspace's f32 arithmetic.
fn bilinear_axis(n: usize, side: usize) -> Vec<(usize, usize, f32)> {
    let end = (side - 1) as f32;
    let step = if n > 1 { end / (n - 1) as f32 } else { 0.0 };
    let halfway = n / 2;
    (0..n)
        .map(|i| {
            let x = if n == 1 {
                0.0
            } else if i < halfway {
                step * i as f32
            } else {
                end - step * (n - i - 1) as f32
            };
            let lo = x as usize;
            let hi = (lo + 1).min(side - 1);
            (lo, hi, x - lo as f32)
        })
        .collect()
}

/// (row, column) of each patch of a `gh × gw` grid in merge-block order.
fn merge_block_order(gh: usize, gw: usize, m: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..gh / m).flat_map(move |bh| {
        (0..gw / m).flat_map(move |bw| {
            (0..m).flat_map(move |ih| (0..m).map(move |iw| (bh * m + ih, bw * m + iw)))
        })
    })
}

fn patch_coordinates(grids: &[Grid], m: usize) -> Vec<(usize, usize)> {
    grids
        .iter()
        .flat_map(|&[t, gh, gw]| (0..t).flat_map(move |_| merge_block_order(gh, gw, m)))
        .collect()
}

/// One attention segment per frame of each image: `(start, len)`.
fn frame_segments(grids: &[Grid]) -> Vec<(usize, usize)> {
    let mut start = 0;
    let mut out = Vec::new();
    for &[t, gh, gw] in grids {
        for _ in 0..t {
            out.push((start, gh * gw));
            start += gh * gw;
        }
    }
    out
}

/// Reorders rows in groups of `unit` (one merged token's patches).
fn permute_units(x: &Tensor, order: &[u32], unit: usize) -> Result<Tensor> {
    let (n, d) = x.dims2()?;
    let grouped = x.reshape((n / unit, unit * d))?;
    let idx = Tensor::new(order, x.device())?;
    grouped.index_select(&idx, 0)?.reshape((n, d))?.contiguous()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_split_and_turned_in_one_pass_equal_candles_route() {
        use crate::model::test_util::{max_abs_diff, uniform};
        let (n, heads, head_dim) = (7, 3, 8);
        let qkv = uniform((1, 1, n, 3 * heads * head_dim), 1)
            .reshape((n, 3 * heads * head_dim))
            .unwrap();
        let coords: Vec<(usize, usize)> = (0..n).map(|i| (i / 3, i % 3)).collect();
        let rope = vision_tables(&coords, head_dim, &candle_core::Device::Cpu).unwrap();
        let fast = heads_rotated_in_one_pass(&qkv, heads, head_dim, &rope)
            .unwrap()
            .expect("f32 on the CPU");
        // candle's permute and rope, the general route: the same
        // arithmetic, so the same floats.
        let qkv4 = qkv.reshape((n, 3, heads, head_dim)).unwrap();
        let qkv4 = qkv4.permute((1, 2, 0, 3)).unwrap();
        for (i, got) in fast.iter().enumerate() {
            assert_eq!(got.dims(), [1, heads, n, head_dim]);
            let part = qkv4
                .get(i)
                .unwrap()
                .unsqueeze(0)
                .unwrap()
                .contiguous()
                .unwrap();
            let want = if i < 2 {
                candle_nn::rotary_emb::rope(&part, &rope.cos, &rope.sin).unwrap()
            } else {
                part
            };
            assert_eq!(max_abs_diff(got, &want), 0.0, "part {i}");
        }
    }

    #[test]
    fn bilinear_axis_matches_the_reference_example() {
        let a = bilinear_axis(4, 48);
        assert_eq!(a.iter().map(|x| x.0).collect::<Vec<_>>(), [0, 15, 31, 47]);
        assert_eq!(a.iter().map(|x| x.1).collect::<Vec<_>>(), [1, 16, 32, 47]);
        assert!((a[1].2 - 0.6667).abs() < 1e-3 && (a[2].2 - 0.3333).abs() < 1e-3);
        assert_eq!(a[3].2, 0.0);
        assert_eq!(bilinear_axis(1, 48), vec![(0, 1, 0.0)]);
    }

    #[test]
    fn merge_block_order_walks_2x2_windows_in_raster_order() {
        let order: Vec<_> = merge_block_order(2, 4, 2).collect();
        assert_eq!(
            order,
            [
                (0, 0),
                (0, 1),
                (1, 0),
                (1, 1),
                (0, 2),
                (0, 3),
                (1, 2),
                (1, 3)
            ]
        );
    }
}
