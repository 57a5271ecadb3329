//! `y = x · Wᵀ` (or `x · W`) in f32 on CPUs with AVX-512 or AVX2, for any number of
//! rows: the float projections of the decoder and of the vision tower
//! ([`WeightPanels`], through [`super::linear`]) and attention, one head at
//! a time on each thread ([`super::attention`]).
//!
//! Both operands are read from panels, strictly in order: `W` in panels of
//! 32 outputs (transposed 16×16 in registers where it is stored `[outputs,
//! inputs]`), `x` in panels of 12 rows. A tile of `y` of up to 12×32 then
//! stays in 24 registers while it runs over a block of inputs, and the
//! first tile over each panel of `W` fetches the next one into L2. A
//! projection's `W` is laid out in panels once, at load; attention's
//! operands and every `x` are copied into panels kept from call to call, so
//! they cost no page faults.
//!
//! On two cores this beats candle's matmul (the `gemm` crate, which copies
//! `W` on every call) by 20–30 % at a prompt's 219 rows and by 2–5× at 2–64
//! rows, and is within 10 % of the few-row streaming kernel at one row; at
//! a vision tower's 560–768 rows it is 3–25 % ahead
//! (`examples/matmul_shapes.rs`). With AVX2 only ([`avx2`]: the tile in
//! parts of 6×16 over the same panels) it is level with candle's at 219
//! rows, about a tenth behind at 512–768, and ahead of the few-row kernel
//! at one row.

#[cfg(target_arch = "x86_64")]
mod avx2;
mod weights;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::cell::RefCell;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::disjoint::DisjointWrites;

pub use weights::WeightPanels;

/// Rows of `x` in a tile.
const MR: usize = 12;
/// Outputs in a tile: two 16-lane registers.
const NR: usize = 32;
/// Outputs in a panel of `W`: a product over a multiple of it wastes no lanes.
pub const OUTPUTS_PER_PANEL: usize = NR;
/// Inputs a tile runs over before its sums go back to `y`: a 32-output
/// panel of `W` over these (32 KB) is read by each of the block's row
/// panels in turn, from L1 or L2.
const KC: usize = 256;
/// Row panels and output panels in a block of `y` that one task computes:
/// its rows' inputs in a `KC` block (192 KB), its panels of `W` (256 KB)
/// and its part of `y` (192 KB) stay in L2. The sizes were the best on two
/// cores at the projections' shapes (`examples/matmul_shapes.rs`).
const BLOCK_ROW_PANELS: usize = 16;
const BLOCK_OUTPUT_PANELS: usize = 8;
/// At most this many weights are copied at once, so the copy of a wide
/// matrix stays a few tens of megabytes.
const MAX_COPIED_WEIGHTS: usize = 1 << 23;

/// An operand, `x` (rows × inputs) or `W` (outputs × inputs), and how it
/// is stored.
#[derive(Clone, Copy)]
pub enum Matrix<'a> {
    /// Each row (or output) runs along the inputs: `x` as activations
    /// come, `W` as checkpoints keep projections and as keys are laid out
    /// for `q · kᵀ`.
    Rows(&'a [f32]),
    /// Transposed: each input runs along the rows (or outputs).
    Columns(&'a [f32]),
}

impl Matrix<'_> {
    fn len(&self) -> usize {
        match self {
            Matrix::Rows(m) | Matrix::Columns(m) => m.len(),
        }
    }
}

/// Who computes a product.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// candle's CPU thread pool.
    Pool,
    /// The calling thread alone (one inside a pool task already).
    Caller,
}

/// Whether this CPU runs the kernel.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Writes `y` (`rows × outputs`, row-major) `= x · Wᵀ` for `x` `rows ×
/// inputs`. Only call where [`available`].
pub fn product(
    x: Matrix<'_>,
    rows: usize,
    w: Matrix<'_>,
    outputs: usize,
    y: &mut [f32],
    threads: Threads,
) {
    product_copying_at_most(x, rows, w, outputs, y, threads, MAX_COPIED_WEIGHTS)
}

