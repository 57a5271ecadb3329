//! Every projection of the decoder, its output head and the vision tower
//! goes through [`Linear`], float or quantised, so how a matmul runs is
//! decided in one place, per shape:
//!
//! - f32 weights on a CPU with AVX-512 or AVX2, the decoder's and the vision
//!   tower's: laid out at load in the panels of glimpse's own kernel
//!   ([`super::many_rows::WeightPanels`]), which multiplies them at every
//!   row count without copying them again and starts each product from the
//!   layer's bias; the panels replace the checkpoint's layout. An output
//!   head tied to the embedding keeps the embedding's layout, which it
//!   shares;
//! - other float weights, a few rows on the CPU (decoding): [`few_rows`],
//!   which streams the weights once instead of packing them; many rows of
//!   f32: candle's own kernel, one share of the outputs per thread;
//! - quantised q4k and q8_0 weights on a CPU with AVX-512 VNNI or AVX2: glimpse's
//!   own kernels over its own tiles ([`super::packed`]), at every row count;
//!   the tiles replace the blocks, so the matrix is kept once;
//! - other quantised weights on the CPU: candle's quantised kernels at every
//!   row count; on AVX-512 they tile prompt rows so each weight block is
//!   read once per tile, and beat the float matmul even at 512 rows
//!   (`examples/matmul_shapes.rs`);
//! - quantised weights elsewhere, a few rows: the quantised kernels of the
//!   device; many rows (prefill): the matrix is widened back to the
//!   activation dtype for that one product;
//! - everything else: candle's matmul.
//!
//! Several layers over the same input (q, k and v; gate and up; the experts a
//! token is routed to) go through [`Linear::forward_shared`]: for packed
//! matrices, and for one row of candle's quantised matrices on the CPU, that
//! is one call of a fused kernel, which quantises the input once and starts
//! its threads once for all of them, with the same results as one call each;
//! matrices in panels share one layout of the input.
//!
//! candle's x86 kernels (where the packed ones do not apply) repack a
//! quantised matrix into tiles the first time it is used and keep the tiles
//! (one kind for a few rows, another for a prompt's many rows on CPUs with
//! AMX). [`Quantiser::prepare`] does that
//! right after loading, so the first answer does not pay for it, and a
//! mixture-of-experts model does not pay again each time a token reaches an
//! expert that has not run before. The output head and the routed experts,
//! which mostly see one row at a time, get the few-row tiles only.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Result, Storage, Tensor};
use candle_nn::VarBuilder;
use half::{bf16, f16};

use super::disjoint::DisjointWrites;
use super::few_rows::{self, WeightElement};
use super::many_rows::{self, Then, WeightPanels};
use super::packed::PackedMatrix;
use super::quant::Quant;

/// Rows up to which quantised weights use the quantised kernels off the CPU;
/// above it, dequantise and use the float matmul.
const QUANTISED_KERNEL_ROWS: usize = 8;

pub struct Linear {
    weight: Weight,
    bias: Option<Tensor>,
}

enum Weight {
    Float(Tensor),
    Panels(WeightPanels),
    Quantized(QuantisedMatrix),
}

impl Weight {
    /// f32 weights on a CPU the panel kernel runs on, in its panels, where
    /// `q` lays them out so; every other weight as it is.
    fn in_panels(self, q: &Quantiser) -> Result<Weight> {
        match self {
            Weight::Float(w)
                if q.panels
                    && w.device().is_cpu()
                    && w.dtype() == DType::F32
                    && many_rows::available() =>
            {
                let (outputs, inputs) = w.dims2()?;
                let (storage, layout) = w.storage_and_layout();
                let (Storage::Cpu(cpu), Some((start, end))) =
                    (&*storage, layout.contiguous_offsets())
                else {
                    drop(storage);
                    return Ok(Weight::Float(w));
                };
                let panels =
                    WeightPanels::new(&cpu.as_slice::<f32>()?[start..end], outputs, inputs);
                Ok(Weight::Panels(panels))
            }
            other => Ok(other),
        }
    }
}

/// A quantised matrix, as candle keeps it (ggml blocks, plus the tiles its
/// x86 kernels add) or packed for glimpse's CPU kernels.
#[derive(Clone)]
pub enum QuantisedMatrix {
    Candle(Arc<QTensor>),
    Packed(Arc<PackedMatrix>),
}

