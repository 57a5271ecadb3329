//! A server's load, read from its Prometheus `/metrics`: how full its KV
//! cache is and how many requests wait and run. vLLM, SGLang, llama-server
//! (with `--metrics`, and no KV-cache gauge) and `glimpse serve` name these
//! differently; a server without `/metrics` (ollama) has no load to show.
//! [`Remote::watch_load`] reads the page every few seconds on the
//! connection's runtime.

use std::time::Duration;

use super::Remote;

/// One sample of the text exposition format: a metric's name, its labels
/// and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Series {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every sample of a `/metrics` page. Comments (`# HELP`, `# TYPE`,
/// OpenMetrics' `# EOF`), blank lines and lines that are not samples are
/// passed over, so one odd line never hides the rest.
pub fn parse(text: &str) -> Vec<Series> {
    text.lines().filter_map(sample).collect()
}

/// `name{label="value",...} value [timestamp]`.
fn sample(line: &str) -> Option<Series> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = line[name_end..].trim_start();
    let mut labels = Vec::new();
    if let Some(inside) = rest.strip_prefix('{') {
        let (parsed, after) = label_set(inside)?;
        labels = parsed;
        rest = after;
    }
    let value = number(rest.split_whitespace().next()?)?;
    Some(Series {
        name: name.to_string(),
        labels,
        value,
    })
}

/// The labels up to the closing brace, and what follows it.
fn label_set(mut text: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        text = text.trim_start();
        if let Some(after) = text.strip_prefix('}') {
            return Some((labels, after));
        }
        let (name, after) = text.split_once('=')?;
        let (value, after) = quoted(after.trim_start().strip_prefix('"')?)?;
        labels.push((name.trim().to_string(), value));
        text = after.trim_start();
        text = text.strip_prefix(',').unwrap_or(text);
    }
}

/// A label value after its opening quote, unescaped (`\\`, `\"`, `\n`),
/// and what follows its closing quote.
fn quoted(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            c => value.push(c),
        }
    }
    None
}

/// Go's float syntax as Prometheus writes it (`NaN`, `+Inf`, `-Inf`, `1e+06`).
fn number(text: &str) -> Option<f64> {
    match text {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}

/// What the metrics say about the server's load; each part is absent when
/// the server does not report it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ServerLoad {
    /// The KV cache in use, 0 to 1.
    pub kv_cache_use: Option<f64>,
    /// Requests queued, not yet started.
    pub waiting: Option<u64>,
    /// Requests being answered.
    pub running: Option<u64>,
}

/// The names each server gives the three readings.
const KV_CACHE_USE: [&str; 4] = [
    "vllm:kv_cache_usage_perc",
    // vLLM's name before its V1 engine.
    "vllm:gpu_cache_usage_perc",
    "sglang:token_usage",
    "glimpse:kv_cache_usage_perc",
];
const WAITING: [&str; 4] = [
    "vllm:num_requests_waiting",
    "sglang:num_queue_reqs",
    "llamacpp:requests_deferred",
    "glimpse:num_requests_waiting",
];
const RUNNING: [&str; 4] = [
    "vllm:num_requests_running",
    "sglang:num_running_reqs",
    "llamacpp:requests_processing",
    "glimpse:num_requests_running",
];

/// The load of `model` on the server, or `None` when the page reports
/// none of it. A server running several engines (data parallel) or models
/// reports one series each: the series of `model` are taken when the page
/// labels any with its name, queues are added up, and the KV cache shown
/// is the fullest one, since that is the one that stalls requests.
pub fn load_of(series: &[Series], model: &str) -> Option<ServerLoad> {
    let ours = |s: &&Series| s.label("model_name").is_none_or(|m| m == model);
    let labelled = series.iter().any(|s| s.label("model_name") == Some(model));
    let chosen: Vec<&Series> = series
        .iter()
        .filter(|s| !labelled || ours(s))
        .filter(|s| s.value.is_finite())
        .collect();
    let of = |names: &[&str]| -> Vec<f64> {
        chosen
            .iter()
            .filter(|s| names.contains(&s.name.as_str()))
            .map(|s| s.value)
            .collect()
    };
    let count = |names: &[&str]| {
        let values = of(names);
        (!values.is_empty()).then(|| values.iter().sum::<f64>().max(0.0).round() as u64)
    };
    let kv = of(&KV_CACHE_USE);
    let load = ServerLoad {
        kv_cache_use: kv.into_iter().reduce(f64::max).map(|v| v.clamp(0.0, 1.0)),
        waiting: count(&WAITING),
        running: count(&RUNNING),
    };
    (load != ServerLoad::default()).then_some(load)
}

