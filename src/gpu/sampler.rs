//! A thread that reads the devices once a period, keeps the last minute of
//! samples in shared [`Readings`] and hands each new sample to a callback (the
//! TUI turns it into one of its messages). Stopping wakes the thread at once.

use std::collections::VecDeque;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{cpu, GpuMonitor, Sample};

/// How often the devices are read.
pub const PERIOD: Duration = Duration::from_secs(1);
/// Samples kept: one minute at the default period.
pub const HISTORY_LEN: usize = 60;

/// The most recent samples, oldest first, at most `capacity` of them.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    samples: VecDeque<Sample>,
    capacity: usize,
}

impl History {
    pub fn new(capacity: usize) -> Self {
        History {
            samples: VecDeque::with_capacity(capacity),
            capacity: capacity.max(1),
        }
    }

    pub fn push(&mut self, sample: Sample) {
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    pub fn latest(&self) -> Option<&Sample> {
        self.samples.back()
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn iter(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter()
    }

    /// One value per sample for the GPU with NVML index `index` (samples where it
    /// was missing or the value unknown are skipped), oldest first.
    pub fn series(&self, index: u32, value: impl Fn(&super::GpuSample) -> Option<u64>) -> Vec<u64> {
        self.samples
            .iter()
            .filter_map(|s| s.gpus.device(index).and_then(&value))
            .collect()
    }
}

/// Shared view of the sampler's history; cheap to clone, readable from any thread.
#[derive(Clone)]
pub struct Readings(Arc<Mutex<History>>);

impl Readings {
    pub fn new(capacity: usize) -> Self {
        Readings(Arc::new(Mutex::new(History::new(capacity))))
    }

    fn lock(&self) -> MutexGuard<'_, History> {
        // A panic while holding the lock leaves a history that is still whole.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, sample: Sample) {
        self.lock().push(sample);
    }

    pub fn latest(&self) -> Option<Sample> {
        self.lock().latest().cloned()
    }

    /// A copy of the whole history.
    pub fn history(&self) -> History {
        self.lock().clone()
    }
}

impl std::fmt::Debug for Readings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Readings({} samples)", self.lock().len())
    }
}

/// Turns monitor reads into numbered samples.
struct Ticker {
    monitor: Box<dyn GpuMonitor>,
    seq: u64,
}

impl Ticker {
    fn tick(&mut self) -> Sample {
        let sample = Sample {
            seq: self.seq,
            gpus: self.monitor.read(),
            cpu: cpu::read_facts(),
        };
        self.seq += 1;
        sample
    }
}

/// The running sampler thread. Dropping it stops the thread and waits for it.
pub struct Sampler {
    readings: Readings,
    stop: Option<Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Takes the first sample before returning (so [`Readings::latest`] is
    /// never empty), then samples every `period` on its own thread.
    pub fn start(monitor: Box<dyn GpuMonitor>, period: Duration) -> Sampler {
        Self::start_with(monitor, period, HISTORY_LEN, |_| {})
    }

    /// As [`Sampler::start`], also calling `on_sample` with every sample, the
    /// first one included, on the sampler's thread.
    pub fn start_with(
        monitor: Box<dyn GpuMonitor>,
        period: Duration,
        history: usize,
        mut on_sample: impl FnMut(&Sample) + Send + 'static,
    ) -> Sampler {
        let readings = Readings::new(history);
        let mut ticker = Ticker { monitor, seq: 0 };
        let first = ticker.tick();
        readings.push(first.clone());
        let (stop, stopped) = mpsc::channel::<()>();
        let shared = readings.clone();
        let handle = std::thread::Builder::new()
            .name("glimpse-gpu-sampler".into())
            .spawn(move || {
                on_sample(&first);
                // Ends on a stop request, or when the Sampler is gone.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(period) {
                    let s = ticker.tick();
                    shared.push(s.clone());
                    on_sample(&s);
                }
            })
            .ok();
        Sampler {
            readings,
            stop: Some(stop),
            handle,
        }
    }

    pub fn readings(&self) -> Readings {
        self.readings.clone()
    }

    /// Stops the thread and waits until it has ended.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.shut_down();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::replay::{h100, present, Replay};
    use crate::gpu::{GpuState, Sample};

    fn sample(seq: u64, gpus: GpuState) -> Sample {
        Sample {
            seq,
            gpus,
            cpu: cpu::read_facts(),
        }
    }

