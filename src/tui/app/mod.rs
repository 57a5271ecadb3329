//! The one state of the chat screen and the one place it changes: `update`
//! takes a message and returns the commands the runtime should carry out.

mod dialog;
mod grounding;
mod input;
mod replies;
mod session;
mod session_list;
mod themes;
mod thinking;
mod view_state;

pub use dialog::Dialog;
pub use session_list::SessionList;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use ratatui::crossterm::event::KeyEventKind;
use ratatui_image::protocol::Protocol;
use ratatui_textarea::{TextArea, WrapMode};

use crate::gpu::pane::{GpuView, RemoteView};
use crate::gpu::sampler::{History, HISTORY_LEN, PERIOD};
use crate::remote::ServerLoad;
use crate::session::DownloadEvent;

use super::attachments::{image_budget, ImageBudget};
use super::colors::ColorDepth;
use super::download::DownloadView;
use super::keymap::{Action, Keymap};
use super::msg::{Cmd, DecodedImage, ImageId, ModelReady, Msg, RequestId};
use super::overlay::OverlayState;
use super::presets::{builtin_presets, Preset, Settings};
use super::theme::Theme;
use super::theme_file::{self, ThemeChoice};
use super::transcript::{Entry, EntryKind, ReplyStats, RowCache};

/// Where the model stands.
#[derive(Debug, Clone)]
pub enum ModelState {
    /// Fetching the model from the hub into the cache; loading follows.
    Downloading(DownloadView),
    Loading {
        dir: PathBuf,
    },
    Ready(Box<ModelReady>),
    Failed(String),
}

impl ModelState {
    /// Not ready yet, but on its way: questions wait for it.
    pub fn is_coming(&self) -> bool {
        matches!(
            self,
            ModelState::Downloading(_) | ModelState::Loading { .. }
        )
    }
}

#[derive(Debug, Clone)]
pub enum ImageState {
    Decoding,
    Ready(DecodedImage),
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct StoredImage {
    pub path: PathBuf,
    pub name: String,
    pub state: ImageState,
}

/// A preview encoded for one box size.
pub struct Preview {
    pub cells: (u16, u16),
    pub protocol: Option<Protocol>,
}

/// A one-line message above the input, until the next key.
#[derive(Debug, Clone, PartialEq)]
pub enum Flash {
    Info(String),
    Error(String),
}

const STOPPING: &str = "stopping…";

/// What the next finished reply makes room for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextJob {
    /// The queued question (the last user entry) is asked.
    Ask,
    /// The last answer is written again.
    Regenerate,
}

struct Running {
    id: RequestId,
    cancel: Arc<AtomicBool>,
}

/// An open one-line prompt for an image path.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PathPrompt {
    pub text: String,
    pub candidates: Vec<String>,
}

/// A server answering instead of a model here, for the GPU pane.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerWatch {
    pub url: String,
    pub model: String,
    /// The latest load read from its `/metrics`; `None` when it publishes
    /// none or stopped answering.
    pub load: Option<ServerLoad>,
}

/// Settings the app starts with.
pub struct AppConfig {
    pub model_dir: PathBuf,
    /// The hub id the loader downloads first, when the cache lacks it.
    pub download: Option<String>,
    pub keymap: Keymap,
    pub presets: Vec<Preset>,
    /// Index of the preset the conversation starts with.
    pub start_preset: usize,
    pub theme: Theme,
    /// Every theme Alt+T and `/theme` can switch to.
    pub themes: Vec<ThemeChoice>,
    /// What the terminal shows; richer colours are brought down to it.
    pub color_depth: ColorDepth,
    /// Cell size in pixels, from the terminal (for preview proportions).
    pub font_size: (u16, u16),
    pub cpu_threads: usize,
    /// The first request's seed; later ones count up from it.
    pub seed: u64,
    /// Name of the image protocol in use, for the side pane.
    pub image_protocol: String,
    /// The config's `thinking` (`None`: each checkpoint's own default).
    pub thinking: Option<bool>,
    /// `--thinking`: the first conversation's choice, over its preset's.
    pub thinking_start: Option<bool>,
    /// The server that answers, when one does.
    pub server: Option<ServerWatch>,
}

