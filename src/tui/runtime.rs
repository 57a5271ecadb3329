//! The side of the chat that touches the world: the terminal, the input
//! thread, the engine (loaded in the background so the screen is up at
//! once), image decoding and preview encoding off the UI thread, and the
//! frame clock.

use std::collections::HashMap;
use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use image::DynamicImage;
use ratatui::backend::{Backend, CrosstermBackend};
use ratatui::crossterm::event::{self, Event as TermEvent, MouseEventKind};
use ratatui::layout::Rect;
use ratatui::Terminal;
use ratatui_image::picker::{Picker, ProtocolType};
use ratatui_image::Resize;

use super::app::{App, AppConfig, ServerWatch};
use super::clipboard::osc52;

use super::msg::{Cmd, DecodedImage, ImageId, ModelReady, Msg, RequestId, TICK};
use super::resync::ResyncBackend;
use super::{graphics, terminal, view};
use crate::conversation::Conversation;
use crate::engine::{
    Backend as ModelBackend, ContextPolicy, Engine, EngineOptions, Event, Request,
    SamplingOverrides,
};
use crate::gpu::sampler::{self, Sampler};
use crate::gpu::NvmlMonitor;
use crate::processor::image::{load_image, LongEdgeCap};
use crate::remote::{Remote, RemoteOptions};
use crate::session::config::ImageProtocol;
use crate::session::download::{DownloadThrottle, HubDownload, PROGRESS_EVERY};
use crate::session::hub::resolve_hub_id;
use crate::session::{DownloadEvent, ModelSource, Session, SessionStore};

use super::session_keeper::{SessionCmd, SessionKeeper};

pub struct ChatOptions {
    /// With `download` set, `model_dir` is where the model will be in the
    /// cache until the download names its snapshot.
    pub engine: EngineOptions,
    /// A hub id the cache lacks: fetched on the loader thread, with the
    /// screen up and showing progress.
    pub download: Option<HubDownload>,
    /// A server to answer instead of a model loaded here: checked on the
    /// loader thread, so a slow server never holds the screen.
    pub remote: Option<RemoteOptions>,
    pub image_protocol: ImageProtocol,
    /// The sampling presets; F1–F3 and Alt+1–3 pick the first three.
    pub presets: Vec<super::presets::Preset>,
    /// Index of the preset a conversation starts with.
    pub start_preset: usize,
    pub keymap: super::keymap::Keymap,
    pub sessions: SessionOptions,
    pub theme: super::theme::Theme,
    /// The themes Alt+T and `/theme` switch between.
    pub themes: Vec<super::theme_file::ThemeChoice>,
    pub color_depth: super::colors::ColorDepth,
    /// The config's `thinking`.
    pub thinking: Option<bool>,
    /// `--thinking`, for the first conversation.
    pub thinking_start: Option<bool>,
}

/// Where the conversation is saved, and the session to continue, if any.
pub struct SessionOptions {
    /// The session folder, or why there is none (then nothing is saved and
    /// the screen says so).
    pub store: Result<SessionStore, String>,
    /// The model as the user named it, recorded in the session.
    pub model: String,
    /// A session read by `--resume`, continued in the same file.
    pub resume: Option<Session>,
}

/// Frames are drawn at most this often; tokens arriving in between are
/// shown together, so a fast model never floods the terminal.
const FRAME: Duration = Duration::from_millis(33);
/// How long the input thread waits for the terminal before it looks at its
/// stop flag again (and, with it, resizes crossterm learned of meanwhile).
const INPUT_WAIT: Duration = Duration::from_millis(50);

