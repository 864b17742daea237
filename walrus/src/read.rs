//! The read path: a topic's consumer cursor ([`Reader`], whose fields only
//! this module touches), finding the cursor's frame in the topic's chain,
//! reading frames back (whole, read ahead in batches, or streamed when
//! large) and checking them.

use crate::format::{FrameHeader, FRAME_HEADER_LEN};
use crate::frames::{decode_frame, read_frame, Frame, LARGE_FRAME_BYTES};
use crate::store::{Entry, Error, Result};
use crate::topic::{Extent, Topic};
use bytes::Bytes;
use std::sync::Arc;

/// How far a consumer reading one entry at a time reads ahead.
const SINGLE_READ_AHEAD: u64 = 64 << 10;

/// The consume side, behind the topic's reader mutex.
pub struct Reader {
    /// Sequence number of the next entry to return.
    seq: u64,
    pos: Option<Pos>,
    /// Consumed entries not yet persisted (AtLeastOnce).
    unpersisted: u64,
    frames: FrameSource,
}

/// Entries a read collected, and where the cursor goes if they are consumed.
pub struct Batch {
    pub entries: Vec<Entry>,
    /// The sequence number after the last entry.
    pub next_seq: u64,
    pos: Option<Pos>,
}

impl Reader {
    pub fn new(cursor: u64) -> Reader {
        Reader {
            seq: cursor,
            pos: None,
            unpersisted: 0,
            frames: FrameSource::default(),
        }
    }

    /// Sequence number of the next entry a read returns.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Consumed entries not yet persisted.
    pub fn unpersisted(&self) -> u64 {
        self.unpersisted
    }

    /// Counts `consumed` more entries as consumed but not persisted.
    pub fn note_unpersisted(&mut self, consumed: u64) {
        self.unpersisted += consumed;
    }

    /// The cursor was persisted at [`Reader::seq`] or later.
    pub fn mark_persisted(&mut self) {
        self.unpersisted = 0;
    }

    /// Collects up to `max_entries` entries totalling at most `max_bytes` of
    /// payload (at least one entry when any is available) from the cursor
    /// on, without moving the cursor.
    pub fn collect(
        &mut self,
        topic: &Topic,
        max_bytes: usize,
        max_entries: usize,
    ) -> Result<Batch> {
        let mut batch = Batch {
            entries: Vec::new(),
            next_seq: self.seq,
            pos: self.pos.clone(),
        };
        let mut total = 0usize;
        self.read_ahead(topic, &mut batch, &mut total, max_bytes, max_entries)?;
        while batch.entries.len() < max_entries {
            let before = batch.pos.clone();
            let next = match topic.next_entry(batch.next_seq, &mut batch.pos, &mut self.frames) {
                // Damage ends a batch after the entries before it: only a
                // read whose first entry is damaged fails.
                Err(Error::Corruption { .. }) if !batch.entries.is_empty() => {
                    batch.pos = before;
                    break;
                }
                next => next?,
            };
            let Some(entry) = next else {
                break;
            };
            if !batch.entries.is_empty() && total + entry.data.len() > max_bytes {
                batch.pos = before;
                break;
            }
            total += entry.data.len();
            batch.entries.push(entry);
            batch.next_seq += 1;
        }
        if max_entries > 1 {
            self.frames.end_batch();
        }
        Ok(batch)
    }

    /// Reads ahead of the cursor before a read collects entries: a batch
    /// read reads its budget at once, a single read a small window.
    fn read_ahead(
        &mut self,
        topic: &Topic,
        batch: &mut Batch,
        total: &mut usize,
        max_bytes: usize,
        max_entries: usize,
    ) -> Result<()> {
        if max_entries > 1 {
            if batch.pos.is_none() {
                // Find the cursor's frame first so the read-ahead starts there.
                if let Some(entry) =
                    topic.next_entry(batch.next_seq, &mut batch.pos, &mut self.frames)?
                {
                    *total += entry.data.len();
                    batch.entries.push(entry);
                    batch.next_seq += 1;
                }
            }
            if let Some(p) = batch.pos.as_ref().filter(|_| *total < max_bytes) {
                topic.prefetch(p, (max_bytes - *total) as u64, &mut self.frames)?;
            }
        } else if let Some(p) = batch.pos.as_ref().filter(|p| !self.frames.holds(p)) {
            // One entry at a time: read a small window ahead once, rather
            // than a header and a body per entry. It is kept for the next
            // reads (committed bytes never change).
            topic.prefetch(p, SINGLE_READ_AHEAD, &mut self.frames)?;
        }
        Ok(())
    }

