//! Per-topic state: the chain of extents holding the topic's entries, the
//! writer's position at its tail, and the shared consumer cursor.

use crate::format::{FrameHeader, ALIGN, FRAME_HEADER_LEN};
use crate::segment::Segment;
use crate::store::{Entry, Error, Result};
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use std::collections::VecDeque;
use std::ops::Range;
// std's atomics, or loom's models of them under `--cfg loom` (see `sync`).
use crate::sync::{AtomicBool, AtomicU64, LoadOwn, Ordering};
use std::sync::Arc;

/// One extent of a topic.
///
/// Two positions describe its frames, each a [`Mark`] packed into one
/// `AtomicU64` so that its offset and sequence number are always read as the
/// pair one store published (two atomics read one after the other can pair
/// an old offset with a new sequence number):
/// - `written`: frames written to the file and counted by their segment's
///   group commit. Only the topic's writer advances it. A recovery
///   checkpoint vouches for it after syncing the segment.
/// - `readable`: frames readers may return. Under `SyncEach` the appender
///   publishes its frame here only once the frame is durable, so no reader
///   ever sees (or consumes) an entry a power loss can take; under the
///   other schedules the writer publishes it at once with `written`.
///
/// `readable <= written` always, and neither moves backwards.
pub struct Block {
    pub segment: Arc<Segment>,
    /// File offset of the first frame.
    pub data_start: u64,
    /// File offset one past the extent.
    pub end: u64,
    pub block_seq: u64,
    pub first_seq: u64,
    written: AtomicU64,
    readable: AtomicU64,
    /// The segment group-commit ticket of the last frame written here (0:
    /// none yet). Final once the block is sealed.
    last_ticket: AtomicU64,
    /// The writer has moved to a later block; `written` is final.
    sealed: AtomicBool,
    /// A read found a damaged frame here: no checkpoint may vouch for this
    /// extent again, so the next open re-reads it and cuts it at the damage.
    damaged: AtomicBool,
}

/// A position in a block: the file offset after a frame and the sequence
/// number after its last entry. Packed relative to the block's start (high
/// half: entries, low half: bytes), which fits because an extent is at most
/// `u32::MAX` bytes and every entry takes at least 4 of them. Packed marks
/// of one block order as their positions do, so `fetch_max` advances one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    pub off: u64,
    pub seq: u64,
}

/// The largest extent a [`Mark`] can describe.
pub const MAX_EXTENT_BYTES: u64 = u32::MAX as u64;

impl Block {
    pub fn new(
        segment: Arc<Segment>,
        data_start: u64,
        end: u64,
        block_seq: u64,
        first_seq: u64,
    ) -> Block {
        assert!(
            data_start <= end && end - data_start <= MAX_EXTENT_BYTES,
            "extent [{data_start}, {end}) too large for a mark"
        );
        Block {
            segment,
            data_start,
            end,
            block_seq,
            first_seq,
            written: AtomicU64::new(0),
            readable: AtomicU64::new(0),
            last_ticket: AtomicU64::new(0),
            sealed: AtomicBool::new(false),
            damaged: AtomicBool::new(false),
        }
    }

    /// Notes that a read found damage in this extent.
    pub fn mark_damaged(&self) {
        self.damaged.store(true, Ordering::Release);
    }

    /// Whether a read found damage in this extent.
    pub fn is_damaged(&self) -> bool {
        self.damaged.load(Ordering::Acquire)
    }

    fn pack(&self, mark: Mark) -> u64 {
        let bytes = mark.off - self.data_start;
        let entries = mark.seq - self.first_seq;
        assert!(
            mark.off <= self.end && mark.off >= self.data_start && entries <= u32::MAX as u64,
            "mark {mark:?} outside block [{}, {}) from entry {}",
            self.data_start,
            self.end,
            self.first_seq
        );
        entries << 32 | bytes
    }

    fn unpack(&self, packed: u64) -> Mark {
        Mark {
            off: self.data_start + (packed & u32::MAX as u64),
            seq: self.first_seq + (packed >> 32),
        }
    }

    /// Where the frames written so far end.
    pub fn written(&self) -> Mark {
        self.unpack(self.written.load(Ordering::Acquire))
    }

    /// Where the frames readers may return end.
    pub fn readable(&self) -> Mark {
        self.unpack(self.readable.load(Ordering::Acquire))
    }

