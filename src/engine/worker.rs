//! What runs on the engine thread: turning a request into a prompt, reusing the
//! KV cache of the previous turn where the prompts agree, encoding only the new
//! images, prefilling and decoding.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::Context;
use candle_core::Tensor;

use super::device::{describe_device, dtype_name, open_device};
use super::estimate::{checkpoint_elements, estimate, EstimateInputs, LargestImage};
use super::kv_policy::{memory_fraction, KvCachePolicy};
use super::placement::{place, Host, Placement, Target};
use super::prompt::{common_prefix, count_image_runs, drop_oldest_turn, reusable_prefix, Prompt};
use super::sampling::{GenerationDefaults, Sampler, SamplingParams};
use super::turn::{Answer, Turn};
use super::{
    kv_format_code, ContextPolicy, EngineOptions, Event, FinishReason, ImageFacts, ModelInfo,
    Request, DEFAULT_CONTEXT,
};
use crate::conversation::Conversation;
use crate::gpu::{GpuMonitor, GpuState, NvmlMonitor, Readings};
use crate::model::kv_cache::KvFormat;
use crate::model::rope_index::{decode_position, rope_index, Grid, RopePositions};
use crate::model::{Family, KvCache, LoadOptions, VisionOutput, VlModel};
use crate::processor::detokenize::IncrementalDecoder;
use crate::processor::image::{load_image_with, AlphaMode, LongEdgeCap};
use crate::processor::prompt::build_prompt_ids;
use crate::processor::reasoning::{Channel, Piece, ReasoningSplitter, ThinkTokens};
use crate::processor::template::ChatTemplate;
use crate::processor::template::RenderOptions;
use crate::processor::thinking::ThinkingMode;
use crate::processor::tokenizer::TextTokenizer;
use crate::processor::vision_input::{preprocess_image, PreprocessedImage, VisionPreprocessConfig};

/// An image file is reprocessed only when it changes on disk.
#[derive(Clone, PartialEq, Eq, Hash)]
struct ImageKey {
    path: PathBuf,
    modified: Option<SystemTime>,
    len: u64,
}

impl ImageKey {
    fn of(path: &Path) -> Self {
        let meta = std::fs::metadata(path).ok();
        ImageKey {
            path: path.to_path_buf(),
            modified: meta.as_ref().and_then(|m| m.modified().ok()),
            len: meta.map(|m| m.len()).unwrap_or(0),
        }
    }
}

pub struct Worker {
    model: VlModel,
    tokenizer: TextTokenizer,
    template: ChatTemplate,
    thinking: ThinkingMode,
    think_tokens: Option<ThinkTokens>,
    preprocess: VisionPreprocessConfig,
    generation: GenerationDefaults,
    long_edge_cap: Option<LongEdgeCap>,
    alpha: AlphaMode,
    max_context: usize,
    load_s: f64,
    cache: KvCache,
    kv_policy: KvCachePolicy,
    /// Shared with the engine handle: the cache's current format.
    kv_shared: Arc<AtomicU8>,
    readings: Option<Readings>,
    placement: Placement,
    /// Ids whose keys and values are in `cache`.
    cached_ids: Vec<u32>,
    images: HashMap<ImageKey, Arc<PreprocessedImage>>,
}

