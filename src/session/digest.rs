//! The sha256 of an image file, computed when a session is saved and again
//! when it is resumed. A session file names its images by path, and a path
//! can name something that never ends (`/dev/zero`, a named pipe) or never
//! opens (a pipe with no writer): only regular files are read, and only so
//! far.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::human::{hex, human_bytes};

/// Far above any image the decoder accepts, and a bound on the time one
/// image can hold up a save or a resume.
pub const MAX_HASHED_BYTES: u64 = 512 << 20;

/// Lower-case hex sha256 of a regular file's content. Anything else (a
/// device, a pipe, a folder) and files over [`MAX_HASHED_BYTES`] are
/// refused with an error that says which.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let file = open_regular(path)?;
    let too_large = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "it is larger than {}, more than any image",
                human_bytes(MAX_HASHED_BYTES)
            ),
        )
    };
    if file.metadata()?.len() > MAX_HASHED_BYTES {
        return Err(too_large());
    }
    let mut hasher = Sha256::new();
    // The file may grow while it is read.
    let read = io::copy(&mut file.take(MAX_HASHED_BYTES + 1), &mut hasher)?;
    if read > MAX_HASHED_BYTES {
        return Err(too_large());
    }
    Ok(hex(&hasher.finalize()))
}

/// Why something that is not a regular file is not read.
fn not_regular(kind: std::fs::FileType) -> io::Error {
    let what = if kind.is_dir() {
        "a folder"
    } else if is_pipe(kind) {
        "a named pipe"
    } else if is_device(kind) {
        "a device"
    } else {
        "not a regular file"
    };
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("it is {what}, not an image file"),
    )
}

#[cfg(unix)]
fn is_pipe(kind: std::fs::FileType) -> bool {
    use std::os::unix::fs::FileTypeExt;
    kind.is_fifo()
}

#[cfg(unix)]
fn is_device(kind: std::fs::FileType) -> bool {
    use std::os::unix::fs::FileTypeExt;
    kind.is_char_device() || kind.is_block_device()
}

#[cfg(not(unix))]
fn is_pipe(_: std::fs::FileType) -> bool {
    false
}

#[cfg(not(unix))]
fn is_device(_: std::fs::FileType) -> bool {
    false
}

/// Why `path` cannot be an image file ("does not exist", "it is a folder,
/// not an image file", …), or `None` when it is a regular file.
pub fn why_not_a_file(path: &Path) -> Option<String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => None,
        Ok(m) => Some(not_regular(m.file_type()).to_string()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Some("it does not exist".into()),
        Err(e) => Some(format!("it cannot be read ({e})")),
    }
}

/// Opens `path` for reading if it is a regular file, without waiting on it.
fn open_regular(path: &Path) -> io::Result<File> {
    let kind = std::fs::metadata(path)?.file_type();
    if !kind.is_file() {
        return Err(not_regular(kind));
    }
    let mut options = OpenOptions::new();
    options.read(true);
    // A pipe put in the file's place after the look above would block the
    // open until a writer comes; non-blocking, the open returns at once and
    // the second look refuses it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(not_regular(kind));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    #[test]
    fn says_why_a_path_is_not_an_image_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.png");
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(super::why_not_a_file(&file), None);
        assert_eq!(
            super::why_not_a_file(dir.path()).as_deref(),
            Some("it is a folder, not an image file")
        );
        assert_eq!(
            super::why_not_a_file(&dir.path().join("gone.png")).as_deref(),
            Some("it does not exist")
        );
        #[cfg(unix)]
        assert_eq!(
            super::why_not_a_file(std::path::Path::new("/dev/null")).as_deref(),
            Some("it is a device, not an image file")
        );
    }

    use super::*;

    #[test]
    fn a_regular_file_hashes_and_a_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.bin");
        std::fs::write(&file, b"abc").unwrap();
        assert_eq!(
            sha256_file(&file).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let e = sha256_file(dir.path()).unwrap_err();
        assert_eq!(e.to_string(), "it is a folder, not an image file");
        let e = sha256_file(&dir.path().join("gone.png")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
