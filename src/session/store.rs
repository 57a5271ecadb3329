//! Conversations saved as they go, one JSON file per session in the data
//! folder: the messages in the transformers chat format, every image's path
//! and sha256, the model, the settings and timestamps, under a format version.
//!
//! A file this version cannot read (damaged, or written by a newer glimpse) is
//! reported and never overwritten: saving over it picks a new id instead.
//! A field added later is optional and unknown fields are ignored, so files
//! stay readable both ways within a version (`settings.thinking` came so);
//! the version goes up only for a change an older glimpse would misread. So
//! is a file another glimpse has written since this one last read or wrote
//! it: two chats continuing one session each keep their own turns.
//!
//! The file name is the session's id.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::atomic::{is_temp_name, remove_stale_temps, write_atomic};
use super::folder_lock;
use super::paths;
use super::timestamp::Timestamp;
use super::turns::question_count;
use crate::conversation::{Content, Conversation, Message, Part, Role};
use crate::engine::SamplingOverrides;

pub use super::digest::sha256_file;

/// Version of the session file format this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;

const EXTENSION: &str = "json";
const TITLE_CHARS: usize = 60;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "no folder for sessions on this system; set {} to choose one",
        paths::DATA_DIR_ENV
    )]
    NoDataDir,
    #[error("session folder {}: {source}", dir.display())]
    Folder {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot save session {id} to {}: {source}", path.display())]
    Write {
        id: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no session {id:?} in {}; `glimpse sessions` lists them, and `glimpse chat --resume` without an id takes the latest", dir.display())]
    NotFound { id: String, dir: PathBuf },
    #[error("{id:?} matches several sessions ({}); give more of the id", candidates.join(", "))]
    Ambiguous { id: String, candidates: Vec<String> },
    #[error("no saved sessions in {} yet", dir.display())]
    Empty { dir: PathBuf },
    #[error(transparent)]
    Unreadable(#[from] Unreadable),
}

/// Why one session file cannot be used. The file is left as it is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Unreadable {
    #[error("session file {} is damaged ({reason}); it is left untouched: move it away or start a new conversation", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("session file {} was written by a newer glimpse (format {found}, this one reads up to {FORMAT_VERSION}); it is left untouched: update glimpse to open it", path.display())]
    Newer { path: PathBuf, found: u64 },
}

impl Unreadable {
    pub fn path(&self) -> &Path {
        match self {
            Unreadable::Corrupt { path, .. } | Unreadable::Newer { path, .. } => path,
        }
    }
}

/// Settings the conversation was held with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    #[serde(default)]
    pub sampling: SamplingOverrides,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
    /// Thinking on or off as the conversation last had it; absent, it is
    /// left to the preset, the config and the checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<bool>,
}

impl SessionSettings {
    /// The settings a conversation held with `preset` records.
    pub fn from_preset(preset: &super::config::Preset, seed: Option<u64>) -> SessionSettings {
        SessionSettings {
            preset: Some(preset.name.clone()),
            sampling: preset.sampling(seed),
            device: None,
            dtype: None,
            thinking: preset.thinking,
        }
    }
}

/// An image of the conversation with the digest of its content when it was
/// attached, so a resumed session can tell a changed or missing file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub path: PathBuf,
    /// Lower-case hex; `None` when the file could not be read at save time.
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageState {
    Unchanged,
    Changed,
    Missing,
    /// There, but not an image file that can be read (a device, a pipe, a
    /// folder, a file too large or not readable); says why.
    Unusable(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: String,
    pub created: Timestamp,
    pub updated: Timestamp,
    /// The model as the user named it (hub id or directory).
    pub model: String,
    pub settings: SessionSettings,
    /// Image paths are kept absolute, so a session resumes from any folder.
    pub conversation: Conversation,
    pub images: Vec<ImageRecord>,
    /// The file as this process last read or wrote it.
    disk: Option<DiskVersion>,
}

/// A session file's content, by length and digest: whether the file is still
/// the one a chat read or wrote, or another process has replaced it since.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DiskVersion {
    len: usize,
    sha256: [u8; 32],
}

impl DiskVersion {
    fn of(bytes: &[u8]) -> DiskVersion {
        DiskVersion {
            len: bytes.len(),
            sha256: Sha256::digest(bytes).into(),
        }
    }
}

/// What `list` shows of a session without keeping all of it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSummary {
    pub id: String,
    pub title: String,
    pub model: String,
    pub created: Timestamp,
    pub updated: Timestamp,
    pub messages: usize,
    /// Questions asked; questions in a row, left by a glimpse stopped before
    /// it answered, count once.
    pub turns: usize,
    pub images: usize,
    pub path: PathBuf,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listing {
    /// Newest first.
    pub sessions: Vec<SessionSummary>,
    /// Files that look like sessions but cannot be read.
    pub unreadable: Vec<Unreadable>,
}

