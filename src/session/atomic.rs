//! Replacing a file so that a crash leaves either the old or the new content,
//! never a mix: write a temporary file in the same folder, flush it to disk,
//! rename it over the target, then flush the folder entry.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// Temporary files start with a dot and end with this, so folder listings can
/// tell them from finished files.
pub const TEMP_SUFFIX: &str = ".tmp";

pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(TEMP_SUFFIX)
}

/// The process that wrote a temporary file: its names are
/// `.TARGET.PID-COUNTER.tmp`.
pub fn writer_pid(name: &str) -> Option<u32> {
    let stem = name.strip_prefix('.')?.strip_suffix(TEMP_SUFFIX)?;
    let (_, tail) = stem.rsplit_once('.')?;
    let (pid, counter) = tail.split_once('-')?;
    counter.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// A folder shared between machines can hold another machine's write in
/// progress, whose pid means nothing here; a write takes milliseconds, so a
/// temporary file this old is no one's.
const STALE_AFTER: Duration = Duration::from_secs(60);

/// Removes the temporary files left in `dir` by writers that died before
/// renaming them (a kill -9 or a power cut mid-save). Files of running
/// writers, recent files and files whose writer cannot be told are kept.
/// Says how many were removed.
pub fn remove_stale_temps(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = writer_pid(&name) else {
            continue;
        };
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age >= STALE_AFTER));
        if old && !is_running(pid) && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Whether process `pid` exists on this machine.
#[cfg(unix)]
fn is_running(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        // 0 and below name process groups, not a writer.
        return true;
    }
    // SAFETY: signal 0 sends nothing; it only asks whether the process exists.
    let found = unsafe { libc::kill(pid, 0) } == 0;
    // EPERM: it exists, under another user.
    found || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(not(unix))]
fn is_running(_pid: u32) -> bool {
    true
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
    fn temporary_names_carry_their_writer() {
        let dir = tempfile::tempdir().unwrap();
        let staged = Staged::write(&dir.path().join("a.b.json"), b"x").unwrap();
        let name = staged.temp_path().file_name().unwrap().to_string_lossy();
        assert_eq!(writer_pid(&name), Some(std::process::id()));
        assert_eq!(writer_pid(".a.json.tmp"), None);
        assert_eq!(writer_pid("a.json"), None);
        assert!(is_running(std::process::id()));
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
