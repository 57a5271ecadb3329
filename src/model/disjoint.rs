//! A buffer written by the tasks of one parallel pass, each in its own part.

/// The start of an f32 buffer that several threads write at once, each
/// only its own part (rows, columns, panels), so that no two writes meet.
pub(crate) struct DisjointWrites(*mut f32);

// SAFETY: whoever hands it to threads gives each a part of its own; see
// each use.
unsafe impl Send for DisjointWrites {}
unsafe impl Sync for DisjointWrites {}

impl DisjointWrites {
    pub(crate) fn new(start: *mut f32) -> DisjointWrites {
        DisjointWrites(start)
    }

    /// The float `offset` places on. A method, so that closures capture the
    /// whole value rather than its pointer field, which is not `Sync`.
    pub(crate) fn at(&self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}