pub fn run(options: ChatOptions) -> anyhow::Result<i32> {
    if !io::stdout().is_terminal() || !io::stdin().is_terminal() {
        anyhow::bail!("glimpse chat needs a terminal; for scripts and pipes use `glimpse ask`");
    }
    if options.download.is_none() && options.remote.is_none() {
        crate::engine::check_model_dir(&options.engine.model_dir)?;
    }
    terminal::install_panic_hook();
    terminal::install_signal_handlers();
    let _guard = terminal::Guard;
    terminal::enter_alternate_screen().context("switching to the alternate screen")?;
    let picker = graphics::pick(options.image_protocol);
    terminal::enter_raw_mode().context("putting the terminal in raw mode")?;
    let mut term = Terminal::new(ResyncBackend::new(CrosstermBackend::new(io::stdout())))?;
    // Not `Terminal::clear`: it asks the terminal where the cursor is.
    let area = term.size()?;
    term.resize(Rect::new(0, 0, area.width, area.height))?;

    let (tx, rx) = mpsc::channel::<Msg>();
    let stop_input = Arc::new(AtomicBool::new(false));
    let input = spawn_input(tx.clone(), stop_input.clone())?;
    let engine: Arc<BackendSlot> = Arc::new(Mutex::new(None));
    // The pane's readings, also the engine's for its device choice and KV policy.
    let sample_tx = tx.clone();
    let sampler = Sampler::start_with(
        Box::new(NvmlMonitor::open()),
        sampler::PERIOD,
        sampler::HISTORY_LEN,
        move |s| {
            let _ = sample_tx.send(Msg::GpuSample(Box::new(s.clone())));
        },
    );
    let engine_options = EngineOptions {
        readings: Some(sampler.readings()),
        ..options.engine.clone()
    };
    match options.remote.clone() {
        Some(remote) => spawn_connector(remote, engine.clone(), tx.clone()),
        None => spawn_loader(
            engine_options,
            options.download.clone(),
            engine.clone(),
            tx.clone(),
        ),
    }

    let mut app = App::new(app_config(&options, &picker));
    let size = term.size()?;
    app.update(Msg::Resize(size.width, size.height));

    let keeper = SessionKeeper::new(options.sessions.store, options.sessions.model);
    let (sessions, session_thread) = spawn_session_keeper(keeper, tx.clone())?;
    if let Some(session) = options.sessions.resume {
        let _ = sessions.send(SessionCmd::Resume(Box::new(session)));
    }
    let mut effects = RealEffects {
        tx: tx.clone(),
        engine: engine.clone(),
        cap: options.engine.long_edge_cap,
        previews: spawn_preview_worker(picker, tx.clone())?,
        sessions,
    };
    let ending = event_loop(&mut term, &mut app, &rx, &mut effects);
    stop_input.store(true, Ordering::SeqCst);
    // The screen goes first, so a person sees the shell at once; the last
    // saves are written before the program ends.
    let gone = matches!(ending, Ok(Ending::TerminalLost))
        || terminal::wait_for_input(Duration::ZERO) == terminal::InputWait::Closed;
    if gone {
        // Dropping it would try to show the cursor on the dead terminal and
        // report the failure there, which panics.
        std::mem::forget(term);
    } else {
        drop(term);
    }
    terminal::restore();
    drop(effects);
    let _ = session_thread.join();
    // The input thread looks at its flag at least every INPUT_WAIT, unless
    // the terminal hung up while crossterm was reading it: crossterm then
    // retries the failing read for ever. Such a thread is left to end with
    // the process instead of being waited for.
    if gone {
        drop(input);
    } else {
        let _ = input.join();
    }
    // Dropping the engine waits for its thread; any answer was told to stop.
    drop(engine.lock().map(|mut e| e.take()));
    sampler.stop();
    match ending? {
        // As a shell reports a process ended by a signal: 128 + its number.
        Ending::Quit => Ok(terminal::termination_signal().map_or(0, |sig| 128 + sig)),
        // A terminal that went away without a signal ends as a hang-up
        // (signal 1 on every Unix) would.
        Ending::TerminalLost => Ok(128 + terminal::termination_signal().unwrap_or(1)),
    }
}

/// Why the chat's loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Asked to: a key, `/quit`, the input ending, a termination signal.
    Quit,
    /// The terminal could no longer be written to (it hung up).
    TerminalLost,
}

/// What the app starts with: the options, and facts of this terminal and machine.
fn app_config(options: &ChatOptions, picker: &Picker) -> AppConfig {
    let mut config = AppConfig::new(options.engine.model_dir.clone());
    config.download = options.download.as_ref().map(|d| d.id.clone());
    config.font_size = picker.font_size();
    config.keymap = options.keymap.clone();
    config.theme = options.theme.clone();
    config.themes = options.themes.clone();
    config.color_depth = options.color_depth;
    if !options.presets.is_empty() {
        config.presets = options.presets.clone();
        config.start_preset = options.start_preset.min(options.presets.len() - 1);
    }
    config.cpu_threads = thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    config.seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    config.image_protocol = protocol_name(picker.protocol_type()).into();
    config.thinking = options.thinking;
    config.thinking_start = options.thinking_start;
    config.server = options.remote.as_ref().map(|r| ServerWatch {
        url: r.server.clone(),
        model: r.model.clone(),
        load: None,
    });
    config
}