impl Worker {
    pub fn load(options: &EngineOptions, kv_shared: Arc<AtomicU8>) -> anyhow::Result<Worker> {
        let dir = &options.model_dir;
        super::check_model_dir(dir)?;
        // Cheap files first, so a broken directory fails before the weights load.
        let config_probe = crate::model::ModelConfig::from_model_dir(dir)?;
        let tokenizer = TextTokenizer::from_model_dir(dir)?;
        let template = ChatTemplate::from_model_dir(dir)?;
        let preprocess = preprocess_config(dir, config_probe.family)?;
        let generation = GenerationDefaults::from_model_dir(dir, &config_probe.eos_token_ids)
            .map_err(anyhow::Error::msg)?;
        let model_limit = config_probe.text.max_position_embeddings;
        let max_context = options
            .max_context
            .unwrap_or(DEFAULT_CONTEXT)
            .min(model_limit);

        let weight_elements = checkpoint_elements(dir)?;
        let image = LargestImage::allowed(&preprocess, options.long_edge_cap);
        let kv_format = options.kv_cache.initial_format();
        let gpus = observed_gpus(options);
        let cpu = crate::gpu::cpu::read_facts();
        let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
        let host = Host {
            gpus: &gpus,
            cuda_built: candle_core::utils::cuda_is_available(),
            cpu_threads: cpu.threads,
            cpu_available: cpu.memory_available,
            visible_devices: visible.as_deref(),
        };
        let placement = place(options.device, options.dtype, &host, |dtype, cuda| {
            estimate(&EstimateInputs {
                config: &config_probe,
                weight_elements,
                dtype,
                quant: options.quant,
                quant_vision: options.quant_vision,
                context_tokens: max_context,
                kv_format,
                image,
                cuda,
            })
        })?;
        let device = open_device(placement.target)?;
        let progress = |done: usize, total: usize| {
            if let Some(p) = &options.load_progress {
                (p.0)(done, total)
            }
        };
        let load = LoadOptions {
            quant: options.quant,
            quant_vision: options.quant_vision,
            cache_root: options.weight_cache.clone(),
            ..LoadOptions::default()
        };
        let model = VlModel::load_with(dir, &device, placement.dtype, &load, &progress)?;
        let cache = KvCache::with_format(model.config.text.num_hidden_layers, kv_format)
            .with_limit(max_context);
        kv_shared.store(kv_format_code(kv_format), Ordering::Relaxed);
        let worker = Worker {
            model,
            thinking: ThinkingMode::of(&template),
            think_tokens: ThinkTokens::of(&tokenizer),
            tokenizer,
            template,
            preprocess,
            generation,
            long_edge_cap: options.long_edge_cap,
            alpha: options.alpha,
            max_context,
            load_s: 0.0,
            cache,
            kv_policy: options.kv_cache,
            kv_shared,
            readings: options.readings.clone(),
            placement,
            cached_ids: Vec::new(),
            images: HashMap::new(),
        };
        if worker.model.device().is_cuda() {
            worker.warm_up().context("warming up the GPU")?;
        }
        Ok(worker)
    }

    /// Runs one image and two tokens through the model on a throwaway cache.
    /// CUDA loads (and compiles) its kernels on their first use, about ten
    /// seconds in all; this puts that cost in the load, not in the first answer.
    pub(crate) fn warm_up(&self) -> anyhow::Result<()> {
        let p = &self.preprocess;
        let merge = p.merge_size;
        // The smallest image the processor makes: 2 × 2 merged patches.
        let grid = [1, 2 * merge, 2 * merge];
        let patches = grid[1] * grid[2];
        let cols = 3 * p.temporal_patch_size * p.patch_size * p.patch_size;
        let device = self.model.device();
        let pixels = Tensor::zeros((patches, cols), candle_core::DType::F32, device)?;
        let vision = self.model.encode_images(&pixels, &[grid])?;
        let image_id = self.model.config.image_token_id;
        let mut ids = vec![0u32];
        ids.extend(std::iter::repeat_n(image_id, patches / (merge * merge)));
        ids.push(0);
        let rope = rope_index(&ids, image_id, &[grid], merge)?;
        let layers = self.model.config.text.num_hidden_layers;
        let mut cache = KvCache::with_format(layers, self.cache.format());
        let mut sampler = Sampler::new(self.generation.resolve(&super::SamplingOverrides {
            temperature: Some(0.0),
            repetition_penalty: Some(1.05),
            ..Default::default()
        }));
        let logits = self
            .model
            .forward(&ids, &rope.positions, Some(&vision), &mut cache)?;
        let next = sampler.sample(&logits, &ids)?;
        ids.push(next);
        let position = decode_position(ids.len() - 1, rope.delta);
        let logits = self.model.forward(&[next], &[position], None, &mut cache)?;
        sampler.sample(&logits, &ids)?;
        Ok(())
    }

