//! CPU facts for the pane and the memory checks: hardware threads, the
//! processor's name, system memory and this process's own resident memory.
//! Read from /proc on Linux; elsewhere only the thread count is known.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuFacts {
    pub threads: usize,
    pub model: Option<String>,
    pub memory_total: Option<u64>,
    /// Memory the kernel could hand out without swapping (MemAvailable).
    pub memory_available: Option<u64>,
    /// Resident memory of this process.
    pub own_resident: Option<u64>,
    /// Highest resident memory of this process so far.
    pub own_peak_resident: Option<u64>,
}

impl CpuFacts {
    /// Used system memory as a fraction of the total, when both are known.
    pub fn memory_fraction(&self) -> Option<f64> {
        match (self.memory_total, self.memory_available) {
            (Some(t), Some(a)) if t > 0 => Some(t.saturating_sub(a) as f64 / t as f64),
            _ => None,
        }
    }
}

pub fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Reads the facts now.
pub fn read_facts() -> CpuFacts {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let meminfo = read("/proc/meminfo");
    let status = read("/proc/self/status");
    let kib = |text: &Option<String>, key: &str| text.as_deref().and_then(|t| kib_field(t, key));
    CpuFacts {
        threads: threads(),
        model: read("/proc/cpuinfo").and_then(|t| cpu_model(&t)),
        memory_total: kib(&meminfo, "MemTotal"),
        memory_available: kib(&meminfo, "MemAvailable"),
        own_resident: kib(&status, "VmRSS"),
        own_peak_resident: kib(&status, "VmHWM"),
    }
}

/// The processor name from /proc/cpuinfo (x86 `model name`, some ARM kernels
/// `Model` or `Hardware`).
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    ["model name", "Model", "Hardware"].iter().find_map(|key| {
        cpuinfo.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k.trim() == *key && !v.trim().is_empty()).then(|| v.trim().to_string())
        })
    })
}

/// A `Key:   123 kB` field of /proc/meminfo or /proc/self/status, in bytes.
pub fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        if k.trim() != key {
            return None;
        }
        let mut parts = v.split_whitespace();
        let n: u64 = parts.next()?.parse().ok()?;
        match parts.next() {
            Some("kB") => Some(n * 1024),
            None => Some(n),
            Some(_) => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_processor_name_on_x86_and_arm() {
        let x86 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13 64-Core Processor\n";
        assert_eq!(
            cpu_model(x86).as_deref(),
            Some("AMD EPYC 7B13 64-Core Processor")
        );
        let arm =
            "processor\t: 0\nBogoMIPS\t: 243.75\n\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n";
        assert_eq!(
            cpu_model(arm).as_deref(),
            Some("Raspberry Pi 5 Model B Rev 1.0")
        );
        assert_eq!(cpu_model("processor\t: 0\n"), None);
    }

    #[test]
    fn reads_kib_fields_in_bytes() {
        let meminfo =
            "MemTotal:       24576000 kB\nMemFree:         1000 kB\nMemAvailable:   12288000 kB\n";
        assert_eq!(kib_field(meminfo, "MemTotal"), Some(24_576_000 * 1024));
        assert_eq!(kib_field(meminfo, "MemAvailable"), Some(12_288_000 * 1024));
        assert_eq!(kib_field(meminfo, "SwapTotal"), None);
        let facts = CpuFacts {
            threads: 2,
            model: None,
            memory_total: kib_field(meminfo, "MemTotal"),
            memory_available: kib_field(meminfo, "MemAvailable"),
            own_resident: None,
            own_peak_resident: None,
        };
        assert_eq!(facts.memory_fraction(), Some(0.5));
    }

    #[test]
    fn this_machine_reports_threads_and_its_own_memory() {
        let f = read_facts();
        assert!(f.threads >= 1);
        if cfg!(target_os = "linux") {
            assert!(f.memory_total.unwrap() > 0);
            assert!(f.own_resident.unwrap() > 0);
            assert!(f.own_peak_resident.unwrap() >= f.own_resident.unwrap());
        }
    }
}
