//! An OpenAI chat-completion request read into the engine's terms. Images
//! come only as `data:` URLs (the server fetches nothing) and are written
//! to a folder that lives as long as the request; every refusal is a
//! [`ApiError`] with the status OpenAI would give.

use std::path::PathBuf;

use base64::Engine as _;
use serde_json::Value;

use super::error::ApiError;
use crate::conversation::{Content, Conversation, Message, Part, Role};
use crate::engine::SamplingOverrides;

/// Most images one request may carry.
pub const MAX_IMAGES: usize = 16;

/// What a request asks for.
#[derive(Debug)]
pub struct ChatRequest {
    pub model: Option<String>,
    pub conversation: Conversation,
    pub sampling: SamplingOverrides,
    pub thinking: Option<bool>,
    pub stream: bool,
    pub include_usage: bool,
    /// Holds the request's images; removed with it.
    pub images: Option<tempfile::TempDir>,
}

/// Reads `body`; `max_tokens` is the most an answer may ask for (the context).
pub fn chat_request(body: &Value, max_tokens: usize) -> Result<ChatRequest, ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::invalid("the request body must be a JSON object"))?;
    if obj.get("n").and_then(Value::as_u64).unwrap_or(1) != 1 {
        return Err(ApiError::invalid_param("n", "only n = 1 is supported"));
    }
    let messages = obj
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            ApiError::invalid_param("messages", "`messages` must be a non-empty list")
        })?;
    let mut images = Images::default();
    let mut conversation = Conversation::new();
    for (i, m) in messages.iter().enumerate() {
        conversation.push(message(m, i, &mut images)?);
    }
    if !conversation.messages.iter().any(|m| m.role == Role::User) {
        return Err(ApiError::invalid_param(
            "messages",
            "there is no user message to answer",
        ));
    }
    Ok(ChatRequest {
        model: obj.get("model").and_then(Value::as_str).map(str::to_string),
        conversation,
        sampling: sampling(obj, max_tokens)?,
        thinking: obj
            .get("chat_template_kwargs")
            .and_then(|k| k.get("enable_thinking"))
            .and_then(Value::as_bool),
        stream: obj.get("stream").and_then(Value::as_bool).unwrap_or(false),
        include_usage: obj
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
        images: images.dir,
    })
}

fn message(m: &Value, i: usize, images: &mut Images) -> Result<Message, ApiError> {
    let param = format!("messages[{i}]");
    let role = match m.get("role").and_then(Value::as_str) {
        Some("system") | Some("developer") => Role::System,
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        other => {
            return Err(ApiError::invalid_param(
                &param,
                &format!("role {other:?} is not supported; use system, user or assistant"),
            ))
        }
    };
    let content = match m.get("content") {
        Some(Value::String(s)) => Content::Text(s.clone()),
        Some(Value::Array(parts)) => Content::Parts(
            parts
                .iter()
                .enumerate()
                .map(|(j, p)| part(p, &format!("{param}.content[{j}]"), images))
                .collect::<Result<_, _>>()?,
        ),
        Some(Value::Null) | None => Content::Text(String::new()),
        Some(_) => {
            return Err(ApiError::invalid_param(
                &param,
                "content must be a string or a list of parts",
            ))
        }
    };
    // As the chat templates of thinking models read it back.
    let reasoning = m
        .get("reasoning_content")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Message {
        role,
        content,
        reasoning,
    })
}

fn part(p: &Value, param: &str, images: &mut Images) -> Result<Part, ApiError> {
    match p.get("type").and_then(Value::as_str) {
        Some("text") => Ok(Part::Text(
            p.get("text")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        )),
        Some("image_url") => {
            let url = p
                .get("image_url")
                .and_then(|u| u.get("url").or(Some(u)))
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::invalid_param(param, "image_url needs a url"))?;
            Ok(Part::Image(images.save(url, param)?))
        }
        other => Err(ApiError::invalid_param(
            param,
            &format!("part type {other:?} is not supported; use text or image_url"),
        )),
    }
}

/// The request's images, each written to a file in one temporary folder.
#[derive(Default)]
struct Images {
    dir: Option<tempfile::TempDir>,
    count: usize,
}

