//! A conversation as the user wrote it: roles, text and image references.
//!
//! The JSON form is the one transformers' `apply_chat_template` takes:
//! `[{"role": "user", "content": [{"type": "image", "image": "a.png"},
//! {"type": "text", "text": "..."}]}, {"role": "assistant", "content": "..."}]`.
//! Content may be a plain string. Image paths are resolved against the folder of
//! the file they were read from.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    #[error("cannot read conversation file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("conversation file {path} is not valid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("conversation {where_}: {what}")]
    Shape { where_: String, what: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        match s {
            "system" => Some(Role::System),
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    /// An image by path; decoding happens in the processor.
    Image(PathBuf),
}

/// Message content keeps the form it was given in (a plain string or a list of
/// parts) because chat templates may render the two differently.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub content: Content,
    /// A thinking model's reasoning before this (assistant) message, kept
    /// apart from its content: `reasoning_content` in the JSON form, which
    /// is where the chat templates of thinking models look for it (and
    /// decide themselves whether to show it to the model again).
    pub reasoning: Option<String>,
}

impl Message {
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Message {
            role,
            content: Content::Text(text.into()),
            reasoning: None,
        }
    }

    pub fn parts(role: Role, parts: Vec<Part>) -> Self {
        Message {
            role,
            content: Content::Parts(parts),
            reasoning: None,
        }
    }

    /// The message with `reasoning` kept beside it (none when empty).
    pub fn with_reasoning(mut self, reasoning: &str) -> Self {
        self.reasoning = (!reasoning.is_empty()).then(|| reasoning.to_string());
        self
    }

    /// Image paths of this message, in order.
    pub fn images(&self) -> impl Iterator<Item = &Path> {
        let parts: &[Part] = match &self.content {
            Content::Text(_) => &[],
            Content::Parts(p) => p,
        };
        parts.iter().filter_map(|p| match p {
            Part::Image(path) => Some(path.as_path()),
            Part::Text(_) => None,
        })
    }

    /// All text of the message, parts joined without separator.
    pub fn joined_text(&self) -> String {
        match &self.content {
            Content::Text(t) => t.clone(),
            Content::Parts(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    Part::Text(t) => Some(t.as_str()),
                    Part::Image(_) => None,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conversation {
    pub messages: Vec<Message>,
}

impl Conversation {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, message: Message) {
        self.messages.push(message);
    }

    /// Image paths of the whole conversation, in prompt order.
    pub fn images(&self) -> Vec<&Path> {
        self.messages.iter().flat_map(|m| m.images()).collect()
    }

    pub fn from_json_file(path: &Path) -> Result<Self, ConversationError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConversationError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let value: Value =
            serde_json::from_str(&text).map_err(|source| ConversationError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_json_value(&value, base)
    }

    /// Parses the transformers message list; relative image paths are joined to `base`.
    pub fn from_json_value(value: &Value, base: &Path) -> Result<Self, ConversationError> {
        let list = value.as_array().ok_or_else(|| ConversationError::Shape {
            where_: "top level".into(),
            what: "expected a JSON list of messages".into(),
        })?;
        let mut messages = Vec::with_capacity(list.len());
        for (i, m) in list.iter().enumerate() {
            let where_ = format!("message {}", i + 1);
            let role_str =
                m.get("role")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ConversationError::Shape {
                        where_: where_.clone(),
                        what: "missing \"role\"".into(),
                    })?;
            let role = Role::parse(role_str).ok_or_else(|| ConversationError::Shape {
                where_: where_.clone(),
                what: format!("unknown role {role_str:?} (use system, user or assistant)"),
            })?;
            let content = match m.get("content") {
                Some(Value::String(s)) => Content::Text(s.clone()),
                Some(Value::Array(items)) => {
                    let mut parts = Vec::with_capacity(items.len());
                    for (j, item) in items.iter().enumerate() {
                        parts.push(parse_part(item, base).map_err(|what| {
                            ConversationError::Shape {
                                where_: format!("{where_}, item {}", j + 1),
                                what,
                            }
                        })?);
                    }
                    Content::Parts(parts)
                }
                Some(Value::Null) | None => Content::Text(String::new()),
                Some(_) => {
                    return Err(ConversationError::Shape {
                        where_,
                        what: "\"content\" must be a string or a list".into(),
                    })
                }
            };
            let reasoning = match m.get("reasoning_content") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Null) | None => None,
                Some(_) => {
                    return Err(ConversationError::Shape {
                        where_,
                        what: "\"reasoning_content\" must be a string".into(),
                    })
                }
            };
            messages.push(Message {
                role,
                content,
                reasoning,
            });
        }
        Ok(Conversation { messages })
    }

    /// The transformers JSON form, with image paths as given.
    pub fn to_json_value(&self) -> Value {
        Value::Array(
            self.messages
                .iter()
                .map(|m| {
                    let content = match &m.content {
                        Content::Text(t) => Value::String(t.clone()),
                        Content::Parts(parts) => Value::Array(
                            parts
                                .iter()
                                .map(|p| match p {
                                    Part::Text(t) => json!({"type": "text", "text": t}),
                                    Part::Image(path) => {
                                        json!({"type": "image", "image": path.to_string_lossy()})
                                    }
                                })
                                .collect(),
                        ),
                    };
                    let mut message = json!({"role": m.role.as_str(), "content": content});
                    if let Some(r) = &m.reasoning {
                        message["reasoning_content"] = Value::String(r.clone());
                    }
                    message
                })
                .collect(),
        )
    }
}

