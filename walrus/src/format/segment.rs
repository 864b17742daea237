//! The segment header: the first 64 bytes of `seg-<id>.wal`.
//!
//! ```text
//!   0  [u8; 8] magic "WALRUSSG"
//!   8  u32     format version (SEGMENT_VERSION)
//!  12  u32     reserved, 0
//!  16  u64     segment id
//!  24  u64     segment size in bytes
//!  32  u64     extent unit in bytes (extents start on multiples of it)
//!  40  [u8;16] reserved, 0
//!  56  u64     crc64 of bytes 0..56
//! ```

use super::le::{put_u32, put_u64, u32_at, u64_at};
use super::{const_assert_layout, SEGMENT_VERSION};
use crate::crc::crc64;
use crate::store::{Error, Result};
use std::path::Path;

/// The magic a segment file starts with.
pub const SEGMENT_MAGIC: [u8; 8] = *b"WALRUSSG";
/// Extents start on multiples of this, and the first one at this offset:
/// the segment header owns the first unit.
pub const EXTENT_UNIT: u64 = 4096;

/// Offset of the magic.
pub const SEGMENT_MAGIC_AT: usize = 0;
/// Offset of the format version.
pub const SEGMENT_VERSION_AT: usize = 8;
/// Offset of the segment id.
pub const SEGMENT_ID_AT: usize = 16;
/// Offset of the segment size.
pub const SEGMENT_SIZE_AT: usize = 24;
/// Offset of the extent unit.
pub const SEGMENT_UNIT_AT: usize = 32;
/// Offset of the header checksum, which covers every byte before it.
pub const SEGMENT_CRC_AT: usize = 56;
/// Length of the segment header.
pub const SEGMENT_HEADER_LEN: usize = 64;

const_assert_layout!(SEGMENT_VERSION_AT, SEGMENT_MAGIC_AT, 8);
const_assert_layout!(SEGMENT_ID_AT, SEGMENT_VERSION_AT, 8); // version + reserved u32
const_assert_layout!(SEGMENT_SIZE_AT, SEGMENT_ID_AT, 8);
const_assert_layout!(SEGMENT_UNIT_AT, SEGMENT_SIZE_AT, 8);
const_assert_layout!(SEGMENT_CRC_AT, SEGMENT_UNIT_AT + 8, 16); // reserved [u8; 16]
const_assert_layout!(SEGMENT_HEADER_LEN, SEGMENT_CRC_AT, 8);
const _: () = assert!(SEGMENT_HEADER_LEN as u64 <= EXTENT_UNIT);

/// The first 64 bytes of a segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The segment id (equals the id in the file name).
    pub id: u64,
    /// The segment size in bytes (equals the file length).
    pub size_bytes: u64,
    /// The extent unit in bytes.
    pub extent_unit_bytes: u64,
}

impl SegmentHeader {
    /// The header's bytes.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        b[SEGMENT_MAGIC_AT..SEGMENT_MAGIC_AT + 8].copy_from_slice(&SEGMENT_MAGIC);
        put_u32(&mut b, SEGMENT_VERSION_AT, SEGMENT_VERSION);
        put_u64(&mut b, SEGMENT_ID_AT, self.id);
        put_u64(&mut b, SEGMENT_SIZE_AT, self.size_bytes);
        put_u64(&mut b, SEGMENT_UNIT_AT, self.extent_unit_bytes);
        let crc = crc64(&[&b[..SEGMENT_CRC_AT]]);
        put_u64(&mut b, SEGMENT_CRC_AT, crc);
        b
    }

    /// Decodes and checks a segment header. `Ok(None)` means the header is all
    /// zeros: the file was created but its header never reached the disk.
    pub fn decode(b: &[u8; SEGMENT_HEADER_LEN], file: &Path) -> Result<Option<SegmentHeader>> {
        if b.iter().all(|&x| x == 0) {
            return Ok(None);
        }
        if b[SEGMENT_MAGIC_AT..SEGMENT_MAGIC_AT + 8] != SEGMENT_MAGIC {
            return Err(Error::BadMagic {
                file: file.into(),
                expected: "Walrus segment",
            });
        }
        // The checksum first: a damaged version field is damage, and only a
        // header that checks out can claim a newer format.
        let (expected, got) = (u64_at(b, SEGMENT_CRC_AT), crc64(&[&b[..SEGMENT_CRC_AT]]));
        if expected != got {
            return Err(Error::Corruption {
                file: file.into(),
                offset: 0,
                reason: format!("segment header checksum {got:#x} != stored {expected:#x}"),
            });
        }
        let version = u32_at(b, SEGMENT_VERSION_AT);
        if version != SEGMENT_VERSION {
            return Err(Error::UnsupportedVersion {
                file: file.into(),
                found: version,
                supported: SEGMENT_VERSION,
            });
        }
        let header = SegmentHeader {
            id: u64_at(b, SEGMENT_ID_AT),
            size_bytes: u64_at(b, SEGMENT_SIZE_AT),
            extent_unit_bytes: u64_at(b, SEGMENT_UNIT_AT),
        };
        let unit_ok =
            header.extent_unit_bytes >= 4096 && header.extent_unit_bytes.is_power_of_two();
        if !unit_ok || header.size_bytes < header.extent_unit_bytes * 2 {
            return Err(Error::Corruption {
                file: file.into(),
                offset: 0,
                reason: format!("implausible segment geometry {header:?}"),
            });
        }
        Ok(Some(header))
    }
}
