//! Per-topic state: the chain of extents holding the topic's entries, the
//! writer's position at its tail, and the shared consumer cursor.

use crate::format::{FrameHeader, ALIGN, FRAME_HEADER_LEN};
use crate::segment::Segment;
use crate::store::{Entry, Error, Result};
use parking_lot::{Mutex, RwLock};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// One extent of a topic.
pub struct Block {
    pub segment: Arc<Segment>,
    /// File offset of the first frame.
    pub data_start: u64,
    /// File offset one past the extent.
    pub end: u64,
    pub block_seq: u64,
    pub first_seq: u64,
    /// Sequence number after the last committed entry. Stored before
    /// `committed_off`, which publishes it.
    committed_seq: AtomicU64,
    /// File offset after the last committed frame (Release-stored by the
    /// writer, Acquire-loaded by readers: bytes below it are complete).
    committed_off: AtomicU64,
    /// The writer has moved to a later block; `committed_*` are final.
    sealed: AtomicBool,
}

impl Block {
    pub fn new(
        segment: Arc<Segment>,
        data_start: u64,
        end: u64,
        block_seq: u64,
        first_seq: u64,
    ) -> Block {
        Block {
            segment,
            data_start,
            end,
            block_seq,
            first_seq,
            committed_seq: AtomicU64::new(first_seq),
            committed_off: AtomicU64::new(data_start),
            sealed: AtomicBool::new(false),
        }
    }

    pub fn committed(&self) -> (u64, u64) {
        let off = self.committed_off.load(Ordering::Acquire);
        (off, self.committed_seq.load(Ordering::Acquire))
    }

    /// Publishes a frame written at the old commit offset.
    pub fn commit(&self, off: u64, seq: u64) {
        debug_assert!(off <= self.end);
        self.committed_seq.store(seq, Ordering::Release);
        self.committed_off.store(off, Ordering::Release);
    }

    pub fn seal(&self) {
        self.sealed.store(true, Ordering::Release);
    }

    pub fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    pub fn room(&self) -> u64 {
        self.end - self.committed_off.load(Ordering::Acquire)
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
    pub bytes: Vec<u8>,
    pub ranges: Vec<std::ops::Range<usize>>,
}

/// The consume side, behind the topic's reader mutex.
pub struct Reader {
    /// Sequence number of the next entry to return.
    pub seq: u64,
    pub pos: Option<Pos>,
    /// Consumed entries not yet persisted (AtLeastOnce).
    pub unpersisted: u64,
    pub frame: Option<Arc<Frame>>,
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
            }),
            blocks: RwLock::new(blocks),
            reader: Mutex::new(Reader {
                seq: cursor,
                pos: None,
                unpersisted: 0,
                frame: None,
            }),
        }
    }

    /// Returns the entry at `seq` (which `pos` points at, when known) and
    /// moves `pos` past it; `None` when no committed entry is there yet.
    pub fn next_entry(
        &self,
        seq: u64,
        pos: &mut Option<Pos>,
        cache: &mut Option<Arc<Frame>>,
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
            let (committed_off, _) = p.block.committed();
            if p.off >= committed_off {
                // Read `sealed` before re-reading the commit offset: once a
                // block is sealed its commit offset no longer moves.
                if p.block.is_sealed() && p.off >= p.block.committed().0 {
                    *pos = None;
                    if self.locate(seq)?.is_none() {
                        return Ok(None);
                    }
                    continue;
                }
                return Ok(None);
            }
            let frame = self.frame_at(&p.block, p.off, committed_off, cache)?;
            let entry_seq = frame.first_seq + p.idx as u64;
            if entry_seq != seq {
                return Err(Error::Corruption {
                    file: p.block.segment.path.clone(),
                    offset: p.off,
                    reason: format!("expected entry {seq}, frame holds {entry_seq}"),
                });
            }
            let data = frame.bytes[frame.ranges[p.idx].clone()].to_vec();
            let next = if p.idx + 1 < frame.ranges.len() {
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
                .find(|b| b.first_seq <= seq && seq < b.committed().1);
            match found {
                Some(b) => b.clone(),
                None => return Ok(None),
            }
        };
        let (committed_off, _) = block.committed();
        let mut off = block.data_start;
        let mut first = block.first_seq;
        let mut cache = None;
        while off < committed_off {
            let frame = self.frame_at(&block, off, committed_off, &mut cache)?;
            let count = frame.ranges.len() as u64;
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

    /// Reads and checks the frame at `off` (below `committed_off`), reusing
    /// `cache` when the cursor is still inside it.
    fn frame_at(
        &self,
        block: &Block,
        off: u64,
        committed_off: u64,
        cache: &mut Option<Arc<Frame>>,
    ) -> Result<Arc<Frame>> {
        let key = (block.segment.id, off);
        if let Some(frame) = cache.as_ref().filter(|f| f.key == key) {
            return Ok(frame.clone());
        }
        let frame = Arc::new(read_frame(&block.segment, off, committed_off - off)?);
        *cache = Some(frame.clone());
        Ok(frame)
    }
}

/// Reads one whole frame at `off`; `room` bounds its length.
pub fn read_frame(segment: &Segment, off: u64, room: u64) -> Result<Frame> {
    let corrupt = |reason: String| Error::Corruption {
        file: segment.path.clone(),
        offset: off,
        reason,
    };
    let io = |e| Error::io(format!("reading {} at {off}", segment.path.display()), e);
    let mut header = [0u8; FRAME_HEADER_LEN];
    segment.file.read_exact_at(&mut header, off).map_err(io)?;
    let h = match FrameHeader::decode(&header, room) {
        Ok(h) => h,
        Err(e) => return Err(corrupt(e.to_string())),
    };
    let mut bytes = vec![0u8; h.len as usize];
    bytes[..FRAME_HEADER_LEN].copy_from_slice(&header);
    segment
        .file
        .read_exact_at(
            &mut bytes[FRAME_HEADER_LEN..],
            off + FRAME_HEADER_LEN as u64,
        )
        .map_err(io)?;
    let ranges = h
        .payload_ranges(&bytes)
        .map_err(|e| corrupt(e.to_string()))?;
    Ok(Frame {
        key: (segment.id, off),
        first_seq: h.first_seq,
        len_padded: crate::format::align_up(h.len, ALIGN),
        bytes,
        ranges,
    })
}
