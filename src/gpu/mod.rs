//! The hardware glimpse runs on, observed live: NVIDIA GPUs through NVML
//! (loaded at run time, so a machine without the driver simply has none) and
//! the CPU's facts from the operating system. A sampler thread reads them once
//! a second and keeps a minute of history for the GPU pane and the engine's
//! KV-cache policy.

pub mod cpu;
pub mod nvml;
pub mod pane;
pub mod sampler;

use serde::{Deserialize, Serialize};

pub use cpu::CpuFacts;
pub use nvml::NvmlMonitor;
pub use sampler::{History, Readings, Sampler};

/// One process holding memory on a GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuProcess {
    pub pid: u32,
    /// From the process table; `None` when the process is not visible here
    /// (another container's process, or one that already ended).
    pub name: Option<String>,
    /// `None` where the driver does not report it.
    pub memory_bytes: Option<u64>,
    /// This glimpse process.
    pub is_self: bool,
}

/// One GPU at one moment. Every reading the driver may refuse is optional, so
/// one unsupported counter never hides the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuSample {
    /// NVML's index (PCI bus order).
    pub index: u32,
    pub name: String,
    pub uuid: Option<String>,
    /// CUDA compute capability `(major, minor)`.
    pub compute_capability: Option<(u32, u32)>,
    pub utilization_pct: Option<u32>,
    pub memory_used: u64,
    pub memory_total: u64,
    pub temperature_c: Option<u32>,
    pub power_watts: Option<f64>,
    pub power_limit_watts: Option<f64>,
    pub sm_clock_mhz: Option<u32>,
    pub processes: Vec<GpuProcess>,
}

impl GpuSample {
    pub fn memory_free(&self) -> u64 {
        self.memory_total.saturating_sub(self.memory_used)
    }

    /// Used memory as a fraction of the card's memory (0 for a card reporting none).
    pub fn memory_fraction(&self) -> f64 {
        if self.memory_total == 0 {
            0.0
        } else {
            self.memory_used as f64 / self.memory_total as f64
        }
    }

    /// What this glimpse process holds on the card, when the driver says.
    pub fn own_memory(&self) -> Option<u64> {
        self.processes
            .iter()
            .find(|p| p.is_self)
            .and_then(|p| p.memory_bytes)
    }
}

/// What the GPU side of one sample found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum GpuState {
    Present {
        devices: Vec<GpuSample>,
    },
    /// No usable NVIDIA GPU, and why (no driver library, no device, ...).
    Absent {
        reason: String,
    },
}

impl GpuState {
    pub fn devices(&self) -> &[GpuSample] {
        match self {
            GpuState::Present { devices } => devices,
            GpuState::Absent { .. } => &[],
        }
    }

    pub fn device(&self, index: u32) -> Option<&GpuSample> {
        self.devices().iter().find(|d| d.index == index)
    }
}

/// The narrow interface in front of the GPU driver. [`NvmlMonitor`] is the real
/// one; tests replay recorded states through it where no GPU can exist.
pub trait GpuMonitor: Send {
    /// Reads every device now.
    fn read(&mut self) -> GpuState;
}

/// Everything observed at one tick of the sampler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Tick number since the sampler started.
    pub seq: u64,
    pub gpus: GpuState,
    pub cpu: CpuFacts,
}

/// The one line that says glimpse runs without a GPU.
pub fn no_gpu_line(threads: usize) -> String {
    format!("no NVIDIA GPU found — running on CPU ({threads} threads)")
}

pub use crate::human::GIB;

/// Scripted GPU states for tests: machines without a GPU cannot produce real
/// ones, so they are replayed through the same [`GpuMonitor`] interface.
#[cfg(test)]
pub(crate) mod replay {
    use super::*;

    pub struct Replay {
        states: Vec<GpuState>,
        next: usize,
    }

    impl Replay {
        /// Plays `states` in order, then repeats the last one.
        pub fn new(states: Vec<GpuState>) -> Self {
            Replay { states, next: 0 }
        }
    }

    impl GpuMonitor for Replay {
        fn read(&mut self) -> GpuState {
            let i = self.next.min(self.states.len() - 1);
            self.next += 1;
            self.states[i].clone()
        }
    }

    const GIB: u64 = 1 << 30;

    /// An H100 80GB as NVML describes one, with `used_gib` in use.
    pub fn h100(index: u32, used_gib: f64, util: u32) -> GpuSample {
        GpuSample {
            index,
            name: "NVIDIA H100 80GB HBM3".into(),
            uuid: Some(format!("GPU-0000000{index}-h100")),
            compute_capability: Some((9, 0)),
            utilization_pct: Some(util),
            memory_used: (used_gib * GIB as f64) as u64,
            memory_total: 80 * GIB,
            temperature_c: Some(41),
            power_watts: Some(118.5),
            power_limit_watts: Some(700.0),
            sm_clock_mhz: Some(1980),
            processes: vec![],
        }
    }

    pub fn present(devices: Vec<GpuSample>) -> GpuState {
        GpuState::Present { devices }
    }
}