fn protocol_name(p: ProtocolType) -> &'static str {
    match p {
        ProtocolType::Halfblocks => "halfblocks",
        ProtocolType::Sixel => "sixel",
        ProtocolType::Kitty => "kitty",
        ProtocolType::Iterm2 => "iterm2",
    }
}

/// Every thread of the chat starts here, so a failed start (no memory, a
/// thread limit) is one error that names the thread, never a panic or a
/// screen left waiting for an answer that cannot come.
fn spawn_named<F>(name: &str, f: F) -> anyhow::Result<thread::JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    thread::Builder::new()
        .name(format!("glimpse-{name}"))
        .spawn(f)
        .with_context(|| format!("starting the {name} thread"))
}

fn spawn_input(tx: Sender<Msg>, stop: Arc<AtomicBool>) -> anyhow::Result<thread::JoinHandle<()>> {
    spawn_named("input", move || {
        while !stop.load(Ordering::SeqCst) {
            // Events crossterm already holds come first; then the terminal
            // itself is asked, so a hung-up terminal is seen as closed
            // (crossterm's own poll keeps reporting "nothing yet" on a
            // closed terminal, and a loop around it would spin for ever).
            let ready = match event::poll(Duration::ZERO) {
                Ok(true) => true,
                Ok(false) => match terminal::wait_for_input(INPUT_WAIT) {
                    terminal::InputWait::Ready => event::poll(INPUT_WAIT).unwrap_or(false),
                    terminal::InputWait::Quiet => false,
                    terminal::InputWait::Closed => {
                        let _ = tx.send(Msg::InputClosed);
                        return;
                    }
                },
                Err(_) => {
                    let _ = tx.send(Msg::InputClosed);
                    return;
                }
            };
            if !ready {
                continue;
            }
            let msg = match event::read() {
                Ok(TermEvent::Key(k)) => Msg::Key(k),
                Ok(TermEvent::Paste(p)) => Msg::Paste(p),
                Ok(TermEvent::Mouse(m))
                    if matches!(
                        m.kind,
                        MouseEventKind::ScrollUp | MouseEventKind::ScrollDown
                    ) =>
                {
                    Msg::Mouse(m)
                }
                Ok(TermEvent::Resize(w, h)) => Msg::Resize(w, h),
                Ok(_) => continue,
                Err(_) => Msg::InputClosed,
            };
            let closed = matches!(msg, Msg::InputClosed);
            if tx.send(msg).is_err() || closed {
                return;
            }
        }
    })
}

/// How often the GPU pane's remote block reads the server's load.
const SERVER_LOAD_PERIOD: Duration = Duration::from_secs(3);

/// Where the model that answers lives once it is ready: the engine here, or
/// a server.
pub type BackendSlot = Mutex<Option<Box<dyn ModelBackend + Send>>>;

/// Checks the server and the model on its own thread; the screen works
/// meanwhile, as while a local model loads.
fn spawn_connector(options: RemoteOptions, slot: Arc<BackendSlot>, tx: Sender<Msg>) {
    let failed = tx.clone();
    let started = spawn_named("connector", move || {
        let connected = Remote::connect(options).and_then(|remote| {
            let ready = ModelReady {
                info: remote.info()?,
                kv_cache: "on the server".into(),
            };
            let load_tx = tx.clone();
            remote.watch_load(SERVER_LOAD_PERIOD, move |load| {
                let _ = load_tx.send(Msg::ServerLoad(load));
            });
            Ok((remote, ready))
        });
        hand_over(connected, &slot, &tx);
    });
    if let Err(e) = started {
        let _ = failed.send(Msg::ModelFailed(crate::human::one_line(&e)));
    }
}

