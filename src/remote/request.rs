//! The body of `POST /chat/completions` for one request: the conversation
//! with its images as `data:` URLs, the sampling settings under the names
//! servers take, streaming with usage.

use serde_json::{json, Map, Value};

use crate::conversation::{Content, Conversation, Part};
use crate::engine::SamplingOverrides;

/// The JSON body. `images` are the `data:` URLs of the conversation's images
/// in prompt order.
pub fn body(
    model: &str,
    conversation: &Conversation,
    images: &[String],
    sampling: &SamplingOverrides,
    thinking: Option<bool>,
) -> Value {
    let mut urls = images.iter();
    let messages: Vec<Value> = conversation
        .messages
        .iter()
        .map(|m| {
            let content = match &m.content {
                Content::Text(t) => json!(t),
                Content::Parts(parts) => Value::Array(
                    parts
                        .iter()
                        .map(|p| match p {
                            Part::Text(t) => json!({"type": "text", "text": t}),
                            Part::Image(_) => json!({
                                "type": "image_url",
                                "image_url": {"url": urls.next().cloned().unwrap_or_default()},
                            }),
                        })
                        .collect(),
                ),
            };
            json!({"role": m.role.as_str(), "content": content})
        })
        .collect();
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("messages".into(), Value::Array(messages));
    body.insert("stream".into(), json!(true));
    body.insert("stream_options".into(), json!({"include_usage": true}));
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(v) = value {
            body.insert(key.into(), v);
        }
    };
    put("temperature", sampling.temperature.map(|v| json!(v)));
    put("top_p", sampling.top_p.map(|v| json!(v)));
    put("max_tokens", sampling.max_new_tokens.map(|v| json!(v)));
    put("top_k", sampling.top_k.map(|v| json!(v)));
    put("seed", sampling.seed.map(|v| json!(v)));
    // vLLM and SGLang take the first name, llama-server the second.
    put(
        "repetition_penalty",
        sampling.repetition_penalty.map(|v| json!(v)),
    );
    put(
        "repeat_penalty",
        sampling.repetition_penalty.map(|v| json!(v)),
    );
    put(
        "chat_template_kwargs",
        thinking.map(|t| json!({"enable_thinking": t})),
    );
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::{Message, Role};

    #[test]
    fn images_become_data_urls_and_settings_keep_their_server_names() {
        let conv = Conversation {
            messages: vec![
                Message::text(Role::System, "Be brief."),
                Message::parts(
                    Role::User,
                    vec![Part::Image("a.png".into()), Part::Text("What?".into())],
                ),
            ],
        };
        let sampling = SamplingOverrides {
            temperature: Some(0.0),
            repetition_penalty: Some(1.05),
            max_new_tokens: Some(16),
            ..Default::default()
        };
        let b = body(
            "m",
            &conv,
            &["data:image/png;base64,AA".into()],
            &sampling,
            Some(false),
        );
        assert_eq!(
            b["messages"][0],
            json!({"role": "system", "content": "Be brief."})
        );
        assert_eq!(
            b["messages"][1]["content"][0]["image_url"]["url"],
            "data:image/png;base64,AA"
        );
        assert_eq!(
            b["messages"][1]["content"][1],
            json!({"type": "text", "text": "What?"})
        );
        assert_eq!(b["stream_options"]["include_usage"], true);
        assert_eq!(
            (b["max_tokens"].clone(), b["temperature"].clone()),
            (json!(16), json!(0.0))
        );
        assert!(b["repeat_penalty"].is_number() && b["repetition_penalty"].is_number());
        assert!(b.get("top_p").is_none(), "unset settings are the server's");
        assert_eq!(b["chat_template_kwargs"]["enable_thinking"], false);
        let b = body("m", &conv, &[], &SamplingOverrides::default(), None);
        assert!(b.get("chat_template_kwargs").is_none());
    }
}