impl Images {
    fn save(&mut self, url: &str, param: &str) -> Result<PathBuf, ApiError> {
        if url.starts_with("http://") || url.starts_with("https://") {
            return Err(ApiError::invalid_param(
                param,
                "this server fetches no URLs; send the image inline as a data: URL (data:image/png;base64,...)",
            ));
        }
        let b64 = url
            .strip_prefix("data:")
            .and_then(|rest| rest.split_once(";base64,"))
            .map(|(_, data)| data)
            .ok_or_else(|| {
                ApiError::invalid_param(
                    param,
                    "an image must be a base64 data: URL (data:image/png;base64,...)",
                )
            })?;
        self.count += 1;
        if self.count > MAX_IMAGES {
            return Err(ApiError::invalid_param(
                param,
                &format!("at most {MAX_IMAGES} images per request"),
            ));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| {
                ApiError::invalid_param(param, &format!("the data: URL is not valid base64 ({e})"))
            })?;
        if self.dir.is_none() {
            self.dir = Some(
                tempfile::Builder::new()
                    .prefix("glimpse-serve-")
                    .tempdir()
                    .map_err(|e| ApiError::internal(&format!("cannot hold the image: {e}")))?,
            );
        }
        let dir = self
            .dir
            .as_ref()
            .map(|d| d.path().to_path_buf())
            .unwrap_or_default();
        let path = dir.join(format!("image-{}", self.count));
        std::fs::write(&path, bytes)
            .map_err(|e| ApiError::internal(&format!("cannot hold the image: {e}")))?;
        Ok(path)
    }
}

fn sampling(
    obj: &serde_json::Map<String, Value>,
    max_tokens: usize,
) -> Result<SamplingOverrides, ApiError> {
    let f = |k: &str| obj.get(k).and_then(Value::as_f64);
    let u = |k: &str| obj.get(k).and_then(Value::as_u64).map(|n| n as usize);
    let limit = u("max_completion_tokens").or(u("max_tokens"));
    match limit {
        Some(0) => {
            return Err(ApiError::invalid_param(
                "max_tokens",
                "max_tokens must be at least 1",
            ))
        }
        Some(n) if n > max_tokens => {
            return Err(ApiError::invalid_param(
                "max_tokens",
                &format!("max_tokens {n} exceeds this server's context of {max_tokens} tokens"),
            ))
        }
        _ => {}
    }
    Ok(SamplingOverrides {
        temperature: f("temperature"),
        top_p: f("top_p"),
        // Servers take -1 or 0 for "no top-k".
        top_k: obj
            .get("top_k")
            .and_then(Value::as_i64)
            .filter(|&k| k > 0)
            .map(|k| k as usize),
        repetition_penalty: f("repetition_penalty")
            .or(f("repeat_penalty"))
            .map(|p| p as f32),
        max_new_tokens: limit,
        seed: obj.get("seed").and_then(Value::as_u64),
        ignore_eos: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_request_becomes_a_conversation_with_its_settings() {
        let png = base64::engine::general_purpose::STANDARD.encode([137u8, 80, 78, 71]);
        let body = json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{png}")}},
                    {"type": "text", "text": "What is it?"}]},
            ],
            "stream": true, "stream_options": {"include_usage": true},
            "temperature": 0, "max_tokens": 8, "top_k": -1, "repeat_penalty": 1.1,
            "chat_template_kwargs": {"enable_thinking": false},
        });
        let r = chat_request(&body, 100).unwrap();
        assert!(r.stream && r.include_usage);
        assert_eq!(r.thinking, Some(false));
        assert_eq!(r.sampling.max_new_tokens, Some(8));
        assert_eq!(r.sampling.temperature, Some(0.0));
        assert_eq!(r.sampling.top_k, None);
        assert_eq!(r.sampling.repetition_penalty, Some(1.1));
        let images = r.conversation.images();
        assert_eq!(std::fs::read(images[0]).unwrap(), [137, 80, 78, 71]);
        let dir = r.images.as_ref().unwrap().path().to_path_buf();
        drop(r);
        assert!(!dir.exists(), "the images go with the request");
    }

    #[test]
    fn remote_urls_bad_settings_and_odd_roles_are_refused() {
        let ask = |content: Value, extra: Value| {
            let mut body = json!({"messages": [{"role": "user", "content": content}]});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            chat_request(&body, 100).unwrap_err()
        };
        let url = json!([{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]);
        let e = ask(url, json!({}));
        assert_eq!(e.status, 400);
        assert!(e.message.contains("fetches no URLs"), "{}", e.message);
        let e = ask(json!("hi"), json!({"max_tokens": 1000}));
        assert!(e.message.contains("exceeds"), "{}", e.message);
        let e = ask(json!("hi"), json!({"n": 2}));
        assert!(e.message.contains("n = 1"));
        let many: Vec<Value> = (0..=MAX_IMAGES)
            .map(|_| json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}))
            .collect();
        let e = ask(Value::Array(many), json!({}));
        assert!(e.message.contains("at most 16 images"), "{}", e.message);
        let e =
            chat_request(&json!({"messages": [{"role": "tool", "content": "x"}]}), 10).unwrap_err();
        assert!(e.message.contains("role"), "{}", e.message);
    }
}
