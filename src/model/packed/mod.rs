//! Quantised matrices in a layout of glimpse's own for x86 CPUs with AVX-512
//! VNNI or AVX2, multiplied by kernels of its own, so that only one copy of
//! each matrix is kept.
//!
//! candle's x86 kernels keep the ggml blocks and, beside them, tiles they
//! repack the blocks into (for q4k 0.75 bytes a weight for a few rows and
//! 1.25 more for AMX prompts, against the blocks' 0.56): the tiles made a
//! quantised model hardly smaller than the float one. Here the blocks are
//! repacked once, at load, into tiles of 16 output rows that hold exactly
//! what the blocks held (q4k keeps its 6-bit scales as bytes: 0.58 bytes a
//! weight; q8_0 the same 1.06 as its blocks), and the blocks are dropped.
//! The repacking is exactly reversible ([`PackedMatrix::to_ggml_bytes`]),
//! so the weights cache keeps ggml blocks.
//!
//! Inputs are quantised to 8 bits per 256 values ([`activations`]); one
//! `vpdpbusd` then multiplies 4 input values into 16 outputs at once, for a
//! few rows while decoding and for a prompt's many rows alike. Without
//! VNNI, AVX2 kernels ([`avx2`]) read the same tiles and give the same sums.
//! candle's own AVX2 route for q8_0 multiplies a row by a row: a prompt
//! took 5–6 times as long as in f32.

mod activations;
#[cfg(target_arch = "x86_64")]
mod avx2;
mod layout;
#[cfg(target_arch = "x86_64")]
mod x86;

use candle_core::quantized::GgmlDType;

use super::disjoint::DisjointWrites;

pub use activations::Activations;
use layout::{TileQ4K, TileQ8_0, TILE_ROWS};

/// A quantised `[outputs, inputs]` matrix in 16-row tiles, one strip of
/// tiles per 16 outputs, each strip running along the inputs.
pub struct PackedMatrix {
    outputs: usize,
    inputs: usize,
    tiles: Tiles,
}

enum Tiles {
    Q4K(Vec<TileQ4K>),
    Q8_0(Vec<TileQ8_0>),
}

impl PackedMatrix {
    /// Whether this CPU runs the kernels.
    pub fn cpu_has_kernels() -> bool {
        Kernels::best().is_some()
    }

    /// Whether a matrix of this format and shape can be packed: whole tiles
    /// of outputs, and inputs in whole 256-value blocks (the inputs'
    /// quantisation unit).
    pub fn fits(format: GgmlDType, (outputs, inputs): (usize, usize)) -> bool {
        matches!(format, GgmlDType::Q4K | GgmlDType::Q8_0)
            && outputs > 0
            && outputs.is_multiple_of(TILE_ROWS)
            && inputs > 0
            && inputs.is_multiple_of(layout::SUPER)
    }

    /// Repacks ggml blocks (row after row, as candle stores them); `None`
    /// where [`PackedMatrix::fits`] says no.
    pub fn from_ggml(
        format: GgmlDType,
        (outputs, inputs): (usize, usize),
        blocks: &[u8],
    ) -> Option<Self> {
        if !Self::fits(format, (outputs, inputs)) {
            return None;
        }
        let tiles = match format {
            GgmlDType::Q4K => Tiles::Q4K(layout::pack_q4k(blocks, outputs, inputs)),
            GgmlDType::Q8_0 => Tiles::Q8_0(layout::pack_q8_0(blocks, outputs, inputs)),
            _ => return None,
        };
        Some(PackedMatrix {
            outputs,
            inputs,
            tiles,
        })
    }

    /// The ggml blocks it was packed from, byte for byte.
    pub fn to_ggml_bytes(&self) -> Vec<u8> {
        match &self.tiles {
            Tiles::Q4K(t) => layout::unpack_q4k(t, self.outputs, self.inputs),
            Tiles::Q8_0(t) => layout::unpack_q8_0(t, self.outputs, self.inputs),
        }
    }

    pub fn format(&self) -> GgmlDType {
        match self.tiles {
            Tiles::Q4K(_) => GgmlDType::Q4K,
            Tiles::Q8_0(_) => GgmlDType::Q8_0,
        }
    }

    /// `(outputs, inputs)`.
    pub fn dims(&self) -> (usize, usize) {
        (self.outputs, self.inputs)
    }

    pub fn size_in_bytes(&self) -> usize {
        match &self.tiles {
            Tiles::Q4K(t) => std::mem::size_of_val(t.as_slice()),
            Tiles::Q8_0(t) => std::mem::size_of_val(t.as_slice()),
        }
    }

    /// Output rows `ids` widened to f32, one after another (an embedding
    /// tied to this matrix).
    pub fn rows(&self, ids: &[u32]) -> candle_core::Result<Vec<f32>> {
        let k = self.inputs;
        let mut out = vec![0f32; ids.len() * k];
        for (dst, &id) in out.chunks_mut(k).zip(ids) {
            let row = id as usize;
            if row >= self.outputs {
                candle_core::bail!("row {row} is out of range for {} rows", self.outputs);
            }
            match &self.tiles {
                Tiles::Q4K(t) => layout::row_q4k(t, k, row, dst),
                Tiles::Q8_0(t) => layout::row_q8_0(t, k, row, dst),
            }
        }
        Ok(out)
    }

