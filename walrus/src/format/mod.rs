//! Byte layouts of every file Walrus writes, in one place. `docs/format.md`
//! is the prose version of this module tree, and a test
//! (`format::tests::docs_tables_match_the_constants`) checks its field
//! tables against the offset constants here.
//!
//! | module | file kind | magic | version constant |
//! |---|---|---|---|
//! | [`segment`] | segment header, `seg-<id>.wal` | `WALRUSSG` | [`SEGMENT_VERSION`] |
//! | [`extent`] | extent header, inside a segment | `WBLK` (`WDED` when cut out) | the segment's |
//! | [`frame`] | frame (one append or batch), inside an extent | none | the segment's |
//! | [`cursor`] | cursor snapshot `cursors.snap` | `WALRUSCS` | [`CURSOR_SNAPSHOT_VERSION`] |
//! | [`cursor`] | cursor log `cursors-<g>.log` | `WALRUSCL` | [`CURSOR_LOG_VERSION`] |
//! | [`recovery_snapshot`] | recovery snapshot `recovery.ckpt` | `WALRUSC2` | [`RECOVERY_SNAPSHOT_VERSION`] |
//!
//! Each file kind that has a header has a version of its own, checked only
//! after the header's checksum holds (so a damaged version field is damage,
//! not a newer format). Extents and frames live inside a segment and carry
//! no version: the segment's version covers them. All versions are 1 today.
//! The recovery snapshot changed its layout once within version 1, by a new
//! magic (`WALRUSRC` to `WALRUSC2`) rather than a new version: an engine
//! meeting a magic it does not know ignores the file and scans, which is
//! what a version bump would have cost too.
//!
//! All integers are little-endian and read and written through one helper
//! ([`le`], the contract crate's). Every structure carries a crc64
//! (CRC-64/XZ, `crate::crc`), so nothing read back is trusted before it is
//! checked, and every length read from disk is bounded before it is used.
//! Offsets are named constants (`*_AT`), and const assertions tie each
//! header's length to its last field.

pub mod cursor;
pub mod extent;
pub mod frame;
pub mod recovery_snapshot;
pub mod segment;
#[cfg(test)]
mod tests;

pub use walrus_store::le;

pub use extent::*;
pub use frame::*;
pub use segment::*;

/// Every frame and extent payload starts on a multiple of this.
pub const ALIGN: u64 = 8;
/// Sequence numbers (of entries and of a topic's extents) and segment ids
/// read from disk must lie below this. A real log takes centuries to get
/// near it; a value above it is damage, and refusing it keeps the `+ 1`s
/// and `+= count`s that recovery does on such values from overflowing.
pub const MAX_SEQ: u64 = 1 << 62;

/// `n` rounded up to a multiple of `to`.
pub fn align_up(n: u64, to: u64) -> u64 {
    n.div_ceil(to) * to
}

/// The segment header's version. Extents and frames, which live inside a
/// segment, are covered by it.
pub const SEGMENT_VERSION: u32 = 1;
/// The cursor snapshot's version.
pub const CURSOR_SNAPSHOT_VERSION: u32 = 1;
/// The cursor log's version.
pub const CURSOR_LOG_VERSION: u32 = 1;
/// The recovery snapshot's version (its layout changed once within it, by
/// a new magic: see the module doc).
pub const RECOVERY_SNAPSHOT_VERSION: u32 = 1;

/// Asserts at compile time that `$len` is `$last + $size`: a header's length
/// ends exactly at its last field.
macro_rules! const_assert_layout {
    ($len:expr, $last:expr, $size:expr) => {
        const _: () = assert!($len == $last + $size);
    };
}
pub(crate) use const_assert_layout;