    /// Records a frame written (and counted by the segment's group commit
    /// as `ticket`) up to `mark`; `publish` also makes it readable at once.
    /// Only the topic's writer calls this, under its lock.
    pub fn record_write(&self, mark: Mark, ticket: u64, publish: bool) {
        let packed = self.pack(mark);
        // Loads of what only this writer stores (see `LoadOwn`).
        let before = self.written.load_own(Ordering::Relaxed);
        assert!(
            packed > before || (packed == 0 && before == 0),
            "a block's writes only advance"
        );
        assert!(
            !self.sealed.load_own(Ordering::Acquire),
            "no write after the block was sealed"
        );
        self.last_ticket.store(ticket, Ordering::Release);
        self.written.store(packed, Ordering::Release);
        if publish {
            self.readable.store(packed, Ordering::Release);
        }
    }

    /// Makes frames up to `mark` readable (they are durable, or need not
    /// be). Concurrent publishers may finish in any order: the furthest
    /// mark wins.
    pub fn publish(&self, mark: Mark) {
        let packed = self.pack(mark);
        assert!(
            packed <= self.written.load(Ordering::Acquire),
            "publishing {mark:?} beyond what was written"
        );
        self.readable.fetch_max(packed, Ordering::AcqRel);
    }

    /// Whether every frame written is readable.
    pub fn fully_readable(&self) -> bool {
        self.readable.load(Ordering::Acquire) == self.written.load(Ordering::Acquire)
    }

    /// The group-commit ticket of the last frame written here.
    pub fn last_ticket(&self) -> u64 {
        self.last_ticket.load(Ordering::Acquire)
    }

    pub fn seal(&self) {
        self.sealed.store(true, Ordering::Release);
    }

    /// Lets the backend drop this extent's pages from the process (the
    /// extent starts on the page that holds its header).
    pub fn evict(&self) {
        let start = self.extent_start();
        self.segment.file.evict(start, self.end - start);
    }

    /// File offset of the extent (its header is on the same page as the
    /// first frame).
    pub fn extent_start(&self) -> u64 {
        self.data_start - self.data_start % crate::segment::EXTENT_UNIT
    }

    pub fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    pub fn room(&self) -> u64 {
        self.end - self.written().off
    }
}

/// The append side of a topic, behind the topic's writer mutex.
pub struct Writer {
    /// `None` until the first append after open, and after a failed write
    /// (the extent's tail may hold partial bytes; it is never written again).
    pub block: Option<Arc<Block>>,
    pub next_seq: u64,
    pub next_block_seq: u64,
    /// Reused encoding buffer.
    pub buf: Vec<u8>,
    /// `SyncEach` only: the topic's sealed blocks whose last frames are not
    /// readable yet (their appends were not acknowledged, or are being
    /// synced). An append is acknowledged only once these are durable too,
    /// for an acknowledged entry must never follow a hole that a power loss
    /// can open (recovery keeps a prefix); its acknowledgement then
    /// publishes them. Usually empty; at most one per block switch in flight.
    pub behind: Vec<Arc<Block>>,
}

/// Where the cursor points: a frame, and an entry within it.
#[derive(Clone)]
pub struct Pos {
    pub block: Arc<Block>,
    pub off: u64,
    pub idx: usize,
}

/// A frame read back and checked, kept while the cursor is inside it.
pub struct Frame {
    pub key: (u64, u64),
    pub first_seq: u64,
    pub len_padded: u64,
    /// The buffer the frame was read into: its own, or a batch read-ahead
    /// buffer that it shares with the frames after it (no copy per frame).
    buf: Bytes,
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

/// The consume side, behind the topic's reader mutex.
pub struct Reader {
    /// Sequence number of the next entry to return.
    pub seq: u64,
    pub pos: Option<Pos>,
    /// Consumed entries not yet persisted (AtLeastOnce).
    pub unpersisted: u64,
    pub frames: FrameSource,
}

pub struct Topic {
    pub name: String,
    pub writer: Mutex<Writer>,
    pub blocks: RwLock<VecDeque<Arc<Block>>>,
    pub reader: Mutex<Reader>,
}

impl Topic {
    pub fn new(
        name: String,
        blocks: VecDeque<Arc<Block>>,
        next_seq: u64,
        next_block_seq: u64,
        cursor: u64,
    ) -> Topic {
        Topic {
            name,
            writer: Mutex::new(Writer {
                block: None,
                next_seq,
                next_block_seq,
                buf: Vec::new(),
                behind: Vec::new(),
            }),
            blocks: RwLock::new(blocks),
            reader: Mutex::new(Reader {
                seq: cursor,
                pos: None,
                unpersisted: 0,
                frames: FrameSource::default(),
            }),
        }
    }

