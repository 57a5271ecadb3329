//! The model's chat template, rendered the way transformers renders it.
//!
//! transformers compiles chat templates in a Jinja2 `ImmutableSandboxedEnvironment`
//! with `trim_blocks=True` and `lstrip_blocks=True` (`keep_trailing_newline`
//! left at its default, off), the `loopcontrols` extension, its own
//! `{% generation %}` extension, a `tojson` filter that is Python's
//! `json.dumps(x, ensure_ascii=False, ...)`, and the globals `raise_exception` and
//! `strftime_now` (`utils/chat_template_utils.py`, `_compile_jinja_template`).
//! It renders with `messages`, `tools`, `documents`, `add_generation_prompt` and
//! the tokenizer's special tokens (`bos_token`, `eos_token`, …,
//! `additional_special_tokens`). This module reproduces that environment on
//! minijinja, with Python's string/dict/list methods from minijinja-contrib.
//!
//! `{% generation %}…{% endgeneration %}` only marks assistant text for
//! transformers' training masks and renders its body unchanged; minijinja does
//! not know the tag, so it is rewritten to an always-true `if` block, keeping
//! any whitespace-control markers, before compiling.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Value};

use crate::calendar::{civil_from_days, days_from_civil, weekday_from_monday};
use crate::conversation::Conversation;

const TEMPLATE_NAME: &str = "chat_template";

/// Special-token keys transformers puts in the template's scope.
const SPECIAL_TOKEN_KEYS: [&str; 7] = [
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
];

/// What went wrong finding, compiling or rendering a chat template.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("no chat template in {}: looked for {looked_at}; copy chat_template.json (or chat_template.jinja) from the model's Hugging Face repository into that folder", dir.display())]
    NotFound { dir: PathBuf, looked_at: String },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not valid JSON ({source}); replace it with the file from the model's Hugging Face repository", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{}: {what}", path.display())]
    Shape { path: PathBuf, what: String },
    #[error("the chat template from {origin} does not compile: {detail}; fix the template or replace it with the model's original")]
    Syntax { origin: String, detail: String },
    #[error("the chat template from {origin} refuses this conversation: {message}")]
    Raised { origin: String, message: String },
    #[error("rendering the chat template from {origin} failed: {detail}")]
    Render { origin: String, detail: String },
}

/// A compiled chat template plus the special tokens it may refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    origin: String,
    special_tokens: Vec<(String, Value)>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("origin", &self.origin)
            .field("source_len", &self.source.len())
            .finish()
    }
}

/// How to render a conversation beyond its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderOptions {
    /// Open an assistant turn for the model to answer.
    pub add_generation_prompt: bool,
    /// Passed to the template as `enable_thinking`; `None` leaves the
    /// checkpoint's default.
    pub enable_thinking: Option<bool>,
}

impl RenderOptions {
    /// A prompt that asks for a reply, with the checkpoint's thinking default.
    pub fn reply() -> Self {
        RenderOptions {
            add_generation_prompt: true,
            enable_thinking: None,
        }
    }
}

impl ChatTemplate {
    /// Finds the template in a model dir: `chat_template.jinja`,
    /// `chat_template.json` (`{"chat_template": "..."}`), or
    /// `tokenizer_config.json`'s `"chat_template"` (a string, or a list of
    /// `{name, template}` of which `"default"` is taken), in that order. The
    /// special tokens come from `tokenizer_config.json`, completed by
    /// `special_tokens_map.json`, when those exist.
    pub fn from_model_dir(dir: &Path) -> Result<Self, TemplateError> {
        let jinja = dir.join("chat_template.jinja");
        let json = dir.join("chat_template.json");
        let config = dir.join("tokenizer_config.json");

        let config_value = read_json_if_present(&config)?;
        let (source, origin) = if jinja.is_file() {
            (read_text(&jinja)?, jinja)
        } else if json.is_file() {
            let value = read_json(&json)?;
            let field = value
                .get("chat_template")
                .ok_or_else(|| TemplateError::Shape {
                    path: json.clone(),
                    what:
                        "has no \"chat_template\" entry; replace it with the model's original file"
                            .into(),
                })?;
            (template_from_field(field, &json)?, json)
        } else if let Some(field) = config_value
            .as_ref()
            .and_then(|v| v.get("chat_template"))
            .filter(|v| !v.is_null())
        {
            (template_from_field(field, &config)?, config)
        } else {
            return Err(TemplateError::NotFound {
                dir: dir.to_path_buf(),
                looked_at: "chat_template.jinja, chat_template.json and \"chat_template\" in tokenizer_config.json".into(),
            });
        };

        let mut special_tokens = Vec::new();
        if let Some(config) = &config_value {
            collect_special_tokens(config, &mut special_tokens);
        }
        if let Some(map) = read_json_if_present(&dir.join("special_tokens_map.json"))? {
            collect_special_tokens(&map, &mut special_tokens);
        }
        Self::build(&source, origin.display().to_string(), special_tokens)
    }

