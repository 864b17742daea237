//! Byte layouts of every file Walrus writes. `docs/format.md` is the prose
//! version of this module; the two must agree.
//!
//! All integers are little-endian. Every structure carries a crc64
//! (CRC-64/XZ: ECMA polynomial, as `crc64fast` computes it; `crc.rs` has the
//! carry-less-multiply kernels) so nothing read back is trusted before it is
//! checked, and every length read from disk is bounded before it is used.
//!
//! ```text
//! segment header (64 bytes, at offset 0 of seg-<id>.wal)
//!   0  [u8; 8] magic "WALRUSSG"
//!   8  u32     format version (1)
//!  12  u32     reserved, 0
//!  16  u64     segment id
//!  24  u64     segment size in bytes
//!  32  u64     block unit in bytes (extents start on multiples of it)
//!  40  [u8;16] reserved, 0
//!  56  u64     crc64 of bytes 0..56
//!
//! block header (at the start of an extent, a multiple of the block unit)
//!   0  [u8; 4] magic "WBLK"
//!   4  u16     topic name length (1..=255)
//!   6  u16     reserved, 0
//!   8  u64     extent length in bytes (multiple of the block unit)
//!  16  u64     block sequence number within the topic
//!  24  u64     sequence number of the first entry in the block
//!  32  u64     crc64 of bytes 0..32 followed by the topic name
//!  40  ..      topic name (UTF-8); frames start at the next multiple of 8
//!
//! frame (one append or one atomic batch; starts on a multiple of 8)
//!   0  u64     crc64 of bytes 8..frame_len
//!   8  u32     frame length in bytes, header included, padding excluded
//!  12  u16     entry count (1..=2000)
//!  14  u16     reserved, 0
//!  16  u64     sequence number of the first entry
//!  24  u32 × count   payload lengths
//!  ..  payloads, back to back; then zero padding to a multiple of 8
//! ```

use crate::crc::crc64;
use crate::store::{Error, Result, MAX_BATCH_ENTRIES, MAX_TOPIC_LEN};
use std::path::Path;

pub const FORMAT_VERSION: u32 = 1;

pub const SEGMENT_MAGIC: [u8; 8] = *b"WALRUSSG";
pub const SEGMENT_HEADER_LEN: usize = 64;

pub const BLOCK_MAGIC: [u8; 4] = *b"WBLK";
pub const BLOCK_HEADER_FIXED_LEN: usize = 40;

pub const FRAME_HEADER_LEN: usize = 24;

/// Every frame and block payload starts on a multiple of this.
pub const ALIGN: u64 = 8;
/// Sequence numbers (of entries and of a topic's blocks) and segment ids
/// read from disk must lie below this. A real log takes centuries to get
/// near it; a value above it is damage, and refusing it keeps the `+ 1`s
/// and `+= count`s that recovery does on such values from overflowing.
pub const MAX_SEQ: u64 = 1 << 62;

