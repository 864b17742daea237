//! The cursor files: the snapshot (`cursors.snap`, replaced by rename) and
//! the log of updates since it (`cursors-<g>.log`).
//!
//! ```text
//! cursors.snap
//!   0  [u8; 8] magic "WALRUSCS"
//!   8  u32     format version (CURSOR_SNAPSHOT_VERSION)
//!  12  u32     number of cursors
//!  16  u64     generation g (names the log that continues this snapshot)
//!  24  ..      per cursor: u16 topic length, topic bytes, u64 next sequence
//!  end u64     crc64 of every byte before it
//!
//! cursors-<g>.log
//!   0  [u8; 8] magic "WALRUSCL"
//!   8  u32     format version (CURSOR_LOG_VERSION)
//!  12  u32     reserved, 0
//!  16  u64     generation g
//!  24  u64     crc64 of bytes 0..24
//!  32  ..      records: u64 crc64 of the rest, u64 next sequence,
//!              u16 topic length, topic bytes
//! ```

use super::le::{put_u16, put_u32, put_u64, u16_at, u32_at, u64_at};
use super::{const_assert_layout, CURSOR_LOG_VERSION, CURSOR_SNAPSHOT_VERSION};
use crate::crc::crc64;
use crate::store::{Error, Result, MAX_TOPIC_LEN};
use std::collections::HashMap;
use std::path::Path;

/// The magic of the cursor snapshot.
pub const SNAP_MAGIC: [u8; 8] = *b"WALRUSCS";
/// The magic of a cursor log.
pub const LOG_MAGIC: [u8; 8] = *b"WALRUSCL";

/// Offset of a cursor file's magic (snapshot and log alike).
pub const CURSOR_MAGIC_AT: usize = 0;
/// Offset of a cursor file's version (snapshot and log alike).
pub const CURSOR_VERSION_AT: usize = 8;
/// Offset of the snapshot's cursor count.
pub const SNAP_COUNT_AT: usize = 12;
/// Offset of the snapshot's generation.
pub const SNAP_GENERATION_AT: usize = 16;
/// Offset of the snapshot's first cursor.
pub const SNAP_CURSORS_AT: usize = 24;
/// Bytes of the snapshot's trailing checksum.
pub const SNAP_CRC_LEN: usize = 8;
/// The shortest snapshot: no cursor, then the checksum.
pub const SNAP_MIN_LEN: usize = SNAP_CURSORS_AT + SNAP_CRC_LEN;

/// Offset of the log's generation.
pub const LOG_GENERATION_AT: usize = 16;
/// Offset of the log header's checksum (of the bytes before it).
pub const LOG_CRC_AT: usize = 24;
/// Length of the log header; records follow it.
pub const LOG_HEADER_LEN: usize = 32;
/// A log is created at this length, zero-filled, so that appending records
/// to it never needs a new filesystem block: on a full disk, consumers can
/// still move their cursors (and so free the segments they used up). A
/// shorter log was cut.
pub const LOG_BYTES: u64 = 256 << 10;

/// Offset, in a log record, of its checksum (of the rest of the record).
pub const RECORD_CRC_AT: usize = 0;
/// Offset, in a log record, of the next sequence number.
pub const RECORD_SEQ_AT: usize = 8;
/// Offset, in a log record, of the topic length.
pub const RECORD_TOPIC_LEN_AT: usize = 16;
/// Offset, in a log record, of the topic; also its fixed part's length.
pub const RECORD_TOPIC_AT: usize = 18;

const_assert_layout!(CURSOR_VERSION_AT, CURSOR_MAGIC_AT, 8);
const_assert_layout!(SNAP_COUNT_AT, CURSOR_VERSION_AT, 4);
const_assert_layout!(SNAP_GENERATION_AT, SNAP_COUNT_AT, 4);
const_assert_layout!(SNAP_CURSORS_AT, SNAP_GENERATION_AT, 8);
const_assert_layout!(LOG_GENERATION_AT, CURSOR_VERSION_AT, 8); // version + reserved u32
const_assert_layout!(LOG_CRC_AT, LOG_GENERATION_AT, 8);
const_assert_layout!(LOG_HEADER_LEN, LOG_CRC_AT, 8);
const_assert_layout!(RECORD_SEQ_AT, RECORD_CRC_AT, 8);
const_assert_layout!(RECORD_TOPIC_LEN_AT, RECORD_SEQ_AT, 8);
const_assert_layout!(RECORD_TOPIC_AT, RECORD_TOPIC_LEN_AT, 2);

/// The header of log `generation`.
pub fn encode_log_header(generation: u64) -> [u8; LOG_HEADER_LEN] {
    let mut header = [0u8; LOG_HEADER_LEN];
    header[CURSOR_MAGIC_AT..CURSOR_MAGIC_AT + 8].copy_from_slice(&LOG_MAGIC);
    put_u32(&mut header, CURSOR_VERSION_AT, CURSOR_LOG_VERSION);
    put_u64(&mut header, LOG_GENERATION_AT, generation);
    let crc = crc64(&[&header[..LOG_CRC_AT]]);
    put_u64(&mut header, LOG_CRC_AT, crc);
    header
}

/// Whether `b` starts with a whole log header of `generation` whose
/// checksum holds (magic and version are checked apart, by
/// [`check_magic_and_version`]).
pub fn log_header_ok(b: &[u8], generation: u64) -> bool {
    b.len() >= LOG_HEADER_LEN
        && crc64(&[&b[..LOG_CRC_AT]]) == u64_at(b, LOG_CRC_AT)
        && u64_at(b, LOG_GENERATION_AT) == generation
}