    pub fn info(&self) -> ModelInfo {
        let family = self.model.family();
        ModelInfo {
            dir: self.model.dir.clone(),
            model_type: family.model_type().into(),
            family: family.display_name().into(),
            device: describe_device(self.placement.target),
            dtype: dtype_name(self.model.dtype()).into(),
            quant: self.model.quant().name().into(),
            quant_vision: self.model.quant_vision(),
            weight_cache: self.model.weight_cache.0.name().into(),
            linear_bytes: self.model.linear_bytes() as u64,
            max_context: self.max_context,
            load_s: self.load_s,
            memory_estimate: self.placement.estimate.clone(),
            notice: self.notice(),
            gpu_index: match self.placement.target {
                Target::Cuda { nvml_index, .. } => nvml_index,
                Target::Cpu => None,
            },
            thinking: self.thinking,
            generation: self.generation.clone(),
            preprocess: self.preprocess.clone(),
        }
    }

    /// The placement's notice and the weights cache's, in one line.
    fn notice(&self) -> Option<String> {
        let (used, path) = &self.model.weight_cache;
        let cache = path.as_deref().and_then(|p| used.notice(p));
        let parts: Vec<String> = self.placement.notice.iter().cloned().chain(cache).collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// Under the `auto` policy, turns the cache to INT8 once the device's
    /// memory use reaches the threshold, and says so.
    fn apply_kv_policy(&mut self, turn: &Turn) -> anyhow::Result<()> {
        let used = self
            .readings
            .as_ref()
            .and_then(Readings::latest)
            .and_then(|s| memory_fraction(&s, self.placement.target));
        if !self.kv_policy.should_convert(self.cache.format(), used) {
            return Ok(());
        }
        let bytes_before = self.cache.size_in_bytes();
        self.cache.convert_to_int8()?;
        self.kv_shared
            .store(kv_format_code(KvFormat::Int8), Ordering::Relaxed);
        turn.send(Event::KvCacheConverted {
            format: KvFormat::Int8,
            memory_fraction: used.unwrap_or(0.0),
            bytes_before,
            bytes_after: self.cache.size_in_bytes(),
        });
        Ok(())
    }

    pub fn set_load_s(&mut self, s: f64) {
        self.load_s = s;
    }

    /// Positions whose keys and values the cache holds.
    pub fn cached_positions(&self) -> usize {
        self.cache.len()
    }

    /// Forgets the cached conversation (after an error the cache may be partial).
    pub fn reset(&mut self) {
        self.cache.clear();
        self.cached_ids.clear();
    }

    fn prepare_image(&mut self, path: &Path) -> anyhow::Result<Arc<PreprocessedImage>> {
        let key = ImageKey::of(path);
        if let Some(img) = self.images.get(&key) {
            return Ok(img.clone());
        }
        let decoded = load_image_with(path, self.long_edge_cap.as_ref(), self.alpha)?;
        let pre = Arc::new(
            preprocess_image(&decoded, &self.preprocess)
                .with_context(|| format!("preparing {}", path.display()))?,
        );
        self.images.insert(key, pre.clone());
        Ok(pre)
    }

    pub fn generate(&mut self, req: &Request) -> anyhow::Result<()> {
        let mut turn = Turn::start(req, self.load_s);
        let params = self.generation.resolve(&req.sampling);
        let prompt = self.fit_to_context(req, params.max_new_tokens)?;
        let image_id = self.model.config.image_token_id;
        let grids: Vec<Grid> = prompt.images.iter().map(|i| i.grid_thw).collect();
        let rope = rope_index(&prompt.ids, image_id, &grids, self.preprocess.merge_size)?;
        let reuse = self.keep_common_prefix(&prompt.ids)?;
        turn.send(prompt.event(reuse, params.clone()));

        let first_new_image = count_image_runs(&prompt.ids[..reuse], image_id);
        let vision = self.encode_new(&prompt.images[first_new_image..], &mut turn)?;
        if turn.cancelled() {
            turn.done(Answer::cancelled());
            return Ok(());
        }
        let logits = self.prefill(&prompt, &rope, reuse, vision.as_ref(), &mut turn)?;
        let answer = self.decode(&mut turn, params, logits, &prompt.ids, rope.delta)?;
        self.cache.checkpoint();
        turn.done(answer);
        Ok(())
    }

    /// The request's prompt; under `DropOldest`, without its oldest turns
    /// until it fits with room for a short answer.
    fn fit_to_context(&mut self, req: &Request, max_new_tokens: usize) -> anyhow::Result<Prompt> {
        let mut conversation = req.conversation.clone();
        let mut dropped_messages = 0;
        let room = max_new_tokens.clamp(1, 64);
        let mut prompt = loop {
            let prompt = self.build_prompt(&conversation, req.thinking)?;
            let fits = prompt.ids.len() + room <= self.max_context;
            if fits || req.context == ContextPolicy::Refuse {
                break prompt;
            }
            match drop_oldest_turn(&mut conversation) {
                0 => break prompt,
                n => dropped_messages += n,
            }
        };
        if prompt.ids.len() >= self.max_context {
            anyhow::bail!(
                "the conversation takes {} tokens and leaves no room for an answer in the context of {} tokens; shorten it, remove images or raise --max-context",
                prompt.ids.len(),
                self.max_context
            );
        }
        prompt.dropped_messages = dropped_messages;
        Ok(prompt)
    }

    fn build_prompt(
        &mut self,
        conversation: &Conversation,
        thinking: Option<bool>,
    ) -> anyhow::Result<Prompt> {
        let paths: Vec<PathBuf> = conversation
            .images()
            .into_iter()
            .map(Path::to_path_buf)
            .collect();
        let images = paths
            .iter()
            .map(|p| self.prepare_image(p))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let merge = self.preprocess.merge_size;
        let counts: Vec<usize> = images.iter().map(|i| i.num_image_tokens(merge)).collect();
        let render = |add_generation_prompt| {
            build_prompt_ids(
                &self.template,
                &self.tokenizer,
                conversation,
                self.model.config.image_token_id,
                &counts,
                RenderOptions {
                    add_generation_prompt,
                    enable_thinking: thinking,
                },
            )
            .map(|p| p.ids)
        };
        let ids = render(true)?;
        // Recurrent states cannot be cut back, so the prefill stops there to
        // leave a checkpoint for the next turn.
        let history = if self.model.config.text.linear.is_some() {
            common_prefix(&render(false)?, &ids)
        } else {
            0
        };
        Ok(Prompt {
            ids,
            paths,
            images,
            counts,
            dropped_messages: 0,
            history,
        })
    }

    /// Keeps the cached keys and values of the longest prefix `ids` shares
    /// with the previous prompt; returns its length.
    fn keep_common_prefix(&mut self, ids: &[u32]) -> anyhow::Result<usize> {
        let reuse = reusable_prefix(&self.cached_ids, ids, self.model.config.image_token_id);
        // Recurrent states go back only as far as their latest checkpoint.
        let reuse = self.cache.truncate(reuse)?;
        self.cached_ids.truncate(reuse);
        Ok(reuse)
    }

    /// Runs the vision tower on `images` (those not already in the cache).
    fn encode_new(
        &self,
        images: &[Arc<PreprocessedImage>],
        turn: &mut Turn,
    ) -> anyhow::Result<Option<VisionOutput>> {
        if images.is_empty() {
            return Ok(None);
        }
        let t0 = Instant::now();
        let out = self.encode(images)?;
        turn.timings.vision_s = t0.elapsed().as_secs_f64();
        turn.send(Event::VisionDone {
            ms: turn.timings.vision_s * 1000.0,
        });
        Ok(Some(out))
    }

    /// Runs the prompt from position `reuse` on; returns the logits of the
    /// answer's first token. With recurrent states, the conversation and the
    /// opened reply go in two parts, with a checkpoint between them.
    fn prefill(
        &mut self,
        prompt: &Prompt,
        rope: &RopePositions,
        reuse: usize,
        vision: Option<&VisionOutput>,
        turn: &mut Turn,
    ) -> anyhow::Result<Tensor> {
        self.apply_kv_policy(turn)?;
        let t0 = Instant::now();
        let ids = &prompt.ids;
        let split = prompt.history;
        let image_id = self.model.config.image_token_id;
        let mut from = reuse;
        if reuse < split && split < ids.len() && !ids[split..].contains(&image_id) {
            self.model.forward(
                &ids[reuse..split],
                &rope.positions[reuse..split],
                vision,
                &mut self.cache,
            )?;
            self.cache.checkpoint();
            from = split;
        }
        let logits = self.model.forward(
            &ids[from..],
            &rope.positions[from..],
            if from == reuse { vision } else { None },
            &mut self.cache,
        )?;
        self.cached_ids = ids.to_vec();
        self.cache.checkpoint();
        turn.timings.prefill_s = t0.elapsed().as_secs_f64();
        Ok(logits)
    }

    /// Samples a token, streams its text and runs it, until an end token,
    /// the token limit (the request's, or the context's end) or a cancel.
    fn decode(
        &mut self,
        turn: &mut Turn,
        params: SamplingParams,
        mut logits: Tensor,
        prompt: &[u32],
        rope_delta: i64,
    ) -> anyhow::Result<Answer> {
        let max_new = params.max_new_tokens.min(self.max_context - prompt.len());
        let mut sampler = Sampler::new(params);
        let mut history = prompt.to_vec();
        let mut decoder = IncrementalDecoder::new(self.tokenizer.clone(), false);
        let mut splitter = ReasoningSplitter::new(self.think_tokens, prompt);
        let mut answer = Answer::empty();
        while answer.tokens.len() < max_new {
            if turn.cancelled() {
                answer.finish = FinishReason::Cancelled;
                break;
            }
            let next = sampler.sample(&logits, &history)?;
            turn.token_sampled();
            answer.tokens.push(next);
            history.push(next);
            if !turn.req.sampling.ignore_eos && self.generation.eos_token_ids.contains(&next) {
                answer.finish = FinishReason::Stop;
                break;
            }
            let delta = decoder.push(next)?.unwrap_or_default();
            turn.send(token_event(next, splitter.push(next, &delta)));
            if answer.tokens.len() >= max_new {
                break;
            }
            let pos = decode_position(history.len() - 1, rope_delta);
            self.apply_kv_policy(turn)?;
            logits = self.model.forward(&[next], &[pos], None, &mut self.cache)?;
            self.cached_ids.push(next);
        }
        if let Some(rest) = decoder.finish()?.filter(|r| !r.is_empty()) {
            turn.send(token_event(u32::MAX, splitter.flush(&rest)));
        }
        let split = splitter.finish();
        answer.text = split.answer;
        answer.reasoning = split.reasoning;
        answer.reasoning_tokens = split.reasoning_tokens;
        Ok(answer)
    }

    fn encode(&self, images: &[Arc<PreprocessedImage>]) -> anyhow::Result<VisionOutput> {
        let cols = images[0].cols;
        let rows: usize = images.iter().map(|i| i.rows).sum();
        let mut data = Vec::with_capacity(rows * cols);
        for i in images {
            data.extend_from_slice(&i.pixel_values);
        }
        let pixels = Tensor::from_vec(data, (rows, cols), self.model.device())?;
        let grids: Vec<[usize; 3]> = images.iter().map(|i| i.grid_thw).collect();
        Ok(self.model.encode_images(&pixels, &grids)?)
    }
}

/// The event for one token's share of the reply.
fn token_event(id: u32, piece: Piece) -> Event {
    match piece.channel {
        Channel::Reasoning => Event::Reasoning {
            id,
            text: piece.text,
        },
        Channel::Answer => Event::Token {
            id,
            text: piece.text,
        },
    }
}

/// The GPUs as the sampler last saw them, or read once now; not read at all
/// for `--device cpu`.
fn observed_gpus(options: &EngineOptions) -> GpuState {
    if let Some(s) = options.readings.as_ref().and_then(Readings::latest) {
        return s.gpus;
    }
    match options.device {
        super::DeviceChoice::Cpu => GpuState::Absent {
            reason: "--device cpu".into(),
        },
        _ => NvmlMonitor::open().read(),
    }
}

/// The model directory's image preprocessing settings, with the family's
/// defaults for whatever `preprocessor_config.json` leaves out.
fn preprocess_config(dir: &Path, family: Family) -> anyhow::Result<VisionPreprocessConfig> {
    let defaults = match family {
        Family::Qwen3Vl | Family::Qwen35 | Family::Qwen3VlMoe | Family::Qwen35Moe => {
            VisionPreprocessConfig::qwen3_vl_defaults()
        }
        Family::Qwen2Vl | Family::Qwen25Vl => VisionPreprocessConfig::qwen2_vl_defaults(),
    };
    Ok(VisionPreprocessConfig::from_model_dir(dir, defaults)?)
}

/// The facts [`Event::Prompt`] would report for these images, from the
/// model directory's config files alone: no weights are loaded and no
/// pixels are resized.
pub fn describe_images(
    options: &EngineOptions,
    paths: &[PathBuf],
) -> anyhow::Result<(Family, Vec<ImageFacts>)> {
    let dir = &options.model_dir;
    super::check_model_dir(dir)?;
    let family = crate::model::ModelConfig::from_model_dir(dir)?.family;
    let preprocess = preprocess_config(dir, family)?;
    let mut facts = Vec::with_capacity(paths.len());
    for path in paths {
        // Only the size goes through the cap: the engine resizes the decoded
        // original to exactly `capped_size`.
        let decoded = load_image_with(path, None, options.alpha)?;
        let (w, h) = decoded.rgb.dimensions();
        let (cw, ch) = options
            .long_edge_cap
            .and_then(|c| c.capped_size(w, h))
            .unwrap_or((w, h));
        let (mw, mh) = preprocess
            .model_input_size(cw, ch)
            .with_context(|| format!("preparing {}", path.display()))?;
        let (p, m) = (preprocess.patch_size, preprocess.merge_size);
        let grid_thw = [1, mh as usize / p, mw as usize / p];
        facts.push(ImageFacts {
            path: path.clone(),
            original_size: [w, h],
            model_size: [mw, mh],
            grid_thw,
            tokens: grid_thw[1] * grid_thw[2] / (m * m).max(1),
        });
    }
    Ok((family, facts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warming_up_runs_every_family_and_leaves_the_cache_alone() {
        for family in crate::model::test_util::FIXTURE_FAMILIES {
            let mut options = EngineOptions::new(crate::model::test_util::fixture_model(family));
            options.device = super::super::DeviceChoice::Cpu;
            let kv = Arc::new(AtomicU8::new(0));
            let worker = Worker::load(&options, kv).unwrap();
            worker
                .warm_up()
                .unwrap_or_else(|e| panic!("{family}: {e:#}"));
            assert!(worker.cache.is_empty() && worker.cached_ids.is_empty());
        }
    }
}