    #[test]
    fn samples_round_trip_through_json_for_recording() {
        let mut busy = h100(0, 40.0, 70);
        busy.processes.push(crate::gpu::GpuProcess {
            pid: 7,
            name: Some("glimpse".into()),
            memory_bytes: None,
            is_self: true,
        });
        for gpus in [
            present(vec![busy]),
            GpuState::Absent {
                reason: "no driver".into(),
            },
        ] {
            let s = sample(3, gpus);
            let text = serde_json::to_string(&s).unwrap();
            assert_eq!(serde_json::from_str::<Sample>(&text).unwrap(), s);
        }
    }

    #[test]
    fn history_keeps_only_the_last_minute() {
        let mut h = History::new(HISTORY_LEN);
        for seq in 0..70 {
            h.push(sample(seq, present(vec![h100(0, 1.0, seq as u32)])));
        }
        assert_eq!(h.len(), 60);
        assert_eq!(h.iter().next().unwrap().seq, 10);
        assert_eq!(h.latest().unwrap().seq, 69);
        assert_eq!(
            h.series(0, |d| d.utilization_pct.map(u64::from)),
            (10..70).collect::<Vec<u64>>()
        );
    }

    #[test]
    fn a_series_skips_samples_where_the_gpu_was_missing() {
        let mut h = History::new(8);
        h.push(sample(0, present(vec![h100(0, 8.0, 5), h100(1, 40.0, 90)])));
        h.push(sample(
            1,
            GpuState::Absent {
                reason: "the NVIDIA driver is not loaded".into(),
            },
        ));
        h.push(sample(2, present(vec![h100(1, 60.0, 95)])));
        assert_eq!(h.series(1, |d| d.utilization_pct.map(u64::from)), [90, 95]);
        assert_eq!(h.series(0, |d| d.utilization_pct.map(u64::from)), [5]);
        assert_eq!(
            h.series(7, |d| d.utilization_pct.map(u64::from)),
            [] as [u64; 0]
        );
    }

    #[test]
    fn the_sampler_thread_posts_every_sample_in_order_and_keeps_a_ring() {
        let states: Vec<GpuState> = (0..10)
            .map(|i| present(vec![h100(0, i as f64, 10 * i)]))
            .collect();
        let (tx, rx) = mpsc::channel();
        let sampler = Sampler::start_with(
            Box::new(Replay::new(states)),
            Duration::from_millis(1),
            4,
            move |s: &Sample| {
                let _ = tx.send((s.seq, s.gpus.devices()[0].utilization_pct));
            },
        );
        // A generous guard against a hang, not a timing expectation.
        let guard = Duration::from_secs(60);
        let got: Vec<(u64, Option<u32>)> =
            (0..6).map(|_| rx.recv_timeout(guard).unwrap()).collect();
        sampler.stop();
        assert_eq!(
            got,
            (0..6u64)
                .map(|i| (i, Some(10 * i as u32)))
                .collect::<Vec<_>>()
        );
        // Nothing is posted after stop() returned.
        let after: Vec<_> = rx.try_iter().collect();
        assert!(after.iter().all(|(seq, _)| *seq >= 6));
    }

    /// Counts live monitors so a test can see the thread let go of its own.
    struct Tracked {
        replay: Replay,
        _alive: Arc<()>,
    }
    impl crate::gpu::GpuMonitor for Tracked {
        fn read(&mut self) -> GpuState {
            self.replay.read()
        }
    }

    #[test]
    fn the_first_sample_is_there_at_once_and_stop_ends_the_thread() {
        let alive = Arc::new(());
        let monitor = Tracked {
            replay: Replay::new(vec![GpuState::Absent {
                reason: "the NVIDIA driver library (libnvidia-ml) is not installed".into(),
            }]),
            _alive: alive.clone(),
        };
        // An hour-long period: stop() must wake the thread, not wait it out.
        let sampler = Sampler::start(Box::new(monitor), Duration::from_secs(3600));
        let readings = sampler.readings();
        let first = readings.latest().unwrap();
        assert_eq!(first.seq, 0);
        assert!(matches!(first.gpus, GpuState::Absent { .. }));
        assert!(first.cpu.threads >= 1);
        assert_eq!(Arc::strong_count(&alive), 2);
        sampler.stop();
        assert_eq!(
            Arc::strong_count(&alive),
            1,
            "the sampler thread still runs"
        );
        assert_eq!(readings.history().len(), 1);
    }
}