impl QuantisedMatrix {
    /// `q` packed where this CPU has the kernels and its format and shape
    /// fit them, else as it is.
    fn for_device(q: QTensor) -> Result<Self> {
        let packable = q.device().is_cpu() && PackedMatrix::cpu_has_kernels();
        match q.shape().dims2() {
            Ok(dims) if packable && PackedMatrix::fits(q.dtype(), dims) => {
                let p = PackedMatrix::from_ggml(q.dtype(), dims, &q.data()?)
                    .expect("a matrix that fits packs");
                Ok(QuantisedMatrix::Packed(Arc::new(p)))
            }
            _ => Ok(QuantisedMatrix::Candle(Arc::new(q))),
        }
    }

    /// `(outputs, inputs)`.
    pub fn dims(&self) -> Result<(usize, usize)> {
        match self {
            QuantisedMatrix::Candle(q) => q.shape().dims2(),
            QuantisedMatrix::Packed(p) => Ok(p.dims()),
        }
    }

    pub fn format(&self) -> GgmlDType {
        match self {
            QuantisedMatrix::Candle(q) => q.dtype(),
            QuantisedMatrix::Packed(p) => p.format(),
        }
    }

    /// The ggml blocks, as the weights cache stores them.
    pub fn ggml_bytes(&self) -> Result<Cow<'_, [u8]>> {
        match self {
            QuantisedMatrix::Candle(q) => q.data(),
            QuantisedMatrix::Packed(p) => Ok(Cow::Owned(p.to_ggml_bytes())),
        }
    }

    /// Bytes the matrix occupies (not counting candle's tiles).
    pub fn size_in_bytes(&self) -> usize {
        match self {
            QuantisedMatrix::Candle(q) => q.storage_size_in_bytes(),
            QuantisedMatrix::Packed(p) => p.size_in_bytes(),
        }
    }

    /// Output rows `ids` widened to f32, shaped as `ids` plus the inputs (an
    /// embedding tied to this matrix).
    pub fn embedding(&self, ids: &Tensor) -> Result<Tensor> {
        match self {
            QuantisedMatrix::Candle(q) => q.embedding(ids),
            QuantisedMatrix::Packed(p) => {
                let flat = ids.flatten_all()?.to_vec1::<u32>()?;
                let mut dims = ids.dims().to_vec();
                dims.push(p.dims().1);
                Tensor::from_vec(p.rows(&flat)?, dims, ids.device())
            }
        }
    }
}

/// Where the quantised matrices of one load come from: the weights cache
/// where it holds them, else quantised from the checkpoint, and then kept
/// for writing the cache. Matrices are named by their checkpoint tensor.
#[derive(Clone)]
pub struct Quantiser {
    quant: Quant,
    store: Arc<Store>,
    /// Its matrices mostly see one row at a time (the output head, routed
    /// experts), so [`Quantiser::prepare`] builds no prompt tiles for them.
    single_rows: bool,
    /// f32 matrices go into the panels of glimpse's kernel (false: they keep
    /// the checkpoint's layout, for candle's matmul).
    panels: bool,
}

/// Rows of the product that builds a matrix's tiles for prompts (candle's
/// AMX kernel takes over from 32 rows).
const PROMPT_ROWS: usize = 32;

#[derive(Default)]
struct Store {
    cached: Mutex<HashMap<String, QTensor>>,
    /// Every quantised matrix handed out, from the cache or made.
    handed: Mutex<Vec<Handed>>,
}

struct Handed {
    name: String,
    matrix: QuantisedMatrix,
    /// Quantised from the checkpoint, not taken from the cache.
    made: bool,
    /// Prompts run through it whole (it gets prompt tiles).
    prompted: bool,
}

impl Quantiser {
    pub fn new(quant: Quant) -> Self {
        Quantiser {
            quant,
            store: Arc::default(),
            single_rows: false,
            panels: true,
        }
    }

    /// Takes matrices from `cached` before quantising anything.
    pub fn with_cached(quant: Quant, cached: HashMap<String, QTensor>) -> Self {
        let q = Quantiser::new(quant);
        *lock(&q.store.cached) = cached;
        q
    }

