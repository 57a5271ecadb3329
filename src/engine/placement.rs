//! Where a model goes and in which dtype, decided from the memory estimate and
//! the GPUs' latest state before anything is loaded. `auto` takes the CUDA
//! device with the most free memory that fits; otherwise the CPU, saying why.
//! An explicit CUDA device that cannot hold the model is refused with the
//! numbers and the ways out.

use candle_core::DType;

use super::device::{DeviceChoice, DtypeChoice};
use super::estimate::MemoryEstimate;
use crate::gpu::{no_gpu_line, GpuSample, GpuState};
use crate::human::gib;

/// A device glimpse can open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Cpu,
    Cuda {
        ordinal: usize,
        /// The same card in NVML's numbering, when NVML sees it.
        nvml_index: Option<u32>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub target: Target,
    pub dtype: DType,
    pub estimate: MemoryEstimate,
    /// A line the user should see (for example why a GPU was not used).
    pub notice: Option<String>,
}

/// Facts about this process the decision needs.
#[derive(Debug, Clone)]
pub struct Host<'a> {
    pub gpus: &'a GpuState,
    /// Whether this build has candle's CUDA backend.
    pub cuda_built: bool,
    pub cpu_threads: usize,
    pub cpu_available: Option<u64>,
    /// `CUDA_VISIBLE_DEVICES`.
    pub visible_devices: Option<&'a str>,
}

/// dtype `auto`: bf16 from compute capability 8 (Ampere) on, f16 below, bf16
/// when the capability is unknown; f32 on the CPU.
pub fn auto_dtype(target: Target, compute_capability: Option<(u32, u32)>) -> DType {
    match target {
        Target::Cpu => DType::F32,
        Target::Cuda { .. } => match compute_capability {
            Some((major, _)) if major < 8 => DType::F16,
            _ => DType::BF16,
        },
    }
}

fn resolve(choice: DtypeChoice, target: Target, cc: Option<(u32, u32)>) -> DType {
    match choice {
        DtypeChoice::Auto => auto_dtype(target, cc),
        DtypeChoice::F32 => DType::F32,
        DtypeChoice::Bf16 => DType::BF16,
        DtypeChoice::F16 => DType::F16,
    }
}

/// CUDA ordinals and the NVML device behind each. CUDA numbers the devices
/// that `CUDA_VISIBLE_DEVICES` lists, in its order (indices or UUID prefixes,
/// stopping at the first entry that names nothing), or all of them in PCI
/// order (glimpse sets `CUDA_DEVICE_ORDER=PCI_BUS_ID`), as NVML does.
pub fn cuda_devices<'a>(
    visible: Option<&str>,
    gpus: &'a [GpuSample],
) -> Vec<(usize, &'a GpuSample)> {
    let Some(list) = visible.map(str::trim) else {
        return gpus.iter().enumerate().collect();
    };
    let mut out = Vec::new();
    for entry in list.split(',').map(str::trim) {
        let found = match entry.parse::<u32>() {
            Ok(i) => gpus.iter().find(|g| g.index == i),
            Err(_) if !entry.is_empty() => gpus.iter().find(|g| {
                g.uuid.as_deref().is_some_and(|u| {
                    u.starts_with(entry)
                        || u.strip_prefix("GPU-").is_some_and(|s| s.starts_with(entry))
                })
            }),
            Err(_) => None,
        };
        match found {
            Some(g) => out.push((out.len(), g)),
            None => break,
        }
    }
    out
}

pub fn place(
    device: DeviceChoice,
    dtype: DtypeChoice,
    host: &Host,
    estimate_for: impl Fn(DType, bool) -> MemoryEstimate,
) -> anyhow::Result<Placement> {
    let devices = cuda_devices(host.visible_devices, host.gpus.devices());
    match device {
        DeviceChoice::Cpu => Ok(on_cpu(dtype, host, &estimate_for, None)),
        DeviceChoice::Cuda(n) => on_named_gpu(n, dtype, host, &devices, &estimate_for),
        DeviceChoice::Auto => Ok(auto_placement(dtype, host, &devices, &estimate_for)),
    }
}

