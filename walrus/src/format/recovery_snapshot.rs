//! The recovery snapshot (`recovery.ckpt`, named for the "recovery
//! checkpoint" it once was): for every live extent, a prefix of its frames
//! known to be durable, so that the next open verifies only what follows.
//!
//! ```text
//!   0  [u8; 8] magic "WALRUSC2"
//!   8  u32     format version (RECOVERY_SNAPSHOT_VERSION)
//!  12  u32     number of extents
//!  16  ..      per extent (40 bytes): u64 segment id, u64 extent start,
//!              u64 end of the vouched frames (file offset), u64 next entry,
//!              u64 flags (bit 0: the extent was sealed, nothing follows)
//!  end u64     crc64 of every byte before it
//! ```

use super::le::{put_u32, put_u64, u32_at, u64_at};
use super::{const_assert_layout, RECOVERY_SNAPSHOT_VERSION};
use crate::crc::crc64;

/// The magic of today's layout. The first layout (`WALRUSRC`, no sealed
/// flag) is ignored where found.
pub const RECOVERY_SNAPSHOT_MAGIC: [u8; 8] = *b"WALRUSC2";

/// Offset of the magic.
pub const SNAPSHOT_MAGIC_AT: usize = 0;
/// Offset of the format version.
pub const SNAPSHOT_VERSION_AT: usize = 8;
/// Offset of the number of extents.
pub const SNAPSHOT_COUNT_AT: usize = 12;
/// Offset of the first extent's entry.
pub const SNAPSHOT_ENTRIES_AT: usize = 16;
/// Bytes of the trailing checksum.
pub const SNAPSHOT_CRC_LEN: usize = 8;

/// Offset, in an entry, of the segment id.
pub const ENTRY_SEGMENT_AT: usize = 0;
/// Offset, in an entry, of the extent's start in the segment.
pub const ENTRY_START_AT: usize = 8;
/// Offset, in an entry, of the file offset where the vouched frames end.
pub const ENTRY_END_OFF_AT: usize = 16;
/// Offset, in an entry, of the sequence number after the vouched entries.
pub const ENTRY_END_SEQ_AT: usize = 24;
/// Offset, in an entry, of the flags.
pub const ENTRY_FLAGS_AT: usize = 32;
/// Length of an entry.
pub const ENTRY_LEN: usize = 40;
/// Flag bit: the extent was sealed (its writer had moved on).
pub const SEALED: u64 = 1;

const_assert_layout!(SNAPSHOT_VERSION_AT, SNAPSHOT_MAGIC_AT, 8);
const_assert_layout!(SNAPSHOT_COUNT_AT, SNAPSHOT_VERSION_AT, 4);
const_assert_layout!(SNAPSHOT_ENTRIES_AT, SNAPSHOT_COUNT_AT, 4);
const_assert_layout!(ENTRY_START_AT, ENTRY_SEGMENT_AT, 8);
const_assert_layout!(ENTRY_END_OFF_AT, ENTRY_START_AT, 8);
const_assert_layout!(ENTRY_END_SEQ_AT, ENTRY_END_OFF_AT, 8);
const_assert_layout!(ENTRY_FLAGS_AT, ENTRY_END_SEQ_AT, 8);
const_assert_layout!(ENTRY_LEN, ENTRY_FLAGS_AT, 8);

/// What the recovery snapshot says of one extent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vouched {
    /// File offset after the last frame vouched for.
    pub end_off: u64,
    /// Sequence number after the last entry vouched for.
    pub end_seq: u64,
    /// The writer had moved on: no frame follows `end_off`.
    pub sealed: bool,
}

/// One entry: (segment id, extent start) and what is vouched for there.
pub type SnapshotEntry = ((u64, u64), Vouched);

/// The file's bytes, entries in the order given.
pub fn encode<'a>(
    entries: impl ExactSizeIterator<Item = (&'a (u64, u64), &'a Vouched)>,
) -> Vec<u8> {
    let mut b = vec![0u8; SNAPSHOT_ENTRIES_AT + entries.len() * ENTRY_LEN];
    b[SNAPSHOT_MAGIC_AT..SNAPSHOT_MAGIC_AT + 8].copy_from_slice(&RECOVERY_SNAPSHOT_MAGIC);
    put_u32(&mut b, SNAPSHOT_VERSION_AT, RECOVERY_SNAPSHOT_VERSION);
    put_u32(&mut b, SNAPSHOT_COUNT_AT, entries.len() as u32);
    for (i, (&(segment, start), v)) in entries.enumerate() {
        let e = &mut b[SNAPSHOT_ENTRIES_AT + i * ENTRY_LEN..][..ENTRY_LEN];
        put_u64(e, ENTRY_SEGMENT_AT, segment);
        put_u64(e, ENTRY_START_AT, start);
        put_u64(e, ENTRY_END_OFF_AT, v.end_off);
        put_u64(e, ENTRY_END_SEQ_AT, v.end_seq);
        put_u64(e, ENTRY_FLAGS_AT, if v.sealed { SEALED } else { 0 });
    }
    let crc = crc64(&[&b]);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// The entries of a whole file, in file order; `None` for anything but an
/// intact file of this layout and version (the caller then scans).
pub fn decode(b: &[u8]) -> Option<Vec<SnapshotEntry>> {
    if b.len() < SNAPSHOT_ENTRIES_AT + SNAPSHOT_CRC_LEN {
        return None;
    }
    let body = &b[..b.len() - SNAPSHOT_CRC_LEN];
    let intact = body[SNAPSHOT_MAGIC_AT..SNAPSHOT_MAGIC_AT + 8] == RECOVERY_SNAPSHOT_MAGIC
        && u32_at(body, SNAPSHOT_VERSION_AT) == RECOVERY_SNAPSHOT_VERSION
        && crc64(&[body]) == u64_at(b, body.len());
    let count = u32_at(body, SNAPSHOT_COUNT_AT) as usize;
    if !intact || body.len() != SNAPSHOT_ENTRIES_AT + count * ENTRY_LEN {
        return None;
    }
    let entries = body[SNAPSHOT_ENTRIES_AT..]
        .chunks_exact(ENTRY_LEN)
        .map(|e| {
            let vouched = Vouched {
                end_off: u64_at(e, ENTRY_END_OFF_AT),
                end_seq: u64_at(e, ENTRY_END_SEQ_AT),
                sealed: u64_at(e, ENTRY_FLAGS_AT) & SEALED != 0,
            };
            (
                (u64_at(e, ENTRY_SEGMENT_AT), u64_at(e, ENTRY_START_AT)),
                vouched,
            )
        });
    Some(entries.collect())
}