    /// Compiles a template given as text. No special tokens are defined.
    pub fn from_source(source: &str) -> Result<Self, TemplateError> {
        Self::build(source, "the given source".into(), Vec::new())
    }

    /// Renders the conversation like transformers'
    /// `apply_chat_template(messages, add_generation_prompt=…, tokenize=False)`.
    pub fn render(
        &self,
        conversation: &Conversation,
        add_generation_prompt: bool,
    ) -> Result<String, TemplateError> {
        self.render_with(
            conversation,
            RenderOptions {
                add_generation_prompt,
                enable_thinking: None,
            },
        )
    }

    /// Renders the conversation like transformers'
    /// `apply_chat_template(messages, add_generation_prompt=…, enable_thinking=…,
    /// tokenize=False)`: each message's content is a string or a list of
    /// `{"type": "text", "text"}` / `{"type": "image", "image": path}` items, as
    /// it was given. `enable_thinking` is left undefined when `None`, so the
    /// template's own default applies.
    pub fn render_with(
        &self,
        conversation: &Conversation,
        options: RenderOptions,
    ) -> Result<String, TemplateError> {
        let RenderOptions {
            add_generation_prompt,
            enable_thinking,
        } = options;
        let mut ctx: Vec<(String, Value)> = vec![
            (
                "messages".into(),
                Value::from_serialize(conversation.to_json_value()),
            ),
            ("tools".into(), Value::from(())),
            ("documents".into(), Value::from(())),
            (
                "add_generation_prompt".into(),
                Value::from(add_generation_prompt),
            ),
        ];
        if let Some(on) = enable_thinking {
            ctx.push(("enable_thinking".into(), Value::from(on)));
        }
        ctx.extend(self.special_tokens.iter().cloned());
        let ctx: Value = ctx.into_iter().collect();
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| self.render_error(e))?;
        template.render(ctx).map_err(|e| self.render_error(e))
    }

    /// The template text as compiled (after `{% generation %}` rewriting).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Where the template came from: a file path, or "the given source".
    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn build(
        source: &str,
        origin: String,
        special_tokens: Vec<(String, Value)>,
    ) -> Result<Self, TemplateError> {
        let source = neutralize_generation_tags(source).into_owned();
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(false);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_filter("tojson", tojson_filter);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned(TEMPLATE_NAME, source.clone())
            .map_err(|e| TemplateError::Syntax {
                origin: origin.clone(),
                detail: describe(&e),
            })?;
        Ok(ChatTemplate {
            env,
            source,
            origin,
            special_tokens,
        })
    }

    fn render_error(&self, e: Error) -> TemplateError {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(c) = cause {
            if let Some(raised) = c.downcast_ref::<Raised>() {
                return TemplateError::Raised {
                    origin: self.origin.clone(),
                    message: raised.0.clone(),
                };
            }
            cause = c.source();
        }
        TemplateError::Render {
            origin: self.origin.clone(),
            detail: describe(&e),
        }
    }
}