pub fn align_up(n: u64, to: u64) -> u64 {
    n.div_ceil(to) * to
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The first 64 bytes of a segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub id: u64,
    pub size_bytes: u64,
    pub block_unit_bytes: u64,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[16..24].copy_from_slice(&self.id.to_le_bytes());
        b[24..32].copy_from_slice(&self.size_bytes.to_le_bytes());
        b[32..40].copy_from_slice(&self.block_unit_bytes.to_le_bytes());
        let crc = crc64(&[&b[0..56]]);
        b[56..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a segment header. `Ok(None)` means the header is all
    /// zeros: the file was created but its header never reached the disk.
    pub fn decode(b: &[u8; SEGMENT_HEADER_LEN], file: &Path) -> Result<Option<SegmentHeader>> {
        if b.iter().all(|&x| x == 0) {
            return Ok(None);
        }
        if b[0..8] != SEGMENT_MAGIC {
            return Err(Error::BadMagic {
                file: file.into(),
                expected: "Walrus segment",
            });
        }
        // The checksum first: a damaged version field is damage, and only a
        // header that checks out can claim a newer format.
        let (expected, got) = (u64_at(b, 56), crc64(&[&b[0..56]]));
        if expected != got {
            return Err(Error::Corruption {
                file: file.into(),
                offset: 0,
                reason: format!("segment header checksum {got:#x} != stored {expected:#x}"),
            });
        }
        let version = u32_at(b, 8);
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                file: file.into(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let header = SegmentHeader {
            id: u64_at(b, 16),
            size_bytes: u64_at(b, 24),
            block_unit_bytes: u64_at(b, 32),
        };
        let unit_ok = header.block_unit_bytes >= 4096 && header.block_unit_bytes.is_power_of_two();
        if !unit_ok || header.size_bytes < header.block_unit_bytes * 2 {
            return Err(Error::Corruption {
                file: file.into(),
                offset: 0,
                reason: format!("implausible segment geometry {header:?}"),
            });
        }
        Ok(Some(header))
    }
}

/// The header at the start of every extent. An extent belongs to one topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockHeader {
    pub topic: String,
    pub extent_len: u64,
    pub block_seq: u64,
    pub first_entry_seq: u64,
}

impl BlockHeader {
    /// Bytes from the extent start to the first frame.
    pub fn data_offset(topic_len: usize) -> u64 {
        align_up((BLOCK_HEADER_FIXED_LEN + topic_len) as u64, ALIGN)
    }

    pub fn encode(&self) -> Vec<u8> {
        let topic = self.topic.as_bytes();
        let mut b = vec![0u8; Self::data_offset(topic.len()) as usize];
        b[0..4].copy_from_slice(&BLOCK_MAGIC);
        b[4..6].copy_from_slice(&(topic.len() as u16).to_le_bytes());
        b[8..16].copy_from_slice(&self.extent_len.to_le_bytes());
        b[16..24].copy_from_slice(&self.block_seq.to_le_bytes());
        b[24..32].copy_from_slice(&self.first_entry_seq.to_le_bytes());
        let crc = crc64(&[&b[0..32], topic]);
        b[32..40].copy_from_slice(&crc.to_le_bytes());
        b[40..40 + topic.len()].copy_from_slice(topic);
        b
    }

    /// Decodes a block header from `b`, which starts at the extent and holds
    /// at least `BLOCK_HEADER_FIXED_LEN + MAX_TOPIC_LEN` bytes or runs to the
    /// end of the segment. `room` is the number of bytes from the extent start
    /// to the end of the segment. Returns `None` for anything that is not a
    /// whole, valid header.
    pub fn decode(b: &[u8], room: u64, unit: u64) -> Option<BlockHeader> {
        if b.len() < BLOCK_HEADER_FIXED_LEN || b[0..4] != BLOCK_MAGIC {
            return None;
        }
        let topic_len = u16_at(b, 4) as usize;
        if topic_len == 0 || topic_len > MAX_TOPIC_LEN || b.len() < 40 + topic_len {
            return None;
        }
        let topic = &b[40..40 + topic_len];
        if u64_at(b, 32) != crc64(&[&b[0..32], topic]) {
            return None;
        }
        let extent_len = u64_at(b, 8);
        let data_offset = Self::data_offset(topic_len);
        if !extent_len.is_multiple_of(unit) || extent_len > room || extent_len <= data_offset {
            return None;
        }
        let (block_seq, first_entry_seq) = (u64_at(b, 16), u64_at(b, 24));
        if block_seq >= MAX_SEQ || first_entry_seq >= MAX_SEQ {
            return None;
        }
        Some(BlockHeader {
            topic: String::from_utf8(topic.to_vec()).ok()?,
            extent_len,
            block_seq,
            first_entry_seq,
        })
    }
}

/// Length of a frame holding payloads of these lengths, padding excluded.
pub fn frame_len(payload_lens: impl IntoIterator<Item = usize>) -> u64 {
    let (count, sum) = payload_lens
        .into_iter()
        .fold((0u64, 0u64), |(c, s), l| (c + 1, s + l as u64));
    FRAME_HEADER_LEN as u64 + 4 * count + sum
}

/// Encodes a frame into `out` (cleared first), padded to [`ALIGN`].
pub fn encode_frame(out: &mut Vec<u8>, first_seq: u64, payloads: &[&[u8]]) {
    debug_assert!(!payloads.is_empty() && payloads.len() <= MAX_BATCH_ENTRIES);
    let len = frame_len(payloads.iter().map(|p| p.len()));
    assert!(
        len <= u32::MAX as u64,
        "frame of {len} bytes: lengths are u32 on disk"
    );
    assert!(
        first_seq < MAX_SEQ,
        "entry {first_seq} past the sequence range"
    );
    out.clear();
    out.reserve(align_up(len, ALIGN) as usize);
    out.extend_from_slice(&[0u8; 8]);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&(payloads.len() as u16).to_le_bytes());
    out.extend_from_slice(&[0u8; 2]);
    out.extend_from_slice(&first_seq.to_le_bytes());
    for p in payloads {
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
    }
    for p in payloads {
        out.extend_from_slice(p);
    }
    let crc = crc64(&[&out[8..]]);
    out[0..8].copy_from_slice(&crc.to_le_bytes());
    out.resize(align_up(len, ALIGN) as usize, 0);
    #[cfg(debug_assertions)]
    check_encoded_frame(out, first_seq, payloads);
}