/// Loads the model on its own thread; the screen works meanwhile.
fn spawn_loader(
    options: EngineOptions,
    download: Option<HubDownload>,
    slot: Arc<BackendSlot>,
    tx: Sender<Msg>,
) {
    let failed = tx.clone();
    let started = spawn_named("loader", move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            load_model(options, download.as_ref(), &slot, &tx)
        }));
        // A bug in the download or the load must not leave the screen
        // waiting for a model forever.
        if outcome.is_err() {
            let why = terminal::take_worker_panic()
                .map(|p| format!(": {p}"))
                .unwrap_or_default();
            let _ = tx.send(Msg::ModelFailed(format!(
                "loading the model stopped unexpectedly{why}; restart glimpse"
            )));
        }
    });
    if let Err(e) = started {
        let _ = failed.send(Msg::ModelFailed(crate::human::one_line(&e)));
    }
}

/// Downloads the model first when asked, then loads it; progress and the
/// outcome go to `tx` as messages (one `ModelLoaded` or one `ModelFailed`
/// at the end). The engine is in `slot` before `ModelLoaded` is sent, so a
/// queued question finds it.
pub fn load_model(
    mut options: EngineOptions,
    download: Option<&HubDownload>,
    slot: &BackendSlot,
    tx: &Sender<Msg>,
) {
    if let Some(download) = download {
        let mut throttle = DownloadThrottle::new(PROGRESS_EVERY);
        let resolved = resolve_hub_id(&download.id, &download.hub, &mut |event| {
            if throttle.admit(event, Instant::now()) {
                let _ = tx.send(Msg::ModelDownload(event.clone()));
            }
        });
        match resolved {
            Ok(resolved) => {
                if let ModelSource::Cache { .. } = resolved.source {
                    // Completed by someone else meanwhile: no download ran
                    // to say where the model is.
                    let _ = tx.send(Msg::ModelDownload(DownloadEvent::Finished {
                        dir: resolved.dir.clone(),
                    }));
                }
                options.model_dir = resolved.dir;
            }
            Err(e) => {
                let _ = tx.send(Msg::ModelFailed(crate::human::one_line(&e.into())));
                return;
            }
        }
    }
    let dir = options.model_dir.clone();
    let loaded = Engine::load(options)
        .with_context(|| format!("loading {}", dir.display()))
        .map(|engine| {
            let ready = ModelReady::of(&engine);
            (engine, ready)
        });
    hand_over(loaded, slot, tx);
}

/// Puts a ready backend in `slot` before `ModelLoaded` is sent, so a queued
/// question finds it; or tells the screen why there is none.
fn hand_over<B: ModelBackend + Send + 'static>(
    outcome: anyhow::Result<(B, ModelReady)>,
    slot: &BackendSlot,
    tx: &Sender<Msg>,
) {
    match outcome {
        Ok((backend, ready)) => {
            if let Ok(mut s) = slot.lock() {
                *s = Some(Box::new(backend));
            }
            let _ = tx.send(Msg::ModelLoaded(Box::new(ready)));
        }
        Err(e) => {
            let _ = tx.send(Msg::ModelFailed(crate::human::one_line(&e)));
        }
    }
}

/// Saves and reads sessions on their own thread, in the order asked.
fn spawn_session_keeper(
    mut keeper: SessionKeeper,
    tx: Sender<Msg>,
) -> anyhow::Result<(Sender<SessionCmd>, thread::JoinHandle<()>)> {
    let (cmd_tx, cmd_rx) = mpsc::channel::<SessionCmd>();
    let handle = spawn_named("sessions", move || {
        for cmd in cmd_rx {
            if let Some(event) = keeper.handle(cmd) {
                // The screen may be gone at the end; the save is done anyway.
                let _ = tx.send(Msg::Session(event));
            }
        }
    })?;
    Ok((cmd_tx, handle))
}

struct PreviewJob {
    id: ImageId,
    pixels: Arc<DynamicImage>,
    cells: (u16, u16),
}

/// One thread encodes previews; a burst of resizes collapses to the last
/// size asked for each image.
fn spawn_preview_worker(picker: Picker, tx: Sender<Msg>) -> anyhow::Result<Sender<PreviewJob>> {
    let (job_tx, job_rx) = mpsc::channel::<PreviewJob>();
    spawn_named("previews", move || {
        while let Ok(first) = job_rx.recv() {
            let mut latest: HashMap<ImageId, PreviewJob> = HashMap::new();
            latest.insert(first.id, first);
            while let Ok(more) = job_rx.try_recv() {
                latest.insert(more.id, more);
            }
            for (_, job) in latest {
                let area = Rect::new(0, 0, job.cells.0, job.cells.1);
                let result = std::panic::catch_unwind(|| {
                    picker
                        .new_protocol((*job.pixels).clone(), area, Resize::Fit(None))
                        .map_err(|e| e.to_string())
                })
                .unwrap_or_else(|_| Err("the preview could not be drawn".into()));
                if tx
                    .send(Msg::PreviewEncoded {
                        id: job.id,
                        cells: job.cells,
                        result,
                    })
                    .is_err()
                {
                    return;
                }
            }
        }
    })?;
    Ok(job_tx)
}

