//! The user's config file (`config.toml` in the platform config folder). Every
//! setting is optional and falls back to a built-in default. Unknown keys and
//! bad values are reported with the file, line and column, and the valid
//! choices, so a typo never silently changes behaviour.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::de::{self, Deserializer};
use serde::Deserialize;
use toml::Spanned;

use super::keyspec::KeySpec;
use super::paths;
use crate::engine::{DeviceChoice, DtypeChoice, KvCachePolicy, Quant, SamplingOverrides};
use crate::processor::image::LongEdgeCap;
use crate::remote::IdleLimits;

/// The model glimpse loads when neither `--model` nor the config names one.
pub const DEFAULT_MODEL: &str = "Qwen/Qwen3-VL-4B-Instruct";

/// The commented default config, as `glimpse config --print-default` prints it.
pub const DEFAULT_FILE: &str = include_str!("default_config.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}, line {line}, column {column}: {message}; fix it or remove it (`glimpse config --print-default` shows every setting)", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// A setting that came from a flag rather than the file.
    #[error("{0}")]
    Setting(String),
}

/// How images are drawn in the terminal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageProtocol {
    /// Detect the terminal's best protocol.
    #[default]
    Auto,
    Kitty,
    Iterm2,
    Sixel,
    /// Unicode half blocks; works everywhere.
    Halfblocks,
}

impl FromStr for ImageProtocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "kitty" => Ok(Self::Kitty),
            "iterm2" => Ok(Self::Iterm2),
            "sixel" => Ok(Self::Sixel),
            "halfblocks" => Ok(Self::Halfblocks),
            _ => Err(format!(
                "unknown image protocol {s:?}; use auto, kitty, iterm2, sixel or halfblocks"
            )),
        }
    }
}

/// Named sampling settings. `None` fields take the model's own defaults
/// (`generation_config.json`, or the chat template's system prompt).
#[derive(Debug, Clone, PartialEq)]
pub struct Preset {
    pub name: String,
    pub temperature: Option<f64>,
    pub max_tokens: Option<usize>,
    pub top_p: Option<f64>,
    pub top_k: Option<usize>,
    pub repetition_penalty: Option<f32>,
    pub system_prompt: Option<String>,
    /// Thinking on or off for checkpoints that can switch; `None` follows the
    /// config's `thinking`.
    pub thinking: Option<bool>,
}

impl Preset {
    fn builtin(name: &str, temperature: f64, max_tokens: usize) -> Preset {
        Preset {
            name: name.to_string(),
            temperature: Some(temperature),
            max_tokens: Some(max_tokens),
            top_p: None,
            top_k: None,
            repetition_penalty: None,
            system_prompt: None,
            thinking: None,
        }
    }

    /// The engine's sampling settings for this preset.
    pub fn sampling(&self, seed: Option<u64>) -> SamplingOverrides {
        SamplingOverrides {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            repetition_penalty: self.repetition_penalty,
            max_new_tokens: self.max_tokens,
            seed,
            ignore_eos: false,
        }
    }
}

/// Built-in presets, in the order they are offered.
pub fn builtin_presets() -> Vec<Preset> {
    vec![
        Preset::builtin("diagnostic", 0.3, 768),
        Preset::builtin("creative", 0.65, 384),
        Preset {
            // A quick answer has no room for reasoning.
            thinking: Some(false),
            ..Preset::builtin("quick", 0.1, 128)
        },
    ]
}

