//! Reading an OpenAI-compatible chat-completion stream: server-sent-event
//! lines in, what each chunk adds to the answer out. Servers differ in where
//! they put reasoning (`delta.reasoning_content` in vLLM, SGLang and
//! llama-server; `delta.reasoning` in newer vLLM and ollama), where usage
//! arrives (a last chunk with no choices, or beside the finishing choice) and
//! how they report an error mid-stream (`data: {"error": …}`, vLLM's
//! `{"object": "error", …}`, llama-server's `error:` event), so all are read.

use serde_json::Value;

/// Splits a byte stream into complete lines; a line cut between two reads
/// waits for the rest.
#[derive(Debug, Default)]
pub struct Lines {
    pending: Vec<u8>,
}

impl Lines {
    /// The complete lines `bytes` finishes, without their line endings.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line);
            lines.push(text.trim_end_matches(['\n', '\r']).to_string());
        }
        lines
    }
}

/// Token counts as the server reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

/// llama-server's own measurements (`timings`), in milliseconds and tokens/s.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ServerTimings {
    pub prompt_ms: f64,
    pub predicted_per_second: f64,
}

/// What one `data:` chunk says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chunk {
    pub content: String,
    pub reasoning: String,
    /// Ids of the new tokens, where the server sends them (vLLM's
    /// `token_ids`, and `glimpse serve`).
    pub token_ids: Vec<u32>,
    pub prompt_token_ids: Option<Vec<u32>>,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
    pub timings: Option<ServerTimings>,
}

/// One meaningful line of the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Chunk(Chunk),
    /// `data: [DONE]`: the server has finished.
    Done,
    /// The server stopped with an error; its message.
    Error(String),
}

/// Reads one line; comments, blank lines, `event:`/`id:` fields and
/// anything unparsable as a chunk give nothing.
pub fn parse_line(line: &str) -> Option<Item> {
    if let Some(rest) = line.strip_prefix("error:") {
        // The event's data is the error object itself.
        let value: Value = serde_json::from_str(rest.trim()).unwrap_or(Value::Null);
        let message = error_message(&value)
            .or_else(|| {
                value
                    .get("message")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| rest.trim().to_string());
        return Some(Item::Error(message));
    }
    let data = line.strip_prefix("data:")?.trim();
    if data == "[DONE]" {
        return Some(Item::Done);
    }
    let value: Value = serde_json::from_str(data).ok()?;
    if let Some(message) = error_message(&value) {
        return Some(Item::Error(message));
    }
    Some(Item::Chunk(chunk(&value)))
}

/// The message of an error object in any of the shapes servers use.
pub fn error_message(value: &Value) -> Option<String> {
    let err = match value.get("error") {
        Some(e) => e,
        None if value.get("object").and_then(Value::as_str) == Some("error") => value,
        None => return None,
    };
    Some(match err {
        Value::String(s) => s.clone(),
        _ => err
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| err.to_string()),
    })
}

fn chunk(value: &Value) -> Chunk {
    let mut c = Chunk {
        usage: value.get("usage").and_then(usage),
        timings: value.get("timings").and_then(timings),
        prompt_token_ids: value.get("prompt_token_ids").and_then(ids),
        ..Chunk::default()
    };
    let first = value
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|a| a.first());
    if let Some(choice) = first {
        let delta = choice.get("delta").or_else(|| choice.get("message"));
        let text = |key: &str| {
            delta
                .and_then(|d| d.get(key))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        c.content = text("content");
        c.reasoning = text("reasoning_content");
        if c.reasoning.is_empty() {
            c.reasoning = text("reasoning");
        }
        c.token_ids = choice.get("token_ids").and_then(ids).unwrap_or_default();
        c.finish_reason = choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    c
}

fn usage(v: &Value) -> Option<Usage> {
    let n = |k: &str| v.get(k).and_then(Value::as_u64).map(|n| n as usize);
    Some(Usage {
        prompt_tokens: n("prompt_tokens")?,
        completion_tokens: n("completion_tokens").unwrap_or(0),
    })
}

fn timings(v: &Value) -> Option<ServerTimings> {
    let n = |k: &str| v.get(k).and_then(Value::as_f64);
    Some(ServerTimings {
        prompt_ms: n("prompt_ms").unwrap_or(0.0),
        predicted_per_second: n("predicted_per_second")?,
    })
}

fn ids(v: &Value) -> Option<Vec<u32>> {
    v.as_array()?
        .iter()
        .map(|id| id.as_u64().and_then(|n| u32::try_from(n).ok()))
        .collect()
}

/// The answer as the chunks so far make it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    pub content: String,
    pub reasoning: String,
    pub token_ids: Vec<u32>,
    pub prompt_token_ids: Option<Vec<u32>>,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
    pub timings: Option<ServerTimings>,
    /// `[DONE]` arrived.
    pub done: bool,
    pub error: Option<String>,
}

