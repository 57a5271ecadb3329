//! The first word with a server: `GET /models` checks that it answers, takes
//! the key, and serves the model asked for; every way that fails is one line
//! that says what to do.

use std::time::Duration;

use serde_json::Value;

use super::sse::error_message;
use crate::human::printable;
use crate::processor::vision_input::VisionPreprocessConfig;

/// How long the check at start waits for an answer.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(15);

/// What the server says about the model it serves. `glimpse serve` adds its
/// family and preprocessing; other servers give only the id.
#[derive(Debug, Clone, PartialEq)]
pub struct ServedModel {
    pub id: String,
    pub model_type: Option<String>,
    pub preprocess: Option<VisionPreprocessConfig>,
}

/// `url` joined with an endpoint path (`models`, `chat/completions`).
pub fn endpoint(server: &str, path: &str) -> String {
    format!("{}/{path}", server.trim_end_matches('/'))
}

/// Lists the served models and picks `model` among them.
pub async fn check(
    client: &reqwest::Client,
    server: &str,
    key: Option<&str>,
    key_var: Option<&str>,
    model: &str,
) -> anyhow::Result<ServedModel> {
    let mut request = client
        .get(endpoint(server, "models"))
        .timeout(CHECK_TIMEOUT);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(transport_error(&e, server)))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!(status_error(status.as_u16(), &body, server, key_var));
    }
    let listed: Value = serde_json::from_str(&body).map_err(|_| {
        anyhow::anyhow!(
            "{server}/models did not answer with a model list; is {server} an OpenAI-compatible API (usually ending in /v1)?"
        )
    })?;
    pick(&listed, model)
}

/// The entry for `model` in a `/models` answer, or the error listing the
/// models there are.
pub fn pick(listed: &Value, model: &str) -> anyhow::Result<ServedModel> {
    let data = listed
        .get("data")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ids: Vec<&str> = data
        .iter()
        .filter_map(|m| m.get("id").and_then(Value::as_str))
        .collect();
    let Some(entry) = data
        .iter()
        .find(|m| m.get("id").and_then(Value::as_str) == Some(model))
    else {
        if ids.is_empty() {
            anyhow::bail!("the server lists no models; check that it has finished loading");
        }
        anyhow::bail!(
            "the server does not serve {model:?}; it serves {}; pass one of them as --model",
            ids.join(", ")
        );
    };
    let extra = entry.get("glimpse");
    let model_type = extra
        .and_then(|g| g.get("model_type"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let preprocess = extra
        .and_then(|g| g.get("preprocess"))
        .zip(model_type.as_deref())
        .and_then(|(p, t)| preprocess_from(p, t));
    Ok(ServedModel {
        id: model.to_string(),
        model_type,
        preprocess,
    })
}

fn preprocess_from(p: &Value, model_type: &str) -> Option<VisionPreprocessConfig> {
    let n = |k: &str| p.get(k).and_then(Value::as_u64);
    let mut cfg = super::images::family_preprocess(model_type)?;
    cfg.patch_size = n("patch_size")? as usize;
    cfg.merge_size = n("merge_size")? as usize;
    cfg.min_pixels = n("min_pixels")?;
    cfg.max_pixels = n("max_pixels")?;
    Some(cfg)
}

/// The one line for an HTTP status the server answered with.
pub fn status_error(status: u16, body: &str, server: &str, key_var: Option<&str>) -> String {
    let said = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| error_message(&v))
        .unwrap_or_else(|| short(body, 200));
    match (status, key_var) {
        (401 | 403, Some(var)) => format!(
            "the server refused the API key in {var} ({status}: {said}); set {var} to a key it accepts"
        ),
        (401 | 403, None) => format!(
            "the server wants an API key ({status}: {said}); put it in an environment variable and pass --api-key-env VAR"
        ),
        (404, _) => format!(
            "{server} has no such endpoint (404: {said}); the --server URL of an OpenAI-compatible API usually ends in /v1"
        ),
        _ => format!("the server answered {status}: {said}"),
    }
}

/// The one line for a request that got no HTTP answer at all.
pub fn transport_error(e: &reqwest::Error, server: &str) -> String {
    let chain = error_chain(e);
    let lower = chain.to_lowercase();
    if e.is_timeout() {
        format!("{server} did not answer in time; check that the server is up and not overloaded")
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
    {
        format!("the TLS connection to {server} failed ({chain}); check the server's certificate, or use http:// if it does not speak TLS")
    } else if e.is_connect() {
        format!("cannot connect to {server} ({chain}); check that the server is running and the --server URL")
    } else {
        format!("the request to {server} failed: {chain}")
    }
}

/// An error and its sources in one line, each cause said once.
fn error_chain(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// At most `max` characters of a server's body, on one line.
fn short(body: &str, max: usize) -> String {
    let line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let cut: String = line.chars().take(max).collect();
    printable(&cut).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_unknown_model_lists_the_served_ones() {
        let listed = json!({"object": "list", "data": [{"id": "a"}, {"id": "b"}]});
        let e = pick(&listed, "c").unwrap_err().to_string();
        assert_eq!(
            e,
            "the server does not serve \"c\"; it serves a, b; pass one of them as --model"
        );
        let m = pick(&listed, "b").unwrap();
        assert_eq!((m.model_type, m.preprocess), (None, None));
    }

    #[test]
    fn glimpse_serve_tells_its_family_and_preprocessing() {
        let listed = json!({"data": [{"id": "m", "glimpse": {"model_type": "qwen2_5_vl",
            "preprocess": {"patch_size": 14, "merge_size": 2, "min_pixels": 3136, "max_pixels": 50176}}}]});
        let m = pick(&listed, "m").unwrap();
        assert_eq!(m.model_type.as_deref(), Some("qwen2_5_vl"));
        assert_eq!(m.preprocess.unwrap().max_pixels, 50176);
    }

    #[test]
    fn refused_keys_say_which_variable_to_fix() {
        let body = r#"{"error": {"message": "Invalid API key", "type": "invalid_request_error"}}"#;
        assert_eq!(
            status_error(401, body, "http://h/v1", Some("K")),
            "the server refused the API key in K (401: Invalid API key); set K to a key it accepts"
        );
        assert!(status_error(403, "nope", "http://h/v1", None).contains("--api-key-env"));
        assert!(status_error(404, "", "http://h", None).contains("ends in /v1"));
    }
}