/// Debug builds: decodes a frame just encoded and checks it holds exactly
/// what was given, so that the encoder and the decoder cannot drift apart
/// unnoticed.
#[cfg(debug_assertions)]
fn check_encoded_frame(out: &[u8], first_seq: u64, payloads: &[&[u8]]) {
    let h = FrameHeader::decode(out, out.len() as u64).expect("an encoded frame decodes");
    assert_eq!(
        (h.count, h.first_seq),
        (payloads.len(), first_seq),
        "frame header as encoded"
    );
    assert_eq!(align_up(h.len, ALIGN), out.len() as u64, "frame length");
    assert_eq!(h.crc, crc64(&[&out[8..h.len as usize]]), "frame checksum");
    let mut at = FRAME_HEADER_LEN + 4 * payloads.len();
    for (i, p) in payloads.iter().enumerate() {
        let len_at = FRAME_HEADER_LEN + 4 * i;
        let len = u32::from_le_bytes(out[len_at..len_at + 4].try_into().unwrap()) as usize;
        assert_eq!(&out[at..at + len], *p, "payload {i} as encoded");
        at += len;
    }
    assert_eq!(at as u64, h.len, "payloads fill the frame");
}

/// Encodes the head of a frame (header and payload lengths) into `out`
/// (cleared first), its checksum computed over the payloads in place: the
/// write of a large frame then sends the caller's payloads as they are
/// instead of copying them into one buffer. The payloads follow the head
/// back to back, then zero padding to [`ALIGN`]. Returns the frame length
/// (padding excluded).
pub fn encode_frame_head(out: &mut Vec<u8>, first_seq: u64, payloads: &[&[u8]]) -> u64 {
    debug_assert!(!payloads.is_empty() && payloads.len() <= MAX_BATCH_ENTRIES);
    let len = frame_len(payloads.iter().map(|p| p.len()));
    assert!(
        len <= u32::MAX as u64,
        "frame of {len} bytes: lengths are u32 on disk"
    );
    assert!(
        first_seq < MAX_SEQ,
        "entry {first_seq} past the sequence range"
    );
    out.clear();
    out.extend_from_slice(&[0u8; 8]);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&(payloads.len() as u16).to_le_bytes());
    out.extend_from_slice(&[0u8; 2]);
    out.extend_from_slice(&first_seq.to_le_bytes());
    for p in payloads {
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
    }
    let mut parts: Vec<&[u8]> = Vec::with_capacity(payloads.len() + 1);
    parts.push(&out[8..]);
    parts.extend_from_slice(payloads);
    let crc = crc64(&parts);
    out[0..8].copy_from_slice(&crc.to_le_bytes());
    len
}

/// The fixed part of a frame, read before the rest so its length can be
/// bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub crc: u64,
    pub len: u64,
    pub count: usize,
    pub first_seq: u64,
}

/// Why a frame was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// All-zero header: nothing was ever written here.
    Empty,
    /// Anything else: torn, overwritten or corrupted bytes.
    Invalid(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Empty => f.write_str("no frame here (zero bytes)"),
            FrameError::Invalid(reason) => f.write_str(reason),
        }
    }
}

impl FrameHeader {
    /// Decodes the first [`FRAME_HEADER_LEN`] bytes of a frame. `room` bounds
    /// the frame length: the bytes available from the frame start to the end
    /// of its extent.
    pub fn decode(b: &[u8], room: u64) -> std::result::Result<FrameHeader, FrameError> {
        if b.len() < FRAME_HEADER_LEN {
            return Err(FrameError::Invalid("short frame header".into()));
        }
        let b = &b[..FRAME_HEADER_LEN];
        if b.iter().all(|&x| x == 0) {
            return Err(FrameError::Empty);
        }
        let len = u32_at(b, 8) as u64;
        let count = u16_at(b, 12) as usize;
        if count == 0 || count > MAX_BATCH_ENTRIES {
            return Err(FrameError::Invalid(format!(
                "entry count {count} out of range"
            )));
        }
        if len < FRAME_HEADER_LEN as u64 + 4 * count as u64 || len > room {
            return Err(FrameError::Invalid(format!(
                "frame length {len} out of range (room {room})"
            )));
        }
        let first_seq = u64_at(b, 16);
        if first_seq >= MAX_SEQ {
            return Err(FrameError::Invalid(format!(
                "entry {first_seq} out of range"
            )));
        }
        Ok(FrameHeader {
            crc: u64_at(b, 0),
            len,
            count,
            first_seq,
        })
    }

    /// Checks a whole frame (`frame.len() == self.len`) and returns the byte
    /// ranges of its payloads within `frame`.
    pub fn payload_ranges(
        &self,
        frame: &[u8],
    ) -> std::result::Result<Vec<std::ops::Range<usize>>, FrameError> {
        self.verify(frame)?;
        let mut at = FRAME_HEADER_LEN + 4 * self.count;
        let ranges = (0..self.count).map(|i| {
            let len = u32_at(frame, FRAME_HEADER_LEN + 4 * i) as usize;
            at += len;
            at - len..at
        });
        Ok(ranges.collect())
    }