fn describe(e: &Error) -> String {
    let text = e.to_string();
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn read_text(path: &Path) -> Result<String, TemplateError> {
    std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read_json(path: &Path) -> Result<serde_json::Value, TemplateError> {
    let text = read_text(path)?;
    serde_json::from_str(&text).map_err(|source| TemplateError::Json {
        path: path.to_path_buf(),
        source,
    })
}

fn read_json_if_present(path: &Path) -> Result<Option<serde_json::Value>, TemplateError> {
    if path.is_file() {
        read_json(path).map(Some)
    } else {
        Ok(None)
    }
}

/// A `"chat_template"` entry: a string, or a list of named templates of which
/// the one named `"default"` is used.
fn template_from_field(field: &serde_json::Value, path: &Path) -> Result<String, TemplateError> {
    match field {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Array(items) => {
            let mut names = Vec::new();
            for item in items {
                let name = item.get("name").and_then(serde_json::Value::as_str);
                let template = item.get("template").and_then(serde_json::Value::as_str);
                match (name, template) {
                    (Some("default"), Some(t)) => return Ok(t.to_string()),
                    (Some(n), _) => names.push(n.to_string()),
                    _ => {}
                }
            }
            Err(TemplateError::Shape {
                path: path.to_path_buf(),
                what: format!(
                    "\"chat_template\" lists no template named \"default\" (found: {}); add one or rename the one to use",
                    if names.is_empty() { "none".to_string() } else { names.join(", ") }
                ),
            })
        }
        _ => Err(TemplateError::Shape {
            path: path.to_path_buf(),
            what: "\"chat_template\" must be a string or a list of {\"name\", \"template\"}".into(),
        }),
    }
}

/// Adds the special tokens of a tokenizer config (or special-tokens map) that
/// are not in `out` yet. Tokens are strings or `{"content": ...}` objects.
fn collect_special_tokens(config: &serde_json::Value, out: &mut Vec<(String, Value)>) {
    fn token_text(v: &serde_json::Value) -> Option<String> {
        match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Object(o) => o
                .get("content")
                .and_then(serde_json::Value::as_str)
                .map(str::to_string),
            _ => None,
        }
    }
    let has = |out: &Vec<(String, Value)>, key: &str| out.iter().any(|(k, _)| k == key);
    for key in SPECIAL_TOKEN_KEYS {
        if has(out, key) {
            continue;
        }
        if let Some(text) = config.get(key).and_then(token_text) {
            out.push((key.to_string(), Value::from(text)));
        }
    }
    if !has(out, "additional_special_tokens") {
        if let Some(list) = config
            .get("additional_special_tokens")
            .and_then(serde_json::Value::as_array)
        {
            let tokens: Vec<Value> = list
                .iter()
                .filter_map(token_text)
                .map(Value::from)
                .collect();
            out.push(("additional_special_tokens".into(), Value::from(tokens)));
        }
    }
}

/// Rewrites `{% generation %}` / `{% endgeneration %}` (with any `-`/`+`
/// whitespace control) to `{% if true %}` / `{% endif %}`.
fn neutralize_generation_tags(source: &str) -> Cow<'_, str> {
    if !source.contains("generation") {
        return Cow::Borrowed(source);
    }
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(pos) = rest.find("{%") {
        out.push_str(&rest[..pos]);
        let tag = &rest[pos..];
        match generation_tag(tag) {
            Some((len, replacement)) => {
                out.push_str(&replacement);
                rest = &tag[len..];
            }
            None => {
                out.push_str("{%");
                rest = &tag[2..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// If `tag` (which starts with `{%`) opens with a generation tag, its length
/// and the replacement text.
fn generation_tag(tag: &str) -> Option<(usize, String)> {
    let control = |s: &str| match s.chars().next() {
        Some(c @ ('-' | '+')) => (Some(c), s[1..].to_string()),
        _ => (None, s.to_string()),
    };
    let (open, after) = control(&tag[2..]);
    let after = after.trim_start();
    let (keyword_rest, replacement) = if let Some(r) = after.strip_prefix("endgeneration") {
        (r, "endif")
    } else if let Some(r) = after.strip_prefix("generation") {
        (r, "if true")
    } else {
        return None;
    };
    if keyword_rest.starts_with(|c: char| c.is_alphanumeric() || c == '_') {
        return None;
    }
    let (close, after) = control(keyword_rest.trim_start());
    let remaining = after.strip_prefix("%}")?;
    let len = tag.len() - remaining.len();
    let mut text = String::from("{%");
    text.extend(open);
    text.push(' ');
    text.push_str(replacement);
    text.push(' ');
    text.extend(close);
    text.push_str("%}");
    Some((len, text))
}

/// The message of a `raise_exception(...)` call, carried as the error source.
#[derive(Debug)]
struct Raised(String);

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Raised {}

fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message.clone()).with_source(Raised(message)))
}

/// `strftime_now(format)`: the current time (UTC) formatted with the common
/// `strftime` directives; unknown directives are kept as written.
fn strftime_now(format: String) -> Result<Value, Error> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Ok(Value::from(strftime(&format, secs)))
}

fn strftime(format: &str, unix_secs: i64) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let days = unix_secs.div_euclid(86_400);
    let secs_of_day = unix_secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second) = (
        secs_of_day / 3600,
        (secs_of_day / 60) % 60,
        secs_of_day % 60,
    );
    let weekday = weekday_from_monday(days);
    let day_of_year = days - days_from_civil(year, 1, 1) + 1;
    let hour12 = if hour % 12 == 0 { 12 } else { hour % 12 };

    let mut out = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let no_pad = chars.peek() == Some(&'-');
        if no_pad {
            chars.next();
        }
        let num = |v: i64, width: usize| {
            if no_pad {
                v.to_string()
            } else {
                format!("{v:0width$}")
            }
        };
        match chars.next() {
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&num(year.rem_euclid(100), 2)),
            Some('m') => out.push_str(&num(month.into(), 2)),
            Some('d') => out.push_str(&num(day.into(), 2)),
            Some('e') => out.push_str(&format!("{day:2}")),
            Some('H') => out.push_str(&num(hour, 2)),
            Some('I') => out.push_str(&num(hour12, 2)),
            Some('M') => out.push_str(&num(minute, 2)),
            Some('S') => out.push_str(&num(second, 2)),
            Some('j') => out.push_str(&num(day_of_year, 3)),
            Some('p') => out.push_str(if hour < 12 { "AM" } else { "PM" }),
            Some('B') => out.push_str(MONTHS[(month - 1) as usize]),
            Some('b') | Some('h') => out.push_str(&MONTHS[(month - 1) as usize][..3]),
            Some('A') => out.push_str(DAYS[weekday]),
            Some('a') => out.push_str(&DAYS[weekday][..3]),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                if no_pad {
                    out.push('-');
                }
                out.push(other);
            }
            None => {
                out.push('%');
                if no_pad {
                    out.push('-');
                }
            }
        }
    }
    out
}

