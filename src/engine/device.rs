//! `--device auto|cpu|cuda:N` and `--dtype auto|f32|bf16|f16`.

use std::str::FromStr;

use candle_core::{DType, Device};

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

/// Opens the chosen device. `auto` takes the first CUDA device when this build
/// has CUDA and one is present, the CPU otherwise.
pub fn open_device(choice: DeviceChoice) -> anyhow::Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => {
            if candle_core::utils::cuda_is_available() {
                if let Ok(d) = Device::new_cuda(0) {
                    return Ok(d);
                }
            }
            Ok(Device::Cpu)
        }
        DeviceChoice::Cuda(n) => {
            if !candle_core::utils::cuda_is_available() {
                anyhow::bail!(
                    "this glimpse was built without CUDA; rebuild with `--features cuda` or use --device cpu"
                );
            }
            Device::new_cuda(n).map_err(|e| {
                anyhow::anyhow!(
                    "cannot open CUDA device {n} ({e}); check nvidia-smi or use --device cpu"
                )
            })
        }
    }
}

/// bf16 on CUDA, f32 on the CPU (CPU bf16 matmuls are slow).
pub fn resolve_dtype(choice: DtypeChoice, device: &Device) -> DType {
    match choice {
        DtypeChoice::F32 => DType::F32,
        DtypeChoice::Bf16 => DType::BF16,
        DtypeChoice::F16 => DType::F16,
        DtypeChoice::Auto => {
            if device.is_cuda() {
                DType::BF16
            } else {
                DType::F32
            }
        }
    }
}

pub fn describe_device(device: &Device) -> String {
    match device {
        Device::Cpu => format!(
            "cpu ({} threads)",
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        ),
        Device::Cuda(_) => "cuda".into(),
        Device::Metal(_) => "metal".into(),
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
        assert_eq!(resolve_dtype(DtypeChoice::Auto, &Device::Cpu), DType::F32);
    }
}