fn product_copying_at_most(
    x: Matrix<'_>,
    rows: usize,
    w: Matrix<'_>,
    outputs: usize,
    y: &mut [f32],
    threads: Threads,
    max_copied: usize,
) {
    assert!(available(), "the CPU has AVX-512 or AVX2");
    let inputs = x.len().checked_div(rows).unwrap_or(0);
    assert_eq!(x.len(), rows * inputs, "x holds rows × inputs");
    assert_eq!(w.len(), outputs * inputs, "w holds outputs × inputs");
    assert_eq!(y.len(), rows * outputs, "y is rows × outputs");
    if rows == 0 || outputs == 0 {
        return;
    }
    if inputs == 0 {
        y.fill(0.0);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        let shape = Shape {
            rows,
            inputs,
            outputs,
        };
        let xs = Panels::of_rows(x, shape, threads);
        let per_part =
            (max_copied / inputs / (NR * BLOCK_OUTPUT_PANELS)).max(1) * (NR * BLOCK_OUTPUT_PANELS);
        // Tasks write disjoint blocks of `y`.
        let y = DisjointWrites::new(y.as_mut_ptr());
        for first in (0..outputs).step_by(per_part) {
            let count = per_part.min(outputs - first);
            let mut ws = Panels::reusing(Operand::W, count.div_ceil(NR), NR, inputs);
            ws.fill(w, outputs, first..first + count, threads);
            multiply(&xs, &ws, shape, (first, None, None), &y, threads);
            ws.keep(Operand::W);
        }
        xs.keep(Operand::X);
    }
}

/// How many threads run a task shared out over `threads`.
fn workers(threads: Threads) -> usize {
    match threads {
        Threads::Pool => candle_core::utils::barrier_pool().n_workers() + 1,
        Threads::Caller => 1,
    }
}

/// Runs `f` on each of `0..n`, on the pool or here, each thread taking
/// the next item as it finishes one. The pool's own sharing hands out a
/// few items at a time, which left one thread idle for a few blocks at
/// the end of a product (up to a tenth of it at 60 blocks on two cores).
fn share_one_at_a_time(threads: Threads, n: usize, f: impl Fn(usize) + Sync) {
    match threads {
        Threads::Pool if n > 1 => {
            let next = AtomicUsize::new(0);
            candle_core::utils::barrier_pool().execute(|_| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                f(i);
            })
        }
        _ => (0..n).for_each(f),
    }
}

/// Runs `f` over `0..n` in pieces, on the pool or here.
fn share(threads: Threads, n: usize, f: impl Fn(Range<usize>) + Sync) {
    match threads {
        // One piece is not worth waking the pool for.
        Threads::Pool if n > 1 => candle_core::utils::barrier_pool().execute_chunked(n, f),
        _ if n > 0 => f(0..n),
        _ => {}
    }
}

#[derive(Clone, Copy)]
struct Shape {
    rows: usize,
    inputs: usize,
    outputs: usize,
}

/// An operand copied into panels of `width` lanes, each running along all
/// the inputs (`[panel][input][lane]`), zero where a lane has no row.
struct Panels {
    data: Vec<Line>,
    count: usize,
    width: usize,
    inputs: usize,
}

/// 64 bytes, so that panels start on a cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

thread_local! {
    /// The copies of `x` and of `W`, kept from call to call: a fresh
    /// allocation of megabytes costs a page fault every 4 KB.
    static SPARE_COPIES: RefCell<[Vec<Line>; 2]> = Default::default();
}

/// Which of the kept copies a [`Panels`] uses.
#[derive(Clone, Copy)]
enum Operand {
    X = 0,
    W = 1,
}

impl Panels {
    /// Room for `count` panels, in the kept copy of `operand`; the packing
    /// writes every float of them, padding included.
    fn reusing(operand: Operand, count: usize, width: usize, inputs: usize) -> Panels {
        let mut data = SPARE_COPIES.with(|s| std::mem::take(&mut s.borrow_mut()[operand as usize]));
        let lines = (count * width * inputs).div_ceil(16);
        if data.len() < lines {
            data = Vec::new();
            data.resize(lines, Line([0.0; 16]));
        }
        Panels {
            data,
            count,
            width,
            inputs,
        }
    }