/// `tojson` as transformers defines it: Python's
/// `json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`
/// with those four keyword arguments accepted. No HTML escaping.
fn tojson_filter(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let indent: Option<Value> = kwargs.get("indent")?;
    let separators: Option<Value> = kwargs.get("separators")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;

    let indent = match indent {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => match v.kind() {
            ValueKind::String => Some(v.as_str().unwrap_or_default().to_string()),
            ValueKind::Number => Some(" ".repeat(v.as_usize().ok_or_else(|| {
                Error::new(ErrorKind::InvalidOperation, "tojson: indent must be >= 0")
            })?)),
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson: indent must be a number or a string",
                ))
            }
        },
    };
    let (item_sep, key_sep) = match separators {
        Some(v) if !v.is_none() => {
            let parts: Vec<String> = v
                .try_iter()?
                .map(|p| p.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .filter(|p: &Vec<String>| p.len() == 2)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidOperation,
                        "tojson: separators must be two strings",
                    )
                })?;
            (parts[0].clone(), parts[1].clone())
        }
        _ if indent.is_some() => (",".to_string(), ": ".to_string()),
        _ => (", ".to_string(), ": ".to_string()),
    };
    let opts = JsonOptions {
        ensure_ascii: ensure_ascii.unwrap_or(false),
        indent,
        item_sep,
        key_sep,
        sort_keys: sort_keys.unwrap_or(false),
    };
    let mut out = String::new();
    write_json(value, &opts, 0, &mut out)?;
    Ok(Value::from(out))
}

