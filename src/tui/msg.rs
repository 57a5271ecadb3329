//! What flows into the app (messages) and what the app asks the runtime to
//! do (commands). The app never touches threads, the engine or the terminal.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use image::DynamicImage;
use ratatui::crossterm::event::{KeyEvent, MouseEvent};
use ratatui_image::protocol::Protocol;

use crate::conversation::Conversation;
use crate::engine::{Event, ModelInfo, SamplingOverrides};
use crate::gpu::Sample;
use crate::session::DownloadEvent;

use super::session_keeper::{SessionCmd, SessionEvent};

pub type RequestId = u64;

/// How often `Msg::Tick` comes while something is in progress: spinners
/// turn, and waits are counted, with it.
pub const TICK: std::time::Duration = std::time::Duration::from_millis(100);
pub type ImageId = u64;

/// The model is loaded: its facts and how it resizes images.
#[derive(Debug, Clone)]
pub struct ModelReady {
    pub info: ModelInfo,
    /// The KV cache's format at load (`Engine::kv_cache_label`).
    pub kv_cache: String,
}

impl ModelReady {
    pub fn of(engine: &crate::engine::Engine) -> ModelReady {
        ModelReady {
            info: engine.info().clone(),
            kv_cache: engine.kv_cache_label(),
        }
    }
}

/// An image decoded in memory, once, for its chip and its preview.
#[derive(Debug, Clone)]
pub struct DecodedImage {
    /// Size of the file's image (after EXIF rotation).
    pub original: (u32, u32),
    /// Size after the long-edge cap, which the model's resize starts from.
    pub capped: (u32, u32),
    pub pixels: Arc<DynamicImage>,
}

pub enum Msg {
    Key(KeyEvent),
    Paste(String),
    Mouse(MouseEvent),
    Resize(u16, u16),
    /// Time passes (spinners); sent only while something is in progress.
    Tick,
    /// The terminal stopped sending input (it was closed).
    InputClosed,
    /// A termination signal arrived, or the terminal can no longer be drawn
    /// on: stop the answer, save what it wrote, quit.
    Terminate,
    /// The GPU sampler's latest reading, once per sampler period.
    GpuSample(Box<Sample>),
    /// The answering server's load from its `/metrics`, every few seconds;
    /// `None` while it does not answer.
    ServerLoad(Option<crate::remote::ServerLoad>),
    /// The model is being downloaded from the hub (reports are throttled).
    ModelDownload(DownloadEvent),
    ModelLoaded(Box<ModelReady>),
    ModelFailed(String),
    Engine {
        id: RequestId,
        event: Event,
    },
    ImageDecoded {
        id: ImageId,
        result: Result<DecodedImage, String>,
    },
    PreviewEncoded {
        id: ImageId,
        cells: (u16, u16),
        result: Result<Protocol, String>,
    },
    /// The session keeper's answer.
    Session(SessionEvent),
}

pub enum Cmd {
    Generate {
        id: RequestId,
        conversation: Conversation,
        sampling: SamplingOverrides,
        /// `enable_thinking` for the template (`None`: the checkpoint's own).
        thinking: Option<bool>,
        cancel: Arc<AtomicBool>,
    },
    DecodeImage {
        id: ImageId,
        path: PathBuf,
    },
    /// Encode a preview for a box of `cells` (columns, rows), off the UI thread.
    EncodePreview {
        id: ImageId,
        pixels: Arc<DynamicImage>,
        cells: (u16, u16),
    },
    /// Put text on the clipboard of the terminal (OSC 52).
    Copy(String),
    /// Save, open, list or export sessions (the session keeper's thread).
    Session(SessionCmd),
    /// Clear and repaint the whole screen.
    Redraw,
    Quit,
}