/// The effective configuration: the file's settings over the built-in defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Hub id or local directory loaded when `--model` is not given.
    pub model: String,
    pub device: DeviceChoice,
    pub dtype: DtypeChoice,
    /// How the decoder's linear layers are stored (`quant`).
    pub quant: Quant,
    /// The vision tower's linear layers quantised too (`quant_vision`).
    pub quant_vision: bool,
    /// Name of the preset a new conversation starts with.
    pub preset: String,
    /// Built-in presets (possibly adjusted by the file) first, then the file's own.
    pub presets: Vec<Preset>,
    /// Action name → keys, only for actions the file rebinds.
    pub keys: BTreeMap<String, Vec<KeySpec>>,
    pub theme: String,
    pub image_protocol: ImageProtocol,
    /// `None` turns the cap off.
    pub long_edge_cap: Option<LongEdgeCap>,
    /// `[kv_cache]`: `policy` and, for `auto`, its `threshold`.
    pub kv_cache: KvCachePolicy,
    /// An OpenAI-compatible server's API base URL: when set, `ask` and `eval` ask it
    /// instead of loading the model here.
    pub server: Option<String>,
    /// The environment variable holding the server's API key.
    pub api_key_env: Option<String>,
    /// How long a server may stay silent before its answer is given up.
    pub idle_timeout: IdleLimits,
    /// Thinking on or off for checkpoints that can switch; `None` (`auto`)
    /// keeps each checkpoint's own default.
    pub thinking: Option<bool>,
    /// The file the settings came from; `None` when only defaults apply.
    pub source: Option<PathBuf>,
    /// Where settings checked outside this module were written, so their
    /// errors can name the line.
    pub spots: Spots,
}

/// 1-based line and column of settings in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spots {
    pub theme: Option<(usize, usize)>,
    /// Action name → where it was written under `[keys]`.
    pub keys: BTreeMap<String, (usize, usize)>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            model: DEFAULT_MODEL.to_string(),
            device: DeviceChoice::Auto,
            dtype: DtypeChoice::Auto,
            quant: Quant::None,
            quant_vision: false,
            preset: "diagnostic".to_string(),
            presets: builtin_presets(),
            keys: BTreeMap::new(),
            theme: "dark".to_string(),
            image_protocol: ImageProtocol::Auto,
            long_edge_cap: Some(LongEdgeCap::default()),
            kv_cache: KvCachePolicy::default(),
            server: None,
            api_key_env: None,
            idle_timeout: IdleLimits::default(),
            thinking: None,
            source: None,
            spots: Spots::default(),
        }
    }
}

impl Config {
    /// Reads the config file (`GLIMPSE_CONFIG`, else the platform location);
    /// a missing file means the defaults.
    pub fn load() -> Result<Config, ConfigError> {
        match paths::config_file() {
            Some(path) => Self::load_from(&path),
            None => Ok(Config::default()),
        }
    }

