//! The engine owns one loaded model on its own OS thread. A request carries a
//! conversation, sampling settings, its own reply channel and a cancel flag;
//! events stream back. Request and event types hold no candle types, so the
//! remote backend (`crate::remote`) serves the same front ends.

pub mod device;
pub mod estimate;
pub mod kv_policy;
pub mod placement;
mod prompt;
pub mod sampling;
mod turn;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use serde::Serialize;

use crate::conversation::Conversation;
use crate::gpu::Readings;
use crate::model::kv_cache::KvFormat;
use crate::processor::grounding::ImageGeometry;
use crate::processor::image::{AlphaMode, LongEdgeCap};

pub use crate::model::Quant;
pub use crate::processor::reasoning::Channel;
pub use crate::processor::thinking::ThinkingMode;
pub use device::{DeviceChoice, DtypeChoice};
pub use estimate::MemoryEstimate;
pub use kv_policy::KvCachePolicy;
pub use sampling::{GenerationDefaults, SamplingOverrides, SamplingParams};

/// How to load a model.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub model_dir: PathBuf,
    pub device: DeviceChoice,
    pub dtype: DtypeChoice,
    /// How the decoder's linear layers and head are stored.
    pub quant: Quant,
    /// The vision tower's linear layers stored as `quant` too.
    pub quant_vision: bool,
    /// Folder of the quantised-weights cache; none quantises on every load.
    pub weight_cache: Option<PathBuf>,
    /// Images whose long edge exceeds the threshold are scaled down first.
    pub long_edge_cap: Option<LongEdgeCap>,
    /// The context to reserve and allow; by default the model's own limit,
    /// at most [`DEFAULT_CONTEXT`].
    pub max_context: Option<usize>,
    /// How transparent images are flattened.
    pub alpha: AlphaMode,
    pub kv_cache: KvCachePolicy,
    /// Live device readings (the GPU sampler's), for the device choice and the
    /// `auto` KV-cache policy. Without them the GPUs are read once at load and
    /// the KV cache never changes format by itself.
    pub readings: Option<Readings>,
    /// Hears `(layers done, layers)` while the decoder loads (quantising
    /// takes a while).
    pub load_progress: Option<LoadProgress>,
}

/// A callback for the decoder's load progress.
#[derive(Clone)]
pub struct LoadProgress(pub Arc<dyn Fn(usize, usize) + Send + Sync>);

impl std::fmt::Debug for LoadProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoadProgress")
    }
}

/// Context reserved when `--max-context` is not given: the model's limit, but
/// no more than this (Qwen3-VL allows 256 Ki tokens, whose KV cache alone
/// would need tens of GiB).
pub const DEFAULT_CONTEXT: usize = 32_768;

impl EngineOptions {
    pub fn new(model_dir: impl Into<PathBuf>) -> Self {
        EngineOptions {
            model_dir: model_dir.into(),
            device: DeviceChoice::Auto,
            dtype: DtypeChoice::Auto,
            quant: Quant::None,
            quant_vision: false,
            weight_cache: None,
            long_edge_cap: Some(LongEdgeCap::default()),
            max_context: None,
            alpha: AlphaMode::White,
            kv_cache: KvCachePolicy::default(),
            readings: None,
            load_progress: None,
        }
    }
}

/// Facts about the loaded model, for status lines and reports.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub dir: PathBuf,
    pub model_type: String,
    pub family: String,
    pub device: String,
    pub dtype: String,
    /// `none` or the quantised format of the decoder's linear layers.
    pub quant: String,
    /// Whether the vision tower's linear layers are quantised too.
    pub quant_vision: bool,
    /// How the load used the quantised-weights cache: off, hit, written,
    /// rebuilt or not_written.
    pub weight_cache: String,
    /// Bytes of the decoder's linear layers and head as loaded.
    pub linear_bytes: u64,
    pub max_context: usize,
    pub load_s: f64,
    /// The estimate the device was chosen with.
    pub memory_estimate: MemoryEstimate,
    /// What the user should know about the choice (e.g. running on the CPU).
    pub notice: Option<String>,
    /// NVML index of the GPU in use, for the GPU pane.
    pub gpu_index: Option<u32>,
    /// What the chat template does about thinking.
    pub thinking: ThinkingMode,
    #[serde(skip)]
    pub generation: GenerationDefaults,
    /// How this model's images are resized and patched: what the chat needs
    /// to tell an image's token count before asking, and to map boxes back.
    #[serde(skip)]
    pub preprocess: crate::processor::vision_input::VisionPreprocessConfig,
}

impl ModelInfo {
    /// The dtype, with the quantised format of the linear layers if any:
    /// `f32` or `f32 + q4k`.
    pub fn precision(&self) -> String {
        if self.quant == Quant::None.name() {
            self.dtype.clone()
        } else if self.quant_vision {
            format!("{} + {} (vision too)", self.dtype, self.quant)
        } else {
            format!("{} + {}", self.dtype, self.quant)
        }
    }
}