struct JsonOptions {
    ensure_ascii: bool,
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
}

fn write_json(
    value: &Value,
    opts: &JsonOptions,
    depth: usize,
    out: &mut String,
) -> Result<(), Error> {
    match value.kind() {
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => out.push_str(&json_number(value)),
        ValueKind::String => write_json_string(value.as_str().unwrap_or_default(), opts, out),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value.try_iter()?.collect();
            write_container(out, opts, depth, '[', ']', &items, |item, out| {
                write_json(item, opts, depth + 1, out)
            })?;
        }
        ValueKind::Map => {
            let mut entries: Vec<(String, Value)> = Vec::new();
            for key in value.try_iter()? {
                let item = value.get_item(&key)?;
                let key = match key.kind() {
                    ValueKind::String => key.as_str().unwrap_or_default().to_string(),
                    ValueKind::Number => json_number(&key),
                    ValueKind::Bool => (if key.is_true() { "true" } else { "false" }).to_string(),
                    ValueKind::None => "null".to_string(),
                    _ => {
                        return Err(Error::new(
                            ErrorKind::InvalidOperation,
                            format!("tojson: keys must be strings, not {}", key.kind()),
                        ))
                    }
                };
                entries.push((key, item));
            }
            if opts.sort_keys {
                entries.sort_by(|a, b| a.0.cmp(&b.0));
            }
            write_container(out, opts, depth, '{', '}', &entries, |(k, v), out| {
                write_json_string(k, opts, out);
                out.push_str(&opts.key_sep);
                write_json(v, opts, depth + 1, out)
            })?;
        }
        ValueKind::Undefined => {
            return Err(Error::new(
                ErrorKind::UndefinedError,
                "tojson: cannot serialize an undefined value",
            ))
        }
        other => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("tojson: cannot serialize a value of type {other}"),
            ))
        }
    }
    Ok(())
}

fn write_container<T>(
    out: &mut String,
    opts: &JsonOptions,
    depth: usize,
    open: char,
    close: char,
    items: &[T],
    mut write_item: impl FnMut(&T, &mut String) -> Result<(), Error>,
) -> Result<(), Error> {
    out.push(open);
    if items.is_empty() {
        out.push(close);
        return Ok(());
    }
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(&opts.item_sep);
        }
        if let Some(indent) = &opts.indent {
            out.push('\n');
            out.push_str(&indent.repeat(depth + 1));
        }
        write_item(item, out)?;
    }
    if let Some(indent) = &opts.indent {
        out.push('\n');
        out.push_str(&indent.repeat(depth));
    }
    out.push(close);
    Ok(())
}

