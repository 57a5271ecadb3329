//! Choosing the next token with transformers' semantics: the repetition penalty
//! over every id already in the sequence (prompt included), then temperature,
//! top-k and top-p; temperature 0 is greedy.

use std::path::Path;

use candle_core::{DType, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Settings a request carries. `None` fields take the model's
/// `generation_config.json` value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SamplingOverrides {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<usize>,
    pub repetition_penalty: Option<f32>,
    pub max_new_tokens: Option<usize>,
    pub seed: Option<u64>,
    /// Keep generating through stop tokens (benchmarks force a token count).
    #[serde(default)]
    pub ignore_eos: bool,
}

/// Fully resolved settings used for one generation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SamplingParams {
    pub temperature: f64,
    pub top_p: f64,
    pub top_k: usize,
    pub repetition_penalty: f32,
    pub max_new_tokens: usize,
    pub seed: u64,
}

/// What a model directory's `generation_config.json` asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationDefaults {
    pub do_sample: bool,
    pub temperature: f64,
    pub top_p: f64,
    pub top_k: usize,
    pub repetition_penalty: f32,
    pub max_new_tokens: usize,
    pub eos_token_ids: Vec<u32>,
}

/// Without a generation_config.json transformers samples nothing: greedy, no penalty.
pub const DEFAULT_MAX_NEW_TOKENS: usize = 512;

impl GenerationDefaults {
    pub fn greedy(eos_token_ids: Vec<u32>) -> Self {
        GenerationDefaults {
            do_sample: false,
            temperature: 1.0,
            top_p: 1.0,
            top_k: 50,
            repetition_penalty: 1.0,
            max_new_tokens: DEFAULT_MAX_NEW_TOKENS,
            eos_token_ids,
        }
    }

    /// Reads `generation_config.json`; `config_eos` (from config.json) is used when
    /// it names no stop ids. A missing file means transformers' defaults.
    pub fn from_model_dir(dir: &Path, config_eos: &[u32]) -> Result<Self, String> {
        let path = dir.join("generation_config.json");
        let mut d = Self::greedy(config_eos.to_vec());
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(d);
        };
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not valid JSON: {e}", path.display()))?;
        if let Some(b) = v.get("do_sample").and_then(Value::as_bool) {
            d.do_sample = b;
        }
        if let Some(t) = v.get("temperature").and_then(Value::as_f64) {
            d.temperature = t;
        }
        if let Some(p) = v.get("top_p").and_then(Value::as_f64) {
            d.top_p = p;
        }
        if let Some(k) = v.get("top_k").and_then(Value::as_u64) {
            d.top_k = k as usize;
        }
        if let Some(r) = v.get("repetition_penalty").and_then(Value::as_f64) {
            d.repetition_penalty = r as f32;
        }
        if let Some(n) = v.get("max_new_tokens").and_then(Value::as_u64) {
            d.max_new_tokens = n as usize;
        }
        let eos: Vec<u32> = match v.get("eos_token_id") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_u64)
                .map(|x| x as u32)
                .collect(),
            Some(x) => x.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
            None => vec![],
        };
        if !eos.is_empty() {
            d.eos_token_ids = eos;
        }
        for id in config_eos {
            if !d.eos_token_ids.contains(id) {
                d.eos_token_ids.push(*id);
            }
        }
        Ok(d)
    }

    /// Fills a request's gaps. A model that does not sample by default decodes
    /// greedily unless the request sets a temperature.
    pub fn resolve(&self, o: &SamplingOverrides) -> SamplingParams {
        let default_temperature = if self.do_sample {
            self.temperature
        } else {
            0.0
        };
        SamplingParams {
            temperature: o.temperature.unwrap_or(default_temperature).max(0.0),
            top_p: o.top_p.unwrap_or(self.top_p),
            top_k: o.top_k.unwrap_or(self.top_k),
            repetition_penalty: o.repetition_penalty.unwrap_or(self.repetition_penalty),
            max_new_tokens: o.max_new_tokens.unwrap_or(self.max_new_tokens),
            seed: o.seed.unwrap_or(0x5eed),
        }
    }
}