    /// Returns the entry at `seq` (which `pos` points at, when known) and
    /// moves `pos` past it; `None` when no committed entry is there yet.
    pub fn next_entry(
        &self,
        seq: u64,
        pos: &mut Option<Pos>,
        src: &mut FrameSource,
    ) -> Result<Option<Entry>> {
        loop {
            let Some(p) = pos.as_ref() else {
                match self.locate(seq)? {
                    Some(found) => {
                        *pos = Some(found);
                        continue;
                    }
                    None => return Ok(None),
                }
            };
            let readable_off = p.block.readable().off;
            if p.off >= readable_off {
                // Read `sealed` before `written`: once a block is sealed its
                // written mark no longer moves. A sealed block whose last
                // frames are written but not yet readable (durable) is not
                // done: the next entry is there, not in a later block.
                if p.block.is_sealed() && p.off >= p.block.written().off {
                    *pos = None;
                    if self.locate(seq)?.is_none() {
                        return Ok(None);
                    }
                    continue;
                }
                return Ok(None);
            }
            let frame = match self.frame_at(&p.block, p.off, readable_off, src) {
                Ok(frame) => frame,
                Err(e) => {
                    if matches!(e, Error::Corruption { .. }) {
                        p.block.mark_damaged();
                    }
                    return Err(e);
                }
            };
            let entry_seq = frame.first_seq + p.idx as u64;
            if entry_seq != seq {
                p.block.mark_damaged();
                return Err(Error::Corruption {
                    file: p.block.segment.path.clone(),
                    offset: p.off,
                    reason: format!("expected entry {seq}, frame holds {entry_seq}"),
                });
            }
            let data = frame.payload(p.idx)?;
            let next = if p.idx + 1 < frame.entries() {
                Pos {
                    block: p.block.clone(),
                    off: p.off,
                    idx: p.idx + 1,
                }
            } else {
                Pos {
                    block: p.block.clone(),
                    off: p.off + frame.len_padded,
                    idx: 0,
                }
            };
            *pos = Some(next);
            return Ok(Some(Entry { seq, data }));
        }
    }

    /// Finds the frame holding entry `seq`.
    fn locate(&self, seq: u64) -> Result<Option<Pos>> {
        let block = {
            let blocks = self.blocks.read();
            let found = blocks
                .iter()
                .find(|b| b.first_seq <= seq && seq < b.readable().seq);
            match found {
                Some(b) => b.clone(),
                None => return Ok(None),
            }
        };
        let readable_off = block.readable().off;
        let mut off = block.data_start;
        let mut first = block.first_seq;
        let mut src = FrameSource::default();
        while off < readable_off {
            let frame = match self.frame_at(&block, off, readable_off, &mut src) {
                Ok(frame) => frame,
                Err(e) => {
                    if matches!(e, Error::Corruption { .. }) {
                        block.mark_damaged();
                    }
                    return Err(e);
                }
            };
            let count = frame.entries() as u64;
            if seq < first + count {
                return Ok(Some(Pos {
                    block,
                    off,
                    idx: (seq - first) as usize,
                }));
            }
            first += count;
            off += frame.len_padded;
        }
        Ok(None)
    }