    /// Moves the cursor past a consumed batch (whose position is persisted
    /// as the consistency mode asks already).
    pub fn consume(&mut self, batch: Batch) {
        debug_assert!(batch.next_seq >= self.seq, "the cursor moves forward only");
        self.seq = batch.next_seq;
        self.pos = batch.pos;
        // A cursor at the end of a sealed extent lets the extent go (the
        // next read finds the next one), so a drained segment's file is
        // not held open, and its space is freed, by an idle reader.
        let at_end = self
            .pos
            .as_ref()
            .is_some_and(|p| p.idx == 0 && p.extent.is_sealed() && p.off >= p.extent.written().off);
        if at_end {
            self.pos = None;
        }
    }

    /// Lets go of a large frame (its entries stay in the file) once the
    /// cursor has left it, so an idle reader never pins its segment.
    pub fn let_go_of_large_frame(&mut self) {
        let left_large_frame = self.frames.last.as_ref().is_some_and(|f| {
            f.len_padded > LARGE_FRAME_BYTES
                && self
                    .pos
                    .as_ref()
                    .is_none_or(|p| (p.extent.segment.id, p.off) != f.key)
        });
        if left_large_frame {
            self.frames.last = None;
        }
    }
}

/// Where the cursor points: a frame, and an entry within it.
#[derive(Clone)]
pub struct Pos {
    pub extent: Arc<Extent>,
    pub off: u64,
    pub idx: usize,
}

impl Topic {
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
            let readable_off = p.extent.readable().off;
            if p.off >= readable_off {
                // Read `sealed` before `written`: once an extent is sealed its
                // written mark no longer moves. A sealed extent whose last
                // frames are written but not yet readable (durable) is not
                // done: the next entry is there, not in a later extent.
                if p.extent.is_sealed() && p.off >= p.extent.written().off {
                    *pos = None;
                    if self.locate(seq)?.is_none() {
                        return Ok(None);
                    }
                    continue;
                }
                return Ok(None);
            }
            let frame = match self.frame_at(&p.extent, p.off, readable_off, src) {
                Ok(frame) => frame,
                Err(e) => {
                    if matches!(e, Error::Corruption { .. }) {
                        p.extent.mark_damaged();
                    }
                    return Err(e);
                }
            };
            let entry_seq = frame.first_seq + p.idx as u64;
            if entry_seq != seq {
                p.extent.mark_damaged();
                return Err(Error::Corruption {
                    file: p.extent.segment.path.clone(),
                    offset: p.off,
                    reason: format!("expected entry {seq}, frame holds {entry_seq}"),
                });
            }
            let data = frame.payload(p.idx)?;
            let next = if p.idx + 1 < frame.entries() {
                Pos {
                    extent: p.extent.clone(),
                    off: p.off,
                    idx: p.idx + 1,
                }
            } else {
                Pos {
                    extent: p.extent.clone(),
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
        let extent = {
            let extents = self.extents.read();
            let found = extents
                .iter()
                .find(|b| b.first_seq <= seq && seq < b.readable().seq);
            match found {
                Some(b) => b.clone(),
                None => return Ok(None),
            }
        };
        let readable_off = extent.readable().off;
        let mut off = extent.data_start;
        let mut first = extent.first_seq;
        let mut src = FrameSource::default();
        while off < readable_off {
            let frame = match self.frame_at(&extent, off, readable_off, &mut src) {
                Ok(frame) => frame,
                Err(e) => {
                    if matches!(e, Error::Corruption { .. }) {
                        extent.mark_damaged();
                    }
                    return Err(e);
                }
            };
            let count = frame.entries() as u64;
            if seq < first + count {
                return Ok(Some(Pos {
                    extent,
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
        extent: &Extent,
        off: u64,
        readable_off: u64,
        src: &'s mut FrameSource,
    ) -> Result<&'s Frame> {
        let segment = &extent.segment;
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
        let mut plan: Vec<(Arc<Extent>, u64, u64)> = Vec::new();
        let mut left = budget;
        let readable_off = pos.extent.readable().off;
        let first_len = (readable_off.saturating_sub(pos.off)).min(left);
        if first_len > 0 {
            plan.push((pos.extent.clone(), pos.off, first_len));
        }
        left -= first_len;
        if left > 0 && pos.extent.is_sealed() {
            let extents = self.extents.read();
            let later = extents
                .iter()
                .skip_while(|b| !Arc::ptr_eq(b, &pos.extent))
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
        let (segment, off) = (pos.extent.segment.id, pos.off);
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
