//! The chat's side of the session folder: it owns the session being held,
//! saves it when the app asks, opens, lists and exports sessions. It runs on
//! its own thread in the chat (disk and sha256 stay off the UI thread) and is
//! called directly by tests.
//!
//! The session lives here rather than in the app so that each image's sha256
//! is computed once, on its first save, however many saves follow. So do the
//! images a resumed session names that are gone for now: the app leaves them
//! out, and the keeper puts them back into every save.

use std::path::{Path, PathBuf};

use crate::conversation::{Content, Conversation, Message, Part, Role};
use crate::human::printable;
use crate::session::config::checked_sampling;
use crate::session::export::{default_file_name, write_markdown};
use crate::session::store::{ImageState, Listing};
use crate::session::turns::{merge_consecutive_questions, take_unanswered};
use crate::session::{Saved, Session, SessionSettings, SessionStore};
use crate::tui::transcript::scrub_placeholders;

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
        /// The id this conversation was saved under until another glimpse
        /// saved that session too; both files keep their own turns.
        forked_from: Option<String>,
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
    /// Images that are gone or cannot be read: left out of the chat, kept in
    /// the session file. The text around them is kept.
    pub missing: Vec<PathBuf>,
    /// Notices for the transcript: changed images, another model, settings
    /// that were not used, questions joined.
    pub notes: Vec<String>,
    /// The last question, taken off because no answer followed it (glimpse
    /// was stopped while answering), to be offered again.
    pub unanswered: Option<Message>,
}

pub struct SessionKeeper {
    store: Result<SessionStore, String>,
    /// The model answering now, as the user named it.
    model: String,
    current: Option<Session>,
    /// Images of the current session that the chat leaves out for now.
    held_back: Vec<PathBuf>,
    /// The id a save moved away from that the app has not been told of (an
    /// export saves without a `Saved` event).
    unreported_fork: Option<String>,
}

impl SessionKeeper {
    pub fn new(store: Result<SessionStore, String>, model: impl Into<String>) -> Self {
        SessionKeeper {
            store,
            model: model.into(),
            current: None,
            held_back: Vec::new(),
            unreported_fork: None,
        }
    }

    /// Holds `session` (read at start by `--resume`) and says what changed
    /// since it was saved.
    pub fn resume(&mut self, session: Session) -> Restored {
        let path = match &self.store {
            Ok(store) => store.path_of(&session.id),
            Err(_) => PathBuf::new(),
        };
        self.hold(restore(session, path, &self.model))
    }