/// What to do when a conversation no longer fits the context.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ContextPolicy {
    /// Answer with an error that says so.
    #[default]
    Refuse,
    /// Drop the oldest turns (never the system prompt or the last question)
    /// until it fits, and report how many messages were dropped.
    DropOldest,
}

pub struct Request {
    pub conversation: Conversation,
    pub sampling: SamplingOverrides,
    pub reply: Sender<Event>,
    pub cancel: Arc<AtomicBool>,
    pub context: ContextPolicy,
    /// `enable_thinking` for the chat template; `None` keeps the checkpoint's
    /// default.
    pub thinking: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    Stop,
    Length,
    Cancelled,
    /// A remote server's answer ended before the server finished it; the
    /// partial answer is kept.
    Dropped(DropCause),
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
            FinishReason::Dropped(_) => "dropped",
        }
    }
}

/// Why a server's answer ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DropCause {
    /// The connection closed.
    Closed,
    /// The connection stayed open but nothing came for `ms` milliseconds,
    /// before the first token or after it.
    Silent { ms: u64, first_token: bool },
}

impl DropCause {
    /// What to do about it, where anything can be done.
    pub fn hint(self) -> Option<&'static str> {
        match self {
            DropCause::Closed => None,
            DropCause::Silent { .. } => Some("raise --idle-timeout to wait longer"),
        }
    }

    /// What happened, in words.
    pub fn describe(self) -> String {
        match self {
            DropCause::Closed => "the server's connection dropped".into(),
            DropCause::Silent { ms, first_token } => {
                let secs = if ms % 1000 == 0 {
                    format!("{} s", ms / 1000)
                } else {
                    format!("{:.1} s", ms as f64 / 1000.0)
                };
                if first_token {
                    format!("the server sent no first token in {secs}")
                } else {
                    format!("the server sent nothing for {secs}")
                }
            }
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Timings {
    pub load_s: f64,
    pub vision_s: f64,
    pub prefill_s: f64,
    pub ttft_s: f64,
    pub decode_tok_s: f64,
}

/// One image of the prompt as the model sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageFacts {
    pub path: PathBuf,
    pub original_size: [u32; 2],
    pub model_size: [u32; 2],
    pub grid_thw: [usize; 3],
    pub tokens: usize,
}

impl ImageFacts {
    /// How this image was resized on its way to the model, given the long-edge
    /// cap that was in force, for placing the model's boxes on the original.
    pub fn geometry(&self, cap: Option<&LongEdgeCap>) -> ImageGeometry {
        let [ow, oh] = self.original_size;
        let [mw, mh] = self.model_size;
        ImageGeometry::new((ow, oh), cap, (mw, mh))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The prompt is built: every input id after image expansion.
    Prompt {
        ids: Vec<u32>,
        images: Vec<ImageFacts>,
        /// Positions reused from the previous turn's cache.
        cached_tokens: usize,
        /// Oldest messages left out to fit the context (`ContextPolicy::DropOldest`).
        dropped_messages: usize,
        params: SamplingParams,
    },
    VisionDone {
        ms: f64,
    },
    /// The `auto` policy turned the KV cache to INT8: device memory use had
    /// reached `memory_fraction`.
    KvCacheConverted {
        format: KvFormat,
        memory_fraction: f64,
        bytes_before: usize,
        bytes_after: usize,
    },
    /// A token of the answer.
    Token {
        id: u32,
        text: String,
    },
    /// A token of the reasoning (the `<think>` markers included, with no
    /// text); reasoning ends where the first `Token` comes.
    Reasoning {
        id: u32,
        text: String,
    },
    Done {
        finish_reason: FinishReason,
        /// Every generated id, the reasoning's included.
        tokens: Vec<u32>,
        /// The answer alone.
        text: String,
        reasoning: String,
        reasoning_tokens: usize,
        timings: Timings,
    },
    Error(String),
}

impl Event {
    /// The end of a request cancelled before anything was computed.
    pub fn cancelled_before_start() -> Event {
        Event::Done {
            finish_reason: FinishReason::Cancelled,
            tokens: vec![],
            text: String::new(),
            reasoning: String::new(),
            reasoning_tokens: 0,
            timings: Timings::default(),
        }
    }
}

/// Whatever answers requests with events: the engine here, or a server
/// (`crate::remote::Remote`).
pub trait Backend {
    /// Queues a request; its events arrive on `request.reply`, and setting
    /// its cancel flag stops it.
    fn submit(&self, request: Request) -> anyhow::Result<()>;
}

impl Backend for Engine {
    fn submit(&self, request: Request) -> anyhow::Result<()> {
        Engine::submit(self, request)
    }
}

enum Command {
    Generate(Request),
    /// Forget the cached conversation, so the next request starts cold.
    Reset,
    Shutdown,
}

/// Handle to the engine thread.
pub struct Engine {
    tx: Sender<Command>,
    info: ModelInfo,
    kv_format: Arc<AtomicU8>,
    /// Positions held in the KV cache after the last request.
    kv_positions: Arc<AtomicUsize>,
    handle: Option<JoinHandle<()>>,
}

impl Engine {
    /// Loads the model on a new thread and waits until it is ready.
    pub fn load(options: EngineOptions) -> anyhow::Result<Engine> {
        let (tx, rx) = mpsc::channel::<Command>();
        let (ready_tx, ready_rx) = mpsc::channel::<anyhow::Result<ModelInfo>>();
        let kv_format = Arc::new(AtomicU8::new(KV_MODEL));
        let kv_shared = kv_format.clone();
        let kv_positions = Arc::new(AtomicUsize::new(0));
        let positions = kv_positions.clone();
        let handle = std::thread::Builder::new()
            .name("glimpse-engine".into())
            .spawn(move || {
                let start = Instant::now();
                match worker::Worker::load(&options, kv_shared) {
                    Ok(mut w) => {
                        let mut info = w.info();
                        info.load_s = start.elapsed().as_secs_f64();
                        w.set_load_s(info.load_s);
                        let _ = ready_tx.send(Ok(info));
                        run(&mut w, rx, &positions);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })?;
        let info = ready_rx
            .recv()
            .map_err(|_| anyhow::anyhow!("the engine thread stopped while loading the model"))??;
        Ok(Engine {
            tx,
            info,
            kv_format,
            kv_positions,
            handle: Some(handle),
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The KV cache's format now (the `auto` policy may have changed it).
    pub fn kv_format(&self) -> KvFormat {
        kv_format_from(self.kv_format.load(Ordering::Relaxed))
    }

    /// The share of the context the KV cache held after the last request
    /// (it keeps the conversation for the next turn), 0 to 1.
    pub fn kv_cache_use(&self) -> f64 {
        let held = self.kv_positions.load(Ordering::Relaxed) as f64;
        (held / self.info.max_context.max(1) as f64).min(1.0)
    }

    /// `bf16`, `f32` or `int8`: what the GPU pane shows.
    pub fn kv_cache_label(&self) -> String {
        match self.kv_format() {
            KvFormat::Model => self.info.dtype.clone(),
            KvFormat::Int8 => "int8".into(),
        }
    }

    /// Queues a request; its events arrive on `request.reply`.
    pub fn submit(&self, request: Request) -> anyhow::Result<()> {
        self.tx
            .send(Command::Generate(request))
            .map_err(|_| anyhow::anyhow!("the engine thread has stopped"))
    }

    /// Drops the KV cache of the previous conversation.
    pub fn reset(&self) -> anyhow::Result<()> {
        self.tx
            .send(Command::Reset)
            .map_err(|_| anyhow::anyhow!("the engine thread has stopped"))
    }

    /// Convenience: submit and return the event receiver and cancel flag.
    pub fn ask(
        &self,
        conversation: Conversation,
        sampling: SamplingOverrides,
    ) -> anyhow::Result<(Receiver<Event>, Arc<AtomicBool>)> {
        let (reply, rx) = mpsc::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        self.submit(Request {
            conversation,
            sampling,
            reply,
            cancel: cancel.clone(),
            context: ContextPolicy::Refuse,
            thinking: None,
        })?;
        Ok((rx, cancel))
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.tx.send(Command::Shutdown);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn run(worker: &mut worker::Worker, rx: Receiver<Command>, positions: &AtomicUsize) {
    while let Ok(cmd) = rx.recv() {
        match cmd {
            Command::Shutdown => break,
            Command::Reset => worker.reset(),
            Command::Generate(req) => {
                if req.cancel.load(Ordering::Relaxed) {
                    let _ = req.reply.send(Event::cancelled_before_start());
                    continue;
                }
                if let Err(e) = worker.generate(&req) {
                    worker.reset();
                    let _ = req.reply.send(Event::Error(format!("{e:#}")));
                }
            }
        }
        positions.store(worker.cached_positions(), Ordering::Relaxed);
    }
}

const KV_MODEL: u8 = 0;
const KV_INT8: u8 = 1;

fn kv_format_code(f: KvFormat) -> u8 {
    match f {
        KvFormat::Model => KV_MODEL,
        KvFormat::Int8 => KV_INT8,
    }
}

fn kv_format_from(code: u8) -> KvFormat {
    if code == KV_INT8 {
        KvFormat::Int8
    } else {
        KvFormat::Model
    }
}

/// What the engine would report about each image of a prompt (sizes, grid,
/// token count), worked out from the model directory's config files without
/// loading the model; with the model's `model_type`.
pub fn describe_images(
    options: &EngineOptions,
    paths: &[PathBuf],
) -> anyhow::Result<(String, Vec<ImageFacts>)> {
    let (family, facts) = worker::describe_images(options, paths)?;
    Ok((family.model_type().to_string(), facts))
}

/// Resolves the model directory argument, with a clear message when it is not one.
pub fn check_model_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        anyhow::bail!(
            "model directory {} does not exist; pass --model with a local Hugging Face model folder",
            dir.display()
        );
    }
    if !dir.is_dir() {
        anyhow::bail!(
            "{} is not a directory; pass --model with a local Hugging Face model folder",
            dir.display()
        );
    }
    Ok(())
}