    /// Reads `path`; a missing file means the defaults.
    pub fn load_from(path: &Path) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_toml_str(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(source) => Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// An error about a setting checked after parsing (a key action, a
    /// theme), at the line where the file wrote it; `spot` is `None` when
    /// the setting came from elsewhere, and then the message stands alone.
    pub fn error_at(&self, spot: Option<(usize, usize)>, message: String) -> ConfigError {
        match (&self.source, spot) {
            (Some(path), Some((line, column))) => ConfigError::Invalid {
                path: path.clone(),
                line,
                column,
                message,
            },
            _ => ConfigError::Setting(message),
        }
    }

    /// Parses config text; `path` names the file in messages.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let invalid = |span: Option<std::ops::Range<usize>>, message: String| {
            let (line, column) = line_column(text, span.map_or(0, |s| s.start));
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message: with_suggestion(&message),
            }
        };
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| invalid(e.span(), e.message().to_string()))?;
        let mut config = Config {
            source: Some(path.to_path_buf()),
            ..Config::default()
        };
        if let Some(m) = raw.model {
            config.model = m.0;
        }
        if let Some(d) = raw.device {
            config.device = d.0;
        }
        if let Some(d) = raw.dtype {
            config.dtype = d.0;
        }
        if let Some(q) = raw.quant {
            config.quant = q.0;
        }
        if let Some(v) = raw.quant_vision {
            config.quant_vision = v;
        }
        if let Some(t) = raw.theme {
            config.spots.theme = Some(line_column(text, t.span().start));
            config.theme = t.into_inner().0;
        }
        if let Some(p) = raw.image_protocol {
            config.image_protocol = p;
        }
        if let Some(c) = raw.long_edge_cap {
            config.long_edge_cap = c.0;
        }
        if let Some(kv) = raw.kv_cache {
            config.kv_cache = kv.policy();
        }
        config.server = raw.server.map(|s| s.0);
        config.api_key_env = raw.api_key_env.map(|s| s.0);
        if let Some(t) = raw.idle_timeout {
            config.idle_timeout = t.0;
        }
        if let Some(t) = raw.thinking {
            config.thinking = t.0;
        }
        for (name, p) in raw.presets {
            let preset = match config.presets.iter_mut().find(|b| b.name == name) {
                Some(existing) => existing,
                None => {
                    config.presets.push(Preset {
                        name: name.clone(),
                        temperature: None,
                        max_tokens: None,
                        top_p: None,
                        top_k: None,
                        repetition_penalty: None,
                        system_prompt: None,
                        thinking: None,
                    });
                    config.presets.last_mut().expect("just pushed")
                }
            };
            p.apply_to(preset);
        }
        for (action, keys) in raw.keys {
            let spot = line_column(text, action.span().start);
            let action = action.into_inner();
            config.spots.keys.insert(action.clone(), spot);
            config.keys.insert(action, keys.0);
        }
        if let Some(p) = raw.preset {
            let name = &p.get_ref().0;
            if !config.presets.iter().any(|q| &q.name == name) {
                let names: Vec<String> = config
                    .presets
                    .iter()
                    .map(|q| format!("`{}`", q.name))
                    .collect();
                return Err(invalid(
                    Some(p.span()),
                    format!(
                        "unknown preset `{name}`, expected one of {}",
                        names.join(", ")
                    ),
                ));
            }
            config.preset = p.into_inner().0;
        }
        Ok(config)
    }

    pub fn preset(&self, name: &str) -> Option<&Preset> {
        self.presets.iter().find(|p| p.name == name)
    }

    /// The preset a new conversation starts with.
    pub fn default_preset(&self) -> &Preset {
        self.preset(&self.preset)
            .unwrap_or_else(|| &self.presets[0])
    }
}

