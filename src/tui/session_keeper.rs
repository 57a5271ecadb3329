//! The chat's side of the session folder: it owns the session being held,
//! saves it when the app asks, opens, lists and exports sessions. It runs on
//! its own thread in the chat (disk and sha256 stay off the UI thread) and is
//! called directly by tests.
//!
//! The session lives here rather than in the app so that each image's sha256
//! is computed once, on its first save, however many saves follow.

use std::path::{Path, PathBuf};

use crate::conversation::Conversation;
use crate::session::export::{default_file_name, write_markdown};
use crate::session::store::{ImageState, Listing};
use crate::session::{Saved, Session, SessionSettings, SessionStore};

/// What the app asks of the keeper.
#[derive(Debug, Clone)]
pub enum SessionCmd {
    /// Write the conversation as it stands into the current session (a new
    /// one when there is none yet).
    Save {
        conversation: Conversation,
        settings: SessionSettings,
    },
    /// Forget the current session; the next save starts another.
    New,
    /// Make a saved session the current one and send it back.
    Open(String),
    /// Continue a session read by `--resume`: its images are checked
    /// (hashed) here, on the session thread, never on the screen's.
    Resume(Box<Session>),
    /// Read the folder's sessions for the list.
    List,
    /// Save, then write the session as Markdown to `path` (or to its default
    /// name in the current folder).
    Export {
        conversation: Conversation,
        settings: SessionSettings,
        path: Option<PathBuf>,
    },
}

/// What the keeper answers.
#[derive(Debug, Clone)]
pub enum SessionEvent {
    Saved {
        id: String,
        path: PathBuf,
        /// Why the file under the old id was kept and a new id taken.
        kept: Option<String>,
    },
    SaveFailed(String),
    Listed(Result<Box<Listing>, String>),
    Opened(Result<Box<Restored>, String>),
    Exported(Result<PathBuf, String>),
}

/// A session brought back, with what the person should know about it.
#[derive(Debug, Clone)]
pub struct Restored {
    pub session: Session,
    pub path: PathBuf,
    /// Images that are gone; the text around them is kept.
    pub missing: Vec<PathBuf>,
    /// Notices for the transcript: changed images, another model.
    pub notes: Vec<String>,
}

pub struct SessionKeeper {
    store: Result<SessionStore, String>,
    /// The model answering now, as the user named it.
    model: String,
    current: Option<Session>,
}

impl SessionKeeper {
    pub fn new(store: Result<SessionStore, String>, model: impl Into<String>) -> Self {
        SessionKeeper {
            store,
            model: model.into(),
            current: None,
        }
    }

    /// Holds `session` (read at start by `--resume`) and says what changed
    /// since it was saved.
    pub fn resume(&mut self, session: Session) -> Restored {
        let path = match &self.store {
            Ok(store) => store.path_of(&session.id),
            Err(_) => PathBuf::new(),
        };
        let restored = restore(session, path, &self.model);
        self.current = Some(restored.session.clone());
        restored
    }

    pub fn current_id(&self) -> Option<&str> {
        self.current.as_ref().map(|s| s.id.as_str())
    }

    /// Carries out one command; `New` has nothing to answer.
    pub fn handle(&mut self, cmd: SessionCmd) -> Option<SessionEvent> {
        let event = match cmd {
            SessionCmd::Save {
                conversation,
                settings,
            } => match self.save(conversation, settings) {
                Ok((id, path, kept)) => SessionEvent::Saved { id, path, kept },
                Err(e) => SessionEvent::SaveFailed(e),
            },
            SessionCmd::New => {
                self.current = None;
                return None;
            }
            SessionCmd::Open(id) => SessionEvent::Opened(self.open(&id).map(Box::new)),
            SessionCmd::Resume(session) => {
                SessionEvent::Opened(Ok(Box::new(self.resume(*session))))
            }
            SessionCmd::List => SessionEvent::Listed(self.list()),
            SessionCmd::Export {
                conversation,
                settings,
                path,
            } => SessionEvent::Exported(self.export(conversation, settings, path)),
        };
        Some(event)
    }

    fn store(&self) -> Result<&SessionStore, String> {
        self.store
            .as_ref()
            .map_err(|e| format!("sessions are not saved: {e}"))
    }

    fn save(
        &mut self,
        conversation: Conversation,
        settings: SessionSettings,
    ) -> Result<(String, PathBuf, Option<String>), String> {
        let store = self.store()?.clone();
        let model = self.model.clone();
        let session = self
            .current
            .get_or_insert_with(|| Session::new(model.clone(), settings.clone()));
        session.conversation = conversation;
        session.settings = settings;
        session.model = model;
        match store.save(session) {
            Ok(Saved::InPlace(path)) => Ok((session.id.clone(), path, None)),
            Ok(Saved::AsNew { path, kept, .. }) => {
                Ok((session.id.clone(), path, Some(kept.to_string())))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn list(&self) -> Result<Box<Listing>, String> {
        self.store()?
            .list()
            .map(Box::new)
            .map_err(|e| e.to_string())
    }

    fn open(&mut self, id: &str) -> Result<Restored, String> {
        let store = self.store()?;
        let session = store.load(id).map_err(|e| e.to_string())?;
        let path = store.path_of(&session.id);
        let restored = restore(session, path, &self.model);
        self.current = Some(restored.session.clone());
        Ok(restored)
    }

    fn export(
        &mut self,
        conversation: Conversation,
        settings: SessionSettings,
        path: Option<PathBuf>,
    ) -> Result<PathBuf, String> {
        // An export of a conversation that could not be saved is still worth having.
        let saved = self.save(conversation.clone(), settings.clone());
        let session = match (&self.current, saved) {
            (Some(s), Ok(_)) => s.clone(),
            _ => {
                let mut s = Session::new(self.model.clone(), settings);
                s.conversation = conversation;
                s
            }
        };
        let path = match path {
            Some(p) if p.is_dir() => p.join(default_file_name(&session)),
            Some(p) => p,
            None => PathBuf::from(default_file_name(&session)),
        };
        let path = std::path::absolute(&path).unwrap_or(path);
        write_markdown(&session, &path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    }
}

fn restore(session: Session, path: PathBuf, model: &str) -> Restored {
    let mut missing = Vec::new();
    let mut notes = Vec::new();
    for (image, state) in session.check_images() {
        match state {
            ImageState::Unchanged => {}
            ImageState::Changed => notes.push(format!(
                "{} changed since this session was saved; the answers above were about the earlier picture",
                image.display()
            )),
            ImageState::Missing => {
                notes.push(format!(
                    "{} is missing, so it is left out; the text is kept",
                    image.display()
                ));
                missing.push(image);
            }
        }
    }
    if !same_model(&session.model, model) {
        notes.push(format!(
            "This session was held with {}; {model} answers from here on.",
            session.model
        ));
    }
    Restored {
        session,
        path,
        missing,
        notes,
    }
}

/// A model named by a directory may be named with another spelling of its path.
fn same_model(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let canon = |s: &str| std::fs::canonicalize(Path::new(s)).ok();
    matches!((canon(a), canon(b)), (Some(x), Some(y)) if x == y)
}
