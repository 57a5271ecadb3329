//! `--kv-cache auto|f16|int8`: how the KV cache stores keys and values, and
//! when `auto` turns it to INT8 (device memory use at or above a threshold,
//! read from the latest sample of the GPU sampler).

use std::str::FromStr;

use crate::gpu::Sample;
use crate::model::kv_cache::KvFormat;

use super::placement::Target;

/// Memory use at which `auto` converts the cache, as a fraction.
pub const DEFAULT_THRESHOLD: f64 = 0.85;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KvCachePolicy {
    /// The model's dtype until device memory use reaches `threshold`, then INT8.
    Auto { threshold: f64 },
    /// Always the model's dtype (`f16` on the command line: 16-bit on CUDA,
    /// where models run in bf16/f16; f32 on the CPU).
    Model,
    /// INT8 from the first token.
    Int8,
}

impl Default for KvCachePolicy {
    fn default() -> Self {
        KvCachePolicy::Auto {
            threshold: DEFAULT_THRESHOLD,
        }
    }
}

impl FromStr for KvCachePolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(KvCachePolicy::default()),
            "f16" | "model" => Ok(KvCachePolicy::Model),
            "int8" => Ok(KvCachePolicy::Int8),
            _ => Err(format!(
                "unknown KV-cache format {s:?}; use auto, f16 (the model's dtype) or int8"
            )),
        }
    }
}

impl KvCachePolicy {
    /// The names of the policies, as the command line and the config file
    /// write them.
    pub const NAMES: [&'static str; 3] = ["auto", "f16", "int8"];

    pub fn initial_format(self) -> KvFormat {
        match self {
            KvCachePolicy::Int8 => KvFormat::Int8,
            _ => KvFormat::Model,
        }
    }

    /// Whether a cache now in `current` should become INT8 at this memory use.
    pub fn should_convert(self, current: KvFormat, memory_fraction: Option<f64>) -> bool {
        match (self, current, memory_fraction) {
            (KvCachePolicy::Auto { threshold }, KvFormat::Model, Some(used)) => used >= threshold,
            _ => false,
        }
    }
}

/// Memory use of the device the model runs on: the GPU's own memory, or the
/// system's for the CPU. `None` when the sample does not say.
pub fn memory_fraction(sample: &Sample, target: Target) -> Option<f64> {
    match target {
        Target::Cpu => sample.cpu.memory_fraction(),
        Target::Cuda { nvml_index, .. } => nvml_index
            .and_then(|i| sample.gpus.device(i))
            .filter(|g| g.memory_total > 0)
            .map(|g| g.memory_fraction()),
    }
}

/// `--kv-threshold 85` (percent) as a fraction.
pub fn parse_threshold(s: &str) -> Result<f64, String> {
    let pct: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("expected a percentage such as 85, got {s:?}"))?;
    if !(1.0..=100.0).contains(&pct) {
        return Err(format!(
            "the threshold must be between 1 and 100 percent, got {pct}"
        ));
    }
    Ok(pct / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::replay::{h100, present};
    use crate::gpu::{cpu::CpuFacts, GpuState};

    fn sample(gpus: GpuState, ram_used_of_100: u64) -> Sample {
        Sample {
            seq: 0,
            gpus,
            cpu: CpuFacts {
                threads: 8,
                model: None,
                memory_total: Some(100 << 30),
                memory_available: Some((100 - ram_used_of_100) << 30),
                own_resident: None,
                own_peak_resident: None,
            },
        }
    }

    #[test]
    fn auto_converts_once_the_models_own_gpu_passes_the_threshold() {
        let on_gpu1 = Target::Cuda {
            ordinal: 0,
            nvml_index: Some(1),
        };
        let auto = KvCachePolicy::default();
        // A recorded run: GPU 1 (the model's) fills up while GPU 0 is already full.
        let recorded = [(60.0, false), (67.0, false), (68.5, true), (75.0, true)];
        for (used_gib, convert) in recorded {
            let s = sample(present(vec![h100(0, 79.0, 100), h100(1, used_gib, 90)]), 10);
            let f = memory_fraction(&s, on_gpu1);
            assert_eq!(
                auto.should_convert(KvFormat::Model, f),
                convert,
                "{used_gib} GiB of 80"
            );
            assert!(!auto.should_convert(KvFormat::Int8, f), "never twice");
            assert!(!KvCachePolicy::Model.should_convert(KvFormat::Model, f));
        }
    }

    #[test]
    fn on_the_cpu_system_memory_counts_and_missing_readings_never_convert() {
        let auto = KvCachePolicy::Auto { threshold: 0.9 };
        let absent = GpuState::Absent {
            reason: "no driver".into(),
        };
        let f = memory_fraction(&sample(absent.clone(), 91), Target::Cpu);
        assert!(auto.should_convert(KvFormat::Model, f));
        let f = memory_fraction(&sample(absent.clone(), 89), Target::Cpu);
        assert!(!auto.should_convert(KvFormat::Model, f));
        // The model's GPU is missing from the sample.
        let gone = Target::Cuda {
            ordinal: 0,
            nvml_index: Some(3),
        };
        let s = sample(present(vec![h100(0, 79.5, 0)]), 99);
        assert_eq!(memory_fraction(&s, gone), None);
        assert!(!auto.should_convert(KvFormat::Model, None));
    }

    #[test]
    fn flags_parse() {
        assert_eq!("f16".parse(), Ok(KvCachePolicy::Model));
        assert_eq!("int8".parse(), Ok(KvCachePolicy::Int8));
        assert_eq!(
            "auto".parse(),
            Ok(KvCachePolicy::Auto {
                threshold: DEFAULT_THRESHOLD
            })
        );
        assert!("fp8".parse::<KvCachePolicy>().unwrap_err().contains("int8"));
        assert_eq!(parse_threshold("90"), Ok(0.9));
        assert_eq!(parse_threshold("72.5%"), Ok(0.725));
        assert!(parse_threshold("0").is_err());
        assert!(parse_threshold("high").is_err());
    }
}