/// Where a server whose API is at `server` (`http://host:8000/v1`) keeps
/// its metrics: beside the API, at `http://host:8000/metrics`.
pub fn metrics_url(server: &str) -> String {
    let base = server.trim_end_matches('/');
    let base = base.strip_suffix("/v1").unwrap_or(base);
    format!("{base}/metrics")
}

impl Remote {
    /// Reads the server's load from its `/metrics` every `every`, on the
    /// connection's runtime, and hands each reading to `on_load` (`None`
    /// while the server does not answer). A server without `/metrics`, or
    /// whose metrics say nothing of its load, is asked once and then left
    /// alone, and `on_load` never hears of it. Stops with the `Remote`.
    pub fn watch_load(
        &self,
        every: Duration,
        on_load: impl Fn(Option<ServerLoad>) + Send + 'static,
    ) {
        let client = self.client.clone();
        let url = metrics_url(&self.options.server);
        let key = self.options.api_key.clone();
        let model = self.served.id.clone();
        self.runtime.spawn(async move {
            let mut heard_once = false;
            loop {
                match read_load(&client, &url, key.as_deref(), &model).await {
                    Reading::Load(load) => {
                        heard_once = true;
                        on_load(Some(load));
                    }
                    Reading::Unanswered => on_load(None),
                    Reading::NoMetrics if !heard_once => return,
                    Reading::NoMetrics => on_load(None),
                }
                tokio::time::sleep(every).await;
            }
        });
    }
}

/// What one look at `/metrics` found.
enum Reading {
    Load(ServerLoad),
    /// No answer at all: the server may be restarting.
    Unanswered,
    /// An answer without a load: no such page, or none of the known names.
    NoMetrics,
}

async fn read_load(client: &reqwest::Client, url: &str, key: Option<&str>, model: &str) -> Reading {
    let mut request = client.get(url).timeout(METRICS_TIMEOUT);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let Ok(response) = request.send().await else {
        return Reading::Unanswered;
    };
    if !response.status().is_success() {
        return Reading::NoMetrics;
    }
    let Ok(text) = response.text().await else {
        return Reading::Unanswered;
    };
    match load_of(&parse(&text), model) {
        Some(load) => Reading::Load(load),
        None => Reading::NoMetrics,
    }
}

/// How long one look at `/metrics` may take.
const METRICS_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    // As vLLM's V1 engine writes it with two data-parallel engines: HELP and
    // TYPE comments, labels, histogram buckets with `+Inf`, counters.
    const VLLM: &str = r#"# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="Qwen/Qwen2.5-VL-72B-Instruct"} 3.0
