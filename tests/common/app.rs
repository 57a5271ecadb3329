//! The chat app driven synchronously: a small runtime that carries out the
//! app's commands with the real parts (image decoding, half-block preview
//! encoding, the session keeper, the engine) and draws into ratatui's
//! TestBackend. Shared by the app and grounding tests.

#![allow(unused_macros, unused_imports)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};

use image::DynamicImage;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::Rect;
use ratatui::Terminal;
use ratatui_image::picker::Picker;
use ratatui_image::Resize;

use glimpse::conversation::Conversation;
use glimpse::engine::{
    Backend, ContextPolicy, Engine, EngineOptions, Event, Request, SamplingOverrides,
};
use glimpse::processor::image::{load_image, LongEdgeCap};
use glimpse::tui::msg::{DecodedImage, ImageId, ModelReady, RequestId};
use glimpse::tui::session_keeper::SessionKeeper;
use glimpse::tui::{view, App, AppConfig, Cmd, Msg};

/// A request the app asked for, kept for the test to answer.
#[derive(Clone)]
pub struct Generation {
    pub id: RequestId,
    pub conversation: Conversation,
    pub sampling: SamplingOverrides,
    pub thinking: Option<bool>,
    pub cancel: Arc<AtomicBool>,
}

pub struct AppHarness {
    pub app: App,
    pub terminal: Terminal<TestBackend>,
    pub picker: Picker,
    /// The long-edge cap images are decoded with, as `--long-edge-cap`.
    pub cap: Option<LongEdgeCap>,
    pub engine: Option<Engine>,
    pub generations: Vec<Generation>,
    pub copied: Vec<String>,
    /// The pixels of the latest preview encoded for each image id.
    pub encoded: HashMap<ImageId, Arc<DynamicImage>>,
    /// Carries out session commands; without one they are dropped.
    pub keeper: Option<SessionKeeper>,
}

impl AppHarness {
    pub fn new(config: AppConfig, width: u16, height: u16) -> Self {
        let mut h = AppHarness {
            app: App::new(config),
            terminal: Terminal::new(TestBackend::new(width, height)).unwrap(),
            picker: Picker::halfblocks(),
            cap: None,
            engine: None,
            generations: Vec::new(),
            copied: Vec::new(),
            encoded: HashMap::new(),
            keeper: None,
        };
        h.send(Msg::Resize(width, height));
        h
    }

    /// Loads the real engine and tells the app, as the loader thread does.
    pub fn load(&mut self, options: EngineOptions) {
        let engine = Engine::load(options).expect("tiny model loads");
        let mut ready = ModelReady::of(&engine);
        // "cpu (N threads)" depends on the machine; the snapshots must not.
        ready.info.device = "cpu".into();
        self.engine = Some(engine);
        self.send(Msg::ModelLoaded(Box::new(ready)));
    }

    pub fn send(&mut self, msg: Msg) {
        for cmd in self.app.update(msg) {
            self.run(cmd);
        }
    }

    fn run(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::DecodeImage { id, path } => self.decode(id, path),
            Cmd::EncodePreview { id, pixels, cells } => {
                self.encoded.insert(id, pixels.clone());
                let area = Rect::new(0, 0, cells.0, cells.1);
                let result = self
                    .picker
                    .new_protocol((*pixels).clone(), area, Resize::Fit(None))
                    .map_err(|e| e.to_string());
                self.send(Msg::PreviewEncoded { id, cells, result });
            }
            Cmd::Generate {
                id,
                conversation,
                sampling,
                thinking,
                cancel,
            } => self.generations.push(Generation {
                id,
                conversation,
                sampling,
                thinking,
                cancel,
            }),
            Cmd::Copy(text) => self.copied.push(text),
            Cmd::Session(cmd) => {
                let event = self.keeper.as_mut().and_then(|k| k.handle(cmd));
                if let Some(event) = event {
                    self.send(Msg::Session(event));
                }
            }
            Cmd::Redraw | Cmd::Quit => {}
        }
    }

    fn decode(&mut self, id: ImageId, path: PathBuf) {
        let result = load_image(&path, self.cap.as_ref())
            .map(|d| DecodedImage {
                original: (d.original_width, d.original_height),
                capped: (d.rgb.width(), d.rgb.height()),
                pixels: Arc::new(DynamicImage::ImageRgb8(d.rgb)),
            })
            .map_err(|e| e.to_string());
        self.send(Msg::ImageDecoded { id, result });
    }

    pub fn key(&mut self, code: KeyCode, modifiers: KeyModifiers) {
        self.send(Msg::Key(KeyEvent::new_with_kind(
            code,
            modifiers,
            KeyEventKind::Press,
        )));
    }

    pub fn ctrl(&mut self, c: char) {
        self.key(KeyCode::Char(c), KeyModifiers::CONTROL);
    }

    pub fn type_str(&mut self, s: &str) {
        for c in s.chars() {
            self.key(KeyCode::Char(c), KeyModifiers::NONE);
        }
    }

    pub fn ask(&mut self, s: &str) {
        self.type_str(s);
        self.key(KeyCode::Enter, KeyModifiers::NONE);
    }

    /// Runs the last request on the real engine and feeds every event back.
    pub fn answer_with_engine(&mut self) -> Vec<Event> {
        let engine = self.engine.take().expect("model loaded");
        let events = self.answer_with(&engine, |_, _| {});
        self.engine = Some(engine);
        events
    }

    /// Runs the last request on `backend` and feeds every event back,
    /// letting `between` act (press a key) after each.
    pub fn answer_with(
        &mut self,
        backend: &dyn Backend,
        mut between: impl FnMut(&mut Self, &Event),
    ) -> Vec<Event> {
        let g = self.generations.last().expect("a request was made");
        let (reply, rx) = mpsc::channel();
        backend
            .submit(Request {
                conversation: g.conversation.clone(),
                sampling: g.sampling.clone(),
                reply,
                cancel: g.cancel.clone(),
                context: ContextPolicy::DropOldest,
                thinking: g.thinking,
            })
            .unwrap();
        let id = g.id;
        let mut events = Vec::new();
        for event in rx {
            let last = matches!(event, Event::Done { .. } | Event::Error(_));
            events.push(event.clone());
            self.send(Msg::Engine {
                id,
                event: event.clone(),
            });
            if last {
                break;
            }
            between(self, &event);
        }
        events
    }

    /// Feeds the last request an event made up by the test.
    pub fn feed(&mut self, event: Event) {
        let id = self.generations.last().expect("a request was made").id;
        self.send(Msg::Engine { id, event });
    }

    pub fn screen(&mut self) -> String {
        let app = &self.app;
        self.terminal.draw(|f| view::draw(f, app)).unwrap();
        self.terminal.backend().to_string()
    }
}

/// A test's own harness that wraps an [`AppHarness`] in a field `inner`
/// and adds its own state reads and writes the shared one through it.
macro_rules! derefs_to_app_harness {
    ($wrapper:ty) => {
        impl std::ops::Deref for $wrapper {
            type Target = $crate::common::app::AppHarness;
            fn deref(&self) -> &Self::Target {
                &self.inner
            }
        }

        impl std::ops::DerefMut for $wrapper {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.inner
            }
        }
    };
}
pub(crate) use derefs_to_app_harness;