pub struct Sampler {
    params: SamplingParams,
    processor: Option<LogitsProcessor>,
    /// Device tensors for greedy decoding and the repetition penalty, made
    /// at the first step (they need the vocabulary size and the device).
    on_device: Option<OnDevice>,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        // top-k 1 keeps only the most likely token: sampling is greedy then.
        let samples = params.temperature > 0.0 && params.top_k != 1;
        let processor = samples.then(|| {
            let t = params.temperature;
            let k = params.top_k;
            let p = params.top_p;
            let sampling = match (k > 0, p < 1.0) {
                (true, true) => Sampling::TopKThenTopP {
                    k,
                    p,
                    temperature: t,
                },
                (true, false) => Sampling::TopK { k, temperature: t },
                (false, true) => Sampling::TopP { p, temperature: t },
                (false, false) => Sampling::All { temperature: t },
            };
            LogitsProcessor::from_sampling(params.seed, sampling)
        });
        Sampler {
            params,
            processor,
            on_device: None,
        }
    }

    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// `logits`: f32 `(vocab,)`; `history`: every id of the sequence so far,
    /// growing by the ids chosen since the last call. Greedy decoding and
    /// the penalty run where the logits are: only the chosen id crosses to
    /// the host (sampling with a temperature still reads the logits there).
    pub fn sample(&mut self, logits: &Tensor, history: &[u32]) -> candle_core::Result<u32> {
        let state = match &mut self.on_device {
            Some(s) => s,
            None => self.on_device.insert(OnDevice::new(logits)?),
        };
        let penalty = self.params.repetition_penalty;
        let logits = if (penalty - 1.0).abs() > f32::EPSILON {
            state.penalise(logits, history, penalty)?
        } else {
            logits.clone()
        };
        match &mut self.processor {
            Some(p) => p.sample(&logits),
            None => state.first_argmax(&logits),
        }
    }
}

struct OnDevice {
    vocab: usize,
    /// `vocab - i` at index `i`: the largest among the maxima is the first.
    countdown: Tensor,
    /// 1 where an id of the sequence is, else 0 (u8); built at the first
    /// penalised step, then marked one id at a time.
    seen: Option<Tensor>,
    seen_upto: usize,
    one: Tensor,
}

impl OnDevice {
    fn new(logits: &Tensor) -> candle_core::Result<OnDevice> {
        let vocab = logits.dim(0)?;
        let device = logits.device();
        let countdown: Vec<f32> = (0..vocab).map(|i| (vocab - i) as f32).collect();
        Ok(OnDevice {
            vocab,
            countdown: Tensor::from_vec(countdown, vocab, device)?,
            seen: None,
            seen_upto: 0,
            one: Tensor::new(&[1u8], device)?,
        })
    }

    /// torch.argmax on a device: the first index of the maximum, found
    /// without copying the logits back.
    fn first_argmax(&self, logits: &Tensor) -> candle_core::Result<u32> {
        let top = logits.max_keepdim(0)?;
        let at_top = logits.broadcast_eq(&top)?.to_dtype(DType::F32)?;
        let countdown = (at_top * &self.countdown)?.max(0)?.to_scalar::<f32>()?;
        Ok((self.vocab - countdown as usize) as u32)
    }

    /// transformers' repetition penalty: logits of ids already in the
    /// sequence are divided by `penalty` when positive, multiplied when negative.
    fn penalise(
        &mut self,
        logits: &Tensor,
        history: &[u32],
        penalty: f32,
    ) -> candle_core::Result<Tensor> {
        let seen = match &self.seen {
            Some(seen) => {
                for &id in &history[self.seen_upto.min(history.len())..] {
                    if (id as usize) < self.vocab {
                        seen.slice_set(&self.one, 0, id as usize)?;
                    }
                }
                seen
            }
            None => {
                let mut mask = vec![0u8; self.vocab];
                for &id in history {
                    if let Some(m) = mask.get_mut(id as usize) {
                        *m = 1;
                    }
                }
                self.seen
                    .insert(Tensor::from_vec(mask, self.vocab, logits.device())?)
            }
        };
        self.seen_upto = history.len();
        let p = Tensor::new(&[penalty], logits.device())?;
        let negative = logits.lt(0f32)?;
        let penalised =
            negative.where_cond(&logits.broadcast_mul(&p)?, &logits.broadcast_div(&p)?)?;
        seen.where_cond(&penalised, logits)
    }
}

