//! What the screen says about a model being downloaded from the hub while
//! the chat is already up.

use crate::human::human_bytes;
use crate::session::DownloadEvent;

/// What the screen knows about a download in progress.
#[derive(Debug, Clone, PartialEq)]
pub struct DownloadView {
    pub id: String,
    /// Files to fetch, once the hub has listed them.
    pub files: Option<usize>,
    /// The file being fetched (0-based), once one is.
    pub file_index: Option<usize>,
    pub done_bytes: u64,
    /// 0 when the hub did not give sizes.
    pub total_bytes: u64,
}

impl DownloadView {
    pub fn new(id: impl Into<String>) -> Self {
        DownloadView {
            id: id.into(),
            files: None,
            file_index: None,
            done_bytes: 0,
            total_bytes: 0,
        }
    }

    /// Takes in a progress report (`Finished` is the app's to handle).
    pub fn apply(&mut self, event: &DownloadEvent) {
        match event {
            DownloadEvent::Started {
                id,
                files,
                total_bytes,
            } => {
                self.id = id.clone();
                self.files = Some(*files);
                self.total_bytes = *total_bytes;
            }
            DownloadEvent::Progress {
                file_index,
                files,
                done_bytes,
                total_bytes,
                ..
            } => {
                self.files = Some(*files);
                self.file_index = Some(*file_index);
                self.done_bytes = *done_bytes;
                self.total_bytes = *total_bytes;
            }
            DownloadEvent::Finished { .. } => {}
        }
    }

    /// Whole percent done, when the total is known.
    pub fn percent(&self) -> Option<u64> {
        (self.total_bytes > 0)
            .then(|| (self.done_bytes.saturating_mul(100) / self.total_bytes).min(100))
    }

    /// What is shown where the conversation will be, first line.
    pub fn headline(&self) -> String {
        format!("Downloading {}…", self.id)
    }

    /// How far it got: files, bytes and percent, under the headline.
    pub fn detail(&self) -> String {
        let Some(files) = self.files else {
            return "asking the hub for its files".to_string();
        };
        let Some(index) = self.file_index else {
            let size = if self.total_bytes > 0 {
                format!(", {}", human_bytes(self.total_bytes))
            } else {
                String::new()
            };
            return format!("{files} file{}{size}", if files == 1 { "" } else { "s" });
        };
        let bytes = match self.percent() {
            Some(pct) => format!(
                "{} / {} ({pct}%)",
                human_bytes(self.done_bytes),
                human_bytes(self.total_bytes)
            ),
            None => human_bytes(self.done_bytes),
        };
        format!(
            "file {} of {files} · {bytes}",
            (index + 1).min(files.max(1))
        )
    }

    /// The few words of the status line.
    pub fn status(&self) -> String {
        match self.percent() {
            Some(pct) if self.file_index.is_some() => format!("downloading {pct}%"),
            _ => "downloading".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_reads_file_i_of_n_bytes_and_percent() {
        let mut v = DownloadView::new("Qwen/Qwen3-VL-4B-Instruct");
        assert_eq!(v.headline(), "Downloading Qwen/Qwen3-VL-4B-Instruct…");
        assert_eq!(v.detail(), "asking the hub for its files");
        assert_eq!(v.status(), "downloading");
        v.apply(&DownloadEvent::Started {
            id: "Qwen/Qwen3-VL-4B-Instruct".into(),
            files: 5,
            total_bytes: 8_875_631_616,
        });
        assert_eq!(v.detail(), "5 files, 8.3 GiB");
        v.apply(&DownloadEvent::Progress {
            file: "model-00001-of-00002.safetensors".into(),
            file_index: 3,
            files: 5,
            done_bytes: 1_288_490_189,
            total_bytes: 8_875_631_616,
        });
        assert_eq!(v.detail(), "file 4 of 5 · 1.2 GiB / 8.3 GiB (14%)");
        assert_eq!(v.status(), "downloading 14%");
    }

    #[test]
    fn without_sizes_the_view_shows_bytes_only() {
        let mut v = DownloadView::new("a/b");
        v.apply(&DownloadEvent::Progress {
            file: "config.json".into(),
            file_index: 0,
            files: 1,
            done_bytes: 2048,
            total_bytes: 0,
        });
        assert_eq!(v.detail(), "file 1 of 1 · 2.0 KiB");
        assert_eq!(v.percent(), None);
        assert_eq!(v.status(), "downloading");
    }
}
