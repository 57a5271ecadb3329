//! A float projection's `W`, laid out in the kernel's panels once, at load.
//!
//! Copying `W` into panels on every call cost more than the product itself
//! for a few rows, and a sixth of it for a prompt; candle's matmul pays the
//! same copy inside the `gemm` crate. The panels replace the checkpoint's
//! layout, so the matrix is still kept once.

#[cfg(target_arch = "x86_64")]
use super::super::disjoint::DisjointWrites;
#[cfg(target_arch = "x86_64")]
use super::{multiply, Matrix, Operand, Shape};
use super::{Panels, Then, Threads, NR};

/// An f32 `[outputs, inputs]` matrix in panels of 32 outputs, each running
/// along all the inputs, and the bias its products start from.
pub struct WeightPanels {
    panels: Panels,
    bias: Option<Vec<f32>>,
    outputs: usize,
    inputs: usize,
}

impl WeightPanels {
    /// Lays out `w`, `outputs × inputs` row-major. Only call where
    /// [`super::available`].
    pub fn new(w: &[f32], outputs: usize, inputs: usize) -> WeightPanels {
        assert!(super::available(), "the CPU has AVX-512 or AVX2");
        assert_eq!(w.len(), outputs * inputs, "w holds outputs × inputs");
        // Layers that load in parallel (on rayon's threads) lay out their
        // own matrices: on the pool they would wait for each other.
        let threads = match rayon::current_thread_index() {
            Some(_) => Threads::Caller,
            None => Threads::Pool,
        };
        let mut panels = Panels::unwritten(outputs.div_ceil(NR), NR, inputs);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the layout writes every float of every panel, the lanes
        // past the last output included.
        unsafe {
            panels.fill(Matrix::Rows(w), outputs, 0..outputs, threads);
            panels.written();
        }
        WeightPanels {
            panels,
            bias: None,
            outputs,
            inputs,
        }
    }

    /// These panels with a bias, one per output, added to every product
    /// as its sums are written rather than in a pass of its own.
    pub fn with_bias(self, bias: Vec<f32>) -> WeightPanels {
        assert_eq!(bias.len(), self.outputs, "one bias per output");
        WeightPanels {
            bias: Some(bias),
            ..self
        }
    }

    /// `(outputs, inputs)`.
    pub fn dims(&self) -> (usize, usize) {
        (self.outputs, self.inputs)
    }

    /// Bytes the panels occupy (the last one padded to 32 outputs).
    pub fn size_in_bytes(&self) -> usize {
        std::mem::size_of_val(self.panels.data.as_slice())
    }

    /// `W` back in its `[outputs, inputs]` layout.
    #[cfg(test)]
    pub(super) fn to_rows(&self) -> Vec<f32> {
        let mut w = vec![0f32; self.outputs * self.inputs];
        for (o, row) in w.chunks_exact_mut(self.inputs.max(1)).enumerate() {
            let panel = self.panels.panel(o / NR);
            for (k, v) in row.iter_mut().enumerate() {
                // SAFETY: panel `o / NR` holds `inputs` steps of `NR` lanes.
                *v = unsafe { *panel.add(k * NR + o % NR) };
            }
        }
        w
    }

    /// `x · Wᵀ + bias` of `x` (`rows × inputs`, row-major) for each of
    /// `mats`, all of the same inputs, on candle's thread pool; `x` is laid
    /// out in panels once for all of them.
    pub fn products(mats: &[&WeightPanels], x: &[f32], rows: usize) -> Vec<Vec<f32>> {
        WeightPanels::products_then(mats, x, rows, None)
    }

    /// [`WeightPanels::products`], each output then put through `then` a
    /// stretch of a row at a time, while it is still in cache.
    pub fn products_then(
        mats: &[&WeightPanels],
        x: &[f32],
        rows: usize,
        then: Option<Then>,
    ) -> Vec<Vec<f32>> {
        let Some(inputs) = mats.first().map(|m| m.inputs) else {
            return Vec::new();
        };
        assert!(mats.iter().all(|m| m.inputs == inputs), "one input width");
        assert_eq!(x.len(), rows * inputs, "x holds rows × inputs");
        if rows == 0 || inputs == 0 {
            let mut ys: Vec<Vec<f32>> = mats.iter().map(|m| m.without_inputs(rows)).collect();
            if let Some(then) = then {
                ys.iter_mut().for_each(|y| then(y));
            }
            return ys;
        }
        #[cfg(target_arch = "x86_64")]
        {
            let shape = Shape {
                rows,
                inputs,
                outputs: 0,
            };
            let xs = Panels::of_rows(Matrix::Rows(x), shape, Threads::Pool);
            let ys = mats
                .iter()
                .map(|m| {
                    let shape = Shape {
                        outputs: m.outputs,
                        ..shape
                    };
                    let len = rows * m.outputs;
                    // Not cleared first: the product writes every float.
                    let mut y = Vec::with_capacity(len);
                    let target = DisjointWrites::new(y.as_mut_ptr());
                    let start = (0, m.bias.as_deref(), then);
                    multiply(&xs, &m.panels, shape, start, &target, Threads::Pool);
                    // SAFETY: `multiply` wrote all `rows × outputs` floats.
                    unsafe { y.set_len(len) };
                    y
                })
                .collect();
            xs.keep(Operand::X);
            ys
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("panels are only made where the kernel runs")
    }

    /// The product of `rows` rows of no inputs: the bias alone.
    fn without_inputs(&self, rows: usize) -> Vec<f32> {
        match &self.bias {
            Some(b) => b.repeat(rows),
            None => vec![0.0; rows * self.outputs],
        }
    }
}