/// A log record: `topic`'s next sequence number is `next_seq`.
pub fn encode_record(topic: &str, next_seq: u64) -> Vec<u8> {
    let mut r = vec![0u8; RECORD_TOPIC_AT];
    put_u64(&mut r, RECORD_SEQ_AT, next_seq);
    put_u16(&mut r, RECORD_TOPIC_LEN_AT, topic.len() as u16);
    r.extend_from_slice(topic.as_bytes());
    let crc = crc64(&[&r[RECORD_SEQ_AT..]]);
    put_u64(&mut r, RECORD_CRC_AT, crc);
    r
}

/// The record at `b[at..]`, if a whole valid one starts there: its topic,
/// next sequence number and length.
pub fn record_at(b: &[u8], at: usize) -> Option<(&str, u64, usize)> {
    let head = b.get(at..at + RECORD_TOPIC_AT)?;
    let len = u16_at(head, RECORD_TOPIC_LEN_AT) as usize;
    if len == 0 || len > MAX_TOPIC_LEN {
        return None;
    }
    let record = b.get(at..at + RECORD_TOPIC_AT + len)?;
    if crc64(&[&record[RECORD_SEQ_AT..]]) != u64_at(record, RECORD_CRC_AT) {
        return None;
    }
    let topic = std::str::from_utf8(&record[RECORD_TOPIC_AT..]).ok()?;
    Some((topic, u64_at(record, RECORD_SEQ_AT), RECORD_TOPIC_AT + len))
}

/// The snapshot of `values` for `generation`, cursors sorted by topic.
pub fn encode_snapshot(generation: u64, values: &HashMap<String, u64>) -> Vec<u8> {
    let mut b = vec![0u8; SNAP_CURSORS_AT];
    b[CURSOR_MAGIC_AT..CURSOR_MAGIC_AT + 8].copy_from_slice(&SNAP_MAGIC);
    put_u32(&mut b, CURSOR_VERSION_AT, CURSOR_SNAPSHOT_VERSION);
    put_u32(&mut b, SNAP_COUNT_AT, values.len() as u32);
    put_u64(&mut b, SNAP_GENERATION_AT, generation);
    let mut sorted: Vec<_> = values.iter().collect();
    sorted.sort();
    for (topic, seq) in sorted {
        b.extend_from_slice(&(topic.len() as u16).to_le_bytes());
        b.extend_from_slice(topic.as_bytes());
        b.extend_from_slice(&seq.to_le_bytes());
    }
    let crc = crc64(&[&b]);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

fn corrupt(path: &Path, offset: u64, reason: String) -> Error {
    Error::Corruption {
        file: path.to_owned(),
        offset,
        reason,
    }
}

/// Checks a cursor file's magic and then its version.
pub fn check_magic_and_version(
    b: &[u8],
    magic: &[u8; 8],
    version: u32,
    path: &Path,
    what: &'static str,
) -> Result<()> {
    if b.len() < CURSOR_VERSION_AT + 4 || b[CURSOR_MAGIC_AT..CURSOR_MAGIC_AT + 8] != *magic {
        return Err(Error::BadMagic {
            file: path.to_owned(),
            expected: what,
        });
    }
    let found = u32_at(b, CURSOR_VERSION_AT);
    if found != version {
        return Err(Error::UnsupportedVersion {
            file: path.to_owned(),
            found,
            supported: version,
        });
    }
    Ok(())
}

/// Decodes a whole snapshot file: its generation and cursors. A snapshot
/// is replaced by rename, so it is never torn: any damage is corruption
/// (the checksum is checked first, so only an intact snapshot can claim a
/// newer format).
pub fn decode_snapshot(b: &[u8], path: &Path) -> Result<(u64, HashMap<String, u64>)> {
    if b.len() < SNAP_MIN_LEN {
        return Err(corrupt(path, 0, "truncated cursor snapshot".into()));
    }
    let body = &b[..b.len() - SNAP_CRC_LEN];
    let stored = u64_at(b, body.len());
    let got = crc64(&[body]);
    if stored != got {
        return Err(corrupt(
            path,
            0,
            format!("snapshot checksum {got:#x} != stored {stored:#x}"),
        ));
    }
    let (version, what) = (CURSOR_SNAPSHOT_VERSION, "Walrus cursor snapshot");
    check_magic_and_version(b, &SNAP_MAGIC, version, path, what)?;
    let count = u32_at(body, SNAP_COUNT_AT) as usize;
    let generation = u64_at(body, SNAP_GENERATION_AT);
    let mut values = HashMap::with_capacity(count.min(1 << 16));
    let mut at = SNAP_CURSORS_AT;
    for _ in 0..count {
        let bad = || corrupt(path, at as u64, "cursor entry overruns snapshot".into());
        let len = u16_at(body.get(at..at + 2).ok_or_else(bad)?, 0) as usize;
        let topic = body.get(at + 2..at + 2 + len).ok_or_else(bad)?;
        let seq = u64_at(body.get(at + 2 + len..at + 10 + len).ok_or_else(bad)?, 0);
        let topic = std::str::from_utf8(topic)
            .map_err(|_| corrupt(path, at as u64, "topic is not UTF-8".into()))?;
        values.insert(topic.to_owned(), seq);
        at += 10 + len;
    }
    if at != body.len() {
        return Err(corrupt(
            path,
            at as u64,
            "trailing bytes after cursors".into(),
        ));
    }
    Ok((generation, values))
}
