//! `--device auto|cpu|cuda:N` and `--dtype auto|f32|bf16|f16`.

use std::str::FromStr;

use candle_core::{DType, Device};

use super::placement::Target;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| format!("unknown device {s:?}; use auto, cpu or cuda:N")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtypeChoice {
    Auto,
    F32,
    Bf16,
    F16,
}

impl FromStr for DtypeChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DtypeChoice::Auto),
            "f32" | "float32" => Ok(DtypeChoice::F32),
            "bf16" | "bfloat16" => Ok(DtypeChoice::Bf16),
            "f16" | "float16" => Ok(DtypeChoice::F16),
            _ => Err(format!("unknown dtype {s:?}; use auto, f32, bf16 or f16")),
        }
    }
}

/// Opens a placed device.
pub fn open_device(target: Target) -> anyhow::Result<Device> {
    match target {
        Target::Cpu => Ok(Device::Cpu),
        Target::Cuda { ordinal: n, .. } => {
            if !candle_core::utils::cuda_is_available() {
                anyhow::bail!(
                    "this glimpse was built without CUDA; rebuild with `--features cuda` or use --device cpu"
                );
            }
            Device::new_cuda(n).map_err(|e| {
                anyhow::anyhow!(
                    "cannot open CUDA device {n} ({}); check nvidia-smi or use --device cpu",
                    crate::model::without_backtrace(&e)
                )
            })
        }
    }
}

pub fn describe_device(target: Target) -> String {
    match target {
        Target::Cpu => format!("cpu ({} threads)", crate::gpu::cpu::threads()),
        Target::Cuda { ordinal, .. } => format!("cuda:{ordinal}"),
    }
}

pub fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "f32",
        DType::BF16 => "bf16",
        DType::F16 => "f16",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_and_dtype_flags() {
        assert_eq!("cuda:1".parse::<DeviceChoice>(), Ok(DeviceChoice::Cuda(1)));
        assert_eq!("cpu".parse::<DeviceChoice>(), Ok(DeviceChoice::Cpu));
        assert!("gpu"
            .parse::<DeviceChoice>()
            .unwrap_err()
            .contains("cuda:N"));
        assert_eq!("bf16".parse::<DtypeChoice>(), Ok(DtypeChoice::Bf16));
        assert_eq!(describe_device(Target::Cpu).split(' ').next(), Some("cpu"));
    }
}