impl AppConfig {
    pub fn new(model_dir: impl Into<PathBuf>) -> Self {
        AppConfig {
            model_dir: model_dir.into(),
            download: None,
            keymap: Keymap::builtin(),
            presets: builtin_presets(),
            start_preset: 0,
            theme: Theme::default(),
            themes: theme_file::builtin(),
            color_depth: ColorDepth::TrueColor,
            font_size: (10, 20),
            cpu_threads: 1,
            seed: 1,
            image_protocol: "halfblocks".into(),
            thinking: None,
            thinking_start: None,
            server: None,
        }
    }
}

pub struct App {
    pub keymap: Keymap,
    pub presets: Vec<Preset>,
    pub theme: Theme,
    pub themes: Vec<ThemeChoice>,
    pub color_depth: ColorDepth,
    pub settings: Settings,
    pub model: ModelState,
    pub model_dir: PathBuf,
    pub entries: Vec<Entry>,
    pub images: HashMap<ImageId, StoredImage>,
    /// Chips above the input, in attach order.
    pub attachments: Vec<ImageId>,
    pub previews: HashMap<ImageId, Preview>,
    pub previews_on: bool,
    /// Boxes over the previews under answers.
    pub overlay: OverlayState,
    pub input: TextArea<'static>,
    /// Help, the session list or the path prompt, while one is open.
    pub dialog: Dialog,
    /// The session file this conversation is saved to, once it has been.
    pub session_id: Option<String>,
    /// Why the last save failed, until a save succeeds: shown in the status
    /// line all that time, and flashed once per cause.
    pub last_save_error: Option<String>,
    /// Keys go to the conversation (letters copy, toggle, scroll) instead of
    /// the question.
    pub browsing: bool,
    pub flash: Option<Flash>,
    /// Top row of the transcript view; `None` follows the end.
    pub scroll: Option<usize>,
    pub size: (u16, u16),
    pub font_size: (u16, u16),
    pub cpu_threads: usize,
    pub image_protocol: String,
    pub tick: u64,
    pub next_job: Option<NextJob>,
    /// Prompt tokens of the last request, and tokens generated since.
    pub context_used: usize,
    pub dropped_messages: usize,
    pub last_stats: Option<ReplyStats>,
    /// The GPU sampler's recent readings, newest last.
    pub gpu_history: History,
    pub gpu_pane_on: bool,
    /// The KV cache's format, once the model is loaded.
    pub kv_cache: Option<String>,
    /// Decode speed over the last sampler period while a reply streams.
    pub live_tokens_per_s: Option<f64>,
    /// Tokens streamed since the last GPU sample.
    tokens_since_sample: usize,
    /// The config's `thinking`, for presets that leave it open.
    pub thinking_default: Option<bool>,
    /// Finished reasoning shown in full rather than as its heading.
    pub reasoning_expanded: bool,
    /// The server that answers, when one does, with its latest load.
    pub server: Option<ServerWatch>,
    pub(crate) rows: RefCell<RowCache>,
    running: Option<Running>,
    next_request: RequestId,
    next_image: ImageId,
    next_entry: u64,
    seed: u64,
    quitting: bool,
}

impl App {
    pub fn new(config: AppConfig) -> Self {
        let start = config
            .start_preset
            .min(config.presets.len().saturating_sub(1));
        let mut settings = Settings::from_preset(start, &config.presets[start]);
        settings.thinking = config.thinking_start.or(settings.thinking);
        let mut app = App {
            keymap: config.keymap,
            presets: config.presets,
            theme: config.theme,
            themes: config.themes,
            color_depth: config.color_depth,
            settings,
            model: match config.download {
                Some(id) => ModelState::Downloading(DownloadView::new(id)),
                None => ModelState::Loading {
                    dir: config.model_dir.clone(),
                },
            },
            model_dir: config.model_dir,
            entries: Vec::new(),
            images: HashMap::new(),
            attachments: Vec::new(),
            previews: HashMap::new(),
            previews_on: true,
            overlay: OverlayState::default(),
            input: TextArea::default(),
            dialog: Dialog::None,
            session_id: None,
            last_save_error: None,
            browsing: false,
            flash: None,
            scroll: None,
            size: (80, 24),
            font_size: config.font_size,
            cpu_threads: config.cpu_threads,
            image_protocol: config.image_protocol,
            tick: 0,
            next_job: None,
            context_used: 0,
            dropped_messages: 0,
            last_stats: None,
            gpu_history: History::new(HISTORY_LEN),
            gpu_pane_on: true,
            kv_cache: None,
            live_tokens_per_s: None,
            tokens_since_sample: 0,
            thinking_default: config.thinking,
            reasoning_expanded: false,
            server: config.server,
            rows: RefCell::new(RowCache::default()),
            running: None,
            next_request: 1,
            next_image: 1,
            next_entry: 1,
            seed: config.seed,
            quitting: false,
        };
        app.reset_input();
        app
    }