impl Reply {
    /// Adds one item; later usage and timings win over earlier ones.
    pub fn add(&mut self, item: &Item) {
        match item {
            Item::Done => self.done = true,
            Item::Error(e) => self.error = Some(e.clone()),
            Item::Chunk(c) => {
                self.content.push_str(&c.content);
                self.reasoning.push_str(&c.reasoning);
                self.token_ids.extend_from_slice(&c.token_ids);
                if c.prompt_token_ids.is_some() {
                    self.prompt_token_ids.clone_from(&c.prompt_token_ids);
                }
                if c.finish_reason.is_some() {
                    self.finish_reason.clone_from(&c.finish_reason);
                }
                self.usage = c.usage.or(self.usage);
                self.timings = c.timings.or(self.timings);
            }
        }
    }

    /// Whether the stream ended as a server ends it: `[DONE]`, or a finish
    /// reason (some servers close without `[DONE]`).
    pub fn finished(&self) -> bool {
        self.done || self.finish_reason.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds a recorded stream in pieces of `step` bytes.
    fn read(stream: &str, step: usize) -> Reply {
        let mut lines = Lines::default();
        let mut reply = Reply::default();
        for piece in stream.as_bytes().chunks(step) {
            for line in lines.push(piece) {
                if let Some(item) = parse_line(&line) {
                    reply.add(&item);
                }
            }
        }
        reply
    }

    // vLLM with a reasoning parser and include_usage: reasoning in
    // `reasoning_content`, usage in a last chunk whose choices are empty.
    const VLLM: &str = "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"Qwen/Qwen3-VL-8B-Thinking\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n\
data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"Qwen/Qwen3-VL-8B-Thinking\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"A red \"},\"logprobs\":null,\"finish_reason\":null}]}\n\n\
data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"Qwen/Qwen3-VL-8B-Thinking\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"car.\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n\
data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"Qwen/Qwen3-VL-8B-Thinking\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"A red \"},\"logprobs\":null,\"finish_reason\":null}]}\n\n\
data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"Qwen/Qwen3-VL-8B-Thinking\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"car.\"},\"logprobs\":null,\"finish_reason\":\"stop\",\"stop_reason\":null}]}\n\n\
data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"Qwen/Qwen3-VL-8B-Thinking\",\"choices\":[],\"usage\":{\"prompt_tokens\":312,\"total_tokens\":330,\"completion_tokens\":18}}\n\n\
data: [DONE]\n\n";

    #[test]
    fn vllm_reasoning_content_and_usage_in_a_chunk_without_choices() {
        for step in [1, 7, VLLM.len()] {
            let r = read(VLLM, step);
            assert_eq!(r.content, "A red car.", "step {step}");
            assert_eq!(r.reasoning, "A red car.");
            assert_eq!(r.finish_reason.as_deref(), Some("stop"));
            assert_eq!(
                r.usage,
                Some(Usage {
                    prompt_tokens: 312,
                    completion_tokens: 18
                })
            );
            assert!(r.done && r.error.is_none());
        }
    }

    // Newer vLLM (and `return_token_ids`): `reasoning`, token ids per choice,
    // the prompt's ids in the first chunk; a mid-stream error object.
    const VLLM_IDS_THEN_ERROR: &str = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"prompt_token_ids\":[1,2,3]}\n\
data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\"hm\"},\"token_ids\":[7],\"finish_reason\":null}]}\n\
data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Two\"},\"token_ids\":[8,9],\"finish_reason\":null}]}\n\
data: {\"object\":\"error\",\"message\":\"The engine died unexpectedly.\",\"type\":\"InternalServerError\",\"param\":null,\"code\":500}\n\n";

    #[test]
    fn vllm_reasoning_field_token_ids_and_an_error_object() {
        let r = read(VLLM_IDS_THEN_ERROR, 5);
        assert_eq!((r.reasoning.as_str(), r.content.as_str()), ("hm", "Two"));
        assert_eq!(r.token_ids, vec![7, 8, 9]);
        assert_eq!(r.prompt_token_ids, Some(vec![1, 2, 3]));
        assert_eq!(r.error.as_deref(), Some("The engine died unexpectedly."));
        assert!(!r.finished(), "an error is no finish");
    }

    // SGLang: CRLF line ends, usage both in the finishing chunk's sibling and
    // a choices-less chunk, errors as `{"error": {...}}`.
    const SGLANG: &str = "data: {\"id\":\"s\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"default\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"reasoning_content\":null},\"logprobs\":null,\"finish_reason\":null,\"matched_stop\":null}],\"usage\":null}\r\n\r\n\
data: {\"id\":\"s\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"default\",\"choices\":[{\"index\":0,\"delta\":{\"role\":null,\"content\":\"[10, 20, 30, 40]\",\"reasoning_content\":null},\"logprobs\":null,\"finish_reason\":\"length\",\"matched_stop\":null}],\"usage\":null}\r\n\r\n\
data: {\"id\":\"s\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"default\",\"choices\":[],\"usage\":{\"prompt_tokens\":40,\"total_tokens\":56,\"completion_tokens\":16,\"prompt_tokens_details\":null}}\r\n\r\n\
data: [DONE]\r\n\r\n";

    const SGLANG_ERROR: &str = "data: {\"error\": {\"object\": \"error\", \"message\": \"The input is too long.\", \"type\": \"BadRequestError\", \"param\": null, \"code\": 400}}\n\n";

    #[test]
    fn sglang_length_stop_usage_and_errors() {
        let r = read(SGLANG, 3);
        assert_eq!(r.content, "[10, 20, 30, 40]");
        assert!(r.reasoning.is_empty(), "a null reasoning adds nothing");
        assert_eq!(r.finish_reason.as_deref(), Some("length"));
        assert_eq!(r.usage.unwrap().completion_tokens, 16);
        assert!(r.done);
        let r = read(SGLANG_ERROR, 64);
        assert_eq!(r.error.as_deref(), Some("The input is too long."));
    }

    // llama-server: `timings` beside the finishing choice, usage with it, and
    // errors as an `error:` event.
    const LLAMA_SERVER: &str = "data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null}}],\"created\":1,\"id\":\"chatcmpl-x\",\"model\":\"qwen2.5-vl\",\"system_fingerprint\":\"b6000\",\"object\":\"chat.completion.chunk\"}\n\n\
data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"reasoning_content\":\"Look.\"}}],\"object\":\"chat.completion.chunk\"}\n\n\
data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"content\":\"A cat\"}}],\"object\":\"chat.completion.chunk\"}\n\n\
data: {\"choices\":[{\"finish_reason\":\"stop\",\"index\":0,\"delta\":{}}],\"object\":\"chat.completion.chunk\",\"usage\":{\"completion_tokens\":3,\"prompt_tokens\":200,\"total_tokens\":203},\"timings\":{\"prompt_n\":200,\"prompt_ms\":51.5,\"prompt_per_token_ms\":0.25,\"prompt_per_second\":3883.4,\"predicted_n\":3,\"predicted_ms\":30.0,\"predicted_per_token_ms\":10.0,\"predicted_per_second\":100.0}}\n\n\
data: [DONE]\n\n";

    const LLAMA_SERVER_ERROR: &str = "data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"content\":\"A\"}}]}\n\n\
error: {\"code\":500,\"message\":\"failed to decode image\",\"type\":\"server_error\"}\n\n";

    #[test]
    fn llama_server_timings_usage_and_error_events() {
        let r = read(LLAMA_SERVER, 11);
        assert_eq!(
            (r.reasoning.as_str(), r.content.as_str()),
            ("Look.", "A cat")
        );
        assert_eq!(r.usage.unwrap().prompt_tokens, 200);
        let t = r.timings.unwrap();
        assert_eq!((t.prompt_ms, t.predicted_per_second), (51.5, 100.0));
        let r = read(LLAMA_SERVER_ERROR, 9);
        assert_eq!(r.content, "A", "the partial answer is kept");
        assert_eq!(r.error.as_deref(), Some("failed to decode image"));
    }

    // ollama's OpenAI endpoint: `reasoning`, usage last with no choices.
    const OLLAMA: &str = "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"qwen3-vl:8b\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"reasoning\":\"Counting\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"qwen3-vl:8b\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Three\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"qwen3-vl:8b\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":\"stop\"}]}\n\n\
data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"qwen3-vl:8b\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[],\"usage\":{\"prompt_tokens\":90,\"completion_tokens\":5,\"total_tokens\":95}}\n\n\
data: [DONE]\n\n";

    #[test]
    fn ollama_reasoning_and_usage() {
        let r = read(OLLAMA, 13);
        assert_eq!(
            (r.reasoning.as_str(), r.content.as_str()),
            ("Counting", "Three")
        );
        assert_eq!(r.usage.unwrap().completion_tokens, 5);
        assert!(r.done);
    }

    #[test]
    fn a_stream_cut_short_keeps_its_partial_answer_and_is_not_finished() {
        let cut = &OLLAMA[..OLLAMA.find("Three").unwrap() + 30];
        let r = read(cut, 4);
        assert_eq!(
            r.content, "",
            "the chunk with Three never completed its line"
        );
        assert_eq!(r.reasoning, "Counting");
        assert!(!r.finished());
        let r = read(&VLLM[..VLLM.find("finish_reason\":\"stop").unwrap()], 8);
        assert_eq!(r.content, "A red ");
        assert!(!r.finished());
    }

    #[test]
    fn comments_and_other_fields_are_ignored() {
        for line in [
            ": keep-alive",
            "",
            "event: message",
            "id: 4",
            "retry: 10",
            "data: not json",
        ] {
            assert_eq!(parse_line(line), None, "{line:?}");
        }
    }
}
