//! Sampling presets a single key switches between, and the live settings the
//! next request is sent with. The presets are the config's (`session::config`):
//! the built-in three, adjusted or joined by the user's. A field a preset
//! leaves out is left to the model's `generation_config.json`.

use crate::engine::sampling::{GenerationDefaults, DEFAULT_MAX_NEW_TOKENS};
use crate::engine::SamplingOverrides;

pub use crate::session::config::{builtin_presets, Preset};

pub const TEMPERATURE_STEP: f64 = 0.05;
pub const TEMPERATURE_MAX: f64 = 2.0;
pub const MAX_TOKENS_STEP: usize = 64;
pub const MAX_TOKENS_MIN: usize = 16;
pub const MAX_TOKENS_MAX: usize = 32_768;

/// What the next question is sent with: a preset, possibly nudged. `None`
/// leaves a value to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub preset: usize,
    pub preset_name: String,
    pub temperature: Option<f64>,
    pub max_tokens: Option<usize>,
    pub top_p: Option<f64>,
    pub top_k: Option<usize>,
    pub repetition_penalty: Option<f32>,
    /// Sent as the conversation's system message.
    pub system_prompt: Option<String>,
    /// Thinking on or off (for checkpoints that can switch); `None` follows
    /// the config.
    pub thinking: Option<bool>,
}

impl Settings {
    pub fn from_preset(index: usize, preset: &Preset) -> Self {
        Settings {
            preset: index,
            preset_name: preset.name.clone(),
            temperature: preset.temperature,
            max_tokens: preset.max_tokens,
            top_p: preset.top_p,
            top_k: preset.top_k,
            repetition_penalty: preset.repetition_penalty,
            system_prompt: preset.system_prompt.clone(),
            thinking: preset.thinking,
        }
    }

    /// True when the values the keys change still equal the preset's.
    pub fn matches(&self, preset: &Preset) -> bool {
        let same_t = match (self.temperature, preset.temperature) {
            (Some(a), Some(b)) => (a - b).abs() < 1e-9,
            (a, b) => a.is_none() && b.is_none(),
        };
        same_t && self.max_tokens == preset.max_tokens
    }

    /// Steps of 0.05, kept on the 0.05 grid so repeated presses never drift.
    /// A temperature left to the model starts from the model's, `model`.
    pub fn nudge_temperature(&mut self, steps: i32, model: f64) {
        let current = self.temperature.unwrap_or(model);
        let grid = (current / TEMPERATURE_STEP).round() as i64 + steps as i64;
        let max_grid = (TEMPERATURE_MAX / TEMPERATURE_STEP).round() as i64;
        self.temperature = Some(grid.clamp(0, max_grid) as f64 * TEMPERATURE_STEP);
    }

    /// A limit left to the model starts from the model's, `model`.
    pub fn nudge_max_tokens(&mut self, steps: i32, model: usize) {
        let current = self.max_tokens.unwrap_or(model);
        let delta = MAX_TOKENS_STEP as i64 * steps as i64;
        let next = (current as i64 + delta).clamp(MAX_TOKENS_MIN as i64, MAX_TOKENS_MAX as i64);
        self.max_tokens = Some(next as usize);
    }

    /// The request's overrides; the seed varies per request so that
    /// regenerating gives a different answer.
    pub fn overrides(&self, seed: u64) -> SamplingOverrides {
        SamplingOverrides {
            temperature: self.temperature,
            max_new_tokens: self.max_tokens,
            top_p: self.top_p,
            top_k: self.top_k,
            repetition_penalty: self.repetition_penalty,
            seed: Some(seed),
            ignore_eos: false,
        }
    }

    /// `T 0.30 · max 768`, with `model` for values left to the model.
    pub fn short(&self) -> String {
        format!(
            "T {} · max {}",
            self.temperature
                .map_or("model".to_string(), |t| format!("{t:.2}")),
            self.max_tokens
                .map_or("model".to_string(), |m| m.to_string())
        )
    }

    /// The values beyond temperature and token limit, where set:
    /// `top-p 0.90 · top-k 40 · repetition 1.05 · system prompt`.
    pub fn extras(&self) -> Vec<String> {
        extras(
            self.top_p,
            self.top_k,
            self.repetition_penalty,
            self.system_prompt.is_some(),
        )
    }
}

fn extras(
    top_p: Option<f64>,
    top_k: Option<usize>,
    repetition: Option<f32>,
    system: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(p) = top_p {
        out.push(format!("top-p {p:.2}"));
    }
    if let Some(k) = top_k {
        out.push(format!("top-k {k}"));
    }
    if let Some(r) = repetition {
        out.push(format!("repetition {r:.2}"));
    }
    if system {
        out.push("system prompt".to_string());
    }
    out
}