    fn reset_input(&mut self) {
        let mut input = TextArea::default();
        input.set_wrap_mode(WrapMode::WordOrGlyph);
        input.set_cursor_line_style(ratatui::style::Style::default());
        input.set_placeholder_text("Ask about an image… (/image PATH attaches one, ? for help)");
        input.set_placeholder_style(self.theme.dim);
        self.input = input;
    }

    pub fn input_text(&self) -> String {
        self.input.lines().join("\n")
    }

    pub fn input_is_empty(&self) -> bool {
        self.input.lines().iter().all(|l| l.is_empty())
    }

    pub fn is_generating(&self) -> bool {
        self.running.is_some()
    }

    pub fn should_quit(&self) -> bool {
        self.quitting
    }

    /// Something moves on screen by itself, so the runtime should tick.
    pub fn is_busy(&self) -> bool {
        self.running.is_some()
            || self.model.is_coming()
            || self
                .images
                .values()
                .any(|i| matches!(i.state, ImageState::Decoding))
    }

    pub fn ready(&self) -> Option<&ModelReady> {
        match &self.model {
            ModelState::Ready(r) => Some(r),
            _ => None,
        }
    }

    /// What the GPU pane shows: the sampler's readings, the device in use,
    /// the KV-cache format and the decode speed (live while a reply streams,
    /// else the last answer's).
    pub fn gpu_view(&self) -> GpuView {
        let tokens_per_s = if self.running.is_some() {
            self.live_tokens_per_s
        } else {
            self.last_stats.as_ref().map(|s| s.tok_s)
        };
        let last = self.last_stats.as_ref();
        let remote = self.server.as_ref().map(|w| RemoteView {
            server: w.url.clone(),
            model: w.model.clone(),
            ttft_s: last.map(|s| s.ttft_s),
            tokens_per_s: last.map(|s| s.tok_s),
            kv_cache_use: w.load.and_then(|l| l.kv_cache_use),
            waiting: w.load.and_then(|l| l.waiting),
            running: w.load.and_then(|l| l.running),
        });
        GpuView {
            remote,
            ..GpuView::from_history(
                &self.gpu_history,
                self.ready().and_then(|r| r.info.gpu_index),
                self.kv_cache.clone(),
                tokens_per_s,
            )
        }
    }

    pub(super) fn count_streamed_token(&mut self) {
        self.tokens_since_sample += 1;
    }

    fn on_gpu_sample(&mut self, sample: crate::gpu::Sample) {
        self.gpu_history.push(sample);
        if self.running.is_some() && self.tokens_since_sample > 0 {
            self.live_tokens_per_s = Some(self.tokens_since_sample as f64 / PERIOD.as_secs_f64());
        }
        self.tokens_since_sample = 0;
    }

    /// The model size and token count of a decoded image, once the model is known.
    pub fn budget(&self, id: ImageId) -> Option<Result<ImageBudget, String>> {
        let ready = self.ready()?;
        match &self.images.get(&id)?.state {
            ImageState::Ready(d) => {
                Some(image_budget(&ready.info.preprocess, d.capped.0, d.capped.1))
            }
            _ => None,
        }
    }

    fn new_entry(&mut self, kind: EntryKind) -> Entry {
        let id = self.next_entry;
        self.next_entry += 1;
        Entry::new(id, kind)
    }