/// Carries out the app's commands.
pub trait Effects<B: Backend> {
    fn run(&mut self, cmd: Cmd, terminal: &mut Terminal<B>) -> anyhow::Result<()>;
}

struct RealEffects {
    tx: Sender<Msg>,
    engine: Arc<BackendSlot>,
    cap: Option<LongEdgeCap>,
    previews: Sender<PreviewJob>,
    sessions: Sender<SessionCmd>,
}

impl RealEffects {
    /// Hands the request to the engine and forwards its events to the
    /// screen from a thread of its own.
    fn generate(
        &self,
        id: RequestId,
        conversation: Conversation,
        sampling: SamplingOverrides,
        thinking: Option<bool>,
        cancel: Arc<AtomicBool>,
    ) {
        let (reply, events) = mpsc::channel();
        let submitted = match self.engine.lock().ok().as_ref().and_then(|e| e.as_ref()) {
            Some(engine) => engine.submit(Request {
                conversation,
                sampling,
                reply,
                cancel,
                context: ContextPolicy::DropOldest,
                thinking,
            }),
            None => Err(anyhow::anyhow!("the model is not loaded")),
        };
        let tx = self.tx.clone();
        let forwarded = submitted.and_then(|()| {
            let tx = tx.clone();
            spawn_named("replies", move || {
                for event in events {
                    let last = matches!(event, Event::Done { .. } | Event::Error(_));
                    if tx.send(Msg::Engine { id, event }).is_err() || last {
                        return;
                    }
                }
                // The engine dropped the request without an end:
                // its thread is gone.
                let why = terminal::take_worker_panic()
                    .map(|p| format!(": {p}"))
                    .unwrap_or_default();
                let _ = tx.send(Msg::Engine {
                    id,
                    event: Event::Error(format!(
                        "the engine stopped unexpectedly{why}; restart glimpse"
                    )),
                });
            })
        });
        if let Err(e) = forwarded {
            let _ = tx.send(Msg::Engine {
                id,
                event: Event::Error(crate::human::one_line(&e)),
            });
        }
    }

    /// Decodes an image file on a thread of its own.
    fn decode(&self, id: ImageId, path: std::path::PathBuf) {
        let tx = self.tx.clone();
        let failed = (self.tx.clone(), path.clone());
        let cap = self.cap;
        let started = spawn_named("decoder", move || {
            // A decoder bug must not leave the chip waiting forever.
            let result = std::panic::catch_unwind(|| load_image(&path, cap.as_ref()))
                .unwrap_or_else(|_| {
                    let why = terminal::take_worker_panic().unwrap_or_default();
                    Err(crate::processor::image::ImageError::Corrupt {
                        file: path.display().to_string(),
                        detail: format!("the decoder failed: {why}"),
                    })
                })
                .map(|d| DecodedImage {
                    original: (d.original_width, d.original_height),
                    capped: (d.rgb.width(), d.rgb.height()),
                    pixels: Arc::new(DynamicImage::ImageRgb8(d.rgb)),
                })
                .map_err(|e| e.to_string());
            let _ = tx.send(Msg::ImageDecoded { id, result });
        });
        if let Err(e) = started {
            let (tx, path) = failed;
            let _ = tx.send(Msg::ImageDecoded {
                id,
                result: Err(format!(
                    "{}: {}",
                    path.display(),
                    crate::human::one_line(&e)
                )),
            });
        }
    }
}

