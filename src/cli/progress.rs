//! Download progress on stderr: a redrawn bar on a terminal, one line per file
//! otherwise (logs, CI).

use std::io::{IsTerminal, Write};
use std::time::Instant;

use crate::human::human_bytes;
use crate::session::DownloadEvent;

const BAR_WIDTH: usize = 24;

pub struct StderrProgress {
    terminal: bool,
    started: Instant,
    drawn: Option<(usize, u64)>,
    bar_shown: bool,
}

impl Default for StderrProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl StderrProgress {
    pub fn new() -> Self {
        StderrProgress {
            terminal: std::io::stderr().is_terminal(),
            started: Instant::now(),
            drawn: None,
            bar_shown: false,
        }
    }

    pub fn handle(&mut self, event: &DownloadEvent) {
        let mut err = std::io::stderr().lock();
        match event {
            DownloadEvent::Started {
                id,
                files,
                total_bytes,
            } => {
                self.started = Instant::now();
                let size = if *total_bytes > 0 {
                    format!(", {}", human_bytes(*total_bytes))
                } else {
                    String::new()
                };
                let _ = writeln!(
                    err,
                    "downloading {id} ({files} file{}{size}) into the Hugging Face cache",
                    if *files == 1 { "" } else { "s" }
                );
            }
            DownloadEvent::Progress {
                file,
                file_index,
                files,
                done_bytes,
                total_bytes,
            } => {
                if !self.terminal {
                    if self.drawn.map(|(i, _)| i) != Some(*file_index) {
                        let _ = writeln!(err, "  [{}/{files}] {file}", file_index + 1);
                    }
                    self.drawn = Some((*file_index, *done_bytes));
                    return;
                }
                // Redraw only when the shown numbers change (tenths of a percent).
                let permille = if *total_bytes > 0 {
                    (done_bytes.saturating_mul(1000) / total_bytes).min(1000)
                } else {
                    done_bytes >> 20
                };
                if self.drawn == Some((*file_index, permille)) {
                    return;
                }
                self.drawn = Some((*file_index, permille));
                let secs = self.started.elapsed().as_secs_f64().max(1e-3);
                let rate = format!("{}/s", human_bytes((*done_bytes as f64 / secs) as u64));
                let line = if *total_bytes > 0 {
                    let filled = (permille as usize * BAR_WIDTH) / 1000;
                    format!(
                        "[{}{}] {:>5.1}% {} of {}  {rate}  {}/{files} {file}",
                        "#".repeat(filled),
                        "-".repeat(BAR_WIDTH - filled),
                        permille as f64 / 10.0,
                        human_bytes(*done_bytes),
                        human_bytes(*total_bytes),
                        file_index + 1,
                    )
                } else {
                    format!(
                        "{}  {rate}  {}/{files} {file}",
                        human_bytes(*done_bytes),
                        file_index + 1
                    )
                };
                let _ = write!(err, "\r\x1b[2K{line}");
                let _ = err.flush();
                self.bar_shown = true;
            }
            DownloadEvent::Finished { dir } => {
                if self.bar_shown {
                    let _ = writeln!(err);
                }
                let _ = writeln!(err, "downloaded to {}", dir.display());
            }
        }
    }
}
