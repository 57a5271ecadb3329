//! The Qwen-VL family on candle: configuration, weights, vision towers and the
//! multimodal-rotary decoder. Tensors in, logits out; nothing here knows about
//! files other than the checkpoint and its cache of quantised weights, nor
//! about chat templates or terminals.

pub mod attention;
pub mod config;
pub mod delta_net;
mod disjoint;
pub mod few_rows;
pub mod kv_cache;
pub mod linear;
pub mod many_rows;
pub mod mlp;
pub mod moe;
pub mod packed;
pub mod params;
pub mod quant;
pub mod recurrent_state;
pub mod rope;
pub mod rope_index;
mod sigmoid_gelu;
pub mod softmax;
mod tensor_reader;
#[cfg(test)]
pub(crate) mod test_util;
pub mod text;
pub mod vision;
pub mod weight_cache;
pub mod weights;
pub mod window;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

pub use config::{Family, ModelConfig};
pub use kv_cache::KvCache;
pub use quant::Quant;
pub use rope_index::{Grid, RopePositions};
pub use vision::VisionOutput;
pub use weight_cache::CacheUse;

use linear::Quantiser;
pub use moe::MoeAblations;
use rope::{inv_freq, mrope_axes, mrope_tables};
pub use text::TextAblations;
use text::{DeepstackInjection, TextModel};
use vision::VisionTower;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{}: {what}", path.display())]
    MissingFile { path: PathBuf, what: String },
    #[error("{}: {what}", path.display())]
    BadConfig { path: PathBuf, what: String },
    #[error("{}: model_type {model_type:?} is not supported; glimpse runs qwen2_vl, qwen2_5_vl, qwen3_vl, qwen3_vl_moe, qwen3_5 and qwen3_5_moe checkpoints", path.display())]
    UnknownModelType { path: PathBuf, model_type: String },
    #[error("{}: {what}", path.display())]
    BadWeights { path: PathBuf, what: String },
    #[error("{0}")]
    Input(String),
    #[error("tensor computation failed: {}", without_backtrace(.0))]
    Candle(#[from] candle_core::Error),
}

/// candle attaches a backtrace to errors when RUST_BACKTRACE is set; a user
/// needs only the message.
pub fn without_backtrace(e: &candle_core::Error) -> String {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => without_backtrace(inner),
        other => other.to_string(),
    }
}

/// Deliberate departures from the reference architecture, for experiments and
/// for tests that prove each mechanism is checked by the parity tests.
#[derive(Debug, Clone, Default)]
pub struct Ablations {
    /// Use this rotary layout instead of the family's own.
    pub rope_layout: Option<config::MropeLayout>,
    /// Qwen2.5-VL: attend over whole images in every vision block.
    pub full_vision_attention: bool,
    /// Decoder departures (Qwen3.5, mixture of experts).
    pub text: TextAblations,
}

/// How a model's weights are stored and where quantised ones are cached.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The decoder's linear layers and output head.
    pub quant: Quant,
    /// The vision tower's linear layers stored as `quant` too.
    pub quant_vision: bool,
    /// Folder of the quantised-weights cache; none keeps nothing.
    pub cache_root: Option<PathBuf>,
    /// Departures that act while expert weights are read (tests only).
    pub moe_ablations: MoeAblations,
}

/// A loaded model: vision tower and decoder on one device.
pub struct VlModel {
    pub config: ModelConfig,
    pub dir: PathBuf,
    vision: VisionTower,
    text: TextModel,
    inv_freq: Vec<f32>,
    axes: Vec<usize>,
    device: Device,
    dtype: DType,
    quant: Quant,
    quant_vision: bool,
    /// How this load used the quantised-weights cache, and the file.
    pub weight_cache: (CacheUse, Option<PathBuf>),
}

impl VlModel {
    pub fn load(dir: &Path, device: &Device, dtype: DType) -> Result<Self, ModelError> {
        Self::load_quantized(dir, device, dtype, Quant::None, &|_, _| {})
    }

