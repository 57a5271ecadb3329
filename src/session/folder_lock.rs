//! One writer at a time in the session folder. Two chats continuing the same
//! session each look at its file before they replace it; the lock makes the
//! look and the replacement one step, so neither can slip between the
//! other's. It is advisory and taken only around a save, which lasts
//! milliseconds.

use std::fs::File;
use std::path::Path;

/// Held until dropped.
pub struct FolderLock {
    _folder: File,
}

/// Waits for the folder's lock. The lock is on the folder itself, so no
/// extra file appears among the sessions. Where the platform or the file
/// system offers none, saves go on without it: the version check still
/// catches all but two saves in the same instant.
pub fn lock(dir: &Path) -> Option<FolderLock> {
    let folder = File::open(dir).ok()?;
    folder.lock().ok()?;
    Some(FolderLock { _folder: folder })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::fs::TryLockError;

    #[test]
    fn a_second_writer_waits_and_nothing_is_added_to_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path()).expect("folders can be locked here");
        let other = File::open(dir.path()).unwrap();
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
        drop(held);
        other.try_lock().unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