    /// Makes a restored session the current one.
    fn hold(&mut self, restored: Restored) -> Restored {
        self.current = Some(restored.session.clone());
        self.held_back = restored.missing.clone();
        self.unreported_fork = None;
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
                Ok((saved, id)) => saved_event(saved, id, self.unreported_fork.take()),
                Err(e) => SessionEvent::SaveFailed(e),
            },
            SessionCmd::New => {
                self.current = None;
                self.held_back.clear();
                self.unreported_fork = None;
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

    /// Saves the conversation into the current session; says how, and the
    /// id it is saved under.
    fn save(
        &mut self,
        mut conversation: Conversation,
        settings: SessionSettings,
    ) -> Result<(Saved, String), String> {
        let store = self.store()?.clone();
        let model = self.model.clone();
        let session = self
            .current
            .get_or_insert_with(|| Session::new(model.clone(), settings.clone()));
        keep_held_back(&mut conversation, &session.conversation, &self.held_back);
        session.conversation = conversation;
        session.settings = settings;
        session.model = model;
        let saved = store.save(session).map_err(|e| e.to_string())?;
        if let Saved::Forked { old_id, .. } = &saved {
            self.unreported_fork.get_or_insert(old_id.clone());
        }
        Ok((saved, session.id.clone()))
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
        Ok(self.hold(restore(session, path, &self.model)))
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

fn saved_event(saved: Saved, id: String, forked_from: Option<String>) -> SessionEvent {
    let (path, kept) = match saved {
        Saved::InPlace(path) | Saved::Forked { path, .. } => (path, None),
        Saved::AsNew { path, kept, .. } => (path, Some(kept.to_string())),
    };
    SessionEvent::Saved {
        id,
        path,
        kept,
        forked_from,
    }
}

/// A saved session made fit to continue: every question followed by its
/// answer, settings within the rules a preset has, and a word about each
/// image that is not as it was.
fn restore(mut session: Session, path: PathBuf, model: &str) -> Restored {
    let mut notes = Vec::new();
    let unanswered = take_unanswered(&mut session.conversation);
    let joined = merge_consecutive_questions(&mut session.conversation);
    if joined > 0 {
        notes.push(format!(
            "{} questions in a row had no answer between them; they are joined into one",
            joined + 1
        ));
    }
    let (sampling, problems) = checked_sampling(&session.settings.sampling);
    session.settings.sampling = sampling;
    for problem in problems {
        notes.push(format!(
            "the saved setting is not used ({}); the model's default applies",
            printable(&problem)
        ));
    }
    let missing = image_notes(&session, &mut notes);
    if !same_model(&session.model, model) {
        notes.push(format!(
            "This session was held with {}; {} answers from here on.",
            printable(&session.model),
            printable(model)
        ));
    }
    Restored {
        session,
        path,
        missing,
        notes,
        unanswered,
    }
}

/// Notes on the images that changed or cannot be used; says which to leave out.
fn image_notes(session: &Session, notes: &mut Vec<String>) -> Vec<PathBuf> {
    const KEPT: &str =
        "it is left out for now and kept in the session, so it comes back when the file does";
    let mut missing = Vec::new();
    for (image, state) in session.check_images() {
        let shown = printable(&image.to_string_lossy()).into_owned();
        let note = match state {
            ImageState::Unchanged => continue,
            ImageState::Changed => {
                notes.push(format!(
                    "{shown} changed since this session was saved; the answers above were about the earlier picture"
                ));
                continue;
            }
            ImageState::Missing => format!("{shown} is missing: {KEPT}"),
            ImageState::Unusable(why) => format!("{shown} cannot be used ({why}): {KEPT}"),
        };
        notes.push(note);
        missing.push(image);
    }
    missing
}

/// Puts the images the chat left out back into the questions they belong to.
/// `previous` is the conversation as last saved or resumed; its questions
/// holding such images are found again in order, by their text and the
/// images the chat kept.
fn keep_held_back(conversation: &mut Conversation, previous: &Conversation, held: &[PathBuf]) {
    if held.is_empty() {
        return;
    }
    let is_held = |p: &Path| held.iter().any(|h| h == p);
    let key = |m: &Message| -> (String, Vec<PathBuf>) {
        let kept = m.images().filter(|p| !is_held(p)).map(Path::to_path_buf);
        (scrub_placeholders(&m.joined_text()), kept.collect())
    };
    let holders: Vec<&Message> = previous
        .messages
        .iter()
        .filter(|m| m.role == Role::User && m.images().any(is_held))
        .collect();
    let mut next = 0;
    for m in &mut conversation.messages {
        if m.role != Role::User || next == holders.len() {
            continue;
        }
        let wanted = key(m);
        let Some(i) = holders[next..].iter().position(|h| key(h) == wanted) else {
            continue;
        };
        let holder = holders[next + i];
        next += i + 1;
        let mut parts: Vec<Part> = holder
            .images()
            .map(|p| Part::Image(p.to_path_buf()))
            .collect();
        parts.extend(text_parts(&m.content));
        m.content = Content::Parts(parts);
    }
}

fn text_parts(content: &Content) -> Vec<Part> {
    match content {
        Content::Text(t) if t.is_empty() => Vec::new(),
        Content::Text(t) => vec![Part::Text(t.clone())],
        Content::Parts(parts) => parts
            .iter()
            .filter(|p| matches!(p, Part::Text(_)))
            .cloned()
            .collect(),
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