    /// Loads in the float dtype with `ablations` in place, including those
    /// that act while the weights are read.
    pub fn load_ablated(
        dir: &Path,
        device: &Device,
        dtype: DType,
        ablations: Ablations,
    ) -> Result<Self, ModelError> {
        let options = LoadOptions {
            moe_ablations: ablations.text.moe,
            ..LoadOptions::default()
        };
        let mut model = Self::load_with(dir, device, dtype, &options, &|_, _| {})?;
        model.ablate(ablations);
        Ok(model)
    }

    /// Loads with the decoder's linear layers and head stored as `quant`,
    /// without a cache; `progress(done, total)` hears of each decoder layer.
    pub fn load_quantized(
        dir: &Path,
        device: &Device,
        dtype: DType,
        quant: Quant,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Self, ModelError> {
        let options = LoadOptions {
            quant,
            ..LoadOptions::default()
        };
        Self::load_with(dir, device, dtype, &options, progress)
    }

    /// Loads as `options` say: quantised matrices come from the cache when
    /// it holds them for these files and settings, else are quantised and
    /// written there (a cache that cannot be used is replaced, never trusted).
    pub fn load_with(
        dir: &Path,
        device: &Device,
        dtype: DType,
        options: &LoadOptions,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Self, ModelError> {
        let config = ModelConfig::from_model_dir(dir)?;
        let ckpt = weights::open_checkpoint(dir, dtype, device)?;
        let quant = options.quant;
        let cache = match (&options.cache_root, quant) {
            (Some(root), q) if q != Quant::None => Some(
                weight_cache::WeightCache::locate(
                    root,
                    dir,
                    &ckpt.files,
                    quant,
                    dtype,
                    options.quant_vision,
                )
                .map_err(|e| ModelError::BadWeights {
                    path: dir.to_path_buf(),
                    what: format!("cannot read the weights to identify them: {e}"),
                })?,
            ),
            _ => None,
        };
        let (q, before) = match cache.as_ref().map(|c| c.read(device)) {
            None => (Quantiser::new(quant), CacheUse::Off),
            Some(Ok(Some(cached))) => (Quantiser::with_cached(quant, cached), CacheUse::Hit),
            Some(Ok(None)) => (Quantiser::new(quant), CacheUse::Written),
            Some(Err(why)) => (Quantiser::new(quant), CacheUse::Rebuilt(why)),
        };
        let bad = |e: candle_core::Error| ModelError::BadWeights {
            path: if ckpt.files.len() == 1 {
                ckpt.files[0].clone()
            } else {
                dir.join("model.safetensors.index.json")
            },
            what: format!(
                "{}; the weights do not match config.json (a different model size or family?)",
                without_backtrace(&e)
            ),
        };
        let vision_q = q.storing(if options.quant_vision {
            quant
        } else {
            Quant::None
        });
        let vision = VisionTower::load(
            config.family.vision_design(),
            &config.vision,
            ckpt.vb.pp(ckpt.layout.vision),
            &vision_q,
        )
        .map_err(bad)?;
        let lm_head = ckpt.has_lm_head.then(|| ckpt.vb.pp(ckpt.layout.lm_head));
        let text = TextModel::load(
            &config.text,
            ckpt.vb.pp(ckpt.layout.text),
            lm_head,
            &q,
            options.moe_ablations,
            progress,
        )
        .map_err(bad)?;
        // A cache that lacked matrices this version quantises (made by an
        // earlier build of the same version) is completed.
        let all = q.all();
        let before = match (before, q.made_count()) {
            (CacheUse::Hit, made) if made > 0 => CacheUse::Rebuilt(format!(
                "lacked {made} of the {} quantised matrices",
                all.len()
            )),
            (before, _) => before,
        };
        let used = match (&cache, before) {
            (Some(c), before @ (CacheUse::Written | CacheUse::Rebuilt(_))) => match c.write(&all) {
                Ok(()) => before,
                Err(why) => CacheUse::NotWritten(why),
            },
            (_, before) => before,
        };
        // Tiles for the CPU's quantised kernels, built now rather than
        // during the first answer.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        q.prepare(threads).map_err(|e| ModelError::BadWeights {
            path: dir.to_path_buf(),
            what: format!(
                "preparing the quantised weights for this CPU failed: {}",
                without_backtrace(&e)
            ),
        })?;
        let t = &config.text;
        Ok(VlModel {
            inv_freq: inv_freq(t.rope_theta, t.rotary_dim),
            axes: mrope_axes(t.mrope_section, t.mrope_layout),
            config,
            dir: dir.to_path_buf(),
            vision,
            text,
            device: device.clone(),
            dtype,
            quant,
            quant_vision: options.quant_vision && quant != Quant::None,
            weight_cache: (used, cache.map(|c| c.path)),
        })
    }