/// Index of the largest value; the first one on ties, as torch.argmax.
pub fn argmax_first(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn greedy_takes_the_first_maximum() {
        assert_eq!(argmax_first(&[0.1, 3.0, 3.0, -1.0]), 1);
    }

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative_logits() {
        let logits = Tensor::new(&[2.0f32, 1.5, -1.0, 0.5], &Device::Cpu).unwrap();
        let params = GenerationDefaults::greedy(vec![]).resolve(&SamplingOverrides {
            temperature: Some(0.0),
            repetition_penalty: Some(2.0),
            ..Default::default()
        });
        let mut s = Sampler::new(params);
        // 2.0 → 1.0 once id 0 was seen, so id 1 (1.5) wins.
        assert_eq!(s.sample(&logits, &[0, 0, 2]).unwrap(), 1);
        let penalised = candle_transformers::utils::apply_repeat_penalty(&logits, 2.0, &[2])
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(penalised[2], -2.0);
    }

    #[test]
    fn generation_config_fills_gaps_and_overrides_win() {
        let d = GenerationDefaults {
            do_sample: true,
            temperature: 0.7,
            top_p: 0.8,
            top_k: 20,
            repetition_penalty: 1.05,
            max_new_tokens: 100,
            eos_token_ids: vec![1, 2],
        };
        let p = d.resolve(&SamplingOverrides {
            temperature: Some(0.0),
            ..Default::default()
        });
        assert_eq!(p.temperature, 0.0);
        assert_eq!(p.repetition_penalty, 1.05);
        assert_eq!(p.top_k, 20);
        let greedy_model = GenerationDefaults::greedy(vec![1]);
        assert_eq!(
            greedy_model
                .resolve(&SamplingOverrides::default())
                .temperature,
            0.0
        );
    }

    #[test]
    fn seeded_sampling_is_reproducible() {
        let logits = Tensor::new(&[1.0f32, 1.1, 0.9, 1.05], &Device::Cpu).unwrap();
        let params = GenerationDefaults::greedy(vec![]).resolve(&SamplingOverrides {
            temperature: Some(1.0),
            seed: Some(7),
            ..Default::default()
        });
        let run = || {
            let mut s = Sampler::new(params.clone());
            (0..16)
                .map(|_| s.sample(&logits, &[]).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }

    fn logits(values: &[f32]) -> Tensor {
        Tensor::new(values, &Device::Cpu).unwrap()
    }

    fn greedy(penalty: f32) -> Sampler {
        Sampler::new(
            GenerationDefaults::greedy(vec![]).resolve(&SamplingOverrides {
                temperature: Some(0.0),
                repetition_penalty: Some(penalty),
                ..Default::default()
            }),
        )
    }

    #[test]
    fn greedy_on_the_device_agrees_with_the_host_on_ties_and_spread() {
        let mut x = 0x1234_5678u64;
        for round in 0..200 {
            // Few distinct values, so maxima repeat often.
            let values: Vec<f32> = (0..97)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((x >> 40) % 7) as f32 - 3.0
                })
                .collect();
            let got = greedy(1.0).sample(&logits(&values), &[]).unwrap();
            assert_eq!(got, argmax_first(&values), "round {round}");
        }
        assert_eq!(
            greedy(1.0)
                .sample(&logits(&[-5.0, -1.0, -1.0]), &[])
                .unwrap(),
            1
        );
    }

    #[test]
    fn the_penalty_on_the_device_matches_the_host_one_step_after_step() {
        let values = [2.0f32, 1.9, -0.5, 1.5, -3.0, 0.0, 1.8];
        let mut sampler = greedy(1.3);
        let mut history = vec![0u32, 4];
        for _ in 0..5 {
            let host =
                candle_transformers::utils::apply_repeat_penalty(&logits(&values), 1.3, &history)
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap();
            let next = sampler.sample(&logits(&values), &history).unwrap();
            assert_eq!(next, argmax_first(&host), "after {history:?}");
            let state = sampler.on_device.as_mut().unwrap();
            let device = state
                .penalise(&logits(&values), &history, 1.3)
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            assert_eq!(device, host, "after {history:?}");
            history.push(next);
        }
        // Penalised once however often seen: 0 (2.0 → 1.54) wins again once
        // 1 (1.9 → 1.46) and 6 (1.8 → 1.38) are penalised too.
        assert_eq!(&history[2..5], &[1, 6, 0]);
    }

    #[test]
    fn top_k_of_one_decodes_greedily() {
        let params = GenerationDefaults::greedy(vec![]).resolve(&SamplingOverrides {
            temperature: Some(0.9),
            top_k: Some(1),
            ..Default::default()
        });
        let values = [0.3f32, 0.31, 0.2];
        let mut s = Sampler::new(params);
        for _ in 0..8 {
            assert_eq!(s.sample(&logits(&values), &[]).unwrap(), 1);
        }
    }
}