/// `"THRESHOLD:TARGET"` or `"off"`: images whose long edge exceeds THRESHOLD
/// pixels are first scaled to TARGET.
pub fn parse_long_edge_cap(s: &str) -> Result<Option<LongEdgeCap>, String> {
    if s == "off" {
        return Ok(None);
    }
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| format!("expected THRESHOLD:TARGET or off, got {s:?}"))?;
    let threshold: u32 = a.parse().map_err(|_| format!("bad threshold {a:?}"))?;
    let target: u32 = b.parse().map_err(|_| format!("bad target {b:?}"))?;
    if target == 0 || target > threshold {
        return Err("the target must be between 1 and the threshold".into());
    }
    Ok(Some(LongEdgeCap { threshold, target }))
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Adds "did you mean" to serde's "unknown field/variant `x`, expected one of
/// `a`, `b`" when one choice is a near miss.
pub(crate) fn with_suggestion(message: &str) -> String {
    let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    let Some((given, choices)) = quoted.split_first() else {
        return message.to_string();
    };
    if !message.starts_with("unknown ") {
        return message.to_string();
    }
    let best = choices
        .iter()
        .map(|c| (edit_distance(given, c), *c))
        .filter(|(d, c)| *d > 0 && *d <= 2.max(c.len() / 4))
        .min();
    match best {
        Some((_, c)) => format!("{message} (did you mean `{c}`?)"),
        None => message.to_string(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur.push(substitute.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

// The file as written. Values that need checking deserialize through small
// wrappers, so a bad value is reported at its own line.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    model: Option<NonEmpty>,
    device: Option<Parsed<DeviceChoice>>,
    dtype: Option<Parsed<DtypeChoice>>,
    quant: Option<Parsed<Quant>>,
    quant_vision: Option<bool>,
    preset: Option<Spanned<PresetName>>,
    theme: Option<Spanned<NonEmpty>>,
    image_protocol: Option<ImageProtocol>,
    long_edge_cap: Option<Cap>,
    kv_cache: Option<RawKvCache>,
    server: Option<NonEmpty>,
    api_key_env: Option<NonEmpty>,
    idle_timeout: Option<Idle>,
    thinking: Option<ThinkingSetting>,
    #[serde(default)]
    presets: BTreeMap<String, RawPreset>,
    #[serde(default)]
    keys: BTreeMap<Spanned<String>, KeyList>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKvCache {
    policy: Option<PolicyName>,
    threshold: Option<InRange<Threshold>>,
}

impl RawKvCache {
    /// The policy named (`auto` when none is), `auto` with the threshold given.
    /// A threshold beside another policy has nothing to change.
    fn policy(self) -> KvCachePolicy {
        let policy = self.policy.map_or_else(KvCachePolicy::default, |p| p.0);
        match (policy, self.threshold) {
            (KvCachePolicy::Auto { .. }, Some(t)) => KvCachePolicy::Auto { threshold: t.0 },
            (policy, _) => policy,
        }
    }
}

/// `policy`: one of the engine's policy names, refused like an unknown enum
/// variant (with the choices, and a suggestion for a near miss).
#[derive(Debug)]
struct PolicyName(KvCachePolicy);

impl<'de> Deserialize<'de> for PolicyName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if !KvCachePolicy::NAMES.contains(&s.as_str()) {
            return Err(de::Error::unknown_variant(&s, &KvCachePolicy::NAMES));
        }
        s.parse().map(PolicyName).map_err(de::Error::custom)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPreset {
    temperature: Option<InRange<Temperature>>,
    max_tokens: Option<InRange<MaxTokens>>,
    top_p: Option<InRange<TopP>>,
    top_k: Option<usize>,
    repetition_penalty: Option<InRange<RepetitionPenalty>>,
    system_prompt: Option<String>,
    thinking: Option<ThinkingSetting>,
}

impl RawPreset {
    fn apply_to(self, p: &mut Preset) {
        if let Some(t) = self.temperature {
            p.temperature = Some(t.0);
        }
        if let Some(m) = self.max_tokens {
            p.max_tokens = Some(m.0 as usize);
        }
        if let Some(v) = self.top_p {
            p.top_p = Some(v.0);
        }
        if let Some(k) = self.top_k {
            p.top_k = Some(k);
        }
        if let Some(r) = self.repetition_penalty {
            p.repetition_penalty = Some(r.0 as f32);
        }
        if let Some(s) = self.system_prompt {
            p.system_prompt = Some(s);
        }
        if let Some(t) = self.thinking {
            p.thinking = t.0;
        }
    }
}

/// `thinking`: `auto` (the checkpoint's own default), `on` or `off`.
#[derive(Debug)]
struct ThinkingSetting(Option<bool>);

impl<'de> Deserialize<'de> for ThinkingSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const NAMES: [&str; 3] = ["auto", "on", "off"];
        match String::deserialize(d)?.as_str() {
            "auto" => Ok(ThinkingSetting(None)),
            "on" => Ok(ThinkingSetting(Some(true))),
            "off" => Ok(ThinkingSetting(Some(false))),
            other => Err(de::Error::unknown_variant(other, &NAMES)),
        }
    }
}

/// A string value parsed with `FromStr`, whose error lists the choices.
#[derive(Debug)]
struct Parsed<T>(T);

impl<'de, T: FromStr<Err = String>> Deserialize<'de> for Parsed<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map(Parsed).map_err(de::Error::custom)
    }
}

