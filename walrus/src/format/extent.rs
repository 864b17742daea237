//! The extent header, at the start of every extent (a multiple of the
//! extent unit inside a segment). An extent belongs to one topic.
//!
//! ```text
//!   0  [u8; 4] magic "WBLK" ("WDED" once recovery cut the extent out)
//!   4  u16     topic name length (1..=255)
//!   6  u16     reserved, 0
//!   8  u64     extent length in bytes (multiple of the extent unit)
//!  16  u64     extent sequence number within the topic
//!  24  u64     sequence number of the first entry in the extent
//!  32  u64     crc64 of bytes 0..32 followed by the topic name
//!  40  ..      topic name (UTF-8); frames start at the next multiple of 8
//! ```
//!
//! The magics keep their historic names ("block" was the old word for an
//! extent): they are on disk, and changing them would change the format.

use super::le::{put_u16, put_u64, u16_at, u64_at};
use super::{align_up, const_assert_layout, ALIGN, MAX_SEQ};
use crate::crc::crc64;
use crate::store::MAX_TOPIC_LEN;

/// The magic of a live extent's header.
pub const EXTENT_MAGIC: [u8; 4] = *b"WBLK";
/// The magic recovery writes over [`EXTENT_MAGIC`] when it cuts an extent out
/// of its topic's chain. The rest of the header is left as it was, so its
/// checksum (computed with `WBLK`) still holds once the magic is read back
/// as `WBLK`.
pub const DEAD_EXTENT_MAGIC: [u8; 4] = *b"WDED";

/// Offset of the magic.
pub const EXTENT_MAGIC_AT: usize = 0;
/// Offset of the topic name length.
pub const EXTENT_TOPIC_LEN_AT: usize = 4;
/// Offset of the extent length.
pub const EXTENT_LEN_AT: usize = 8;
/// Offset of the extent's sequence number within its topic.
pub const EXTENT_SEQ_AT: usize = 16;
/// Offset of the sequence number of the extent's first entry.
pub const EXTENT_FIRST_ENTRY_AT: usize = 24;
/// Offset of the checksum (of the bytes before it, then the topic name).
pub const EXTENT_CRC_AT: usize = 32;
/// Offset of the topic name; also the length of the header's fixed part.
pub const EXTENT_HEADER_FIXED_LEN: usize = 40;

const_assert_layout!(EXTENT_TOPIC_LEN_AT, EXTENT_MAGIC_AT, 4);
const_assert_layout!(EXTENT_LEN_AT, EXTENT_TOPIC_LEN_AT, 4); // length + reserved u16
const_assert_layout!(EXTENT_SEQ_AT, EXTENT_LEN_AT, 8);
const_assert_layout!(EXTENT_FIRST_ENTRY_AT, EXTENT_SEQ_AT, 8);
const_assert_layout!(EXTENT_CRC_AT, EXTENT_FIRST_ENTRY_AT, 8);
const_assert_layout!(EXTENT_HEADER_FIXED_LEN, EXTENT_CRC_AT, 8);

/// The header at the start of every extent. An extent belongs to one topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtentHeader {
    /// The topic the extent belongs to.
    pub topic: String,
    /// The extent's length in bytes, header included.
    pub extent_len: u64,
    /// The extent's sequence number within its topic (0, 1, 2, ...).
    pub extent_seq: u64,
    /// The sequence number of the extent's first entry.
    pub first_entry_seq: u64,
}

impl ExtentHeader {
    /// Bytes from the extent start to the first frame.
    pub fn data_offset(topic_len: usize) -> u64 {
        align_up((EXTENT_HEADER_FIXED_LEN + topic_len) as u64, ALIGN)
    }

    /// The header's bytes, padded to where the first frame starts.
    pub fn encode(&self) -> Vec<u8> {
        let topic = self.topic.as_bytes();
        let mut b = vec![0u8; Self::data_offset(topic.len()) as usize];
        b[EXTENT_MAGIC_AT..EXTENT_MAGIC_AT + 4].copy_from_slice(&EXTENT_MAGIC);
        put_u16(&mut b, EXTENT_TOPIC_LEN_AT, topic.len() as u16);
        put_u64(&mut b, EXTENT_LEN_AT, self.extent_len);
        put_u64(&mut b, EXTENT_SEQ_AT, self.extent_seq);
        put_u64(&mut b, EXTENT_FIRST_ENTRY_AT, self.first_entry_seq);
        let crc = crc64(&[&b[..EXTENT_CRC_AT], topic]);
        put_u64(&mut b, EXTENT_CRC_AT, crc);
        b[EXTENT_HEADER_FIXED_LEN..EXTENT_HEADER_FIXED_LEN + topic.len()].copy_from_slice(topic);
        b
    }

    /// Decodes an extent header from `b`, which starts at the extent and
    /// holds at least `EXTENT_HEADER_FIXED_LEN + MAX_TOPIC_LEN` bytes or runs
    /// to the end of the segment. `room` is the number of bytes from the
    /// extent start to the end of the segment. Returns `None` for anything
    /// that is not a whole, valid header: the magic must be `WBLK`, the topic
    /// length 1..=255 and the name within `b`, the checksum must hold, the
    /// extent length must be a multiple of `unit`, fit in `room` and exceed
    /// the header, both sequence numbers must lie below [`MAX_SEQ`], and the
    /// name must be UTF-8.
    pub fn decode(b: &[u8], room: u64, unit: u64) -> Option<ExtentHeader> {
        if b.len() < EXTENT_HEADER_FIXED_LEN
            || b[EXTENT_MAGIC_AT..EXTENT_MAGIC_AT + 4] != EXTENT_MAGIC
        {
            return None;
        }
        let topic_len = u16_at(b, EXTENT_TOPIC_LEN_AT) as usize;
        let name_at = EXTENT_HEADER_FIXED_LEN;
        if topic_len == 0 || topic_len > MAX_TOPIC_LEN || b.len() < name_at + topic_len {
            return None;
        }
        let topic = &b[name_at..name_at + topic_len];
        if u64_at(b, EXTENT_CRC_AT) != crc64(&[&b[..EXTENT_CRC_AT], topic]) {
            return None;
        }
        let extent_len = u64_at(b, EXTENT_LEN_AT);
        let data_offset = Self::data_offset(topic_len);
        if !extent_len.is_multiple_of(unit) || extent_len > room || extent_len <= data_offset {
            return None;
        }
        let (extent_seq, first_entry_seq) =
            (u64_at(b, EXTENT_SEQ_AT), u64_at(b, EXTENT_FIRST_ENTRY_AT));
        if extent_seq >= MAX_SEQ || first_entry_seq >= MAX_SEQ {
            return None;
        }
        Some(ExtentHeader {
            topic: String::from_utf8(topic.to_vec()).ok()?,
            extent_len,
            extent_seq,
            first_entry_seq,
        })
    }
}