/// The CPU, with `notice` (why not a GPU) and a warning when the model will
/// not fit in the free system memory.
fn on_cpu(
    dtype: DtypeChoice,
    host: &Host,
    estimate_for: &impl Fn(DType, bool) -> MemoryEstimate,
    notice: Option<String>,
) -> Placement {
    let dtype = resolve(dtype, Target::Cpu, None);
    let estimate = estimate_for(dtype, false);
    let notice = match (notice, host.cpu_available) {
        (n, Some(avail)) if estimate.total_bytes > avail => Some(format!(
            "{}the model needs about {} but only {} of system memory is free; expect swapping, or lower --max-context",
            n.map(|n| format!("{n}; ")).unwrap_or_default(),
            gib(estimate.total_bytes),
            gib(avail)
        )),
        (n, _) => n,
    };
    Placement {
        target: Target::Cpu,
        dtype,
        estimate,
        notice,
    }
}

/// `--device cuda:N`: that GPU or an error saying why not.
fn on_named_gpu(
    n: usize,
    dtype: DtypeChoice,
    host: &Host,
    devices: &[(usize, &GpuSample)],
    estimate_for: &impl Fn(DType, bool) -> MemoryEstimate,
) -> anyhow::Result<Placement> {
    if !host.cuda_built {
        anyhow::bail!(
            "this glimpse was built without CUDA; rebuild with `--features cuda` or use --device cpu"
        );
    }
    let card = devices.iter().find(|(o, _)| *o == n).map(|(_, g)| *g);
    let target = Target::Cuda {
        ordinal: n,
        nvml_index: card.map(|g| g.index),
    };
    let dtype = resolve(dtype, target, card.and_then(|g| g.compute_capability));
    let estimate = estimate_for(dtype, true);
    if let Some(g) = card {
        if estimate.total_bytes > g.memory_free() {
            anyhow::bail!(
                "the model needs about {} on cuda:{n} ({}) but only {} of {} is free; use a smaller model, lower --max-context, or --device cpu",
                estimate.summary(),
                g.name,
                gib(g.memory_free()),
                gib(g.memory_total)
            );
        }
    }
    Ok(Placement {
        target,
        dtype,
        estimate,
        notice: None,
    })
}

/// `--device auto`: the GPU with the most free memory that holds the model,
/// else the CPU, saying why.
fn auto_placement(
    dtype: DtypeChoice,
    host: &Host,
    devices: &[(usize, &GpuSample)],
    estimate_for: &impl Fn(DType, bool) -> MemoryEstimate,
) -> Placement {
    if devices.is_empty() {
        return on_cpu(
            dtype,
            host,
            estimate_for,
            Some(no_gpu_line(host.cpu_threads)),
        );
    }
    if !host.cuda_built {
        let why = format!(
            "this glimpse was built without CUDA — running on CPU ({} threads); rebuild with --features cuda to use the {}",
            host.cpu_threads, devices[0].1.name
        );
        return on_cpu(dtype, host, estimate_for, Some(why));
    }
    if let Some(placement) = roomiest_that_fits(dtype, devices, estimate_for) {
        return placement;
    }
    let (ordinal, roomiest) = devices
        .iter()
        .max_by_key(|(_, g)| g.memory_free())
        .copied()
        .expect("at least one device");
    let target = Target::Cuda {
        ordinal,
        nvml_index: None,
    };
    let need = estimate_for(resolve(dtype, target, roomiest.compute_capability), true);
    let why = format!(
        "no GPU has room for the model (it needs about {}; cuda:{ordinal} has {} free) — running on CPU ({} threads)",
        gib(need.total_bytes),
        gib(roomiest.memory_free()),
        host.cpu_threads
    );
    on_cpu(dtype, host, estimate_for, Some(why))
}