impl<B: Backend> Effects<B> for RealEffects
where
    B::Error: Send + Sync + 'static,
{
    fn run(&mut self, cmd: Cmd, terminal: &mut Terminal<B>) -> anyhow::Result<()> {
        match cmd {
            Cmd::Generate {
                id,
                conversation,
                sampling,
                thinking,
                cancel,
            } => self.generate(id, conversation, sampling, thinking, cancel),
            Cmd::DecodeImage { id, path } => self.decode(id, path),
            Cmd::EncodePreview { id, pixels, cells } => {
                let _ = self.previews.send(PreviewJob { id, pixels, cells });
            }
            Cmd::Copy(text) => {
                let mut out = io::stdout();
                out.write_all(osc52(&text).as_bytes())?;
                out.flush()?;
            }
            Cmd::Session(cmd) => {
                let _ = self.sessions.send(cmd);
            }
            Cmd::Redraw => {
                let size = terminal.size()?;
                terminal.resize(Rect::new(0, 0, size.width, size.height))?;
            }
            Cmd::Quit => {}
        }
        Ok(())
    }
}

/// Messages in, `update`, commands out, and a frame whenever something
/// changed — never more often than [`FRAME`]. However it ends, the answer
/// being written is stopped and the conversation saved first: a terminal
/// that can no longer be drawn on, or an error, goes through the same quit
/// as Ctrl+Q.
pub fn event_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    rx: &Receiver<Msg>,
    effects: &mut impl Effects<B>,
) -> anyhow::Result<Ending>
where
    B::Error: Send + Sync + 'static,
{
    let outcome = match run_loop(terminal, app, rx, effects) {
        // A command that failed because the terminal hung up (a resize
        // asked of it, a copy written to it) is the terminal lost too.
        Err(_) if terminal::wait_for_input(Duration::ZERO) == terminal::InputWait::Closed => {
            Ok(Ending::TerminalLost)
        }
        other => other,
    };
    if !app.should_quit() {
        // Whatever went wrong with the terminal, the saves still go out.
        for cmd in app.update(Msg::Terminate) {
            let _ = effects.run(cmd, terminal);
        }
    }
    outcome
}

fn run_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    rx: &Receiver<Msg>,
    effects: &mut impl Effects<B>,
) -> anyhow::Result<Ending>
where
    B::Error: Send + Sync + 'static,
{
    if terminal.draw(|f| view::draw(f, app)).is_err() {
        return Ok(Ending::TerminalLost);
    }
    let mut last_draw = Instant::now();
    let mut last_tick = Instant::now();
    let mut dirty = false;
    loop {
        let now = Instant::now();
        let timeout = if dirty {
            FRAME.saturating_sub(now - last_draw)
        } else if app.is_busy() {
            TICK.saturating_sub(now - last_tick)
        } else {
            // Idle: wake now and then to notice a termination signal.
            Duration::from_millis(250)
        };
        match rx.recv_timeout(timeout) {
            Ok(msg) => {
                handle(app, msg, terminal, effects)?;
                // Take everything already waiting before drawing.
                for _ in 0..1024 {
                    match rx.try_recv() {
                        Ok(msg) => handle(app, msg, terminal, effects)?,
                        Err(_) => break,
                    }
                }
                dirty = true;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if app.should_quit() {
            break;
        }
        if terminal::termination_signal().is_some() {
            handle(app, Msg::Terminate, terminal, effects)?;
            break;
        }
        if app.is_busy() && last_tick.elapsed() >= TICK {
            app.update(Msg::Tick);
            last_tick = Instant::now();
            dirty = true;
        }
        if dirty && last_draw.elapsed() >= FRAME {
            if terminal.draw(|f| view::draw(f, app)).is_err() {
                return Ok(Ending::TerminalLost);
            }
            last_draw = Instant::now();
            dirty = false;
        }
    }
    Ok(Ending::Quit)
}

fn handle<B: Backend>(
    app: &mut App,
    msg: Msg,
    terminal: &mut Terminal<B>,
    effects: &mut impl Effects<B>,
) -> anyhow::Result<()> {
    // The resize event can arrive after keys typed in the new size; scrolling
    // by a page must use the size the screen has now.
    if matches!(msg, Msg::Key(_) | Msg::Mouse(_)) {
        if let Ok(size) = terminal.size() {
            if (size.width, size.height) != app.size {
                for cmd in app.update(Msg::Resize(size.width, size.height)) {
                    effects.run(cmd, terminal)?;
                }
            }
        }
    }
    for cmd in app.update(msg) {
        effects.run(cmd, terminal)?;
    }
    Ok(())
}