    /// Room for `count` panels of their own, not yet written: a matrix laid
    /// out at load is written once, not cleared first. Call
    /// [`Panels::written`] once every float is.
    fn unwritten(count: usize, width: usize, inputs: usize) -> Panels {
        let lines = (count * width * inputs).div_ceil(16);
        let data = Vec::with_capacity(lines);
        Panels {
            data,
            count,
            width,
            inputs,
        }
    }

    /// Marks the panels of [`Panels::unwritten`] as written.
    ///
    /// # Safety
    /// Every float of every panel has been written through [`Panels::start`].
    unsafe fn written(&mut self) {
        self.data
            .set_len((self.count * self.width * self.inputs).div_ceil(16));
    }

    /// Hands the buffer back for the next call.
    fn keep(self, operand: Operand) {
        SPARE_COPIES.with(|s| s.borrow_mut()[operand as usize] = self.data);
    }

    fn panel(&self, p: usize) -> *const f32 {
        debug_assert!(p < self.count);
        // SAFETY: in bounds for p < count.
        unsafe { (self.data.as_ptr() as *const f32).add(p * self.width * self.inputs) }
    }

    fn start(&mut self) -> DisjointWrites {
        DisjointWrites::new(self.data.as_mut_ptr() as *mut f32)
    }

    /// `x`'s rows in panels of [`MR`].
    #[cfg(target_arch = "x86_64")]
    fn of_rows(x: Matrix<'_>, shape: Shape, threads: Threads) -> Panels {
        let Shape { rows, inputs, .. } = shape;
        let mut panels = Panels::reusing(Operand::X, rows.div_ceil(MR), MR, inputs);
        panels.fill(x, rows, 0..rows, threads);
        panels
    }

    /// Lays out lines `range` of `m` (rows of `x` or outputs of `W`, `total`
    /// of them, each running along the inputs) in these panels, one panel's
    /// width of lines in each.
    #[cfg(target_arch = "x86_64")]
    fn fill(&mut self, m: Matrix<'_>, total: usize, range: Range<usize>, threads: Threads) {
        let (width, inputs) = (self.width, self.inputs);
        debug_assert_eq!(self.count, range.len().div_ceil(width));
        let out = self.start();
        share(threads, self.count, |ps| {
            for p in ps {
                let start = range.start + p * width;
                let lanes = width.min(range.end - start);
                let dst = out.at(p * width * inputs);
                match m {
                    // SAFETY: each panel is written by one task; `m` holds
                    // `lanes` lines of `inputs` from `start`.
                    Matrix::Rows(m) => unsafe {
                        x86::transpose_into_panel(
                            m[start * inputs..].as_ptr(),
                            lanes,
                            inputs,
                            width,
                            dst,
                        )
                    },
                    // SAFETY: as above.
                    Matrix::Columns(m) => unsafe {
                        copy_steps(m, total, start..start + lanes, width, dst)
                    },
                }
            }
        });
    }
}

/// Lays out `lanes` of a transposed operand `m` (each input a run of
/// `stride` floats) as a panel of `width` lanes a step at `dst`, with zeros
/// in the lanes past them.
///
/// # Safety
/// `dst` has room for `width` floats per input of `m` and nothing else
/// writes there meanwhile.
unsafe fn copy_steps(m: &[f32], stride: usize, lanes: Range<usize>, width: usize, dst: *mut f32) {
    for (k, input) in m.chunks_exact(stride).enumerate() {
        let step = std::slice::from_raw_parts_mut(dst.add(k * width), width);
        step[..lanes.len()].copy_from_slice(&input[lanes.clone()]);
        step[lanes.len()..].fill(0.0);
    }
}

/// `n` panels in blocks of at most `most`, as even as can be, and at least
/// `least` blocks where there are panels enough: `(blocks, panels each)`.
fn blocks(n: usize, most: usize, least: usize) -> (usize, usize) {
    let count = n.div_ceil(most).max(least.min(n)).max(1);
    let each = n.div_ceil(count).max(1);
    (n.div_ceil(each), each)
}

/// What is done to each finished stretch of a row of `y` while it is still
/// in cache: an activation, which would otherwise be a pass of its own over
/// the product.
pub type Then<'a> = &'a (dyn Fn(&mut [f32]) + Sync);