    /// The same source storing matrices as `quant` (the vision tower's choice).
    pub fn storing(&self, quant: Quant) -> Quantiser {
        Quantiser {
            quant,
            ..self.clone()
        }
    }

    /// The same source keeping f32 matrices in the checkpoint's layout, for
    /// candle's matmul: what other CPUs get, tried on this one.
    #[cfg(test)]
    fn in_checkpoint_layout(&self) -> Quantiser {
        Quantiser {
            panels: false,
            ..self.clone()
        }
    }

    /// The same source for matrices that mostly see one row at a time.
    pub fn for_single_rows(&self) -> Quantiser {
        Quantiser {
            single_rows: true,
            ..self.clone()
        }
    }

    /// How many matrices were quantised from the checkpoint so far.
    pub fn made_count(&self) -> usize {
        lock(&self.store.handed).iter().filter(|h| h.made).count()
    }

    /// Every quantised matrix of the load, from the cache or made, by name
    /// (layers load in parallel; the cache file should not depend on their
    /// order).
    pub fn all(&self) -> Vec<(String, QuantisedMatrix)> {
        let mut named: Vec<_> = lock(&self.store.handed)
            .iter()
            .map(|h| (h.name.clone(), h.matrix.clone()))
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
    }

    /// Runs one row through every matrix handed out that candle's kernels
    /// multiply, and a prompt's worth of rows through those that prompts
    /// use, on `threads` threads, so that candle's CPU kernels build their
    /// tiles now rather than in the middle of an answer. Nothing to do off
    /// the CPU, nor for packed matrices.
    pub fn prepare(&self, threads: usize) -> Result<()> {
        let handed = lock(&self.store.handed);
        let candle: Vec<(Arc<QTensor>, bool)> = handed
            .iter()
            .filter_map(|h| match &h.matrix {
                QuantisedMatrix::Candle(q) if q.device().is_cpu() => Some((q.clone(), h.prompted)),
                _ => None,
            })
            .collect();
        drop(handed);
        let few = candle.iter().map(|(q, _)| (q.clone(), 1));
        let prompts = candle
            .iter()
            .filter(|(_, prompted)| *prompted)
            .map(|(q, _)| (q.clone(), PROMPT_ROWS));
        let work: Vec<(Arc<QTensor>, usize)> = few.chain(prompts).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads.max(1))
                .map(|_| {
                    scope.spawn(|| -> Result<()> {
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some((q, rows)) = work.get(i) else {
                                return Ok(());
                            };
                            let inputs = q.shape().dims2()?.1;
                            Tensor::zeros((*rows, inputs), DType::F32, &Device::Cpu)?
                                .apply_op1_no_bwd(q.as_ref())?;
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .try_for_each(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
        })
    }

    fn hand_out(&self, name: &str, matrix: &QuantisedMatrix, made: bool) {
        lock(&self.store.handed).push(Handed {
            name: name.to_string(),
            matrix: matrix.clone(),
            made,
            prompted: !self.single_rows,
        });
    }

    /// Whether weight `name`, of rows `inputs` long, comes out quantised:
    /// the cache holds it, or the format fits its rows.
    pub fn quantises(&self, name: &str, inputs: usize) -> bool {
        lock(&self.store.cached).contains_key(name) || self.quant.format_for(inputs).is_some()
    }

    /// `[outputs, inputs]` weight `name`: from the cache, else `read` and
    /// quantised where the rows allow.
    fn weight(
        &self,
        name: &str,
        (outputs, inputs): (usize, usize),
        read: impl FnOnce() -> Result<Tensor>,
    ) -> Result<Weight> {
        if let Some(q) = lock(&self.store.cached).remove(name) {
            if q.shape().dims() != [outputs, inputs] {
                candle_core::bail!(
                    "the cached {name} is {:?}, expected [{outputs}, {inputs}]",
                    q.shape().dims()
                );
            }
            let q = QuantisedMatrix::for_device(q)?;
            self.hand_out(name, &q, false);
            return Ok(Weight::Quantized(q));
        }
        let weight = read()?;
        let Some(format) = self.quant.format_for(inputs) else {
            return Ok(Weight::Float(weight));
        };
        let q = QuantisedMatrix::for_device(QTensor::quantize(&weight, format)?)?;
        drop(weight);
        self.hand_out(name, &q, true);
        Ok(Weight::Quantized(q))
    }
}

/// A poisoned lock only means another layer's load panicked; the map is intact.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Linear {
    /// `weight` is `[out, in]`; quantised as `quant` says where the rows allow.
    pub fn new(weight: Tensor, bias: Option<Tensor>, quant: Quant) -> Result<Self> {
        let dims = weight.dims2()?;
        let q = Quantiser::new(quant);
        let weight = q.weight("", dims, || Ok(weight))?.in_panels(&q)?;
        Linear::assemble(weight, bias)
    }

    /// A layer of `weight` and `bias`; a matrix in panels takes the bias
    /// into its products.
    fn assemble(weight: Weight, bias: Option<Tensor>) -> Result<Self> {
        match (weight, bias) {
            (Weight::Panels(p), Some(b)) => {
                let b = b.to_dtype(DType::F32)?.to_vec1::<f32>()?;
                Ok(Linear {
                    weight: Weight::Panels(p.with_bias(b)),
                    bias: None,
                })
            }
            (weight, bias) => Ok(Linear { weight, bias }),
        }
    }

    /// The layer at `vb` (`weight`, and `bias` if asked), its matrix stored
    /// as `q` says.
    pub fn load(
        inputs: usize,
        outputs: usize,
        bias: bool,
        vb: VarBuilder,
        q: &Quantiser,
    ) -> Result<Self> {
        let name = format!("{}.weight", vb.prefix());
        let weight = q
            .weight(&name, (outputs, inputs), || {
                vb.get((outputs, inputs), "weight")
            })?
            .in_panels(q)?;
        let bias = if bias {
            Some(vb.get(outputs, "bias")?)
        } else {
            None
        };
        Linear::assemble(weight, bias)
    }

    /// A layer without bias whose weight is a tensor already loaded (an
    /// output head tied to the embedding), cached under `name`. A float
    /// weight keeps the tensor's layout, whose storage it shares.
    pub fn tied(name: &str, weight: &Tensor, q: &Quantiser) -> Result<Self> {
        let weight = q.weight(name, weight.dims2()?, || Ok(weight.clone()))?;
        Ok(Linear { weight, bias: None })
    }

    /// A layer without bias whose `[outputs, inputs]` weight `read` gives,
    /// called only when the cache does not hold it, cached under `name`.
    pub fn load_lazily(
        name: &str,
        dims: (usize, usize),
        read: impl FnOnce() -> Result<Tensor>,
        q: &Quantiser,
    ) -> Result<Self> {
        let weight = q.weight(name, dims, read)?.in_panels(q)?;
        Ok(Linear { weight, bias: None })
    }

    /// The matrix, when it is stored quantised.
    pub fn quantised(&self) -> Option<QuantisedMatrix> {
        match &self.weight {
            Weight::Quantized(q) => Some(q.clone()),
            Weight::Float(_) | Weight::Panels(_) => None,
        }
    }

    /// Bytes the weight matrix occupies.
    pub fn weight_bytes(&self) -> usize {
        match &self.weight {
            Weight::Float(w) => w.elem_count() * w.dtype().size_in_bytes(),
            Weight::Panels(p) => p.size_in_bytes(),
            Weight::Quantized(q) => q.size_in_bytes(),
        }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (x2, rows) = as_rows(x)?;
        let y = match &self.weight {
            Weight::Float(w) => float_product(&x2, w, rows)?,
            Weight::Panels(p) => panel_products(&[p], &x2, None)?.remove(0),
            Weight::Quantized(QuantisedMatrix::Packed(p)) => packed_products(&[p], &x2)?.remove(0),
            Weight::Quantized(QuantisedMatrix::Candle(q))
                if rows <= QUANTISED_KERNEL_ROWS || x.device().is_cpu() =>
            {
                x2.apply_op1_no_bwd(q.as_ref())?
            }
            Weight::Quantized(QuantisedMatrix::Candle(q)) => {
                let w = q.dequantize(x.device())?.to_dtype(x.dtype())?;
                x2.matmul(&w.t()?)?
            }
        };
        self.finish(y, x.dims())
    }

    /// [`Linear::forward`] put through `then`, an elementwise activation,
    /// as the product is made; `None` where the weight is not in panels
    /// (the caller activates the plain product).
    pub fn forward_then(&self, x: &Tensor, then: Then) -> Result<Option<Tensor>> {
        let Weight::Panels(p) = &self.weight else {
            return Ok(None);
        };
        let (x2, _) = as_rows(x)?;
        let y = panel_products(&[p], &x2, Some(then))?.remove(0);
        self.finish(y, x.dims()).map(Some)
    }

    /// The product `y` `(rows, outputs)` of an input shaped `dims`, given
    /// the input's shape with its last size the outputs', plus the bias.
    fn finish(&self, y: Tensor, dims: &[usize]) -> Result<Tensor> {
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("an input has a last dimension") = y.dim(1)?;
        let y = y.reshape(out_dims)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }

    /// Each layer's output for the same input `x`, in order.
    pub fn forward_shared(layers: &[&Linear], x: &Tensor) -> Result<Vec<Tensor>> {
        if let Some(ys) = fused_packed(layers, x)? {
            return Ok(ys);
        }
        if let Some(ys) = fused_panels(layers, x)? {
            return Ok(ys);
        }
        if let Some(ys) = fused_one_row(layers, x)? {
            return Ok(ys);
        }
        layers.iter().map(|l| l.forward(x)).collect()
    }
}

/// `x` as a matrix of its last dimension's rows, and how many rows.
fn as_rows(x: &Tensor) -> Result<(Tensor, usize)> {
    let k = *x.dims().last().unwrap_or(&0);
    let rows = x.elem_count() / k.max(1);
    Ok((x.contiguous()?.reshape((rows, k))?, rows))
}

/// Any rows through several packed matrices in one pass; `None` unless
/// every layer is packed.
fn fused_packed(layers: &[&Linear], x: &Tensor) -> Result<Option<Vec<Tensor>>> {
    fused(layers, x, packed_products, |w| match w {
        Weight::Quantized(QuantisedMatrix::Packed(p)) => Some(p),
        _ => None,
    })
}

/// Any rows through several matrices in panels, `x` laid out once for all;
/// `None` unless every layer is in panels.
fn fused_panels(layers: &[&Linear], x: &Tensor) -> Result<Option<Vec<Tensor>>> {
    fused(
        layers,
        x,
        |m, x| panel_products(m, x, None),
        |w| match w {
            Weight::Panels(p) => Some(p),
            _ => None,
        },
    )
}

/// Several layers' outputs from one call of `products`, over the matrices
/// `matrix` finds in every layer; `None` for a single layer, or where a
/// layer has none.
fn fused<'a, M>(
    layers: &[&'a Linear],
    x: &Tensor,
    products: fn(&[&'a M], &Tensor) -> Result<Vec<Tensor>>,
    matrix: fn(&'a Weight) -> Option<&'a M>,
) -> Result<Option<Vec<Tensor>>> {
    if layers.len() < 2 {
        return Ok(None);
    }
    let Some(mats) = layers
        .iter()
        .map(|l| matrix(&l.weight))
        .collect::<Option<Vec<&M>>>()
    else {
        return Ok(None);
    };
    let (x2, _) = as_rows(x)?;
    products(&mats, &x2)?
        .into_iter()
        .zip(layers)
        .map(|(y, l)| l.finish(y, x.dims()))
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// `x · Wᵀ` of `x` `(rows, inputs)` for each `W` in panels, in `x`'s dtype,
/// each through `then` where there is one.
fn panel_products(mats: &[&WeightPanels], x: &Tensor, then: Option<Then>) -> Result<Vec<Tensor>> {
    let (rows, _) = x.dims2()?;
    let x32 = x.to_dtype(DType::F32)?;
    let (storage, layout) = x32.storage_and_layout();
    let (Storage::Cpu(cpu), Some((start, end))) = (&*storage, layout.contiguous_offsets()) else {
        candle_core::bail!("a layer in panels takes a contiguous input on the CPU");
    };
    let ys = WeightPanels::products_then(mats, &cpu.as_slice::<f32>()?[start..end], rows, then);
    drop(storage);
    ys.into_iter()
        .zip(mats)
        .map(|(y, m)| Tensor::from_vec(y, (rows, m.dims().0), x.device())?.to_dtype(x.dtype()))
        .collect()
}

/// `x · Wᵀ` of `x` `(rows, inputs)` for each packed `W`, in `x`'s dtype.
fn packed_products(mats: &[&Arc<PackedMatrix>], x: &Tensor) -> Result<Vec<Tensor>> {
    let (rows, _) = x.dims2()?;
    let xs = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let mats: Vec<&PackedMatrix> = mats.iter().map(|p| p.as_ref()).collect();
    PackedMatrix::matmul_many(&mats, &xs, rows)
        .into_iter()
        .zip(&mats)
        .map(|(y, m)| Tensor::from_vec(y, (rows, m.dims().0), x.device())?.to_dtype(x.dtype()))
        .collect()
}

/// One row through several quantised matrices of one format on the CPU, in
/// one call of candle's fused kernel; `None` where it does not apply (other
/// weights, more rows, a CPU or format the kernel does not cover).
fn fused_one_row(layers: &[&Linear], x: &Tensor) -> Result<Option<Vec<Tensor>>> {
    let dims = x.dims();
    let k = *dims.last().unwrap_or(&0);
    if layers.len() < 2 || !x.device().is_cpu() || x.dtype() != DType::F32 || x.elem_count() != k {
        return Ok(None);
    }
    let Some(qs) = layers
        .iter()
        .map(|l| match &l.weight {
            Weight::Quantized(QuantisedMatrix::Candle(q)) => Some(q.as_ref()),
            _ => None,
        })
        .collect::<Option<Vec<&QTensor>>>()
    else {
        return Ok(None);
    };
    if qs.iter().any(|q| q.dtype() != qs[0].dtype()) {
        return Ok(None);
    }
    let Some(ys) = QTensor::gemv_fused_shared_lhs(&qs, &x.contiguous()?.reshape((1, k))?)? else {
        return Ok(None);
    };
    ys.into_iter()
        .zip(layers)
        .map(|(y, l)| l.finish(y, dims))
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// `x · wᵀ` for float weights: the streaming kernel where it applies,
/// candle's matmul elsewhere.
fn float_product(x: &Tensor, w: &Tensor, rows: usize) -> Result<Tensor> {
    if !matches!(w.device(), Device::Cpu) || !w.is_contiguous() {
        return x.matmul(&w.t()?);
    }
    if rows > few_rows::MAX_ROWS {
        return outputs_per_thread(x, w, rows);
    }
    let (n, _) = w.dims2()?;
    let xs = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let (storage, layout) = w.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return x.matmul(&w.t()?);
    };
    let span = layout.start_offset()..layout.start_offset() + w.elem_count();
    let mut y = vec![0f32; rows * n];
    match w.dtype() {
        DType::F32 => stream(&xs, rows, &cpu.as_slice::<f32>()?[span], n, &mut y),
        DType::BF16 => stream(&xs, rows, &cpu.as_slice::<bf16>()?[span], n, &mut y),
        DType::F16 => stream(&xs, rows, &cpu.as_slice::<f16>()?[span], n, &mut y),
        _ => {
            drop(storage);
            return x.matmul(&w.t()?);
        }
    }
    Tensor::from_vec(y, (rows, n), &Device::Cpu)?.to_dtype(x.dtype())
}

/// Many rows through an f32 matrix on the CPU: candle's own matmul kernel
/// (the `gemm` crate), run on one contiguous share of the outputs per
/// thread of candle's pool. On two cores that was 3–20 % faster at the
/// prompt and vision tower widths than letting the crate split the product
/// itself (`bench/RESULTS.md`); the sums are the same.
fn outputs_per_thread(x: &Tensor, w: &Tensor, rows: usize) -> Result<Tensor> {
    if w.dtype() != DType::F32 || x.dtype() != DType::F32 {
        return x.matmul(&w.t()?);
    }
    let (n, k) = w.dims2()?;
    let (xg, xl) = x.storage_and_layout();
    let (wg, wl) = w.storage_and_layout();
    let (Storage::Cpu(xc), Storage::Cpu(wc), Some((x0, x1))) =
        (&*xg, &*wg, xl.contiguous_offsets())
    else {
        drop((xg, wg));
        return x.matmul(&w.t()?);
    };
    let xs = &xc.as_slice::<f32>()?[x0..x1];
    let ws = &wc.as_slice::<f32>()?[wl.start_offset()..][..n * k];
    let mut y = vec![0f32; rows * n];
    // Each thread writes its own columns.
    let target = DisjointWrites::new(y.as_mut_ptr());
    let pool = candle_core::utils::barrier_pool();
    let threads = pool.n_workers() + 1;
    // Shares in whole 16-output strips, the kernel's register width.
    let share = n.div_ceil(threads).div_ceil(16) * 16;
    // (`execute_chunked` runs inline where it is called from a pool task.)
    pool.execute_chunked(threads, |shares| {
        let first = (shares.start * share).min(n);
        let last = (shares.end * share).min(n);
        if first == last {
            return;
        }
        // SAFETY: `x` is `rows × k`, `w` is `n × k` (read as `wᵀ` through
        // its strides) and `y` is `rows × n`, all row-major; each thread
        // writes only its own columns `first..last` of `y`.
        unsafe {
            gemm::gemm(
                rows,
                last - first,
                k,
                target.at(first),
                1,
                n as isize,
                false,
                xs.as_ptr(),
                1,
                k as isize,
                ws.as_ptr().add(first * k),
                k as isize,
                1,
                0f32,
                1f32,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        }
    });
    drop((xg, wg));
    Tensor::from_vec(y, (rows, n), &Device::Cpu)
}

fn stream<W: WeightElement>(x: &[f32], rows: usize, w: &[W], n: usize, y: &mut [f32]) {
    few_rows::matmul_t(x, rows, w, n, y)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;
    use crate::model::test_util::max_abs_diff;

    /// Deterministic values in [-1, 1) (the CPU device takes no seed).
    fn random(shape: (usize, usize), seed: u64) -> Tensor {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let v: Vec<f32> = (0..shape.0 * shape.1)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn mean_abs(t: &Tensor) -> f32 {
        t.abs()
            .unwrap()
            .mean_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn every_route_agrees_with_candles_matmul_for_one_few_and_many_rows() {
        let w = random((96, 512), 1);
        let b = random((1, 96), 2).squeeze(0).unwrap();
        for rows in [1, 3, few_rows::MAX_ROWS, few_rows::MAX_ROWS + 1, 40] {
            let x = random((rows, 512), 3).unsqueeze(0).unwrap();
            let want = x
                .broadcast_matmul(&w.t().unwrap())
                .unwrap()
                .broadcast_add(&b)
                .unwrap();
            // In the panels of glimpse's kernel (where the CPU runs it) and
            // in the checkpoint's layout.
            let none = Quantiser::new(Quant::None);
            for q in [none.clone(), none.in_checkpoint_layout()] {
                let float = Linear::load_lazily("w", (96, 512), || Ok(w.clone()), &q).unwrap();
                let in_panels = matches!(float.weight, Weight::Panels(_));
                assert_eq!(in_panels, q.panels && many_rows::available());
                let float = Linear::assemble(float.weight, Some(b.clone())).unwrap();
                let got = float.forward(&x).unwrap();
                assert_eq!(got.dims(), &[1, rows, 96]);
                let err = max_abs_diff(&got, &want);
                assert!(err < 1e-3, "float, panels {in_panels}, {rows} rows");
            }

            // Quantised: the kernel route and the dequantise route give the
            // same product up to rounding of the activations, and both stay
            // near the float one.
            let q8 = Linear::new(w.clone(), Some(b.clone()), Quant::Q8_0).unwrap();
            let got = q8.forward(&x).unwrap();
            let scale = mean_abs(&want);
            let err = max_abs_diff(&got, &want) / scale;
            assert!(
                err < 0.05,
                "q8_0, {rows} rows: error {err} of the mean size"
            );
        }
    }

    #[test]
    fn an_activation_applied_as_the_product_is_made_gives_the_same_floats() {
        let (outputs, inputs, rows) = (300, 70, 200);
        let w = random((outputs, inputs), 21);
        let b = random((1, outputs), 22).squeeze(0).unwrap();
        let q = Quantiser::new(Quant::None);
        let l = Linear::load_lazily("w", (outputs, inputs), || Ok(w.clone()), &q).unwrap();
        let l = Linear::assemble(l.weight, Some(b)).unwrap();
        let x = random((rows, inputs), 23);
        let then = |part: &mut [f32]| part.iter_mut().for_each(|v| *v = *v * 2.0 + 1.0);
        match l.forward_then(&x, &then).unwrap() {
            Some(y) => {
                let want = l.forward(&x).unwrap().affine(2.0, 1.0).unwrap();
                assert_eq!(max_abs_diff(&y, &want), 0.0);
            }
            None => assert!(!many_rows::available(), "f32 weights go into panels"),
        }
    }

    #[test]
    fn half_precision_weights_take_the_streaming_route_with_the_right_result() {
        let w = random((33, 300), 4);
        let x = random((2, 300), 5);
        for dtype in [DType::BF16, DType::F16] {
            let wd = w.to_dtype(dtype).unwrap();
            let want = x
                .to_dtype(dtype)
                .unwrap()
                .matmul(&wd.t().unwrap())
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap();
            let got = Linear::new(wd, None, Quant::None)
                .unwrap()
                .forward(&x.to_dtype(dtype).unwrap())
                .unwrap();
            assert_eq!(got.dtype(), dtype);
            let got = got.to_dtype(DType::F32).unwrap();
            let scale = mean_abs(&want);
            assert!(max_abs_diff(&got, &want) / scale < 0.02, "{dtype:?}");
        }
    }

    #[test]
    fn quantised_weights_are_smaller_by_their_block_format() {
        let w = random((64, 1024), 6);
        let float = Linear::new(w.clone(), None, Quant::None).unwrap();
        let q4 = Linear::new(w, None, Quant::Q4K).unwrap();
        assert_eq!(float.weight_bytes(), 64 * 1024 * 4);
        // Packed for this CPU's kernels, the tiles keep the 6-bit scales as
        // bytes: 2 368 bytes per 16 rows of 256 weights against the blocks'
        // 2 304.
        let bytes = if PackedMatrix::cpu_has_kernels() {
            64 / 16 * 1024 / 256 * 2368
        } else {
            64 * 1024 / 256 * 144
        };
        assert_eq!(q4.weight_bytes(), bytes);
    }

    #[test]
    fn layers_sharing_an_input_give_what_each_gives_alone() {
        // 512 inputs and multiples of 16 outputs: the shapes the packed and
        // candle's fused kernels take, where the CPU has them.
        let x = random((1, 512), 7).unsqueeze(0).unwrap();
        for quant in [Quant::None, Quant::Q8_0, Quant::Q4K, Quant::Q6K] {
            let q = Quantiser::new(quant);
            let layers: Vec<Linear> = [(32, 8), (64, 9), (16, 10)]
                .iter()
                .map(|&(n, seed)| {
                    let l = Linear::tied("", &random((n, 512), seed), &q).unwrap();
                    let b = random((1, n), seed + 10).squeeze(0).unwrap();
                    Linear::assemble(l.weight, Some(b)).unwrap()
                })
                .collect();
            // Tiles built beforehand change nothing either.
            q.prepare(2).unwrap();
            let refs: Vec<&Linear> = layers.iter().collect();
            if matches!(quant, Quant::Q8_0 | Quant::Q4K) && PackedMatrix::cpu_has_kernels() {
                assert!(
                    fused_packed(&refs, &x).unwrap().is_some(),
                    "{quant:?} takes the packed kernels on this CPU"
                );
            }
            let shared = Linear::forward_shared(&refs, &x).unwrap();
            assert_eq!(shared.len(), 3);
            for (l, got) in layers.iter().zip(&shared) {
                let alone = l.forward(&x).unwrap();
                assert_eq!(got.dims(), alone.dims(), "{quant:?}");
                assert_eq!(max_abs_diff(got, &alone), 0.0, "{quant:?}");
            }
        }
        // More than one row: each layer on its own, as before.
        let rows = random((3, 512), 11);
        let q = Quantiser::new(Quant::Q8_0);
        let a = Linear::tied("", &random((32, 512), 12), &q).unwrap();
        let b = Linear::tied("", &random((48, 512), 13), &q).unwrap();
        let both = Linear::forward_shared(&[&a, &b], &rows).unwrap();
        assert_eq!(max_abs_diff(&both[0], &a.forward(&rows).unwrap()), 0.0);
        assert_eq!(max_abs_diff(&both[1], &b.forward(&rows).unwrap()), 0.0);
    }
}
