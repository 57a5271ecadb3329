//! Where the commands write their output. A reader that leaves early
//! (`glimpse sessions | head -1`) closes the pipe; the next write then fails
//! with a broken pipe, which ends the command quietly with status 0: the
//! reader has what it wanted, so it is not an error, and a script under
//! `set -o pipefail` goes on. Only writes to stdout count; a broken pipe
//! anywhere else (a download) stays an error.

use std::fmt;
use std::io::{self, Write};

/// Standard output, marking a broken pipe as the reader having left.
pub fn stdout() -> Stdout {
    Stdout(io::stdout().lock())
}

pub struct Stdout(io::StdoutLock<'static>);

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(mark)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(mark)
    }
}

/// The reader of stdout went away.
#[derive(Debug)]
struct ReaderLeft;

impl fmt::Display for ReaderLeft {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the reader of the output went away")
    }
}

impl std::error::Error for ReaderLeft {}

fn mark(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        io::Error::new(io::ErrorKind::BrokenPipe, ReaderLeft)
    } else {
        e
    }
}

/// Whether `e` is a write to [`stdout`] whose reader went away.
pub fn reader_left(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
            .is_some_and(|inner| inner.is::<ReaderLeft>())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_broken_pipe_of_stdout_is_the_reader_leaving() {
        let gone = anyhow::Error::from(mark(io::ErrorKind::BrokenPipe.into()));
        assert!(reader_left(&gone));
        assert!(reader_left(&gone.context("printing the table")));
        let elsewhere = anyhow::Error::from(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(
            !reader_left(&elsewhere),
            "a download's broken pipe is an error"
        );
        let full = anyhow::Error::from(mark(io::Error::other("disk full")));
        assert!(!reader_left(&full));
    }
}