    fn push_entry(&mut self, kind: EntryKind) {
        let e = self.new_entry(kind);
        self.entries.push(e);
    }

    pub fn notice(&mut self, text: impl Into<String>) {
        self.push_entry(EntryKind::Notice {
            error: false,
            text: text.into(),
        });
    }

    pub fn update(&mut self, msg: Msg) -> Vec<Cmd> {
        let mut cmds = Vec::new();
        match msg {
            Msg::Key(key) => {
                if key.kind != KeyEventKind::Release {
                    self.on_key(key, &mut cmds);
                }
            }
            Msg::Paste(text) => self.on_paste(&text, &mut cmds),
            Msg::Mouse(m) => self.on_mouse(m),
            Msg::Resize(w, h) => {
                self.size = (w, h);
                self.clamp_scroll();
                self.want_previews(&mut cmds);
            }
            Msg::Tick => self.tick = self.tick.wrapping_add(1),
            Msg::InputClosed | Msg::Terminate => self.act(Action::Quit, &mut cmds),
            Msg::GpuSample(sample) => self.on_gpu_sample(*sample),
            Msg::ServerLoad(load) => {
                if let Some(watch) = &mut self.server {
                    watch.load = load;
                }
            }
            Msg::ModelDownload(event) => self.on_download(event),
            Msg::ModelLoaded(ready) => {
                self.kv_cache = Some(ready.kv_cache.clone());
                self.model = ModelState::Ready(ready);
                if self.next_job == Some(NextJob::Ask) && self.running.is_none() {
                    self.next_job = None;
                    self.start_queued(&mut cmds);
                }
                self.ground_restored(&mut cmds);
            }
            Msg::ModelFailed(e) => {
                self.model = ModelState::Failed(e);
                if self.next_job.take().is_some() {
                    self.flash = Some(Flash::Error(
                        "the model did not load, so the question was not asked; Ctrl+Q quits"
                            .into(),
                    ));
                }
                for entry in &mut self.entries {
                    if let EntryKind::User { queued, .. } = &mut entry.kind {
                        if *queued {
                            *queued = false;
                            entry.touch();
                        }
                    }
                }
            }
            Msg::Engine { id, event } => self.on_engine(id, event, &mut cmds),
            Msg::Session(event) => self.on_session(event, &mut cmds),
            Msg::ImageDecoded { id, result } => {
                let mut failed = None;
                if let Some(img) = self.images.get_mut(&id) {
                    img.state = match result {
                        Ok(d) => ImageState::Ready(d),
                        Err(e) => {
                            failed = Some(e.clone());
                            ImageState::Failed(e)
                        }
                    };
                }
                if let Some(e) = failed {
                    self.attachments.retain(|a| *a != id);
                    self.flash = Some(Flash::Error(e));
                }
                self.touch_entries_with(id);
                self.want_previews(&mut cmds);
                self.ground_restored(&mut cmds);
            }
            Msg::PreviewEncoded { id, cells, result } => {
                if let Some(p) = self.previews.get_mut(&id) {
                    if p.cells == cells {
                        match result {
                            Ok(proto) => p.protocol = Some(proto),
                            Err(e) => {
                                self.flash = Some(Flash::Error(format!("preview: {e}")));
                            }
                        }
                    }
                }
            }
        }
        cmds
    }

    fn on_download(&mut self, event: DownloadEvent) {
        match (&mut self.model, event) {
            (ModelState::Downloading(_), DownloadEvent::Finished { dir }) => {
                self.model_dir = dir.clone();
                self.model = ModelState::Loading { dir };
            }
            (ModelState::Downloading(view), event) => view.apply(&event),
            // A loader that downloads without having said so still shows it.
            (ModelState::Loading { .. }, event @ DownloadEvent::Started { .. }) => {
                let mut view = DownloadView::new(String::new());
                view.apply(&event);
                self.model = ModelState::Downloading(view);
            }
            _ => {}
        }
    }

    fn touch_entries_with(&mut self, image: ImageId) {
        for e in &mut self.entries {
            if let EntryKind::User { images, .. } = &e.kind {
                if images.contains(&image) {
                    e.touch();
                }
            }
        }
    }
}
