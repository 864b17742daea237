//! Frames: one append or one atomic batch, inside an extent, starting on a
//! multiple of [`ALIGN`].
//!
//! ```text
//!   0  u64     crc64 of bytes 8..frame_len
//!   8  u32     frame length in bytes, header included, padding excluded
//!  12  u16     entry count (1..=2000)
//!  14  u16     reserved, 0
//!  16  u64     sequence number of the first entry
//!  24  u32 × count   payload lengths
//!  ..  payloads, back to back; then zero padding to a multiple of 8
//! ```

use super::le::{put_u16, put_u32, put_u64, u16_at, u32_at, u64_at};
use super::{align_up, const_assert_layout, ALIGN, MAX_SEQ};
use crate::crc::crc64;
use crate::store::MAX_BATCH_ENTRIES;

/// Offset of the checksum (of every byte of the frame after it).
pub const FRAME_CRC_AT: usize = 0;
/// Offset of the frame length.
pub const FRAME_LEN_AT: usize = 8;
/// Offset of the entry count.
pub const FRAME_COUNT_AT: usize = 12;
/// Offset of the first entry's sequence number.
pub const FRAME_FIRST_SEQ_AT: usize = 16;
/// Length of a frame's fixed header; the payload lengths (u32 each) follow.
pub const FRAME_HEADER_LEN: usize = 24;
/// Bytes of one payload length.
pub const FRAME_PAYLOAD_LEN_BYTES: usize = 4;

const_assert_layout!(FRAME_LEN_AT, FRAME_CRC_AT, 8);
const_assert_layout!(FRAME_COUNT_AT, FRAME_LEN_AT, 4);
const_assert_layout!(FRAME_FIRST_SEQ_AT, FRAME_COUNT_AT, 4); // count + reserved u16
const_assert_layout!(FRAME_HEADER_LEN, FRAME_FIRST_SEQ_AT, 8);
const _: () = assert!((FRAME_HEADER_LEN as u64).is_multiple_of(ALIGN));

/// Checks that `payloads` fit a frame starting at entry `first_seq`,
/// writes the frame's fixed header and payload lengths into `out` (cleared
/// first), its checksum left zero, and returns the frame length (padding
/// excluded).
#[inline(always)]
fn put_head(out: &mut Vec<u8>, first_seq: u64, payloads: &[&[u8]]) -> u64 {
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
    out.resize(payload_len_at(payloads.len()), 0);
    put_u32(out, FRAME_LEN_AT, len as u32);
    put_u16(out, FRAME_COUNT_AT, payloads.len() as u16);
    put_u64(out, FRAME_FIRST_SEQ_AT, first_seq);
    for (i, p) in payloads.iter().enumerate() {
        put_u32(out, payload_len_at(i), p.len() as u32);
    }
    len
}

/// Offset, within a frame, of payload `i`'s length.
pub fn payload_len_at(i: usize) -> usize {
    FRAME_HEADER_LEN + FRAME_PAYLOAD_LEN_BYTES * i
}

/// Length of a frame holding payloads of these lengths, padding excluded.
pub fn frame_len(payload_lens: impl IntoIterator<Item = usize>) -> u64 {
    let (count, sum) = payload_lens
        .into_iter()
        .fold((0u64, 0u64), |(c, s), l| (c + 1, s + l as u64));
    FRAME_HEADER_LEN as u64 + FRAME_PAYLOAD_LEN_BYTES as u64 * count + sum
}

/// Encodes a frame into `out` (cleared first), padded to [`ALIGN`].
pub fn encode_frame(out: &mut Vec<u8>, first_seq: u64, payloads: &[&[u8]]) {
    let len = put_head(out, first_seq, payloads);
    out.reserve(align_up(len, ALIGN) as usize - out.len());
    for p in payloads {
        out.extend_from_slice(p);
    }
    let crc = crc64(&[&out[FRAME_LEN_AT..]]);
    put_u64(out, FRAME_CRC_AT, crc);
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
    let crc = crc64(&[&out[FRAME_LEN_AT..h.len as usize]]);
    assert_eq!(h.crc, crc, "frame checksum");
    let mut at = payload_len_at(payloads.len());
    for (i, p) in payloads.iter().enumerate() {
        let len = u32_at(out, payload_len_at(i)) as usize;
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
    let len = put_head(out, first_seq, payloads);
    let mut parts: Vec<&[u8]> = Vec::with_capacity(payloads.len() + 1);
    parts.push(&out[FRAME_LEN_AT..]);
    parts.extend_from_slice(payloads);
    let crc = crc64(&parts);
    put_u64(out, FRAME_CRC_AT, crc);
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
        let len = u32_at(b, FRAME_LEN_AT) as u64;
        let count = u16_at(b, FRAME_COUNT_AT) as usize;
        if count == 0 || count > MAX_BATCH_ENTRIES {
            return Err(FrameError::Invalid(format!(
                "entry count {count} out of range"
            )));
        }
        if len < payload_len_at(count) as u64 || len > room {
            return Err(FrameError::Invalid(format!(
                "frame length {len} out of range (room {room})"
            )));
        }
        let first_seq = u64_at(b, FRAME_FIRST_SEQ_AT);
        if first_seq >= MAX_SEQ {
            return Err(FrameError::Invalid(format!(
                "entry {first_seq} out of range"
            )));
        }
        Ok(FrameHeader {
            crc: u64_at(b, FRAME_CRC_AT),
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
        let mut at = payload_len_at(self.count);
        let ranges = (0..self.count).map(|i| {
            let len = u32_at(frame, payload_len_at(i)) as usize;
            at += len;
            at - len..at
        });
        Ok(ranges.collect())
    }

    /// Checks a whole frame (`frame.len() == self.len`): its checksum, and
    /// that the payload lengths fill it exactly. Allocates nothing.
    pub fn verify(&self, frame: &[u8]) -> std::result::Result<(), FrameError> {
        debug_assert_eq!(frame.len() as u64, self.len);
        let got = crc64(&[&frame[FRAME_LEN_AT..]]);
        if got != self.crc {
            return Err(FrameError::Invalid(format!(
                "frame checksum {got:#x} != stored {:#x}",
                self.crc
            )));
        }
        let lengths = (0..self.count).map(|i| u32_at(frame, payload_len_at(i)) as u64);
        let payload: u64 = lengths.sum();
        if payload_len_at(self.count) as u64 + payload != self.len {
            return Err(FrameError::Invalid(
                "payload lengths do not fill the frame".into(),
            ));
        }
        Ok(())
    }
}