    /// Checks a whole frame (`frame.len() == self.len`): its checksum, and
    /// that the payload lengths fill it exactly. Allocates nothing.
    pub fn verify(&self, frame: &[u8]) -> std::result::Result<(), FrameError> {
        debug_assert_eq!(frame.len() as u64, self.len);
        let got = crc64(&[&frame[8..]]);
        if got != self.crc {
            return Err(FrameError::Invalid(format!(
                "frame checksum {got:#x} != stored {:#x}",
                self.crc
            )));
        }
        let lengths = (0..self.count).map(|i| u32_at(frame, FRAME_HEADER_LEN + 4 * i) as u64);
        let payload: u64 = lengths.sum();
        if FRAME_HEADER_LEN as u64 + 4 * self.count as u64 + payload != self.len {
            return Err(FrameError::Invalid(
                "payload lengths do not fill the frame".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn segment_header_round_trips_and_rejects_damage() {
        let h = SegmentHeader {
            id: 7,
            size_bytes: 1 << 26,
            block_unit_bytes: 1 << 20,
        };
        let mut b = h.encode();
        let p = Path::new("seg");
        assert_eq!(SegmentHeader::decode(&b, p).unwrap(), Some(h));
        assert_eq!(SegmentHeader::decode(&[0; 64], p).unwrap(), None);
        b[20] ^= 1;
        assert!(matches!(
            SegmentHeader::decode(&b, p),
            Err(Error::Corruption { .. })
        ));
        // A newer version with a valid checksum is refused as such; a
        // damaged version field is damage.
        let mut v2 = h.encode();
        v2[8] = 2;
        assert!(matches!(
            SegmentHeader::decode(&v2, p),
            Err(Error::Corruption { .. })
        ));
        let crc = crc64(&[&v2[0..56]]);
        v2[56..64].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            SegmentHeader::decode(&v2, p),
            Err(Error::UnsupportedVersion { .. })
        ));
        let mut magic = h.encode();
        magic[0] = b'X';
        assert!(matches!(
            SegmentHeader::decode(&magic, p),
            Err(Error::BadMagic { .. })
        ));
    }

    #[test]
    fn block_header_round_trips_and_is_bounded() {
        let h = BlockHeader {
            topic: "orders".into(),
            extent_len: 8192,
            block_seq: 3,
            first_entry_seq: 99,
        };
        let b = h.encode();
        assert_eq!(b.len() as u64, BlockHeader::data_offset(6));
        assert_eq!(BlockHeader::decode(&b, 8192, 4096), Some(h.clone()));
        assert_eq!(
            BlockHeader::decode(&b, 4096, 4096),
            None,
            "extent past segment end"
        );
        let mut flipped = b.clone();
        flipped[41] ^= 0x10;
        assert_eq!(BlockHeader::decode(&flipped, 8192, 4096), None);
    }

    #[test]
    fn frame_round_trips() {
        let mut out = Vec::new();
        let payloads: [&[u8]; 3] = [b"a", b"", b"hello"];
        encode_frame(&mut out, 42, &payloads);
        assert_eq!(out.len() % 8, 0);
        let h = FrameHeader::decode(&out, out.len() as u64).unwrap();
        assert_eq!((h.count, h.first_seq), (3, 42));
        let frame = &out[..h.len as usize];
        let ranges = h.payload_ranges(frame).unwrap();
        let got: Vec<&[u8]> = ranges.into_iter().map(|r| &frame[r]).collect();
        assert_eq!(got, payloads);
    }

    proptest! {
        // The decoder must never panic, whatever the bytes.
        #[test]
        fn frame_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(h) = FrameHeader::decode(&bytes, bytes.len() as u64) {
                let _ = h.payload_ranges(&bytes[..h.len as usize]);
            }
            let _ = BlockHeader::decode(&bytes, bytes.len() as u64, 4096);
        }

        #[test]
        fn flipping_any_bit_of_a_frame_is_detected(
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            bit in 0usize..1024,
        ) {
            let mut out = Vec::new();
            encode_frame(&mut out, 5, &[&payload]);
            let len = frame_len([payload.len()]) as usize;
            let bit = bit % (len * 8);
            out[bit / 8] ^= 1 << (bit % 8);
            let ok = FrameHeader::decode(&out, out.len() as u64)
                .ok()
                .filter(|h| h.len as usize <= out.len())
                .and_then(|h| h.payload_ranges(&out[..h.len as usize]).ok());
            prop_assert!(ok.is_none());
        }
    }
}
