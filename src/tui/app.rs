//! The one state of the chat screen and the one place it changes: `update`
//! takes a message and returns the commands the runtime should carry out.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ratatui::crossterm::event::{KeyEvent, KeyEventKind, MouseEvent, MouseEventKind};
use ratatui::layout::Rect;
use ratatui_image::protocol::Protocol;
use ratatui_textarea::{TextArea, WrapMode};

use super::attachments::{
    complete_path, expand_home, image_budget, pasted_image_paths, ImageBudget,
};
use super::keymap::{Action, Keymap};
use super::layout::{preview_cells, screen_layout};
use super::msg::{Cmd, DecodedImage, ImageId, ModelReady, Msg, RequestId};
use super::presets::{builtin_presets, Preset, Settings};
use super::side_pane::DeviceFacts;
use super::theme::Theme;
use super::transcript::{
    conversation_until, Entry, EntryKind, Reply, ReplyPhase, ReplyStats, RowCache,
};
use crate::engine::{Event, FinishReason};

/// Where the model stands.
#[derive(Debug, Clone)]
pub enum ModelState {
    Loading { dir: PathBuf },
    Ready(Box<ModelReady>),
    Failed(String),
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

/// Settings the app starts with.
pub struct AppConfig {
    pub model_dir: PathBuf,
    pub keymap: Keymap,
    pub presets: Vec<Preset>,
    pub theme: Theme,
    /// Cell size in pixels, from the terminal (for preview proportions).
    pub font_size: (u16, u16),
    pub cpu_threads: usize,
    /// The first request's seed; later ones count up from it.
    pub seed: u64,
    /// Name of the image protocol in use, for the side pane.
    pub image_protocol: String,
}

impl AppConfig {
    pub fn new(model_dir: impl Into<PathBuf>) -> Self {
        AppConfig {
            model_dir: model_dir.into(),
            keymap: Keymap::builtin(),
            presets: builtin_presets(),
            theme: Theme::default(),
            font_size: (10, 20),
            cpu_threads: 1,
            seed: 1,
            image_protocol: "halfblocks".into(),
        }
    }
}

pub struct App {
    pub keymap: Keymap,
    pub presets: Vec<Preset>,
    pub theme: Theme,
    pub settings: Settings,
    pub model: ModelState,
    pub model_dir: PathBuf,
    pub entries: Vec<Entry>,
    pub images: HashMap<ImageId, StoredImage>,
    /// Chips above the input, in attach order.
    pub attachments: Vec<ImageId>,
    pub previews: HashMap<ImageId, Preview>,
    pub previews_on: bool,
    pub input: TextArea<'static>,
    pub path_prompt: Option<PathPrompt>,
    pub help_open: bool,
    pub help_scroll: u16,
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
        let settings = Settings::from_preset(0, &config.presets[0]);
        let mut app = App {
            keymap: config.keymap,
            presets: config.presets,
            theme: config.theme,
            settings,
            model: ModelState::Loading {
                dir: config.model_dir.clone(),
            },
            model_dir: config.model_dir,
            entries: Vec::new(),
            images: HashMap::new(),
            attachments: Vec::new(),
            previews: HashMap::new(),
            previews_on: true,
            input: TextArea::default(),
            path_prompt: None,
            help_open: false,
            help_scroll: 0,
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
            || matches!(self.model, ModelState::Loading { .. })
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

    pub fn device_facts(&self) -> DeviceFacts {
        let ready = self.ready();
        DeviceFacts {
            device: ready.map(|r| r.info.device.clone()),
            dtype: ready.map(|r| r.info.dtype.clone()),
            max_context: ready.map(|r| r.info.max_context),
            cpu_threads: self.cpu_threads,
            image_protocol: self.image_protocol.clone(),
        }
    }

    /// The model size and token count of a decoded image, once the model is known.
    pub fn budget(&self, id: ImageId) -> Option<Result<ImageBudget, String>> {
        let ready = self.ready()?;
        match &self.images.get(&id)?.state {
            ImageState::Ready(d) => Some(image_budget(&ready.vision, d.capped.0, d.capped.1)),
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
            Msg::InputClosed => self.act(Action::Quit, &mut cmds),
            Msg::ModelLoaded(ready) => {
                self.model = ModelState::Ready(ready);
                self.rows.borrow_mut().clear();
                if self.next_job == Some(NextJob::Ask) && self.running.is_none() {
                    self.next_job = None;
                    self.start_queued(&mut cmds);
                }
            }
            Msg::ModelFailed(e) => {
                self.model = ModelState::Failed(e);
                self.next_job = None;
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

    fn touch_entries_with(&mut self, image: ImageId) {
        for e in &mut self.entries {
            if let EntryKind::User { images, .. } = &e.kind {
                if images.contains(&image) {
                    e.touch();
                }
            }
        }
    }

    fn on_key(&mut self, key: KeyEvent, cmds: &mut Vec<Cmd>) {
        if self.help_open {
            self.on_help_key(key, cmds);
            return;
        }
        if self.path_prompt.is_some() {
            self.on_prompt_key(key, cmds);
            return;
        }
        let action = self
            .keymap
            .lookup(&key, self.input_is_empty(), self.browsing);
        // A key clears the last flash unless it is the one that sets a new one.
        self.flash = None;
        match action {
            Some(a) => self.act(a, cmds),
            None => {
                use ratatui::crossterm::event::{KeyCode, KeyModifiers};
                if self.browsing {
                    // Typing goes back to the question.
                    let typing = matches!(
                        key.code,
                        KeyCode::Char(_) | KeyCode::Enter | KeyCode::Backspace
                    ) && !key
                        .modifiers
                        .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT);
                    if !typing {
                        return;
                    }
                    self.browsing = false;
                    if key.code == KeyCode::Enter {
                        return;
                    }
                }
                if self.input.input(key) {
                    self.rows_changed_by_input();
                }
            }
        }
    }

    fn rows_changed_by_input(&mut self) {
        // The input grows and shrinks with its lines, which moves the transcript.
        self.clamp_scroll();
    }

    fn on_help_key(&mut self, key: KeyEvent, cmds: &mut Vec<Cmd>) {
        match self.keymap.lookup(&key, true, false) {
            Some(Action::Help) | Some(Action::Cancel) => self.help_open = false,
            Some(Action::Quit) | Some(Action::CancelOrQuit) => self.act(Action::Quit, cmds),
            Some(Action::ScrollPageUp) | Some(Action::ScrollLineUp) => {
                self.help_scroll = self.help_scroll.saturating_sub(3)
            }
            Some(Action::ScrollPageDown) | Some(Action::ScrollLineDown) => {
                self.help_scroll = self.help_scroll.saturating_add(3)
            }
            _ => {
                use ratatui::crossterm::event::KeyCode;
                match key.code {
                    KeyCode::Char('q') => self.help_open = false,
                    KeyCode::Up => self.help_scroll = self.help_scroll.saturating_sub(1),
                    KeyCode::Down => self.help_scroll = self.help_scroll.saturating_add(1),
                    _ => {}
                }
            }
        }
    }

    fn on_prompt_key(&mut self, key: KeyEvent, cmds: &mut Vec<Cmd>) {
        use ratatui::crossterm::event::{KeyCode, KeyModifiers};
        let Some(prompt) = self.path_prompt.as_mut() else {
            return;
        };
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Esc => self.path_prompt = None,
            KeyCode::Char('c') | KeyCode::Char('g') if ctrl => self.path_prompt = None,
            KeyCode::Char('u') if ctrl => prompt.text.clear(),
            KeyCode::Char('q') if ctrl => self.act(Action::Quit, cmds),
            KeyCode::Enter => {
                let text = prompt.text.clone();
                self.path_prompt = None;
                if !text.trim().is_empty() {
                    self.attach_text(&text, cmds);
                }
            }
            KeyCode::Tab => {
                let c = complete_path(&prompt.text);
                prompt.text = c.completed;
                prompt.candidates = c.candidates;
            }
            KeyCode::Backspace => {
                prompt.text.pop();
                prompt.candidates.clear();
            }
            KeyCode::Char(c) if !ctrl => {
                prompt.text.push(c);
                prompt.candidates.clear();
            }
            _ => {}
        }
    }

    fn on_paste(&mut self, text: &str, cmds: &mut Vec<Cmd>) {
        if let Some(prompt) = self.path_prompt.as_mut() {
            prompt.text.push_str(text.trim());
            return;
        }
        if self.help_open {
            return;
        }
        match pasted_image_paths(text) {
            Some(paths) => {
                for p in paths {
                    self.attach(p, cmds);
                }
            }
            None => {
                // Pasted text keeps its newlines; carriage returns would show as ^M.
                self.input
                    .insert_str(text.replace("\r\n", "\n").replace('\r', "\n"));
                self.rows_changed_by_input();
            }
        }
    }

    fn on_mouse(&mut self, m: MouseEvent) {
        if self.help_open {
            match m.kind {
                MouseEventKind::ScrollUp => self.help_scroll = self.help_scroll.saturating_sub(3),
                MouseEventKind::ScrollDown => self.help_scroll = self.help_scroll.saturating_add(3),
                _ => {}
            }
            return;
        }
        match m.kind {
            MouseEventKind::ScrollUp => self.scroll_by(-3),
            MouseEventKind::ScrollDown => self.scroll_by(3),
            _ => {}
        }
    }

    fn act(&mut self, action: Action, cmds: &mut Vec<Cmd>) {
        match action {
            Action::Send => self.send(cmds),
            Action::Newline => {
                self.input.insert_newline();
                self.rows_changed_by_input();
            }
            Action::Cancel => {
                if self.running.is_some() {
                    self.cancel_running();
                } else if self.next_job.is_some() {
                    self.unqueue();
                } else {
                    self.browsing = !self.browsing;
                }
            }
            Action::CancelOrQuit => {
                if self.running.is_some() {
                    self.cancel_running();
                } else {
                    self.act(Action::Quit, cmds);
                }
            }
            Action::Quit => {
                if let Some(r) = &self.running {
                    r.cancel.store(true, Ordering::Relaxed);
                }
                self.quitting = true;
                cmds.push(Cmd::Quit);
            }
            Action::Regenerate => self.regenerate(cmds),
            Action::CopyReply => self.copy_reply(cmds),
            Action::AttachImage => {
                self.path_prompt = Some(PathPrompt::default());
            }
            Action::CompletePath => self.complete_in_input(),
            Action::RemoveAttachment => match self.attachments.pop() {
                Some(id) => {
                    let name = self
                        .images
                        .get(&id)
                        .map(|i| i.name.clone())
                        .unwrap_or_default();
                    self.flash = Some(Flash::Info(format!("removed {name}")));
                }
                None => self.flash = Some(Flash::Info("no image attached".into())),
            },
            Action::TogglePreviews => {
                self.previews_on = !self.previews_on;
                self.rows.borrow_mut().clear();
                self.clamp_scroll();
                self.want_previews(cmds);
                self.flash = Some(Flash::Info(
                    if self.previews_on {
                        "previews on"
                    } else {
                        "previews off"
                    }
                    .into(),
                ));
            }
            Action::Preset(i) => {
                if let Some(p) = self.presets.get(i) {
                    self.settings = Settings::from_preset(i, p);
                    self.flash = Some(Flash::Info(format!(
                        "preset {}: temperature {:.2}, {} new tokens{}",
                        p.name,
                        p.temperature,
                        p.max_tokens,
                        if self.running.is_some() {
                            " (from the next answer)"
                        } else {
                            ""
                        }
                    )));
                }
            }
            Action::TemperatureDown => self.settings.nudge_temperature(-1),
            Action::TemperatureUp => self.settings.nudge_temperature(1),
            Action::MaxTokensDown => self.settings.nudge_max_tokens(-1),
            Action::MaxTokensUp => self.settings.nudge_max_tokens(1),
            Action::ScrollPageUp => {
                let page = self.transcript_area().height.saturating_sub(2).max(1) as i64;
                self.scroll_by(-page);
            }
            Action::ScrollPageDown => {
                let page = self.transcript_area().height.saturating_sub(2).max(1) as i64;
                self.scroll_by(page);
            }
            Action::ScrollLineUp => self.scroll_by(-1),
            Action::ScrollLineDown => self.scroll_by(1),
            Action::ScrollTop => self.scroll = Some(0),
            Action::ScrollBottom => self.scroll = None,
            Action::Help => {
                self.help_open = true;
                self.help_scroll = 0;
            }
            Action::Redraw => cmds.push(Cmd::Redraw),
        }
    }

    pub fn transcript_area(&self) -> Rect {
        screen_layout(Rect::new(0, 0, self.size.0, self.size.1), self).transcript
    }

    /// Rows the whole transcript takes at the current width.
    pub fn transcript_height(&self) -> usize {
        let area = self.transcript_area();
        super::transcript::all_rows(self, area.width).len()
    }

    fn max_scroll(&self) -> usize {
        self.transcript_height()
            .saturating_sub(self.transcript_area().height as usize)
    }

    fn scroll_by(&mut self, delta: i64) {
        let max = self.max_scroll();
        let top = self.scroll.unwrap_or(max) as i64;
        let next = (top + delta).max(0) as usize;
        self.scroll = if next >= max { None } else { Some(next) };
    }

    fn clamp_scroll(&mut self) {
        if let Some(top) = self.scroll {
            if top >= self.max_scroll() {
                self.scroll = None;
            }
        }
    }

    fn complete_in_input(&mut self) {
        let text = self.input_text();
        let Some(fragment) = text.strip_prefix("/image ") else {
            return;
        };
        if fragment.contains('\n') {
            return;
        }
        let c = complete_path(fragment);
        if c.candidates.len() > 1 {
            let shown: Vec<&str> = c.candidates.iter().take(8).map(String::as_str).collect();
            let more = c.candidates.len().saturating_sub(8);
            let mut line = shown.join("  ");
            if more > 0 {
                line.push_str(&format!("  (+{more})"));
            }
            self.flash = Some(Flash::Info(line));
        } else if c.completed == fragment {
            self.flash = Some(Flash::Info("no match".into()));
        }
        self.input.select_all();
        self.input.cut();
        self.input.insert_str(format!("/image {}", c.completed));
    }

    /// Attaches every path in `text` (quoted, escaped or plain).
    fn attach_text(&mut self, text: &str, cmds: &mut Vec<Cmd>) {
        let items = super::attachments::split_pasted(text);
        if items.is_empty() {
            self.flash = Some(Flash::Error(
                "give the path of an image: /image PATH".into(),
            ));
        }
        for item in items {
            self.attach(expand_home(&item), cmds);
        }
    }

    pub fn attach(&mut self, path: PathBuf, cmds: &mut Vec<Cmd>) {
        if !path.is_file() {
            let what = if path.exists() {
                "is not a file"
            } else {
                "does not exist"
            };
            self.flash = Some(Flash::Error(format!(
                "{} {what}; check the path (Tab completes it)",
                path.display()
            )));
            return;
        }
        // An absolute path keeps working whatever the engine's directory is.
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        // The same file attached again reuses its decoded pixels.
        if let Some((&id, _)) = self
            .images
            .iter()
            .find(|(_, i)| i.path == path && !matches!(i.state, ImageState::Failed(_)))
        {
            self.attachments.push(id);
            return;
        }
        let id = self.next_image;
        self.next_image += 1;
        self.images.insert(
            id,
            StoredImage {
                path: path.clone(),
                name,
                state: ImageState::Decoding,
            },
        );
        self.attachments.push(id);
        cmds.push(Cmd::DecodeImage { id, path });
    }

    fn send(&mut self, cmds: &mut Vec<Cmd>) {
        self.browsing = false;
        let text = self.input_text();
        let trimmed = text.trim();
        if let Some(rest) = trimmed.strip_prefix('/') {
            if self.slash_command(rest, cmds) {
                self.reset_input();
                return;
            }
        }
        if trimmed.is_empty() && self.attachments.is_empty() {
            return;
        }
        if let ModelState::Failed(_) = self.model {
            self.flash = Some(Flash::Error(
                "the model did not load, so nothing can be asked; Ctrl+Q quits".into(),
            ));
            return;
        }
        let busy = self.running.is_some() || matches!(self.model, ModelState::Loading { .. });
        if busy && self.next_job.is_some() {
            self.flash = Some(Flash::Error(
                "a question is already waiting; Esc cancels the running answer".into(),
            ));
            return;
        }
        let images = std::mem::take(&mut self.attachments);
        let kind = EntryKind::User {
            text: trimmed.to_string(),
            images,
            queued: busy,
        };
        self.push_entry(kind);
        self.reset_input();
        self.scroll = None;
        self.want_previews(cmds);
        if busy {
            self.next_job = Some(NextJob::Ask);
            self.flash = Some(Flash::Info(
                if self.running.is_some() {
                    "queued: asked when the current answer is done (Esc cancels it)"
                } else {
                    "queued: asked as soon as the model is loaded"
                }
                .into(),
            ));
        } else {
            self.start_reply(cmds);
        }
    }

    /// Handles `/command`; false when it is not one (then it is sent as text).
    fn slash_command(&mut self, rest: &str, cmds: &mut Vec<Cmd>) -> bool {
        let (name, arg) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        match name {
            "image" | "img" => {
                if arg.trim().is_empty() {
                    self.path_prompt = Some(PathPrompt::default());
                } else {
                    self.attach_text(arg, cmds);
                }
            }
            "drop" => {
                let n: usize = arg.trim().parse().unwrap_or(0);
                if n >= 1 && n <= self.attachments.len() {
                    self.attachments.remove(n - 1);
                } else {
                    self.flash = Some(Flash::Error(format!(
                        "/drop N removes attached image N (1 to {})",
                        self.attachments.len()
                    )));
                }
            }
            "clear" | "new" => {
                if self.running.is_some() {
                    self.flash = Some(Flash::Error("Esc stops the answer first".into()));
                } else {
                    self.entries.clear();
                    self.next_job = None;
                    self.context_used = 0;
                    self.dropped_messages = 0;
                    self.scroll = None;
                    self.rows.borrow_mut().clear();
                    self.flash = Some(Flash::Info("new conversation".into()));
                }
            }
            "help" => self.help_open = true,
            "quit" | "exit" | "q" => self.act(Action::Quit, cmds),
            _ => return false,
        }
        true
    }

    fn request_id(&mut self) -> RequestId {
        let id = self.next_request;
        self.next_request += 1;
        id
    }

    /// Starts an answer to the conversation as it stands.
    fn start_reply(&mut self, cmds: &mut Vec<Cmd>) {
        let conversation = conversation_until(&self.entries, &self.images);
        let id = self.request_id();
        let cancel = Arc::new(AtomicBool::new(false));
        self.running = Some(Running {
            id,
            cancel: cancel.clone(),
        });
        let seed = self.seed;
        self.seed = self.seed.wrapping_add(1);
        self.push_entry(EntryKind::Assistant(Reply::new(id, self.settings.clone())));
        self.scroll = None;
        cmds.push(Cmd::Generate {
            id,
            conversation,
            sampling: self.settings.overrides(seed),
            cancel,
        });
    }

    fn start_queued(&mut self, cmds: &mut Vec<Cmd>) {
        let Some(entry) = self
            .entries
            .iter_mut()
            .rev()
            .find(|e| matches!(e.kind, EntryKind::User { queued: true, .. }))
        else {
            return;
        };
        if let EntryKind::User { queued, .. } = &mut entry.kind {
            *queued = false;
        }
        entry.touch();
        self.start_reply(cmds);
    }

    fn cancel_running(&mut self) {
        if let Some(r) = &self.running {
            r.cancel.store(true, Ordering::Relaxed);
            self.flash = Some(Flash::Info(STOPPING.into()));
        }
    }

    /// Esc with nothing running takes a waiting question back into the input.
    fn unqueue(&mut self) {
        self.next_job = None;
        if let Some(pos) = self
            .entries
            .iter()
            .rposition(|e| matches!(e.kind, EntryKind::User { queued: true, .. }))
        {
            let e = self.entries.remove(pos);
            if let EntryKind::User { text, images, .. } = e.kind {
                self.attachments = images;
                self.reset_input();
                self.input.insert_str(text);
            }
        }
    }

    fn regenerate(&mut self, cmds: &mut Vec<Cmd>) {
        if self.ready().is_none() {
            self.flash = Some(Flash::Info("the model is not loaded".into()));
            return;
        }
        if self.running.is_some() {
            if self.next_job == Some(NextJob::Ask) {
                self.flash = Some(Flash::Error(
                    "a question is waiting; it is asked after this answer".into(),
                ));
                return;
            }
            self.next_job = Some(NextJob::Regenerate);
            self.cancel_running();
            return;
        }
        let last_user = self
            .entries
            .iter()
            .rposition(|e| matches!(e.kind, EntryKind::User { .. }));
        let Some(last_user) = last_user else {
            self.flash = Some(Flash::Info("nothing to regenerate yet".into()));
            return;
        };
        // Everything after the last question (its answer, notices) goes.
        self.entries.truncate(last_user + 1);
        self.rows.borrow_mut().clear();
        self.start_reply(cmds);
    }

    fn last_reply_text(&self) -> Option<&str> {
        self.entries.iter().rev().find_map(|e| match &e.kind {
            EntryKind::Assistant(r) if !r.text.is_empty() => Some(r.text.as_str()),
            _ => None,
        })
    }

    fn copy_reply(&mut self, cmds: &mut Vec<Cmd>) {
        match self.last_reply_text() {
            Some(t) => {
                let n = t.chars().count();
                cmds.push(Cmd::Copy(t.to_string()));
                self.flash = Some(Flash::Info(format!(
                    "copied the last answer ({n} characters) to the clipboard"
                )));
            }
            None => self.flash = Some(Flash::Info("no answer to copy yet".into())),
        }
    }

    fn reply_mut(&mut self, id: RequestId) -> Option<&mut Entry> {
        self.entries
            .iter_mut()
            .rev()
            .find(|e| matches!(&e.kind, EntryKind::Assistant(r) if r.id == id))
    }

    fn on_engine(&mut self, id: RequestId, event: Event, cmds: &mut Vec<Cmd>) {
        if self.running.as_ref().map(|r| r.id) != Some(id) {
            return;
        }
        let mut notice = None;
        let mut finished = false;
        match event {
            Event::Prompt {
                ids,
                images,
                dropped_messages,
                ..
            } => {
                self.context_used = ids.len();
                if dropped_messages > self.dropped_messages {
                    notice = Some(format!(
                        "The conversation no longer fits the context of {} tokens: the oldest {} message{} {} left out of this answer (they stay on screen). /clear starts afresh.",
                        self.ready().map(|r| r.info.max_context).unwrap_or(0),
                        dropped_messages,
                        if dropped_messages == 1 { "" } else { "s" },
                        if dropped_messages == 1 { "is" } else { "are" },
                    ));
                }
                self.dropped_messages = dropped_messages;
                if let Some(e) = self.reply_mut(id) {
                    if let EntryKind::Assistant(r) = &mut e.kind {
                        r.phase = if images.is_empty() {
                            ReplyPhase::Prefill
                        } else {
                            ReplyPhase::Encoding(images.len())
                        };
                    }
                    e.touch();
                }
            }
            Event::VisionDone { .. } => {
                if let Some(e) = self.reply_mut(id) {
                    if let EntryKind::Assistant(r) = &mut e.kind {
                        r.phase = ReplyPhase::Prefill;
                    }
                    e.touch();
                }
            }
            Event::Token { text, .. } => {
                self.context_used += 1;
                if let Some(e) = self.reply_mut(id) {
                    if let EntryKind::Assistant(r) = &mut e.kind {
                        r.text.push_str(&text);
                        r.tokens += 1;
                        r.phase = ReplyPhase::Streaming;
                    }
                    e.touch();
                }
            }
            Event::Done {
                finish_reason,
                tokens,
                timings,
                ..
            } => {
                let stats = ReplyStats {
                    tokens: tokens.len(),
                    ttft_s: timings.ttft_s,
                    tok_s: timings.decode_tok_s,
                    finish: finish_reason,
                };
                if finish_reason != FinishReason::Cancelled || !tokens.is_empty() {
                    self.last_stats = Some(stats.clone());
                }
                if let Some(e) = self.reply_mut(id) {
                    if let EntryKind::Assistant(r) = &mut e.kind {
                        r.phase = ReplyPhase::Done(stats);
                    }
                    e.touch();
                }
                finished = true;
            }
            Event::Error(msg) => {
                if let Some(e) = self.reply_mut(id) {
                    if let EntryKind::Assistant(r) = &mut e.kind {
                        r.phase = ReplyPhase::Failed(msg);
                    }
                    e.touch();
                }
                finished = true;
            }
        }
        if let Some(n) = notice {
            // The notice goes above the answer it concerns.
            let pos = self
                .entries
                .iter()
                .rposition(|e| matches!(&e.kind, EntryKind::Assistant(r) if r.id == id))
                .unwrap_or(self.entries.len());
            let entry = self.new_entry(EntryKind::Notice {
                error: false,
                text: n,
            });
            self.entries.insert(pos, entry);
        }
        if finished {
            self.running = None;
            if self.flash == Some(Flash::Info(STOPPING.into())) {
                self.flash = None;
            }
            match self.next_job.take() {
                Some(NextJob::Ask) => self.start_queued(cmds),
                Some(NextJob::Regenerate) => self.regenerate(cmds),
                None => {}
            }
        }
    }

    /// Asks for previews of every decoded image in the transcript at the
    /// size the current width gives them.
    fn want_previews(&mut self, cmds: &mut Vec<Cmd>) {
        if !self.previews_on {
            return;
        }
        let width = self.transcript_area().width;
        let shown: Vec<ImageId> = self
            .entries
            .iter()
            .flat_map(|e| match &e.kind {
                EntryKind::User { images, .. } => images.clone(),
                _ => Vec::new(),
            })
            .collect();
        for id in shown {
            let Some(StoredImage {
                state: ImageState::Ready(d),
                ..
            }) = self.images.get(&id)
            else {
                continue;
            };
            let cells = preview_cells(d.capped, self.font_size, width);
            if self.previews.get(&id).is_some_and(|p| p.cells == cells) {
                continue;
            }
            self.previews.insert(
                id,
                Preview {
                    cells,
                    protocol: None,
                },
            );
            cmds.push(Cmd::EncodePreview {
                id,
                pixels: d.pixels.clone(),
                cells,
            });
        }
    }

    /// Path of an image, for commands and tests.
    pub fn image_path(&self, id: ImageId) -> Option<&Path> {
        self.images.get(&id).map(|i| i.path.as_path())
    }
}
