//! Frames read back from a segment and checked: whole, from a read-ahead
//! buffer, or (when larger than [`LARGE_FRAME_BYTES`]) streamed past their
//! checksum and left in the file.

use crate::format::{FrameHeader, ALIGN, FRAME_HEADER_LEN};
use crate::segment::Segment;
use crate::store::{Error, Result};
use bytes::Bytes;
use std::ops::Range;
use std::sync::Arc;

/// A frame read back and checked, kept while the cursor is inside it.
pub struct Frame {
    pub key: (u64, u64),
    pub first_seq: u64,
    pub len_padded: u64,
    /// The buffer the frame was read into: its own, or a batch read-ahead
    /// buffer that it shares with the frames after it (no copy per frame).
    pub(crate) buf: Bytes,
    payloads: Payloads,
}

/// Where each payload of a frame lies in its buffer. Most frames hold one
/// entry, which needs no allocation.
enum Payloads {
    One(Range<usize>),
    Many(Vec<Range<usize>>),
    /// A frame larger than [`LARGE_FRAME_BYTES`], checked as it streamed
    /// past and left in the file: each entry is read when it is returned,
    /// so a batch read inside a 2 GB batch holds its budget, not 2 GB.
    InFile {
        segment: Arc<Segment>,
        ranges: Vec<Range<u64>>,
    },
}

/// Frames larger than this are checked in pieces and their entries read
/// one by one (see [`Payloads::InFile`]); smaller ones are read whole.
pub const LARGE_FRAME_BYTES: u64 = 16 << 20;
/// The piece a large frame's checksum is computed over at a time.
const LARGE_FRAME_PIECE: u64 = 4 << 20;

impl Frame {
    pub fn entries(&self) -> usize {
        match &self.payloads {
            Payloads::One(_) => 1,
            Payloads::Many(ranges) => ranges.len(),
            Payloads::InFile { ranges, .. } => ranges.len(),
        }
    }

    /// Entry `idx` of the frame: a view of the buffer, not a copy (or, in a
    /// large frame, its bytes read from the file).
    pub fn payload(&self, idx: usize) -> Result<Bytes> {
        let range = match &self.payloads {
            Payloads::One(range) => range,
            Payloads::Many(ranges) => &ranges[idx],
            Payloads::InFile { segment, ranges } => {
                let range = &ranges[idx];
                let mut data = vec![0u8; (range.end - range.start) as usize];
                // In pieces, each evicted once copied: on the mmap backend
                // a 1 GiB entry then never has its mapped pages resident
                // beside the copy.
                for (i, piece) in data.chunks_mut(LARGE_FRAME_PIECE as usize).enumerate() {
                    let at = range.start + i as u64 * LARGE_FRAME_PIECE;
                    segment.file.read_exact_at(piece, at).map_err(|e| {
                        Error::io(format!("reading {} at {at}", segment.path.display()), e)
                    })?;
                    segment.file.evict(at, piece.len() as u64);
                }
                return Ok(Bytes::from(data));
            }
        };
        Ok(self.buf.slice(range.clone()))
    }
}

/// Reads one whole frame at `off`; `room` bounds its length.
pub fn read_frame(segment: &Arc<Segment>, off: u64, room: u64) -> Result<Frame> {
    let io = |e| Error::io(format!("reading {} at {off}", segment.path.display()), e);
    let mut header = [0u8; FRAME_HEADER_LEN];
    segment.file.read_exact_at(&mut header, off).map_err(io)?;
    let h = FrameHeader::decode(&header, room)
        .map_err(|e| frame_corrupt(segment, off, e.to_string()))?;
    if h.len > LARGE_FRAME_BYTES {
        return read_large_frame(segment, off, &h);
    }
    let mut bytes = vec![0u8; h.len as usize];
    bytes[..FRAME_HEADER_LEN].copy_from_slice(&header);
    segment
        .file
        .read_exact_at(
            &mut bytes[FRAME_HEADER_LEN..],
            off + FRAME_HEADER_LEN as u64,
        )
        .map_err(io)?;
    decode_frame(segment, off, room, Bytes::from(bytes), 0)
}