fn write_json_string(s: &str, opts: &JsonOptions, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if opts.ensure_ascii && !c.is_ascii() => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A number as Python's `json.dumps` writes it (`repr` for floats).
fn json_number(value: &Value) -> String {
    if value.is_integer() {
        return value.to_string();
    }
    let f = f64::try_from(value.clone()).unwrap_or(f64::NAN);
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    python_float_repr(f)
}

/// Python's `repr(float)`: shortest round-trip digits, positional for
/// exponents in [-4, 16), scientific (`1e+16`, `1.5e-05`) otherwise.
fn python_float_repr(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exp) {
        let point = exp + 1;
        let body = if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if point as usize >= digits.len() {
            format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
        } else {
            format!(
                "{}.{}",
                &digits[..point as usize],
                &digits[point as usize..]
            )
        };
        format!("{sign}{body}")
    } else {
        let m = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits
        };
        let e_sign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{m}e{e_sign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::{Message, Part, Role};

    fn render_str(source: &str, ctx: Value) -> String {
        let t = ChatTemplate::from_source(source).unwrap();
        t.env
            .get_template(TEMPLATE_NAME)
            .unwrap()
            .render(ctx)
            .unwrap()
    }

    fn user(text: &str) -> Conversation {
        Conversation {
            messages: vec![Message::text(Role::User, text)],
        }
    }

    #[test]
    fn trims_and_lstrips_blocks_and_drops_one_trailing_newline() {
        let src = "{% for m in messages %}\n    {% if true %}\n[{{ m.role }}]\n    {% endif %}\n{% endfor %}\nend\n";
        let t = ChatTemplate::from_source(src).unwrap();
        let c = Conversation {
            messages: vec![
                Message::text(Role::User, "a"),
                Message::text(Role::Assistant, "b"),
            ],
        };
        assert_eq!(t.render(&c, false).unwrap(), "[user]\n[assistant]\nend");
    }

    #[test]
    fn generation_tags_become_plain_blocks() {
        let src = "{%- generation -%}  x  {%- endgeneration %}|{% generation %}y{% endgeneration %}\n{%generation%}z{%endgeneration-%}  !";
        let out = neutralize_generation_tags(src);
        assert_eq!(
            out,
            "{%- if true -%}  x  {%- endif %}|{% if true %}y{% endif %}\n{% if true %}z{% endif -%}  !"
        );
        assert_eq!(render_str(src, Value::from(())), "x|yz!");
        // Names that merely start with the keyword are left alone.
        let other = "{% set generations = 1 %}{{ generations }}";
        assert_eq!(neutralize_generation_tags(other), other);
    }

    #[test]
    fn raise_exception_message_reaches_the_error() {
        let t = ChatTemplate::from_source(
            "{% if messages[0].role != 'system' %}{{ raise_exception('System first!') }}{% endif %}",
        )
        .unwrap();
        let e = t.render(&user("hi"), true).unwrap_err();
        assert!(
            matches!(e, TemplateError::Raised { ref message, .. } if message == "System first!"),
            "{e}"
        );
        assert!(e.to_string().contains("System first!"));
    }

    #[test]
    fn syntax_errors_are_one_line_and_name_the_origin() {
        let e = ChatTemplate::from_source("{% for m in messages %}").unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, TemplateError::Syntax { .. }), "{msg}");
        assert!(msg.contains("the given source"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }

    #[test]
    fn python_string_methods_work() {
        let out = render_str(
            "{{ '  Hi  '.strip() }}|{{ 'a,b'.split(',')|join('+') }}|{{ 'abc'.startswith('a') }}|{{ 'x'.upper() }}|{{ {'k': 1}.get('k') }}|{{ {'k': 1}.items()|list|length }}",
            Value::from(()),
        );
        assert_eq!(out, "Hi|a+b|True|X|1|1");
    }

    #[test]
    fn tojson_matches_python_json_dumps() {
        let v = Value::from_serialize(serde_json::json!({
            "name": "get_weather",
            "arguments": {"city": "東京", "days": 3, "t": 21.5, "ok": true, "x": null, "q": "a\"b\n"},
            "list": [1, 2.0, 1e20, 0.0001, 1.5e-5, []]
        }));
        let t = ChatTemplate::from_source("{{ v | tojson }}").unwrap();
        let out = t
            .env
            .get_template(TEMPLATE_NAME)
            .unwrap()
            .render(minijinja::context! { v => v.clone() })
            .unwrap();
        assert_eq!(
            out,
            r#"{"arguments": {"city": "東京", "days": 3, "ok": true, "q": "a\"b\n", "t": 21.5, "x": null}, "list": [1, 2.0, 1e+20, 0.0001, 1.5e-05, []], "name": "get_weather"}"#
        );
        let t = ChatTemplate::from_source("{{ v | tojson(indent=2) }}").unwrap();
        let out = t
            .env
            .get_template(TEMPLATE_NAME)
            .unwrap()
            .render(minijinja::context! { v => Value::from_serialize(serde_json::json!({"a": [1, {}], "b": "<>&"})) })
            .unwrap();
        assert_eq!(
            out,
            "{\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": \"<>&\"\n}"
        );
        let t =
            ChatTemplate::from_source("{{ v | tojson(ensure_ascii=true, separators=(',', ':')) }}")
                .unwrap();
        let out = t
            .env
            .get_template(TEMPLATE_NAME)
            .unwrap()
            .render(
                minijinja::context! { v => Value::from_serialize(serde_json::json!({"a": "é😀"})) },
            )
            .unwrap();
        assert_eq!(out, r#"{"a":"\u00e9\ud83d\ude00"}"#);
    }

    #[test]
    fn enable_thinking_is_undefined_unless_given() {
        let t = ChatTemplate::from_source(
            "{% if enable_thinking is defined %}{{ enable_thinking }}{% else %}default{% endif %}",
        )
        .unwrap();
        let c = user("hi");
        let with = |enable_thinking| {
            t.render_with(
                &c,
                RenderOptions {
                    add_generation_prompt: true,
                    enable_thinking,
                },
            )
            .unwrap()
        };
        assert_eq!(with(None), "default");
        assert_eq!(with(Some(false)), "False");
        assert_eq!(with(Some(true)), "True");
    }

    #[test]
    fn float_repr_follows_python() {
        for (f, s) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (123456789.0, "123456789.0"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.25e-5, "1.25e-05"),
            (0.00012, "0.00012"),
            (-0.0, "-0.0"),
        ] {
            assert_eq!(python_float_repr(f), s, "{f}");
        }
    }

    #[test]
    fn strftime_formats_a_known_instant() {
        // 2024-02-29 13:05:09 UTC, a Thursday.
        let t = 1_709_211_909;
        assert_eq!(
            strftime("%Y-%m-%d %H:%M:%S|%d %b %Y|%A %B %-d|%I%p|%j|%y|%%|%Q", t),
            "2024-02-29 13:05:09|29 Feb 2024|Thursday February 29|01PM|060|24|%|%Q"
        );
        assert_eq!(strftime("%d %B %Y", 0), "01 January 1970");
        let now = render_str("{{ strftime_now('%Y') }}", Value::from(()));
        assert!(now.len() == 4 && now.starts_with('2'), "{now}");
    }

    #[test]
    fn parts_and_strings_reach_the_template_as_given() {
        let t = ChatTemplate::from_source(
            "{% for m in messages %}{% if m.content is string %}S:{{ m.content }}{% else %}{% for c in m.content %}{{ c.type }}{% if 'image' in c %}@{% endif %},{% endfor %}{% endif %};{% endfor %}{{ tools is none }}",
        )
        .unwrap();
        let c = Conversation {
            messages: vec![
                Message::text(Role::User, "hello"),
                Message::parts(
                    Role::User,
                    vec![Part::Image("a.png".into()), Part::Text("x".into())],
                ),
            ],
        };
        assert_eq!(t.render(&c, false).unwrap(), "S:hello;image@,text,;True");
    }

    #[test]
    fn default_entry_of_a_template_list_is_used() {
        let list = serde_json::json!([
            {"name": "tool_use", "template": "T"},
            {"name": "default", "template": "D"}
        ]);
        assert_eq!(
            template_from_field(&list, Path::new("x.json")).unwrap(),
            "D"
        );
        let e = template_from_field(
            &serde_json::json!([{"name": "rag", "template": "R"}]),
            Path::new("x.json"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("rag"), "{e}");
    }

    #[test]
    fn special_tokens_come_from_config_then_map() {
        let mut out = Vec::new();
        collect_special_tokens(
            &serde_json::json!({"bos_token": null, "eos_token": "<|im_end|>", "pad_token": {"content": "<|endoftext|>", "lstrip": false}}),
            &mut out,
        );
        collect_special_tokens(
            &serde_json::json!({"eos_token": "ignored", "unk_token": "<unk>", "additional_special_tokens": ["<|im_start|>", {"content": "<|im_end|>"}]}),
            &mut out,
        );
        let get = |k: &str| out.iter().find(|(n, _)| n == k).map(|(_, v)| v.to_string());
        assert_eq!(get("bos_token"), None);
        assert_eq!(get("eos_token").as_deref(), Some("<|im_end|>"));
        assert_eq!(get("pad_token").as_deref(), Some("<|endoftext|>"));
        assert_eq!(get("unk_token").as_deref(), Some("<unk>"));
        assert_eq!(
            out.iter()
                .find(|(n, _)| n == "additional_special_tokens")
                .map(|(_, v)| v.len()),
            Some(Some(2))
        );
    }
}