/// What `save` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Saved {
    /// Written under the session's id.
    InPlace(PathBuf),
    /// The file under the old id could not be read, so it was kept and the
    /// session now has a new id.
    AsNew {
        old_id: String,
        path: PathBuf,
        kept: Unreadable,
    },
    /// Another process wrote the file under the old id after this session
    /// last read or wrote it; that file is kept as it is, and the session goes
    /// on under a new id.
    Forked { old_id: String, path: PathBuf },
}

impl Session {
    pub fn new(model: impl Into<String>, settings: SessionSettings) -> Session {
        let now = Timestamp::now();
        Session {
            id: new_id(now),
            created: now,
            updated: now,
            model: model.into(),
            settings,
            conversation: Conversation::new(),
            images: Vec::new(),
            disk: None,
        }
    }

    /// A new session holding `conversation` (read from a file, say), with
    /// its images recorded as they are now.
    pub fn from_conversation(
        model: impl Into<String>,
        settings: SessionSettings,
        conversation: Conversation,
    ) -> Session {
        let mut session = Session::new(model, settings);
        session.conversation = conversation;
        session.prepare_for_save();
        session
    }

    /// First line of the first question, shortened.
    pub fn title(&self) -> String {
        title_of(&self.conversation)
    }

    /// Compares every recorded image with the file on disk now.
    pub fn check_images(&self) -> Vec<(PathBuf, ImageState)> {
        self.images
            .iter()
            .map(|r| {
                let state = match sha256_file(&r.path) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => ImageState::Missing,
                    Err(e) => ImageState::Unusable(e.to_string()),
                    Ok(now) if Some(&now) == r.sha256.as_ref() => ImageState::Unchanged,
                    Ok(_) => ImageState::Changed,
                };
                (r.path.clone(), state)
            })
            .collect()
    }

    /// Makes image paths absolute and records the digest of images not seen before.
    fn prepare_for_save(&mut self) {
        for message in &mut self.conversation.messages {
            if let Content::Parts(parts) = &mut message.content {
                for part in parts {
                    if let Part::Image(path) = part {
                        if let Ok(abs) = std::path::absolute(&*path) {
                            *path = abs;
                        }
                    }
                }
            }
        }
        let paths: Vec<PathBuf> = self
            .conversation
            .images()
            .into_iter()
            .map(Path::to_path_buf)
            .collect();
        for path in paths {
            if !self.images.iter().any(|r| r.path == path) {
                let sha256 = sha256_file(&path).ok();
                self.images.push(ImageRecord { path, sha256 });
            }
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "format_version": FORMAT_VERSION,
            "id": self.id,
            "title": self.title(),
            "created": self.created,
            "updated": self.updated,
            "model": self.model,
            "settings": self.settings,
            "images": self.images,
            "messages": self.conversation.to_json_value(),
        })
    }

    /// The session in `value`, read from `path`: its id is the file's name,
    /// whatever the file says, so it is listed and resumed under one id.
    fn from_json(value: &Value, path: &Path) -> Result<Session, Unreadable> {
        let corrupt = |reason: String| Unreadable::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let version = format_version(value).map_err(corrupt)?;
        if version > FORMAT_VERSION {
            return Err(Unreadable::Newer {
                path: path.to_path_buf(),
                found: version,
            });
        }
        #[derive(Deserialize)]
        struct Fields {
            created: Timestamp,
            updated: Timestamp,
            model: String,
            #[serde(default)]
            settings: SessionSettings,
            #[serde(default)]
            images: Vec<ImageRecord>,
            messages: Value,
        }
        let f = Fields::deserialize(value).map_err(|e| corrupt(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let conversation =
            Conversation::from_json_value(&f.messages, base).map_err(|e| corrupt(e.to_string()))?;
        Ok(Session {
            id: id_of(path),
            created: f.created,
            updated: f.updated,
            model: f.model,
            settings: f.settings,
            conversation,
            images: f.images,
            disk: None,
        })
    }
}

/// The file's format version, or what is wrong with it.
fn format_version(value: &Value) -> Result<u64, String> {
    let found = match value.get("format_version") {
        None => return Err("no format_version; not a glimpse session".into()),
        Some(Value::Number(n)) => {
            return n
                .as_u64()
                .ok_or_else(|| format!("format_version must be a whole number, found {n}"))
        }
        Some(Value::String(s)) => format!("the string {s:?}"),
        Some(Value::Bool(b)) => format!("{b}"),
        Some(Value::Null) => "null".to_string(),
        Some(Value::Array(_)) => "a list".to_string(),
        Some(Value::Object(_)) => "an object".to_string(),
    };
    Err(format!("format_version must be a number, found {found}"))
}

/// A session's id: its file name without the extension.
fn id_of(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn title_of(conversation: &Conversation) -> String {
    let Some(first) = conversation.messages.iter().find(|m| m.role == Role::User) else {
        return "(empty)".to_string();
    };
    let text = first.joined_text();
    let line = text.lines().map(str::trim).find(|l| !l.is_empty());
    match line {
        Some(line) if line.chars().count() > TITLE_CHARS => {
            let cut: String = line.chars().take(TITLE_CHARS - 1).collect();
            format!("{}…", cut.trim_end())
        }
        Some(line) => line.to_string(),
        None => match first.images().next() {
            Some(p) => format!(
                "(image {})",
                p.file_name().unwrap_or(p.as_os_str()).to_string_lossy()
            ),
            None => "(empty)".to_string(),
        },
    }
}

/// `20250131-090500-3fa2c1`: sorts by creation time, unique in practice.
fn new_id(now: Timestamp) -> String {
    let random = RandomState::new().hash_one((now.0, std::process::id()));
    format!("{}-{:06x}", now.compact(), random & 0xff_ffff)
}

/// What stands at a session's path when it is about to be saved.
enum OnDisk {
    /// No file, or the file as this session last read or wrote it.
    Ours,
    /// A file this version cannot read.
    Unreadable(Unreadable),
    /// A readable file someone else has written.
    Theirs,
}

/// The folder of session files.
#[derive(Debug, Clone)]
pub struct SessionStore {
    dir: PathBuf,
}

impl SessionStore {
    /// The platform data folder's `sessions/` (or `$GLIMPSE_DATA_DIR/sessions`),
    /// rid of what writers killed mid-save left there.
    pub fn open_default() -> Result<SessionStore, StoreError> {
        let store = paths::sessions_dir()
            .map(SessionStore::at)
            .ok_or(StoreError::NoDataDir)?;
        remove_stale_temps(store.dir());
        Ok(store)
    }

    pub fn at(dir: impl Into<PathBuf>) -> SessionStore {
        SessionStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path_of(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.{EXTENSION}"))
    }

    /// Writes the session atomically, updating its `updated` time. A file of
    /// the same id that cannot be read, or that another process wrote since
    /// this session last read or wrote it, is kept, and the session moves to
    /// a new id.
    pub fn save(&self, session: &mut Session) -> Result<Saved, StoreError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| StoreError::Folder {
            dir: self.dir.clone(),
            source,
        })?;
        session.prepare_for_save();
        session.updated = Timestamp::now().max(session.created);
        let _lock = folder_lock::lock(&self.dir);
        let old_id = session.id.clone();
        let mut in_the_way = None;
        loop {
            match self.on_disk(&session.id, session.disk.as_ref()) {
                OnDisk::Ours => break,
                other => in_the_way.get_or_insert(other),
            };
            session.id = new_id(session.updated);
        }
        let path = self.path_of(&session.id);
        let mut bytes =
            serde_json::to_vec_pretty(&session.to_json()).expect("JSON values serialise");
        bytes.push(b'\n');
        write_atomic(&path, &bytes).map_err(|source| StoreError::Write {
            id: session.id.clone(),
            path: path.clone(),
            source,
        })?;
        session.disk = Some(DiskVersion::of(&bytes));
        Ok(match in_the_way {
            Some(OnDisk::Unreadable(kept)) => Saved::AsNew { old_id, path, kept },
            Some(OnDisk::Theirs) => Saved::Forked { old_id, path },
            None | Some(OnDisk::Ours) => Saved::InPlace(path),
        })
    }

    /// Whether the file for `id` may be replaced by a session that last saw
    /// it as `seen`.
    fn on_disk(&self, id: &str, seen: Option<&DiskVersion>) -> OnDisk {
        let path = self.path_of(id);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return OnDisk::Ours,
            Err(e) => {
                return OnDisk::Unreadable(Unreadable::Corrupt {
                    path,
                    reason: format!("cannot read it: {e}"),
                })
            }
        };
        if seen == Some(&DiskVersion::of(&bytes)) {
            return OnDisk::Ours;
        }
        match parse_session(&bytes, &path) {
            Ok(_) => OnDisk::Theirs,
            Err(problem) => OnDisk::Unreadable(problem),
        }
    }

    /// Every session, newest first, and the files that cannot be read.
    pub fn list(&self) -> Result<Listing, StoreError> {
        let mut listing = Listing::default();
        for path in self.session_files()? {
            match read_session(&path) {
                Ok(s) => listing.sessions.push(SessionSummary {
                    title: s.title(),
                    messages: s.conversation.messages.len(),
                    turns: question_count(&s.conversation),
                    images: s.images.len(),
                    id: s.id,
                    model: s.model,
                    created: s.created,
                    updated: s.updated,
                    path,
                }),
                Err(problem) => listing.unreadable.push(problem),
            }
        }
        listing
            .sessions
            .sort_by(|a, b| (b.updated, &b.id).cmp(&(a.updated, &a.id)));
        Ok(listing)
    }

    /// A session by id, by unique id prefix, or `"latest"`.
    pub fn load(&self, id: &str) -> Result<Session, StoreError> {
        if id == "latest" {
            return self.load_latest();
        }
        let exact = self.path_of(id);
        if exact.is_file() && !id.contains(['/', '\\']) {
            return Ok(read_session(&exact)?);
        }
        let matches: Vec<PathBuf> = self
            .session_files()?
            .into_iter()
            .filter(|p| {
                p.file_stem()
                    .is_some_and(|s| s.to_string_lossy().starts_with(id))
            })
            .collect();
        match matches.as_slice() {
            [one] => Ok(read_session(one)?),
            [] => Err(StoreError::NotFound {
                id: id.to_string(),
                dir: self.dir.clone(),
            }),
            many => Err(StoreError::Ambiguous {
                id: id.to_string(),
                candidates: many
                    .iter()
                    .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                    .collect(),
            }),
        }
    }

    /// The most recently updated readable session.
    pub fn load_latest(&self) -> Result<Session, StoreError> {
        let listing = self.list()?;
        match listing.sessions.first() {
            Some(newest) => Ok(read_session(&newest.path)?),
            None => Err(StoreError::Empty {
                dir: self.dir.clone(),
            }),
        }
    }

    /// Session files, without temporary files of unfinished writes.
    fn session_files(&self) -> Result<Vec<PathBuf>, StoreError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StoreError::Folder {
                    dir: self.dir.clone(),
                    source,
                })
            }
        };
        let mut files = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_session = !name.starts_with('.')
                && !is_temp_name(&name)
                && path.extension().is_some_and(|e| e == EXTENSION)
                && path.is_file();
            if is_session {
                files.push(path);
            }
        }
        files.sort();
        Ok(files)
    }
}