vllm:num_requests_running{engine="1",model_name="Qwen/Qwen2.5-VL-72B-Instruct"} 2.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="Qwen/Qwen2.5-VL-72B-Instruct"} 4.0
vllm:num_requests_waiting{engine="1",model_name="Qwen/Qwen2.5-VL-72B-Instruct"} 0.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="Qwen/Qwen2.5-VL-72B-Instruct"} 0.4127
vllm:kv_cache_usage_perc{engine="1",model_name="Qwen/Qwen2.5-VL-72B-Instruct"} 0.2
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="Qwen/Qwen2.5-VL-72B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="Qwen/Qwen2.5-VL-72B-Instruct"} 1812.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="Qwen/Qwen2.5-VL-72B-Instruct"} 913.2
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="Qwen/Qwen2.5-VL-72B-Instruct"} 8.128902e+06
"#;

    // SGLang with --enable-metrics: its own names, a `model_name` label,
    // CRLF line ends, an OpenMetrics end marker.
    const SGLANG: &str = "# HELP sglang:token_usage The token usage\r\n\
# TYPE sglang:token_usage gauge\r\n\
sglang:token_usage{model_name=\"Qwen/Qwen3-VL-235B-A22B-Instruct\"} 0.28\r\n\
# HELP sglang:num_running_reqs The number of running requests\r\n\
# TYPE sglang:num_running_reqs gauge\r\n\
sglang:num_running_reqs{model_name=\"Qwen/Qwen3-VL-235B-A22B-Instruct\"} 7.0\r\n\
# HELP sglang:num_queue_reqs The number of requests in the waiting queue\r\n\
# TYPE sglang:num_queue_reqs gauge\r\n\
sglang:num_queue_reqs{model_name=\"Qwen/Qwen3-VL-235B-A22B-Instruct\"} 12.0\r\n\
sglang:cache_hit_rate{model_name=\"Qwen/Qwen3-VL-235B-A22B-Instruct\"} 0.0075\r\n\
# EOF\r\n";

    #[test]
    fn vllm_engines_add_their_queues_and_the_fullest_cache_shows() {
        let series = parse(VLLM);
        assert_eq!(series.len(), 10, "every sample, no comment");
        let bucket = &series[7];
        assert_eq!(bucket.label("le"), Some("+Inf"));
        assert_eq!(bucket.value, 1812.0);
        assert_eq!(series[9].value, 8_128_902.0);
        assert_eq!(
            load_of(&series, "Qwen/Qwen2.5-VL-72B-Instruct"),
            Some(ServerLoad {
                kv_cache_use: Some(0.4127),
                waiting: Some(4),
                running: Some(5),
            })
        );
    }

    #[test]
    fn sglang_names_read_alike() {
        let load = load_of(&parse(SGLANG), "Qwen/Qwen3-VL-235B-A22B-Instruct").unwrap();
        assert_eq!(
            load,
            ServerLoad {
                kv_cache_use: Some(0.28),
                waiting: Some(12),
                running: Some(7),
            }
        );
    }

    #[test]
    fn llama_server_counts_requests_without_labels_or_a_cache_gauge() {
        let page = "# HELP llamacpp:requests_processing Number of requests processing.\n\
# TYPE llamacpp:requests_processing gauge\n\
llamacpp:requests_processing 1\n\
# HELP llamacpp:requests_deferred Number of requests deferred.\n\
# TYPE llamacpp:requests_deferred gauge\n\
llamacpp:requests_deferred 2\n\
llamacpp:predicted_tokens_seconds nan\n";
        assert_eq!(
            load_of(&parse(page), "qwen2.5-vl"),
            Some(ServerLoad {
                kv_cache_use: None,
                waiting: Some(2),
                running: Some(1),
            })
        );
    }

    #[test]
    fn another_model_s_series_are_left_out_when_ours_are_labelled() {
        let page = "vllm:num_requests_waiting{model_name=\"a\"} 3\n\
vllm:num_requests_waiting{model_name=\"b\"} 5\n\
vllm:gpu_cache_usage_perc{model_name=\"b\"} 0.9\n";
        let series = parse(page);
        assert_eq!(
            load_of(&series, "a"),
            Some(ServerLoad {
                kv_cache_use: None,
                waiting: Some(3),
                running: None,
            })
        );
        // A name the page does not label: every series counts.
        assert_eq!(load_of(&series, "c").unwrap().waiting, Some(8));
    }

    #[test]
    fn labels_with_escapes_commas_and_braces_in_their_values() {
        let s = parse(
            r#"glimpse:num_requests_running{model_name="a \"b\", {c}\\d\ne",x="y",} 1 1700000000000"#,
        );
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].label("model_name"), Some("a \"b\", {c}\\d\ne"));
        assert_eq!(s[0].label("x"), Some("y"));
        assert_eq!(s[0].value, 1.0);
        let plain = parse("up 1\nnan_metric NaN\nneg -Inf\n");
        assert_eq!(plain[0].name, "up");
        assert!(plain[1].value.is_nan() && plain[2].value == f64::NEG_INFINITY);
    }

    #[test]
    fn broken_lines_are_passed_over_and_unknown_pages_give_no_load() {
        let page = "good 1\n{model=\"x\"} 2\nunclosed{a=\"b} 3\nnovalue{a=\"b\"}\nbad{a=b} 4\nword notanumber\n";
        let s = parse(page);
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(load_of(&s, "m"), None);
        assert_eq!(load_of(&parse(""), "m"), None);
    }

    #[test]
    fn metrics_live_beside_the_api() {
        assert_eq!(
            metrics_url("http://gpu-box:8000/v1"),
            "http://gpu-box:8000/metrics"
        );
        assert_eq!(metrics_url("http://h:1/v1/"), "http://h:1/metrics");
        assert_eq!(metrics_url("https://h/api"), "https://h/api/metrics");
    }
}