/// The starting preset's name. `[preset.x]` (a table) is a likely slip for
/// `[presets.x]`, so it gets its own message.
#[derive(Debug)]
struct PresetName(String);

impl<'de> Deserialize<'de> for PresetName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = PresetName;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("the name of a preset")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PresetName, E> {
                Ok(PresetName(s.to_string()))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<PresetName, A::Error> {
                Err(de::Error::custom(
                    "`preset` is the name of the preset to start with, like \"quick\"; settings of a preset go in a [presets.NAME] table",
                ))
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[derive(Debug)]
struct NonEmpty(String);

impl<'de> Deserialize<'de> for NonEmpty {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim().is_empty() {
            return Err(de::Error::custom("must not be empty"));
        }
        Ok(NonEmpty(s))
    }
}

#[derive(Debug)]
struct Cap(Option<LongEdgeCap>);

impl<'de> Deserialize<'de> for Cap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = match Scalar::deserialize(d)? {
            Scalar::Text(s) => s,
            Scalar::Number(v) => {
                return Err(de::Error::custom(format!(
                    "long_edge_cap: expected \"THRESHOLD:TARGET\" (a string such as \"1792:1344\") or \"off\", got {}",
                    short_number(v)
                )))
            }
        };
        parse_long_edge_cap(&s)
            .map(Cap)
            .map_err(|e| de::Error::custom(format!("long_edge_cap: {e}")))
    }
}

/// `idle_timeout`: "FIRST:BETWEEN" seconds, or one number for both.
#[derive(Debug)]
struct Idle(IdleLimits);

impl<'de> Deserialize<'de> for Idle {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = match Scalar::deserialize(d)? {
            Scalar::Text(s) => s,
            Scalar::Number(v) => v.to_string(),
        };
        IdleLimits::parse(&text)
            .map(Idle)
            .map_err(|e| de::Error::custom(format!("idle_timeout: {e}")))
    }
}