/// Checks a frame larger than [`LARGE_FRAME_BYTES`] without holding it:
/// the header and payload lengths are kept, the checksum is computed over
/// the rest in pieces, and the payloads stay in the file.
fn read_large_frame(segment: &Arc<Segment>, off: u64, h: &FrameHeader) -> Result<Frame> {
    let ranges = check_large_frame(segment, off, h)?
        .map_err(|reason| frame_corrupt(segment, off, reason))?;
    Ok(Frame {
        key: (segment.id, off),
        first_seq: h.first_seq,
        len_padded: crate::format::align_up(h.len, ALIGN),
        buf: Bytes::new(),
        payloads: Payloads::InFile {
            segment: segment.clone(),
            ranges,
        },
    })
}

/// Verifies the frame at `off`, whose header `h` was decoded, reading it in
/// pieces of at most 4 MiB; returns the file ranges of its payloads, or why
/// the frame is damaged (the outer error is a failed read). Recovery checks
/// large frames this way too, so an open never holds one whole.
pub fn check_large_frame(
    segment: &Segment,
    off: u64,
    h: &FrameHeader,
) -> Result<std::result::Result<Vec<Range<u64>>, String>> {
    let io = |at: u64, e| Error::io(format!("reading {} at {at}", segment.path.display()), e);
    let head_len = FRAME_HEADER_LEN + 4 * h.count;
    // Through `pread`: recovery checks frames with this, and a damaged
    // length may reach into never-written pages, which a read through the
    // mmap backend's mapping would allocate (or die of SIGBUS for).
    let mut head = vec![0u8; head_len];
    segment
        .file
        .pread_exact_at(&mut head, off)
        .map_err(|e| io(off, e))?;
    let mut crc = crate::crc::Crc64Stream::new();
    crc.update(&head[8..]);
    let mut at = off + head_len as u64;
    let mut ranges = Vec::with_capacity(h.count);
    for len in head[FRAME_HEADER_LEN..].chunks_exact(4) {
        let len = u64::from(crate::format::le::u32_at(len, 0));
        ranges.push(at..at + len);
        at += len;
    }
    if at != off + h.len {
        return Ok(Err("payload lengths do not fill the frame".into()));
    }
    let end = off + h.len;
    let mut from = off + head_len as u64;
    let mut piece = vec![0u8; LARGE_FRAME_PIECE.min(end - from) as usize];
    while from < end {
        let n = (end - from).min(piece.len() as u64) as usize;
        segment
            .file
            .pread_exact_at(&mut piece[..n], from)
            .map_err(|e| io(from, e))?;
        crc.update(&piece[..n]);
        segment.file.evict(from, n as u64);
        from += n as u64;
    }
    let got = crc.finish();
    if got != h.crc {
        return Ok(Err(format!(
            "frame checksum {got:#x} != stored {:#x}",
            h.crc
        )));
    }
    Ok(Ok(ranges))
}

/// Checks the frame at `buf[at..]` (header included) and indexes its
/// payloads.
pub fn decode_frame(
    segment: &Segment,
    off: u64,
    room: u64,
    buf: Bytes,
    at: usize,
) -> Result<Frame> {
    let h = FrameHeader::decode(&buf[at..], room)
        .map_err(|e| frame_corrupt(segment, off, e.to_string()))?;
    let Some(bytes) = buf.get(at..at + h.len as usize) else {
        return Err(frame_corrupt(
            segment,
            off,
            "frame length changed under the reader".into(),
        ));
    };
    let corrupt = |e: crate::format::FrameError| frame_corrupt(segment, off, e.to_string());
    let payloads = if h.count == 1 {
        h.verify(bytes).map_err(corrupt)?;
        Payloads::One(at + FRAME_HEADER_LEN + 4..at + bytes.len())
    } else {
        let ranges = h.payload_ranges(bytes).map_err(corrupt)?;
        Payloads::Many(
            ranges
                .into_iter()
                .map(|r| r.start + at..r.end + at)
                .collect(),
        )
    };
    Ok(Frame {
        key: (segment.id, off),
        first_seq: h.first_seq,
        len_padded: crate::format::align_up(h.len, ALIGN),
        buf,
        payloads,
    })
}

fn frame_corrupt(segment: &Segment, offset: u64, reason: String) -> Error {
    Error::Corruption {
        file: segment.path.clone(),
        offset,
        reason,
    }
}