/// `temperature 0.30, 768 new tokens` and whatever else the preset sets, for
/// the help and the message when a preset is chosen.
pub fn describe(p: &Preset) -> String {
    let mut parts = vec![
        match p.temperature {
            Some(t) => format!("temperature {t:.2}"),
            None => "the model's temperature".to_string(),
        },
        match p.max_tokens {
            Some(m) => format!("{m} new tokens"),
            None => "the model's token limit".to_string(),
        },
    ];
    parts.extend(extras(
        p.top_p,
        p.top_k,
        p.repetition_penalty,
        p.system_prompt.is_some(),
    ));
    parts.join(", ")
}

/// The temperature the model samples with when a request leaves it out.
pub fn model_temperature(g: &GenerationDefaults) -> f64 {
    if g.do_sample {
        g.temperature
    } else {
        0.0
    }
}

/// The token limit the model stops at when a request leaves it out.
pub fn model_max_tokens(g: Option<&GenerationDefaults>) -> usize {
    g.map_or(DEFAULT_MAX_NEW_TOKENS, |g| g.max_new_tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> Settings {
        Settings::from_preset(2, &builtin_presets()[2])
    }

    #[test]
    fn builtin_presets_are_diagnostic_creative_quick() {
        let p = builtin_presets();
        let summary: Vec<(&str, Option<f64>, Option<usize>)> = p
            .iter()
            .map(|p| (p.name.as_str(), p.temperature, p.max_tokens))
            .collect();
        assert_eq!(
            summary,
            [
                ("diagnostic", Some(0.3), Some(768)),
                ("creative", Some(0.65), Some(384)),
                ("quick", Some(0.1), Some(128))
            ]
        );
        assert_eq!(describe(&p[0]), "temperature 0.30, 768 new tokens");
    }

    #[test]
    fn temperature_moves_in_steps_of_five_hundredths_and_stays_in_range() {
        let mut s = quick();
        s.nudge_temperature(-1, 1.0);
        assert!((s.temperature.unwrap() - 0.05).abs() < 1e-12);
        s.nudge_temperature(-5, 1.0);
        assert_eq!(s.temperature, Some(0.0));
        for _ in 0..7 {
            s.nudge_temperature(1, 1.0);
        }
        assert!((s.temperature.unwrap() - 0.35).abs() < 1e-12);
        s.nudge_temperature(100, 1.0);
        assert_eq!(s.temperature, Some(TEMPERATURE_MAX));
        assert!(!s.matches(&builtin_presets()[2]));
    }

    #[test]
    fn max_tokens_moves_in_steps_of_64_with_a_floor() {
        let mut s = quick();
        s.nudge_max_tokens(1, 512);
        assert_eq!(s.max_tokens, Some(192));
        s.nudge_max_tokens(-10, 512);
        assert_eq!(s.max_tokens, Some(MAX_TOKENS_MIN));
    }

    #[test]
    fn values_left_to_the_model_stay_unset_until_nudged_from_the_models() {
        let p = Preset {
            name: "ocr".into(),
            temperature: None,
            max_tokens: None,
            top_p: Some(0.9),
            top_k: Some(40),
            repetition_penalty: Some(1.05),
            system_prompt: Some("Transcribe all text.".into()),
            thinking: None,
        };
        let mut s = Settings::from_preset(3, &p);
        let o = s.overrides(5);
        assert_eq!((o.temperature, o.max_new_tokens), (None, None));
        assert_eq!((o.top_p, o.top_k), (Some(0.9), Some(40)));
        assert_eq!(o.repetition_penalty, Some(1.05));
        assert_eq!(s.short(), "T model · max model");
        assert_eq!(
            s.extras(),
            ["top-p 0.90", "top-k 40", "repetition 1.05", "system prompt"]
        );
        assert_eq!(
            describe(&p),
            "the model's temperature, the model's token limit, top-p 0.90, top-k 40, repetition 1.05, system prompt"
        );
        assert!(s.matches(&p));
        s.nudge_temperature(1, 0.7);
        assert!((s.temperature.unwrap() - 0.75).abs() < 1e-12);
        s.nudge_max_tokens(-1, 1024);
        assert_eq!(s.max_tokens, Some(960));
        assert!(!s.matches(&p));
    }

    #[test]
    fn overrides_carry_every_field_and_the_seed() {
        let s = Settings::from_preset(0, &builtin_presets()[0]);
        let o = s.overrides(42);
        assert_eq!(o.temperature, Some(0.3));
        assert_eq!(o.max_new_tokens, Some(768));
        assert_eq!(o.seed, Some(42));
        assert_eq!(o.top_p, None);
    }
}