    pub fn ablate(&mut self, a: Ablations) {
        let t = &self.config.text;
        self.axes = mrope_axes(t.mrope_section, a.rope_layout.unwrap_or(t.mrope_layout));
        self.vision.full_attention_everywhere = a.full_vision_attention;
        self.text.ablate(a.text);
    }

    /// How many attention scores the vision tower holds at once per block of
    /// queries; smaller saves memory on large images at some speed.
    pub fn set_vision_attention_block(&mut self, elements: usize) {
        self.vision.max_scores = elements.max(1);
    }

    pub fn family(&self) -> Family {
        self.config.family
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn quant(&self) -> Quant {
        self.quant
    }

    /// Whether the vision tower's linear layers are quantised too.
    pub fn quant_vision(&self) -> bool {
        self.quant_vision
    }

    /// Bytes of the decoder's projections and output head as loaded.
    pub fn linear_bytes(&self) -> usize {
        self.text.linear_bytes()
    }

    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.config.text.num_hidden_layers)
    }

    /// Runs the vision tower over all images of a request at once.
    pub fn encode_images(
        &self,
        pixel_values: &Tensor,
        grids: &[Grid],
    ) -> Result<VisionOutput, ModelError> {
        Ok(self
            .vision
            .forward(&pixel_values.to_device(&self.device)?, grids)?)
    }

    /// Feeds `ids` (the part of the sequence not yet cached) at `positions`,
    /// replacing the embedding of each image placeholder, in order, by a row of
    /// `images`. Returns the f32 logits for the next token.
    pub fn forward(
        &self,
        ids: &[u32],
        positions: &[[i64; 3]],
        images: Option<&VisionOutput>,
        cache: &mut KvCache,
    ) -> Result<Tensor, ModelError> {
        if ids.is_empty() || ids.len() != positions.len() {
            return Err(ModelError::Input(format!(
                "{} tokens with {} positions",
                ids.len(),
                positions.len()
            )));
        }
        let ids_t = Tensor::new(ids, &self.device)?;
        let mut embeds = self.text.embed(&ids_t)?;
        let image_rows: Vec<u32> = ids
            .iter()
            .enumerate()
            .filter(|(_, &id)| id == self.config.image_token_id)
            .map(|(i, _)| i as u32)
            .collect();
        let mut rows_t = None;
        if let Some(img) = images {
            let n = img.embeds.dim(0)?;
            if n != image_rows.len() {
                return Err(ModelError::Input(format!(
                    "the prompt has {} image placeholder tokens but the images give {n} features",
                    image_rows.len()
                )));
            }
            // Gather from [text embeddings; image features]: each placeholder row
            // points at its feature row, every other row at itself.
            let l = ids.len();
            let mut gather: Vec<u32> = (0..l as u32).collect();
            for (k, &r) in image_rows.iter().enumerate() {
                gather[r as usize] = (l + k) as u32;
            }
            let both = Tensor::cat(&[&embeds, &img.embeds.to_dtype(embeds.dtype())?], 0)?;
            embeds = both.index_select(&Tensor::new(gather.as_slice(), &self.device)?, 0)?;
            rows_t = Some(Tensor::new(image_rows.as_slice(), &self.device)?);
        }
        let rope = mrope_tables(
            positions,
            &self.inv_freq,
            &self.axes,
            self.dtype,
            &self.device,
        )?;
        let deepstack = match (images, &rows_t) {
            (Some(img), Some(rows)) if !img.deepstack.is_empty() && !image_rows.is_empty() => {
                Some(DeepstackInjection {
                    rows,
                    features: &img.deepstack,
                })
            }
            _ => None,
        };
        Ok(self
            .text
            .forward_embeds(&embeds.unsqueeze(0)?, &rope, cache, deepstack)?)
    }
}