fn read_session(path: &Path) -> Result<Session, Unreadable> {
    let bytes = std::fs::read(path).map_err(|e| Unreadable::Corrupt {
        path: path.to_path_buf(),
        reason: format!("cannot read it: {e}"),
    })?;
    let mut session = parse_session(&bytes, path)?;
    session.disk = Some(DiskVersion::of(&bytes));
    Ok(session)
}

fn parse_session(bytes: &[u8], path: &Path) -> Result<Session, Unreadable> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| Unreadable::Corrupt {
        path: path.to_path_buf(),
        reason: format!("not valid JSON: {e}"),
    })?;
    Session::from_json(&value, path)
}

/// A user message with images and text, as front ends build it.
pub fn user_message(images: Vec<PathBuf>, text: impl Into<String>) -> Message {
    let mut parts: Vec<Part> = images.into_iter().map(Part::Image).collect();
    parts.push(Part::Text(text.into()));
    Message::parts(Role::User, parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_come_from_the_first_question() {
        let mut c = Conversation::new();
        assert_eq!(title_of(&c), "(empty)");
        c.push(Message::text(Role::System, "Be brief."));
        c.push(user_message(vec!["/x/shelf.jpg".into()], ""));
        assert_eq!(title_of(&c), "(image shelf.jpg)");
        c.messages[1] = user_message(vec![], "\n  What is on the\nsecond shelf?");
        assert_eq!(title_of(&c), "What is on the");
        c.messages[1] = Message::text(Role::User, "x".repeat(100));
        let t = title_of(&c);
        assert_eq!(t.chars().count(), TITLE_CHARS);
        assert!(t.ends_with('…'));
    }

    #[test]
    fn settings_from_a_preset_record_its_name_and_sampling() {
        let config = crate::session::Config::default();
        let s = SessionSettings::from_preset(config.preset("quick").unwrap(), Some(3));
        assert_eq!(s.preset.as_deref(), Some("quick"));
        assert_eq!(s.sampling.temperature, Some(0.1));
        assert_eq!(s.sampling.max_new_tokens, Some(128));
        assert_eq!(s.sampling.seed, Some(3));
    }

    #[test]
    fn ids_sort_by_creation_time() {
        let a = new_id(Timestamp(1_700_000_000));
        assert!(a.starts_with("20231114-221320-"), "{a}");
        assert_eq!(a.len(), "20231114-221320-".len() + 6);
        assert!(new_id(Timestamp(1_700_000_001)) > a);
    }
}