/// `y`'s columns `first..` from `xs` and the panels `ws` of those outputs,
/// every one of them written; each output starts from its `bias` (one per
/// output of `y`) where there is one, and ends through `then`.
#[cfg(target_arch = "x86_64")]
fn multiply(
    xs: &Panels,
    ws: &Panels,
    shape: Shape,
    (first, bias, then): (usize, Option<&[f32]>, Option<Then>),
    y: &DisjointWrites,
    threads: Threads,
) {
    use x86::{Ahead, Start};
    debug_assert!(bias.is_none_or(|b| b.len() == shape.outputs));
    let start = |col: usize| match bias {
        Some(b) => Start::Bias(b[col..].as_ptr()),
        None => Start::Zero,
    };
    let (row_blocks, rb) = blocks(xs.count, BLOCK_ROW_PANELS, 1);
    // Two blocks a thread at least, so that a few rows keep every thread busy.
    let (output_blocks, ob) = blocks(
        ws.count,
        BLOCK_OUTPUT_PANELS,
        (2 * workers(threads)).div_ceil(row_blocks),
    );
    // One panel of rows (a decoding step): `W` is read once from its first
    // input to its last, with nothing of `y` to read back.
    let depth = if xs.count == 1 { shape.inputs } else { KC };
    share_one_at_a_time(threads, row_blocks * output_blocks, |block| {
        // Neighbouring blocks share outputs: a thread's next block
        // often finds its panels of `W` in cache.
        let rp = (block % row_blocks) * rb;
        let op = (block / row_blocks) * ob;
        let row_panels = rp..(rp + rb).min(xs.count);
        let output_panels = op..(op + ob).min(ws.count);
        for k0 in (0..shape.inputs).step_by(depth) {
            let kc = depth.min(shape.inputs - k0);
            let more = k0 + kc < shape.inputs;
            // What a tile fetches while it runs: the first tile over a
            // panel of `W` the panel after it (over the block's last
            // panel, the first one's next inputs); the other tiles over
            // the last panel their rows' next inputs. One row of `x`
            // fetches nothing: it reads `W` in eight runs at once, which
            // the hardware prefetcher follows, and a whole panel of
            // thousands of inputs fetched ahead would not fit L2.
            let ahead = |o: usize, r: usize| -> Ahead {
                let last_panel = o + 1 == output_panels.end;
                let (at, step) = if depth == shape.inputs {
                    return Ahead::NOTHING;
                } else if r == row_panels.start && !last_panel {
                    (ws.panel(o + 1).wrapping_add(k0 * NR), NR)
                } else if r == row_panels.start && more {
                    (
                        ws.panel(output_panels.start).wrapping_add((k0 + kc) * NR),
                        NR,
                    )
                } else if last_panel && more {
                    (xs.panel(r).wrapping_add((k0 + kc) * MR), MR)
                } else {
                    return Ahead::NOTHING;
                };
                Ahead { at, step }
            };
            for o in output_panels.clone() {
                let col = first + o * NR;
                for r in row_panels.clone() {
                    let row = r * MR;
                    // SAFETY: panels hold `inputs` steps of their
                    // width; blocks of `y` are disjoint between tasks.
                    unsafe {
                        x86::tile(
                            xs.panel(r).add(k0 * MR),
                            ws.panel(o).add(k0 * NR),
                            kc,
                            y.at(row * shape.outputs + col),
                            shape.outputs,
                            MR.min(shape.rows - row),
                            NR.min(shape.outputs - col),
                            if k0 > 0 { Start::Sums } else { start(col) },
                            ahead(o, r),
                        )
                    };
                }
            }
        }
        if let Some(then) = then {
            let col = first + output_panels.start * NR;
            let width = (output_panels.len() * NR).min(shape.outputs - col);
            for row in row_panels.start * MR..(row_panels.end * MR).min(shape.rows) {
                // SAFETY: the block's part of the row, which only this
                // task writes, and which the tiles above have written.
                let part = unsafe {
                    std::slice::from_raw_parts_mut(y.at(row * shape.outputs + col), width)
                };
                then(part);
            }
        }
    });
}

#[cfg(test)]
mod tests;