fn roomiest_that_fits(
    dtype: DtypeChoice,
    devices: &[(usize, &GpuSample)],
    estimate_for: &impl Fn(DType, bool) -> MemoryEstimate,
) -> Option<Placement> {
    let mut best: Option<(&GpuSample, Placement)> = None;
    for &(ordinal, g) in devices {
        let target = Target::Cuda {
            ordinal,
            nvml_index: Some(g.index),
        };
        let dtype = resolve(dtype, target, g.compute_capability);
        let estimate = estimate_for(dtype, true);
        let better = best
            .as_ref()
            .is_none_or(|(b, _)| g.memory_free() > b.memory_free());
        if estimate.total_bytes <= g.memory_free() && better {
            let placement = Placement {
                target,
                dtype,
                estimate,
                notice: None,
            };
            best = Some((g, placement));
        }
    }
    best.map(|(_, placement)| placement)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::replay::{h100, present};
    use crate::model::kv_cache::KvFormat;

    const GIB: u64 = 1 << 30;

    /// A model needing 10 GiB in a 16-bit dtype, 20 GiB in f32.
    fn estimate_for(dtype: DType, cuda: bool) -> MemoryEstimate {
        let total = 10 * GIB * dtype.size_in_bytes() as u64 / 2;
        MemoryEstimate {
            total_bytes: total,
            weights_bytes: total / 2,
            kv_cache_bytes: total / 4,
            vision_bytes: total / 8,
            prefill_bytes: total / 4,
            runtime_bytes: if cuda { 512 << 20 } else { 0 },
            dtype: super::super::device::dtype_name(dtype),
            quant: "none",
            kv_cache: KvFormat::Model,
            context_tokens: 32_768,
            largest_image: [1988, 1988],
        }
    }

    fn host(gpus: &GpuState) -> Host<'_> {
        Host {
            gpus,
            cuda_built: true,
            cpu_threads: 16,
            cpu_available: Some(100 * GIB),
            visible_devices: None,
        }
    }

    #[test]
    fn auto_takes_the_fitting_gpu_with_the_most_free_memory() {
        // Recorded: GPU 0 nearly full, GPU 1 half full, GPU 2 lightly used.
        let gpus = present(vec![h100(0, 75.0, 99), h100(1, 40.0, 60), h100(2, 12.0, 5)]);
        let p = place(
            DeviceChoice::Auto,
            DtypeChoice::Auto,
            &host(&gpus),
            estimate_for,
        )
        .unwrap();
        assert_eq!(
            p.target,
            Target::Cuda {
                ordinal: 2,
                nvml_index: Some(2)
            }
        );
        assert_eq!(p.dtype, DType::BF16);
        assert_eq!(p.notice, None);
        assert_eq!(p.estimate.total_bytes, 10 * GIB);
    }

    #[test]
    fn auto_falls_back_to_the_cpu_with_the_numbers_when_no_gpu_has_room() {
        let gpus = present(vec![h100(0, 75.0, 99), h100(1, 72.5, 60)]);
        let p = place(
            DeviceChoice::Auto,
            DtypeChoice::Auto,
            &host(&gpus),
            estimate_for,
        )
        .unwrap();
        assert_eq!(p.target, Target::Cpu);
        assert_eq!(p.dtype, DType::F32);
        let notice = p.notice.unwrap();
        assert!(notice.contains("needs about 10.0 GiB"), "{notice}");
        assert!(notice.contains("cuda:1 has 7.5 GiB free"), "{notice}");
        assert!(notice.contains("running on CPU (16 threads)"), "{notice}");
    }

    #[test]
    fn without_a_gpu_auto_says_it_runs_on_the_cpu() {
        let none = GpuState::Absent {
            reason: "the NVIDIA driver library (libnvidia-ml) is not installed".into(),
        };
        let p = place(
            DeviceChoice::Auto,
            DtypeChoice::Auto,
            &host(&none),
            estimate_for,
        )
        .unwrap();
        assert_eq!(p.target, Target::Cpu);
        assert_eq!(
            p.notice.as_deref(),
            Some("no NVIDIA GPU found — running on CPU (16 threads)")
        );
        // A CPU build on a GPU machine says why the GPU is not used.
        let gpus = present(vec![h100(0, 1.0, 0)]);
        let cpu_build = Host {
            cuda_built: false,
            ..host(&gpus)
        };
        let p = place(
            DeviceChoice::Auto,
            DtypeChoice::Auto,
            &cpu_build,
            estimate_for,
        )
        .unwrap();
        assert_eq!(p.target, Target::Cpu);
        assert!(p.notice.unwrap().contains("built without CUDA"));
        let e = place(
            DeviceChoice::Cuda(0),
            DtypeChoice::Auto,
            &cpu_build,
            estimate_for,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("--features cuda"), "{e}");
    }

    #[test]
    fn a_chosen_gpu_without_room_is_refused_with_the_ways_out() {
        let gpus = present(vec![h100(0, 12.0, 5), h100(1, 74.0, 80)]);
        let e = place(
            DeviceChoice::Cuda(1),
            DtypeChoice::Auto,
            &host(&gpus),
            estimate_for,
        )
        .unwrap_err()
        .to_string();
        for part in [
            "needs about 10.0 GiB",
            "cuda:1 (NVIDIA H100 80GB HBM3)",
            "only 6.0 GiB of 80.0 GiB is free",
            "smaller model",
            "--max-context",
            "--device cpu",
        ] {
            assert!(e.contains(part), "{part:?} missing from: {e}");
        }
        let p = place(
            DeviceChoice::Cuda(0),
            DtypeChoice::Auto,
            &host(&gpus),
            estimate_for,
        )
        .unwrap();
        assert_eq!(
            p.target,
            Target::Cuda {
                ordinal: 0,
                nvml_index: Some(0)
            }
        );
    }

    #[test]
    fn the_auto_dtype_follows_the_compute_capability() {
        let mut t4 = h100(0, 1.0, 0);
        t4.name = "Tesla T4".into();
        t4.compute_capability = Some((7, 5));
        let gpus = present(vec![t4]);
        let p = place(
            DeviceChoice::Auto,
            DtypeChoice::Auto,
            &host(&gpus),
            estimate_for,
        )
        .unwrap();
        assert_eq!(p.dtype, DType::F16);
        let a100 = Target::Cuda {
            ordinal: 0,
            nvml_index: None,
        };
        assert_eq!(auto_dtype(a100, Some((8, 0))), DType::BF16);
        assert_eq!(auto_dtype(a100, None), DType::BF16);
        assert_eq!(auto_dtype(Target::Cpu, Some((9, 0))), DType::F32);
        // An explicit f32 on the GPU needs twice the memory: 20 GiB.
        let p = place(
            DeviceChoice::Auto,
            DtypeChoice::F32,
            &host(&gpus),
            estimate_for,
        )
        .unwrap();
        assert_eq!(p.estimate.total_bytes, 20 * GIB);
    }

    #[test]
    fn cuda_visible_devices_renumbers_the_cards() {
        let cards = vec![h100(0, 1.0, 0), h100(1, 1.0, 0), h100(2, 1.0, 0)];
        let map = |v: Option<&str>| -> Vec<(usize, u32)> {
            cuda_devices(v, &cards)
                .into_iter()
                .map(|(o, g)| (o, g.index))
                .collect()
        };
        assert_eq!(map(None), [(0, 0), (1, 1), (2, 2)]);
        assert_eq!(map(Some("2,0")), [(0, 2), (1, 0)]);
        assert_eq!(map(Some("GPU-00000001")), [(0, 1)]);
        // CUDA stops at the first entry that names no device.
        assert_eq!(map(Some("1,7,0")), [(0, 1)]);
        assert_eq!(map(Some("")), []);
        // auto with only the second card visible: it is cuda:0.
        let gpus = present(vec![h100(0, 70.0, 0), h100(1, 1.0, 0)]);
        let h = Host {
            visible_devices: Some("1"),
            ..host(&gpus)
        };
        let p = place(DeviceChoice::Auto, DtypeChoice::Auto, &h, estimate_for).unwrap();
        assert_eq!(
            p.target,
            Target::Cuda {
                ordinal: 0,
                nvml_index: Some(1)
            }
        );
    }

    #[test]
    fn on_the_cpu_a_model_bigger_than_free_memory_gets_a_warning_not_a_refusal() {
        let none = GpuState::Absent {
            reason: "--device cpu".into(),
        };
        let small = Host {
            cpu_available: Some(8 * GIB),
            ..host(&none)
        };
        let p = place(DeviceChoice::Cpu, DtypeChoice::Auto, &small, estimate_for).unwrap();
        assert_eq!(p.target, Target::Cpu);
        let n = p.notice.unwrap();
        assert!(
            n.contains("needs about 20.0 GiB") && n.contains("8.0 GiB"),
            "{n}"
        );
    }
}