    /// Reads and checks the frame at `off` (below `readable_off`), from the
    /// frame the cursor is in, from prefetched bytes, or from the file.
    fn frame_at<'s>(
        &self,
        block: &Block,
        off: u64,
        readable_off: u64,
        src: &'s mut FrameSource,
    ) -> Result<&'s Frame> {
        let segment = &block.segment;
        if src
            .last
            .as_ref()
            .is_some_and(|f| f.key == (segment.id, off))
        {
            return Ok(src.last.as_ref().expect("checked above"));
        }
        let room = readable_off - off;
        let prefetched = src
            .prefetched
            .iter()
            .find_map(|p| p.frame_at(segment.id, off, room));
        let frame = match prefetched {
            Some((buf, at)) => decode_frame(segment, off, room, buf, at)?,
            None => read_frame(segment, off, room)?,
        };
        Ok(src.last.insert(frame))
    }

    /// Reads ahead, in one submission, the committed bytes from `pos` on:
    /// up to `budget` bytes across at most `MAX_PREFETCH_RANGES` extents.
    pub fn prefetch(&self, pos: &Pos, budget: u64, src: &mut FrameSource) -> Result<()> {
        let budget = budget.clamp(64 * 1024, MAX_PREFETCH_BYTES);
        let mut plan: Vec<(Arc<Block>, u64, u64)> = Vec::new();
        let mut left = budget;
        let readable_off = pos.block.readable().off;
        let first_len = (readable_off.saturating_sub(pos.off)).min(left);
        if first_len > 0 {
            plan.push((pos.block.clone(), pos.off, first_len));
        }
        left -= first_len;
        if left > 0 && pos.block.is_sealed() {
            let blocks = self.blocks.read();
            let later = blocks
                .iter()
                .skip_while(|b| !Arc::ptr_eq(b, &pos.block))
                .skip(1);
            for b in later.take(MAX_PREFETCH_RANGES - 1) {
                let len = (b.readable().off - b.data_start).min(left);
                if len == 0 {
                    break;
                }
                plan.push((b.clone(), b.data_start, len));
                left -= len;
                if left == 0 || !b.is_sealed() || !b.fully_readable() {
                    break;
                }
            }
        }
        src.prefetched.clear();
        // One read_ranges call per segment file (usually just one).
        let mut i = 0;
        while i < plan.len() {
            let segment = plan[i].0.segment.clone();
            let group_end = i + plan[i..]
                .iter()
                .take_while(|p| p.0.segment.id == segment.id)
                .count();
            let mut bufs: Vec<Vec<u8>> = plan[i..group_end]
                .iter()
                .map(|p| vec![0u8; p.2 as usize])
                .collect();
            let mut ranges: Vec<(u64, &mut [u8])> = plan[i..group_end]
                .iter()
                .zip(bufs.iter_mut())
                .map(|(p, b)| (p.1, b.as_mut_slice()))
                .collect();
            segment
                .file
                .read_ranges(&mut ranges)
                .map_err(|e| Error::io(format!("reading {}", segment.path.display()), e))?;
            for (p, bytes) in plan[i..group_end].iter().zip(bufs) {
                src.prefetched.push(Prefetched {
                    segment: segment.id,
                    off: p.1,
                    bytes: Bytes::from(bytes),
                });
            }
            i = group_end;
        }
        Ok(())
    }
}

const MAX_PREFETCH_BYTES: u64 = 16 << 20;
const MAX_PREFETCH_RANGES: usize = 8;

/// Frames a reader has at hand: the one its cursor is in, and bytes read
/// ahead for a batch read (dropped when the read ends, so memory stays
/// bounded by one batch).
#[derive(Default)]
pub struct FrameSource {
    pub last: Option<Frame>,
    pub prefetched: Vec<Prefetched>,
}

impl FrameSource {
    /// Whether the frame at `pos` (its header, at least) is already at hand.
    pub fn holds(&self, pos: &Pos) -> bool {
        let (segment, off) = (pos.block.segment.id, pos.off);
        self.last.as_ref().is_some_and(|f| f.key == (segment, off))
            || self.prefetched.iter().any(|p| {
                p.segment == segment
                    && p.off <= off
                    && off + FRAME_HEADER_LEN as u64 <= p.off + p.bytes.len() as u64
            })
    }

    /// Ends a batch read: drops the read-ahead buffers, and the cursor's
    /// frame too if it lives in one of them, so that an idle reader holds at
    /// most one frame.
    pub fn end_batch(&mut self) {
        let in_read_ahead = |f: &Frame| {
            self.prefetched
                .iter()
                .any(|p| p.bytes.as_ptr() == f.buf.as_ptr() && p.bytes.len() == f.buf.len())
        };
        if self.last.as_ref().is_some_and(in_read_ahead) {
            self.last = None;
        }
        self.prefetched.clear();
    }
}

pub struct Prefetched {
    segment: u64,
    off: u64,
    bytes: Bytes,
}