fn parse_part(item: &Value, base: &Path) -> Result<Part, String> {
    if let Some(s) = item.as_str() {
        return Ok(Part::Text(s.to_string()));
    }
    let kind = item.get("type").and_then(Value::as_str);
    let image = item
        .get("image")
        .or_else(|| item.get("path"))
        .or_else(|| item.get("url"))
        .or_else(|| item.get("image_url").and_then(|u| u.get("url").or(Some(u))));
    match kind {
        Some("text") => item
            .get("text")
            .and_then(Value::as_str)
            .map(|t| Part::Text(t.to_string()))
            .ok_or_else(|| "text item without a \"text\" string".into()),
        Some("image") | Some("image_url") | None if image.is_some() => {
            let raw = image.and_then(Value::as_str).ok_or_else(|| {
                "image item needs a path string in \"image\" (URLs and inline data are not supported)"
                    .to_string()
            })?;
            let raw = raw.strip_prefix("file://").unwrap_or(raw);
            if raw.starts_with("http://") || raw.starts_with("https://") {
                return Err(format!(
                    "image {raw:?} is a URL; download it and give its local path"
                ));
            }
            let p = PathBuf::from(raw);
            Ok(Part::Image(if p.is_absolute() { p } else { base.join(p) }))
        }
        Some("image") => Err("image item without a path in \"image\"".into()),
        Some("video") => Err("videos are not supported; give still images".into()),
        Some(other) => Err(format!("unknown item type {other:?} (use text or image)")),
        None => Err("item has neither \"type\" nor \"image\"".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_transformers_format_with_relative_images() {
        let v = json!([
            {"role": "user", "content": [
                {"type": "image", "image": "a.png"},
                {"type": "text", "text": "What is this?"}
            ]},
            {"role": "assistant", "content": "A cat."},
            {"role": "user", "content": [{"type": "image", "image": "/abs/b.png"}]}
        ]);
        let c = Conversation::from_json_value(&v, Path::new("/data/conv")).unwrap();
        assert_eq!(c.messages.len(), 3);
        assert_eq!(
            c.images(),
            vec![Path::new("/data/conv/a.png"), Path::new("/abs/b.png")]
        );
        assert_eq!(c.messages[1].content, Content::Text("A cat.".into()));
    }

    #[test]
    fn reasoning_travels_as_reasoning_content() {
        let v = json!([
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello.", "reasoning_content": "A greeting."}
        ]);
        let c = Conversation::from_json_value(&v, Path::new(".")).unwrap();
        assert_eq!(c.messages[1].reasoning.as_deref(), Some("A greeting."));
        assert_eq!(c.messages[0].reasoning, None);
        assert_eq!(c.to_json_value(), v);
        let bad = json!([{"role": "assistant", "content": "x", "reasoning_content": 3}]);
        let e = Conversation::from_json_value(&bad, Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("reasoning_content"), "{e}");
    }

    #[test]
    fn rejects_unknown_roles_and_urls_with_a_reason() {
        let bad_role = json!([{"role": "robot", "content": "hi"}]);
        let e = Conversation::from_json_value(&bad_role, Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("unknown role"), "{e}");
        let url =
            json!([{"role": "user", "content": [{"type": "image", "image": "https://x/y.png"}]}]);
        let e = Conversation::from_json_value(&url, Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("URL"), "{e}");
    }
}