/// A string or a number of any size: serde's own messages for a number too
/// large for 64 bits speak of `i128` and print every digit.
enum Scalar {
    Text(String),
    Number(f64),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Scalar, E> {
                Ok(Scalar::Text(s.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Number(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::Number(v as f64))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<Scalar, E> {
                Ok(Scalar::Number(v as f64))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Scalar, E> {
                Ok(Scalar::Number(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Number(v))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// The allowed range of a number, as a type so serde can check it in place.
trait Range {
    const WHAT: &'static str;
    const MIN: f64;
    const MAX: f64;
    /// Whether the minimum itself is allowed.
    const MIN_INCLUSIVE: bool = true;
    const INTEGER: bool = false;
}

#[derive(Debug)]
struct Temperature;
impl Range for Temperature {
    const WHAT: &'static str = "temperature must be between 0 (greedy) and 2";
    const MIN: f64 = 0.0;
    const MAX: f64 = 2.0;
}

#[derive(Debug)]
struct TopP;
impl Range for TopP {
    const WHAT: &'static str = "top_p must be above 0 and at most 1";
    const MIN: f64 = 0.0;
    const MAX: f64 = 1.0;
    const MIN_INCLUSIVE: bool = false;
}

#[derive(Debug)]
struct RepetitionPenalty;
impl Range for RepetitionPenalty {
    const WHAT: &'static str = "repetition_penalty must be above 0 and at most 10 (1 = off)";
    const MIN: f64 = 0.0;
    const MAX: f64 = 10.0;
    const MIN_INCLUSIVE: bool = false;
}

#[derive(Debug)]
struct MaxTokens;
impl Range for MaxTokens {
    const WHAT: &'static str = "max_tokens must be a whole number from 1 to 1000000";
    const MIN: f64 = 1.0;
    const MAX: f64 = 1_000_000.0;
    const INTEGER: bool = true;
}

#[derive(Debug)]
struct Threshold;
impl Range for Threshold {
    const WHAT: &'static str =
        "threshold must be a fraction of device memory above 0 and at most 1 (e.g. 0.85)";
    const MIN: f64 = 0.0;
    const MAX: f64 = 1.0;
    const MIN_INCLUSIVE: bool = false;
}

struct InRange<R>(f64, std::marker::PhantomData<R>);

impl<R> fmt::Debug for InRange<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<'de, R: Range> Deserialize<'de> for InRange<R> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = match Scalar::deserialize(d)? {
            Scalar::Number(v) => v,
            Scalar::Text(s) => {
                return Err(de::Error::custom(format!(
                    "{}, got the string {s:?} (write the number without quotes)",
                    R::WHAT
                )))
            }
        };
        in_range::<R>(v)
            .map(|v| InRange(v, std::marker::PhantomData))
            .map_err(de::Error::custom)
    }
}

/// `v` if the rule `R` allows it, else the rule and what was found.
fn in_range<R: Range>(v: f64) -> Result<f64, String> {
    let above_min = if R::MIN_INCLUSIVE {
        v >= R::MIN
    } else {
        v > R::MIN
    };
    let whole = !R::INTEGER || v.fract() == 0.0;
    if above_min && v <= R::MAX && whole {
        Ok(v)
    } else {
        Err(format!("{}, got {}", R::WHAT, short_number(v)))
    }
}

/// `3.5`, but `1e300` rather than three hundred digits.
fn short_number(v: f64) -> String {
    if v != 0.0 && !(1e-6..1e12).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// Sampling values from elsewhere than the config (a saved session) held to
/// the rules a preset's are: each value a preset could not have is left
/// out, so the model's default applies, and the rule it broke is said.
pub fn checked_sampling(sampling: &SamplingOverrides) -> (SamplingOverrides, Vec<String>) {
    fn check<R: Range, T: Copy>(
        value: &mut Option<T>,
        as_f64: impl Fn(T) -> f64,
        problems: &mut Vec<String>,
    ) {
        if let Some(v) = *value {
            if let Err(problem) = in_range::<R>(as_f64(v)) {
                problems.push(problem);
                *value = None;
            }
        }
    }
    let mut checked = sampling.clone();
    let mut problems = Vec::new();
    check::<Temperature, _>(&mut checked.temperature, |v| v, &mut problems);
    check::<MaxTokens, _>(&mut checked.max_new_tokens, |v| v as f64, &mut problems);
    check::<TopP, _>(&mut checked.top_p, |v| v, &mut problems);
    check::<RepetitionPenalty, _>(&mut checked.repetition_penalty, f64::from, &mut problems);
    (checked, problems)
}

/// One key spec or a list of them.
#[derive(Debug)]
struct KeyList(Vec<KeySpec>);

impl<'de> Deserialize<'de> for KeyList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = KeyList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key like \"ctrl+s\" or a list of them")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<KeyList, E> {
                s.parse().map(|k| KeyList(vec![k])).map_err(E::custom)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<KeyList, A::Error> {
                let mut keys = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    keys.push(s.parse().map_err(de::Error::custom)?);
                }
                if keys.is_empty() {
                    return Err(de::Error::custom(
                        "an empty list would leave the action without a key",
                    ));
                }
                Ok(KeyList(keys))
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(text, Path::new("config.toml"))
    }

    #[test]
    fn thinking_is_auto_on_or_off_at_the_top_and_per_preset() {
        let c = parse("thinking = \"on\"\n[presets.quick]\nthinking = \"auto\"\n[presets.terse]\nthinking = \"off\"\n").unwrap();
        assert_eq!(c.thinking, Some(true));
        assert_eq!(c.preset("quick").unwrap().thinking, None);
        assert_eq!(c.preset("terse").unwrap().thinking, Some(false));
        assert_eq!(
            Config::default().preset("quick").unwrap().thinking,
            Some(false)
        );
        assert_eq!(Config::default().thinking, None);
        let ConfigError::Invalid { line, message, .. } =
            parse("\nthinking = \"of\"\n").unwrap_err()
        else {
            panic!("not a content error");
        };
        assert_eq!(line, 2);
        assert!(
            message.contains("expected one of `auto`, `on`, `off`"),
            "{message}"
        );
        assert!(message.contains("did you mean `off`"), "{message}");
    }

    #[test]
    fn empty_file_means_every_default() {
        let c = parse("").unwrap();
        assert_eq!(
            Config {
                source: None,
                ..c.clone()
            },
            Config::default()
        );
        assert_eq!(c.model, "Qwen/Qwen3-VL-4B-Instruct");
        assert_eq!(c.default_preset().name, "diagnostic");
    }

    #[test]
    fn builtin_presets_have_the_documented_values() {
        let c = Config::default();
        let t = |n: &str| {
            let p = c.preset(n).unwrap();
            (p.temperature.unwrap(), p.max_tokens.unwrap())
        };
        assert_eq!(t("diagnostic"), (0.3, 768));
        assert_eq!(t("creative"), (0.65, 384));
        assert_eq!(t("quick"), (0.1, 128));
    }

    #[test]
    fn a_file_preset_adjusts_a_builtin_field_by_field_and_adds_new_ones() {
        let c = parse(
            "preset = \"terse\"\n[presets.quick]\nmax_tokens = 64\n[presets.terse]\ntemperature = 0\nsystem_prompt = \"Answer in one word.\"\n",
        )
        .unwrap();
        let quick = c.preset("quick").unwrap();
        assert_eq!((quick.temperature, quick.max_tokens), (Some(0.1), Some(64)));
        let names: Vec<&str> = c.presets.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["diagnostic", "creative", "quick", "terse"]);
        let terse = c.default_preset();
        assert_eq!(terse.name, "terse");
        assert_eq!(terse.max_tokens, None);
        let s = terse.sampling(Some(7));
        assert_eq!((s.temperature, s.seed), (Some(0.0), Some(7)));
    }

    #[test]
    fn errors_carry_line_and_column() {
        let e = parse("theme = \"light\"\n\n  devce = \"cpu\"\n").unwrap_err();
        match e {
            ConfigError::Invalid { line, column, .. } => assert_eq!((line, column), (3, 3)),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn near_misses_get_a_suggestion() {
        let e = parse("[presets.quick]\ntempreature = 0.2\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean `temperature`?"), "{e}");
        let e = parse("image_protocol = \"kity\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean `kitty`?"), "{e}");
        let e = parse("zzzzzz = 1\n").unwrap_err().to_string();
        assert!(!e.contains("did you mean"), "{e}");
    }

    #[test]
    fn the_kv_threshold_belongs_to_the_auto_policy() {
        let kv = |table: &str| parse(&format!("[kv_cache]\n{table}")).unwrap().kv_cache;
        let auto = |threshold| KvCachePolicy::Auto { threshold };
        assert_eq!(kv(""), KvCachePolicy::default());
        assert_eq!(kv("threshold = 0.5\n"), auto(0.5));
        assert_eq!(kv("policy = \"auto\"\nthreshold = 0.6\n"), auto(0.6));
        assert_eq!(kv("policy = \"f16\"\n"), KvCachePolicy::Model);
        assert_eq!(
            kv("policy = \"int8\"\nthreshold = 0.5\n"),
            KvCachePolicy::Int8
        );
        let e = parse("[kv_cache]\npolicy = \"int9\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown variant `int9`, expected one of `auto`, `f16`, `int8`")
                && e.contains("did you mean `int8`?"),
            "{e}"
        );
        // The engine's other spelling of f16 is not one the file documents.
        assert!(parse("[kv_cache]\npolicy = \"model\"\n").is_err());
    }

    #[test]
    fn line_column_counts_characters_not_bytes() {
        assert_eq!(line_column("a\nbé c", 6), (2, 4));
        assert_eq!(line_column("", 0), (1, 1));
    }

    #[test]
    fn idle_timeout_takes_a_string_or_a_number() {
        let c = parse("idle_timeout = \"300:20\"\n").unwrap();
        assert_eq!(c.idle_timeout, IdleLimits::parse("300:20").unwrap());
        let c = parse("idle_timeout = 45\n").unwrap();
        assert_eq!(c.idle_timeout, IdleLimits::parse("45").unwrap());
        let e = parse("idle_timeout = \"soon\"\n").unwrap_err().to_string();
        assert!(
            e.contains("idle_timeout: ") && e.contains("FIRST:BETWEEN"),
            "{e}"
        );
    }

    #[test]
    fn long_edge_cap_values() {
        assert_eq!(parse_long_edge_cap("off").unwrap(), None);
        let c = parse_long_edge_cap("3000:2048").unwrap().unwrap();
        assert_eq!((c.threshold, c.target), (3000, 2048));
        assert!(parse_long_edge_cap("10:20").is_err());
        assert!(parse_long_edge_cap("big").is_err());
    }

    #[test]
    fn quant_vision_is_a_switch_beside_quant() {
        let c = parse("quant = \"q4k\"\nquant_vision = true\n").unwrap();
        assert_eq!((c.quant, c.quant_vision), (Quant::Q4K, true));
        assert!(!Config::default().quant_vision);
        assert!(parse("quant_vision = \"yes\"\n").is_err());
    }

    /// Every `#key = value` line of the printed default file, uncommented,
    /// must reproduce the built-in defaults: the file cannot drift from the code.
    #[test]
    fn the_printed_default_file_is_exactly_the_defaults() {
        let commented = parse(DEFAULT_FILE).unwrap();
        assert_eq!(commented.presets, Config::default().presets);
        let uncommented: String = DEFAULT_FILE
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if rest.starts_with(|c: char| c.is_ascii_lowercase() || c == '[') => {
                    rest
                }
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert_ne!(uncommented, DEFAULT_FILE);
        let c = parse(&uncommented).unwrap();
        assert_eq!(
            Config {
                source: None,
                spots: Spots::default(),
                ..c
            },
            Config::default()
        );
        for key in [
            "model",
            "device",
            "dtype",
            "quant",
            "quant_vision",
            "preset",
            "theme",
            "image_protocol",
            "long_edge_cap",
            "idle_timeout",
            "thinking",
            "[kv_cache]",
            "policy",
            "threshold",
            "[presets.diagnostic]",
            "[presets.creative]",
            "[presets.quick]",
            "[keys]",
        ] {
            assert!(
                DEFAULT_FILE.contains(&format!("#{key}")),
                "{key} is not shown"
            );
        }
    }

    #[test]
    fn sampling_from_elsewhere_meets_the_preset_rules() {
        let wild = SamplingOverrides {
            temperature: Some(1e300),
            max_new_tokens: Some(0),
            top_p: Some(0.9),
            top_k: Some(40),
            repetition_penalty: Some(-1.0),
            seed: Some(3),
            ignore_eos: false,
        };
        let (checked, problems) = checked_sampling(&wild);
        assert_eq!(
            checked,
            SamplingOverrides {
                temperature: None,
                max_new_tokens: None,
                repetition_penalty: None,
                ..wild
            }
        );
        assert_eq!(
            problems,
            [
                "temperature must be between 0 (greedy) and 2, got 1e300",
                "max_tokens must be a whole number from 1 to 1000000, got 0",
                "repetition_penalty must be above 0 and at most 10 (1 = off), got -1",
            ]
        );
        let fine = Config::default().default_preset().sampling(None);
        assert_eq!(checked_sampling(&fine), (fine.clone(), vec![]));
    }
}
