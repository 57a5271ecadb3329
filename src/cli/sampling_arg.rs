//! The sampling flags `ask` and `eval` share (`--temperature`, `--top-p`,
//! `--top-k`, `--repetition-penalty`, `--max-tokens`, `--seed`) and the one
//! way they become the engine's sampling settings: each flag given wins over
//! what the command starts from (the model's defaults, or a preset).

use anyhow::bail;
use clap::Args;

use crate::engine::SamplingOverrides;

#[derive(Debug, Default, Clone, Args)]
pub struct SamplingFlags {
    /// 0 decodes greedily [default: eval's preset, else greedy for eval and
    /// the model's generation_config.json for ask].
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Nucleus sampling: keep the most likely tokens up to this probability.
    #[arg(long = "top-p")]
    pub top_p: Option<f64>,
    /// Keep only the K most likely tokens.
    #[arg(long = "top-k", value_name = "K")]
    pub top_k: Option<usize>,
    /// Above 1 makes repeating earlier tokens less likely (1 = off).
    #[arg(long = "repetition-penalty")]
    pub repetition_penalty: Option<f32>,
    /// Most new tokens to generate.
    #[arg(long = "max-tokens", value_name = "N")]
    pub max_tokens: Option<usize>,
    /// Sampling seed, for repeatable answers [eval: default 0; with
    /// --make-suite, the drawing seed].
    #[arg(long)]
    pub seed: Option<u64>,
}

impl SamplingFlags {
    /// The engine's settings: these flags over `base`.
    pub fn over(&self, base: SamplingOverrides) -> anyhow::Result<SamplingOverrides> {
        if self.max_tokens == Some(0) {
            bail!("--max-tokens must be at least 1");
        }
        Ok(SamplingOverrides {
            temperature: self.temperature.or(base.temperature),
            top_p: self.top_p.or(base.top_p),
            top_k: self.top_k.or(base.top_k),
            repetition_penalty: self.repetition_penalty.or(base.repetition_penalty),
            max_new_tokens: self.max_tokens.or(base.max_new_tokens),
            seed: self.seed.or(base.seed),
            ignore_eos: base.ignore_eos,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        sampling: SamplingFlags,
    }

    fn flags(args: &[&str]) -> SamplingFlags {
        Wrap::parse_from(std::iter::once("x").chain(args.iter().copied())).sampling
    }

    #[test]
    fn flags_given_win_and_the_rest_comes_from_the_base() {
        let base = SamplingOverrides {
            temperature: Some(0.3),
            max_new_tokens: Some(768),
            seed: Some(0),
            ..Default::default()
        };
        let s = flags(&["--top-k", "20", "--max-tokens", "16", "--seed", "4"])
            .over(base.clone())
            .unwrap();
        assert_eq!(
            (s.temperature, s.top_k, s.max_new_tokens, s.seed, s.top_p),
            (Some(0.3), Some(20), Some(16), Some(4), None)
        );
        let s = flags(&[
            "--temperature",
            "0",
            "--top-p",
            "0.8",
            "--repetition-penalty",
            "1.1",
        ])
        .over(base)
        .unwrap();
        assert_eq!(
            (s.temperature, s.top_p, s.repetition_penalty),
            (Some(0.0), Some(0.8), Some(1.1))
        );
        assert_eq!(
            flags(&[]).over(SamplingOverrides::default()).unwrap(),
            SamplingOverrides::default(),
            "no flags leave everything to the model"
        );
    }

    #[test]
    fn no_tokens_at_all_is_refused_in_one_line() {
        let e = flags(&["--max-tokens", "0"])
            .over(SamplingOverrides::default())
            .unwrap_err()
            .to_string();
        assert_eq!(e, "--max-tokens must be at least 1");
    }
}
