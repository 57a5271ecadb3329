//! The full-screen chat: `glimpse` / `glimpse chat`.
//!
//! Elm style: one [`App`] state; messages in (keys, pastes, mouse, resizes,
//! engine events, decoded images, encoded previews, ticks); one
//! [`App::update`] that returns commands for the runtime; then a pure
//! [`view::draw`]. The runtime owns the threads, the engine and the
//! terminal; the app owns none of them, so it renders into any ratatui
//! backend (tests use `TestBackend`).

pub mod app;
pub mod attachments;
pub mod clipboard;
pub mod colors;
pub mod detections;
pub mod download;
pub mod graphics;
pub mod highlight;
pub mod keymap;
pub mod layout;
pub mod markdown;
pub mod msg;
pub mod overlay;
pub mod presets;
pub mod reasoning;
pub mod resync;
pub mod runtime;
pub mod session_keeper;
pub mod session_list_view;
pub mod side_pane;
pub mod terminal;
pub mod theme;
pub mod theme_file;
pub mod transcript;
pub mod view;
pub mod wrap;

pub use app::{App, AppConfig, ServerWatch};
pub use msg::{Cmd, Msg};
pub use runtime::{run, ChatOptions};
