//! Replacing a file so that a crash leaves either the old or the new content,
//! never a mix: write a temporary file in the same folder, flush it to disk,
//! rename it over the target, then flush the folder entry.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Temporary files start with a dot and end with this, so folder listings can
/// tell them from finished files.
pub const TEMP_SUFFIX: &str = ".tmp";

pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(TEMP_SUFFIX)
}

/// Content written to a temporary file beside its target, not yet in place.
/// Dropping it without `commit` removes the temporary file.
pub struct Staged {
    temp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Staged {
    pub fn write(target: &Path, bytes: &[u8]) -> io::Result<Staged> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = target.parent().unwrap_or(Path::new("."));
        let name = target
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
        let temp = dir.join(format!(
            ".{}.{}-{}{TEMP_SUFFIX}",
            name.to_string_lossy(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let staged = Staged {
            temp,
            target: target.to_path_buf(),
            committed: false,
        };
        let mut file = File::create(&staged.temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        Ok(staged)
    }

    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    pub fn commit(mut self) -> io::Result<()> {
        std::fs::rename(&self.temp, &self.target)?;
        self.committed = true;
        sync_dir(self.target.parent().unwrap_or(Path::new(".")));
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Writes `bytes` to `target` atomically.
pub fn write_atomic(target: &Path, bytes: &[u8]) -> io::Result<()> {
    Staged::write(target, bytes)?.commit()
}

/// Makes the rename durable. Not every platform can open a folder; there the
/// rename is still atomic, only its durability across power loss is weaker.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.json");
        write_atomic(&target, b"one").unwrap();
        write_atomic(&target, b"two").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn an_uncommitted_write_leaves_the_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.json");
        write_atomic(&target, b"old").unwrap();
        let staged = Staged::write(&target, b"new").unwrap();
        let temp = staged.temp_path().to_path_buf();
        assert!(is_temp_name(&temp.file_name().unwrap().to_string_lossy()));
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        drop(staged);
        assert!(!temp.exists());
    }
}