impl Prefetched {
    /// The buffer and index of the frame at `off`, if the whole frame was
    /// read ahead.
    fn frame_at(&self, segment: u64, off: u64, room: u64) -> Option<(Bytes, usize)> {
        let end = self.off + self.bytes.len() as u64;
        if segment != self.segment || off < self.off || off + FRAME_HEADER_LEN as u64 > end {
            return None;
        }
        let at = (off - self.off) as usize;
        let h = FrameHeader::decode(&self.bytes[at..], room).ok()?;
        (at + h.len as usize <= self.bytes.len()).then(|| (self.bytes.clone(), at))
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
        let len = u64::from(u32::from_le_bytes(len.try_into().expect("4 bytes")));
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
fn decode_frame(segment: &Segment, off: u64, room: u64, buf: Bytes, at: usize) -> Result<Frame> {
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

/// Exhaustive interleavings of a block's marks and of the checkpoint's
/// snapshot (`make loom`; see `crate::sync`).
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::segment::loom_tests::{explore, Coverage, FakeFile};
    use crate::storage::StorageFile;
    use loom::sync::Arc as LoomArc;
    use loom::thread;
    use std::path::PathBuf;

    const DATA_START: u64 = 4096 + 64;
    const FIRST_SEQ: u64 = 10;

    /// The marks a block passes through: where it starts, then after each
    /// frame written. Offsets and sequence numbers differ from frame to
    /// frame, so a mark pairing one frame's offset with another's sequence
    /// number is recognised.
    const MARKS: [Mark; 3] = [
        Mark {
            off: DATA_START,
            seq: FIRST_SEQ,
        },
        Mark {
            off: DATA_START + 64,
            seq: FIRST_SEQ + 1,
        },
        Mark {
            off: DATA_START + 192,
            seq: FIRST_SEQ + 3,
        },
    ];

    /// Which of [`MARKS`] `mark` is; panics on a mark never recorded.
    fn index(mark: Mark) -> usize {
        MARKS
            .iter()
            .position(|m| *m == mark)
            .unwrap_or_else(|| panic!("{mark:?} was never recorded"))
    }

    fn block(file: Arc<dyn StorageFile>) -> Block {
        let segment = Arc::new(Segment::new(1, PathBuf::from("seg"), file, 1 << 20));
        Block::new(segment, DATA_START, DATA_START + 4096, 0, FIRST_SEQ)
    }

    fn fake_block() -> Block {
        block(Arc::new(FakeFile::new(None)))
    }

    /// A reader: `readable` then `written`, twice. Each is a recorded mark,
    /// neither moves backwards, and `readable <= written`.
    fn observe(block: &Block, cov: &Coverage) {
        let (mut last_readable, mut last_written) = (0, 0);
        for _ in 0..2 {
            let readable = index(block.readable());
            let written = index(block.written());
            assert!(
                readable <= written,
                "readable {readable} beyond written {written}"
            );
            assert!(readable >= last_readable, "readable went back");
            assert!(written >= last_written, "written went back");
            if readable < written {
                cov.saw("a reader sees readable behind written");
            }
            if readable == MARKS.len() - 1 {
                cov.saw("a reader sees the last mark readable");
            }
            (last_readable, last_written) = (readable, written);
        }
    }

    #[test]
    fn loom_block_marks_published_with_writes() {
        static COVERAGE: Coverage = Coverage::new(&[
            "a reader sees readable behind written",
            "a reader sees the last mark readable",
            "the checkpoint sees a mark before the last",
            "the checkpoint sees the block sealed",
        ]);
        explore(
            "block, writer + reader + checkpointer",
            3,
            &COVERAGE,
            |cov| {
                let block = LoomArc::new(fake_block());
                let writer = {
                    let block = block.clone();
                    thread::spawn(move || {
                        for (ticket, mark) in MARKS.iter().enumerate().skip(1) {
                            block.record_write(*mark, ticket as u64, true);
                        }
                        block.seal();
                    })
                };
                let reader = {
                    let block = block.clone();
                    thread::spawn(move || observe(&block, cov))
                };
                // The checkpoint's reads: sealed first, then the written mark
                // (final once sealed), then the ticket of that mark's frame.
                let sealed = block.is_sealed();
                let end = index(block.written());
                let ticket = block.last_ticket();
                if sealed {
                    assert_eq!(end, MARKS.len() - 1, "sealed, but written is not final");
                    cov.saw("the checkpoint sees the block sealed");
                }
                if end == 1 {
                    cov.saw("the checkpoint sees a mark before the last");
                }
                assert!(
                    ticket >= end as u64,
                    "mark {end} seen before its ticket {ticket}"
                );
                writer.join().unwrap();
                reader.join().unwrap();
                assert!(block.fully_readable());
                assert_eq!(block.last_ticket(), MARKS.len() as u64 - 1);
            },
        );
    }

    #[test]
    fn loom_block_publishers_out_of_order() {
        static COVERAGE: Coverage = Coverage::new(&[
            "a reader sees readable behind written",
            "a reader sees the last mark readable",
            "the later mark is published first",
        ]);
        explore(
            "block, writer + 2 publishers + reader",
            2,
            &COVERAGE,
            |cov| {
                let block = LoomArc::new(fake_block());
                let reader = {
                    let block = block.clone();
                    thread::spawn(move || observe(&block, cov))
                };
                let mut publishers = Vec::new();
                for (ticket, mark) in MARKS.iter().enumerate().skip(1) {
                    block.record_write(*mark, ticket as u64, false);
                    let (block, mark) = (block.clone(), *mark);
                    publishers.push(thread::spawn(move || {
                        block.publish(mark);
                        if mark == MARKS[1] && block.readable() == MARKS[2] {
                            cov.saw("the later mark is published first");
                        }
                    }));
                }
                publishers.into_iter().for_each(|p| p.join().unwrap());
                reader.join().unwrap();
                assert_eq!(block.readable(), MARKS[2], "the furthest publication wins");
                assert!(block.fully_readable());
            },
        );
    }

    /// The appender's steps in the engine's order (see `Inner::append`):
    /// the frame's bytes, the group-commit ticket, the recorded mark.
    /// `mark_first` is the order that had the checkpoint vouch for bytes
    /// no sync covered.
    fn append(block: &Block, file: &FakeFile, frame: usize, mark_first: bool) {
        file.write(frame as u32);
        let sync = &block.segment.sync;
        if mark_first {
            block.record_write(MARKS[frame], frame as u64, true);
            sync.note_write();
        } else {
            let ticket = sync.note_write();
            block.record_write(MARKS[frame], ticket, true);
        }
    }

    /// A checkpoint (see `Inner::checkpoint`) racing the appender and a
    /// sync round: it reads the written mark, then syncs through the
    /// segment's current ticket. Whatever it saw must be covered: the
    /// frames' tickets are at most that ticket, and the sync made their
    /// bytes durable.
    fn checkpoint_snapshot(mark_first: bool, cov: &'static Coverage) {
        let file = Arc::new(FakeFile::new(None));
        let block = LoomArc::new(block(file.clone()));
        let writer = {
            let (block, file) = (block.clone(), file.clone());
            thread::spawn(move || {
                for frame in 1..MARKS.len() {
                    append(&block, &file, frame, mark_first);
                }
            })
        };
        // A sync round of the background thread, which the checkpoint's
        // sync may find already covering its ticket.
        let syncer = {
            let block = block.clone();
            thread::spawn(move || block.segment.sync_all().unwrap())
        };
        let end = index(block.written());
        cov.saw(["the checkpoint sees mark 0", "the checkpoint sees mark 1"][end.min(1)]);
        let sync = &block.segment.sync;
        let through = sync.current();
        assert!(
            end as u64 <= through,
            "the checkpoint vouches for frame {end}, whose ticket is past {through}"
        );
        sync.sync_through(through, &*block.segment.file).unwrap();
        for frame in 1..=end {
            assert!(
                file.is_durable(frame as u32),
                "frame {frame} vouched for, not durable"
            );
        }
        writer.join().unwrap();
        syncer.join().unwrap();
    }

    #[test]
    fn loom_checkpoint_covers_the_marks_it_saw() {
        static COVERAGE: Coverage =
            Coverage::new(&["the checkpoint sees mark 0", "the checkpoint sees mark 1"]);
        explore(
            "checkpoint, appender + sync round + checkpointer",
            3,
            &COVERAGE,
            |cov| checkpoint_snapshot(false, cov),
        );
    }

    /// The control: with the mark recorded before the ticket is taken (the
    /// old order), the model must find a checkpoint vouching for a frame
    /// that its sync does not cover.
    #[test]
    fn loom_checkpoint_catches_the_mark_before_the_ticket() {
        static COVERAGE: Coverage = Coverage::new(&[]);
        // Quiet: the panic is the expected outcome.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let found = std::panic::catch_unwind(|| {
            explore(
                "checkpoint, the old order (must fail)",
                3,
                &COVERAGE,
                |cov| checkpoint_snapshot(true, cov),
            )
        });
        std::panic::set_hook(hook);
        let panic = found.expect_err("loom found no checkpoint vouching for unsynced frames");
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        let expected = "the checkpoint vouches for frame 1, whose ticket is past 0";
        assert!(message.contains(expected), "another failure: {message}");
        eprintln!("loom: the old order fails as expected: {message}");
    }
}
