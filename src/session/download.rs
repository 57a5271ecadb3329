//! A model the chat downloads from the hub while its screen is already up:
//! what the loader needs to fetch it, and how often its progress is passed on.

use std::time::{Duration, Instant};

use super::{DownloadEvent, HubOptions};

/// A hub id the cache lacks, to be downloaded by the loader thread.
#[derive(Debug, Clone, PartialEq)]
pub struct HubDownload {
    pub id: String,
    pub hub: HubOptions,
}

/// Progress reaches the screen at most this often; the screen draws at
/// most every 33 ms anyway, and a fast link reports far more often.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Lets through the start, the end, the first report of each file and then
/// at most one report per period.
#[derive(Debug, Clone)]
pub struct DownloadThrottle {
    every: Duration,
    last_sent: Option<Instant>,
    file: Option<usize>,
}

impl DownloadThrottle {
    pub fn new(every: Duration) -> Self {
        DownloadThrottle {
            every,
            last_sent: None,
            file: None,
        }
    }

    /// Whether `event`, happening at `now`, should be sent on.
    pub fn admit(&mut self, event: &DownloadEvent, now: Instant) -> bool {
        let DownloadEvent::Progress { file_index, .. } = event else {
            return true;
        };
        let new_file = self.file != Some(*file_index);
        let due = self
            .last_sent
            .is_none_or(|last| now.saturating_duration_since(last) >= self.every);
        if !(new_file || due) {
            return false;
        }
        self.file = Some(*file_index);
        self.last_sent = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(file_index: usize, done_bytes: u64) -> DownloadEvent {
        DownloadEvent::Progress {
            file: format!("f{file_index}"),
            file_index,
            files: 3,
            done_bytes,
            total_bytes: 1 << 30,
        }
    }

    #[test]
    fn the_throttle_lets_one_report_per_period_and_every_new_file_through() {
        let mut t = DownloadThrottle::new(Duration::from_millis(100));
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let started = DownloadEvent::Started {
            id: "a/b".into(),
            files: 3,
            total_bytes: 1 << 30,
        };
        assert!(t.admit(&started, at(0)));
        assert!(t.admit(&progress(0, 0), at(0)));
        assert!(!t.admit(&progress(0, 10), at(50)));
        assert!(!t.admit(&progress(0, 20), at(99)));
        assert!(t.admit(&progress(0, 30), at(100)));
        // A new file shows at once, and starts the period again.
        assert!(t.admit(&progress(1, 40), at(120)));
        assert!(!t.admit(&progress(1, 50), at(180)));
        assert!(t.admit(&progress(1, 60), at(220)));
        // The end always goes through.
        let finished = DownloadEvent::Finished { dir: "/d".into() };
        assert!(t.admit(&finished, at(221)));
    }

    #[test]
    fn a_thousand_reports_in_a_second_become_about_ten() {
        let mut t = DownloadThrottle::new(PROGRESS_EVERY);
        let t0 = Instant::now();
        let sent = (0..1000u64)
            .filter(|ms| t.admit(&progress(0, ms * 1000), t0 + Duration::from_millis(*ms)))
            .count();
        assert_eq!(sent, 10);
    }
}
