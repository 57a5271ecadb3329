//! The real [`GpuMonitor`]: NVIDIA's management library, opened at run time.
//! A machine without the driver library, or with no device, gets a monitor that
//! reports that absence on every read; nothing here fails.

use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{Device, Nvml};

use super::{GpuMonitor, GpuProcess, GpuSample, GpuState};

pub struct NvmlMonitor {
    nvml: Result<Nvml, String>,
    own_pid: u32,
}

impl NvmlMonitor {
    /// Loads the driver library once; its absence is remembered, not returned.
    pub fn open() -> NvmlMonitor {
        NvmlMonitor {
            nvml: Nvml::init().map_err(|e| why_absent(&e)),
            own_pid: std::process::id(),
        }
    }

    /// Why there is no NVIDIA GPU, when the library could not be opened.
    pub fn absence(&self) -> Option<&str> {
        self.nvml.as_ref().err().map(String::as_str)
    }
}

impl GpuMonitor for NvmlMonitor {
    fn read(&mut self) -> GpuState {
        let nvml = match &self.nvml {
            Ok(n) => n,
            Err(reason) => {
                return GpuState::Absent {
                    reason: reason.clone(),
                }
            }
        };
        let count = match nvml.device_count() {
            Ok(0) => {
                return GpuState::Absent {
                    reason: "the NVIDIA driver reports no device".into(),
                }
            }
            Ok(n) => n,
            Err(e) => {
                return GpuState::Absent {
                    reason: why_absent(&e),
                }
            }
        };
        let devices = (0..count)
            .filter_map(|i| nvml.device_by_index(i).ok().map(|d| (i, d)))
            .map(|(i, d)| read_device(i, &d, self.own_pid))
            .collect::<Vec<_>>();
        if devices.is_empty() {
            return GpuState::Absent {
                reason: format!("the NVIDIA driver lists {count} devices but none can be read"),
            };
        }
        GpuState::Present { devices }
    }
}

fn read_device(index: u32, d: &Device, own_pid: u32) -> GpuSample {
    let memory = d.memory_info().ok();
    let mut processes: Vec<GpuProcess> = Vec::new();
    let lists = [
        d.running_compute_processes(),
        d.running_graphics_processes(),
    ];
    for info in lists.into_iter().flatten().flatten() {
        if processes.iter().any(|p| p.pid == info.pid) {
            continue;
        }
        processes.push(GpuProcess {
            pid: info.pid,
            name: process_name(info.pid),
            memory_bytes: match info.used_gpu_memory {
                UsedGpuMemory::Used(b) => Some(b),
                UsedGpuMemory::Unavailable => None,
            },
            is_self: info.pid == own_pid,
        });
    }
    processes.sort_by_key(|p| (!p.is_self, std::cmp::Reverse(p.memory_bytes)));
    GpuSample {
        index,
        name: d.name().unwrap_or_else(|_| format!("GPU {index}")),
        uuid: d.uuid().ok(),
        compute_capability: d
            .cuda_compute_capability()
            .ok()
            .map(|c| (c.major.max(0) as u32, c.minor.max(0) as u32)),
        utilization_pct: d.utilization_rates().ok().map(|u| u.gpu),
        memory_used: memory.as_ref().map(|m| m.used).unwrap_or(0),
        memory_total: memory.as_ref().map(|m| m.total).unwrap_or(0),
        temperature_c: d.temperature(TemperatureSensor::Gpu).ok(),
        power_watts: d.power_usage().ok().map(|mw| mw as f64 / 1000.0),
        power_limit_watts: d.enforced_power_limit().ok().map(|mw| mw as f64 / 1000.0),
        sm_clock_mhz: d.clock_info(Clock::SM).ok(),
        processes,
    }
}

/// The command name of a process, where this machine's process table shows it.
fn process_name(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn why_absent(e: &NvmlError) -> String {
    match e {
        NvmlError::LibloadingError(_) | NvmlError::LibraryNotFound => {
            "the NVIDIA driver library (libnvidia-ml) is not installed".into()
        }
        NvmlError::DriverNotLoaded => "the NVIDIA driver is not loaded".into(),
        NvmlError::NoPermission => "no permission to query the NVIDIA driver".into(),
        other => format!("the NVIDIA driver cannot be queried ({other})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exercises the real library wherever the tests run: on a machine with an
    /// NVIDIA GPU every device must read sensibly, elsewhere the absence must be
    /// a reason, not an error.
    #[test]
    fn the_real_driver_reports_devices_or_a_clear_absence() {
        let mut m = NvmlMonitor::open();
        match m.read() {
            GpuState::Absent { reason } => {
                assert!(!reason.is_empty());
                assert!(!reason.contains('\n'), "{reason}");
                if let Some(why) = m.absence() {
                    assert_eq!(why, reason);
                }
            }
            GpuState::Present { devices } => {
                assert!(m.absence().is_none());
                for d in devices {
                    assert!(!d.name.is_empty());
                    assert!(d.memory_total > 0, "{}: no memory total", d.name);
                    assert!(d.memory_used <= d.memory_total, "{}", d.name);
                    assert!(d.utilization_pct.is_none_or(|u| u <= 100));
                }
            }
        }
    }

    #[test]
    fn absence_reasons_are_sentences_a_user_can_act_on() {
        assert!(why_absent(&NvmlError::DriverNotLoaded).contains("driver is not loaded"));
        assert!(why_absent(&NvmlError::LibraryNotFound).contains("not installed"));
    }
}