    /// How many strips of 16 outputs it has.
    fn strip_count(&self) -> usize {
        self.outputs / TILE_ROWS
    }

    /// `x · Wᵀ` for `rows` rows of `x` (`rows × inputs`), through every
    /// matrix in `mats` (all with the same inputs), one result each, `rows
    /// × outputs`. The input is quantised once for all of them, and one
    /// parallel pass covers them all.
    pub fn matmul_many(mats: &[&PackedMatrix], x: &[f32], rows: usize) -> Vec<Vec<f32>> {
        let kernels = Kernels::best().expect("packed matrices are only made where kernels run");
        Self::matmul_many_with(kernels, mats, x, rows)
    }

    /// [`PackedMatrix::matmul_many`] through the given kernels.
    fn matmul_many_with(
        kernels: Kernels,
        mats: &[&PackedMatrix],
        x: &[f32],
        rows: usize,
    ) -> Vec<Vec<f32>> {
        let Some(first) = mats.first() else {
            return Vec::new();
        };
        let k = first.inputs;
        assert!(mats.iter().all(|m| m.inputs == k), "one input size");
        assert_eq!(x.len(), rows * k, "x is rows × inputs");
        let acts = Activations::quantise(x, rows, k);
        let mut outs: Vec<Vec<f32>> = mats.iter().map(|m| vec![0f32; rows * m.outputs]).collect();
        // Strips of all the matrices, one after another, shared out by
        // candle's CPU thread pool (the one its own kernels use: its threads
        // wait spinning between the products of a decoding step, and the
        // calling thread works too), a run of strips at a time.
        let mut starts = Vec::with_capacity(mats.len());
        let mut total = 0;
        for m in mats {
            starts.push(total);
            total += m.strip_count();
        }
        // Runs of strips write disjoint columns.
        let targets: Vec<DisjointWrites> = outs
            .iter_mut()
            .map(|o| DisjointWrites::new(o.as_mut_ptr()))
            .collect();
        candle_core::utils::barrier_pool().execute_chunked(total, |range| {
            let mut at = range.start;
            while at < range.end {
                let which = starts.partition_point(|&s| s <= at) - 1;
                let end = range.end.min(starts[which] + mats[which].strip_count());
                let local = at - starts[which]..end - starts[which];
                // SAFETY: runs of strips cover disjoint output columns, and
                // each output buffer outlives this pass.
                unsafe { mats[which].strips(kernels, &acts, local, targets[which].at(0)) };
                at = end;
            }
        });
        outs
    }

    /// Writes output columns of strips `range` for every row of `acts` into
    /// `y` (`rows × outputs`).
    ///
    /// # Safety
    /// `y` points at `rows × outputs` floats that nothing else writes in
    /// these columns meanwhile.
    unsafe fn strips(
        &self,
        kernels: Kernels,
        acts: &Activations,
        range: std::ops::Range<usize>,
        y: *mut f32,
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            for s in range {
                let kernel = match &self.tiles {
                    Tiles::Q4K(t) => x86::Strip::Q4K(strip_of(t, s, self.inputs / layout::SUPER)),
                    Tiles::Q8_0(t) => {
                        x86::Strip::Q8_0(strip_of(t, s, self.inputs / layout::Q8_0_BLOCK))
                    }
                };
                let at = y.add(s * TILE_ROWS);
                match kernels {
                    Kernels::Vnni => x86::strip(kernel, acts, at, self.outputs),
                    Kernels::Avx2 => avx2::strip(kernel, acts, at, self.outputs),
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (kernels, acts, range, y);
            unreachable!("packed matrices are only made where the kernels run")
        }
    }
}

/// Which kernels multiply the tiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernels {
    /// AVX-512 VNNI: 16 outputs per instruction.
    Vnni,
    /// AVX2 with FMA and F16C: 8 outputs per instruction, the same sums.
    Avx2,
}

impl Kernels {
    /// The fastest this CPU runs, if any.
    fn best() -> Option<Kernels> {
        static BEST: std::sync::OnceLock<Option<Kernels>> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| Kernels::available().first().copied())
    }

    /// Every kind this CPU runs, fastest first.
    fn available() -> Vec<Kernels> {
        #[cfg(target_arch = "x86_64")]
        {
            let mut all = Vec::new();
            if x86::available() {
                all.push(Kernels::Vnni);
            }
            if avx2::available() {
                all.push(Kernels::Avx2);
            }
            all
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Vec::new()
        }
    }
}

/// Strip `s` of `tiles`, `per_strip` tiles long.
#[cfg(target_arch = "x86_64")]
fn strip_of<T>(tiles: &[T], s: usize, per_strip: usize) -> &[T] {
    &tiles[s * per_strip..(s + 1) * per_strip]
}

#[cfg(test)]
mod tests;
