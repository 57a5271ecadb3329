//! Sampling presets a single key switches between, and the live settings the
//! next request is sent with. Built-in defaults here; a config file can
//! replace the list later.

use crate::engine::SamplingOverrides;

#[derive(Debug, Clone, PartialEq)]
pub struct Preset {
    pub name: String,
    pub temperature: f64,
    pub max_tokens: usize,
}

impl Preset {
    pub fn new(name: &str, temperature: f64, max_tokens: usize) -> Self {
        Preset {
            name: name.into(),
            temperature,
            max_tokens,
        }
    }
}

/// The presets glimpse ships with; index 0 is active at start.
pub fn builtin_presets() -> Vec<Preset> {
    vec![
        Preset::new("diagnostic", 0.3, 768),
        Preset::new("creative", 0.65, 384),
        Preset::new("quick", 0.1, 128),
    ]
}

pub const TEMPERATURE_STEP: f64 = 0.05;
pub const TEMPERATURE_MAX: f64 = 2.0;
pub const MAX_TOKENS_STEP: usize = 64;
pub const MAX_TOKENS_MIN: usize = 16;
pub const MAX_TOKENS_MAX: usize = 32_768;

/// What the next question is sent with: a preset, possibly nudged.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub preset: usize,
    pub preset_name: String,
    pub temperature: f64,
    pub max_tokens: usize,
}

impl Settings {
    pub fn from_preset(index: usize, preset: &Preset) -> Self {
        Settings {
            preset: index,
            preset_name: preset.name.clone(),
            temperature: preset.temperature,
            max_tokens: preset.max_tokens,
        }
    }

    /// True when the values still equal the preset's.
    pub fn matches(&self, preset: &Preset) -> bool {
        (self.temperature - preset.temperature).abs() < 1e-9 && self.max_tokens == preset.max_tokens
    }

    /// Steps of 0.05, kept on the 0.05 grid so repeated presses never drift.
    pub fn nudge_temperature(&mut self, steps: i32) {
        let grid = (self.temperature / TEMPERATURE_STEP).round() as i64 + steps as i64;
        let max_grid = (TEMPERATURE_MAX / TEMPERATURE_STEP).round() as i64;
        self.temperature = grid.clamp(0, max_grid) as f64 * TEMPERATURE_STEP;
    }

    pub fn nudge_max_tokens(&mut self, steps: i32) {
        let delta = MAX_TOKENS_STEP as i64 * steps as i64;
        let next =
            (self.max_tokens as i64 + delta).clamp(MAX_TOKENS_MIN as i64, MAX_TOKENS_MAX as i64);
        self.max_tokens = next as usize;
    }

    /// The request's overrides; the seed varies per request so that
    /// regenerating gives a different answer.
    pub fn overrides(&self, seed: u64) -> SamplingOverrides {
        SamplingOverrides {
            temperature: Some(self.temperature),
            max_new_tokens: Some(self.max_tokens),
            seed: Some(seed),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_presets_are_diagnostic_creative_quick() {
        let p = builtin_presets();
        assert_eq!(p[0], Preset::new("diagnostic", 0.3, 768));
        assert_eq!(p[1], Preset::new("creative", 0.65, 384));
        assert_eq!(p[2], Preset::new("quick", 0.1, 128));
    }

    #[test]
    fn temperature_moves_in_steps_of_five_hundredths_and_stays_in_range() {
        let mut s = Settings::from_preset(2, &builtin_presets()[2]);
        s.nudge_temperature(-1);
        assert!((s.temperature - 0.05).abs() < 1e-12);
        s.nudge_temperature(-5);
        assert_eq!(s.temperature, 0.0);
        for _ in 0..7 {
            s.nudge_temperature(1);
        }
        assert!((s.temperature - 0.35).abs() < 1e-12, "{}", s.temperature);
        s.nudge_temperature(100);
        assert_eq!(s.temperature, TEMPERATURE_MAX);
        assert!(!s.matches(&builtin_presets()[2]));
    }

    #[test]
    fn max_tokens_moves_in_steps_of_64_with_a_floor() {
        let mut s = Settings::from_preset(2, &builtin_presets()[2]);
        s.nudge_max_tokens(1);
        assert_eq!(s.max_tokens, 192);
        s.nudge_max_tokens(-10);
        assert_eq!(s.max_tokens, MAX_TOKENS_MIN);
    }

    #[test]
    fn overrides_carry_temperature_max_tokens_and_seed() {
        let s = Settings::from_preset(0, &builtin_presets()[0]);
        let o = s.overrides(42);
        assert_eq!(o.temperature, Some(0.3));
        assert_eq!(o.max_new_tokens, Some(768));
        assert_eq!(o.seed, Some(42));
        assert_eq!(o.top_p, None);
    }
}
