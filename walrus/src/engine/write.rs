//! The write path: an append's validation, its frame written at the tail
//! of the topic's current extent (under the topic's writer mutex), and the
//! allocation of a fresh extent when the current one is full.

use super::pending::Publication;
use super::Inner;
use super::{PendingWrite, SegmentSync};
use crate::format::{align_up, encode_frame, frame_len, ExtentHeader, ALIGN};
use crate::segment::{Segment, EXTENT_UNIT};
use crate::storage::StorageFile;
use crate::store::{validate_batch_len, validate_topic, Error, FsyncSchedule, Result};
use crate::topic::{Extent, Mark, Topic, Writer};
use std::sync::Arc;

/// What the write step of an append leaves for the durability step.
pub(super) struct Written {
    /// `SyncEach`: the segment whose group commit the append waits for.
    /// (Not cloned otherwise: its count is a cache line every topic of the
    /// segment would write twice per append.)
    pub(super) segment: Option<Arc<Segment>>,
    pub(super) ticket: u64,
    /// `SyncEach`: what to make readable once durable.
    pub(super) publication: Option<Publication>,
}

/// Frames up to this size are encoded into the writer's buffer and written
/// with one call; larger ones are written from the caller's payloads in
/// place, so appending a 1 GiB entry never holds a second copy of it.
const STREAMED_FRAME_BYTES: u64 = 1 << 20;
const STREAMED_PIECE_BYTES: usize = 4 << 20;

/// Writes a frame at `off` as its head (encoded into `buf`), then each
/// payload where it belongs, then the zero padding.
fn write_streamed_frame(
    file: &dyn StorageFile,
    buf: &mut Vec<u8>,
    off: u64,
    first_seq: u64,
    payloads: &[&[u8]],
) -> std::io::Result<()> {
    let len = crate::format::encode_frame_head(buf, first_seq, payloads);
    file.write_all_at(buf, off)?;
    let mut at = off + buf.len() as u64;
    for payload in payloads {
        // In pieces, each evicted once written: on the mmap backend the
        // mapped pages of a 1 GiB entry do not all stay in the process.
        // (The data stays dirty in the page cache; syncs write it as usual.)
        for piece in payload.chunks(STREAMED_PIECE_BYTES) {
            file.write_all_at(piece, at)?;
            file.evict(at, piece.len() as u64);
            at += piece.len() as u64;
        }
    }
    debug_assert_eq!(at, off + len, "frame length as computed");
    let padding = (align_up(len, ALIGN) - len) as usize;
    file.write_all_at(&[0u8; ALIGN as usize][..padding], at)
}

impl Inner {
    /// What an append waits on for its acknowledgement: under `SyncEach`
    /// its segment's group commit, else nothing (the schedule syncs).
    #[inline(always)]
    pub(super) fn pending(self: &Arc<Self>, written: Written) -> PendingWrite {
        let sync = written.segment.map(|segment| SegmentSync {
            inner: self.clone(),
            segment,
        });
        PendingWrite {
            sync,
            ticket: written.ticket,
            publication: written.publication,
        }
    }

    /// The write step of an append: validates, encodes the frame and writes
    /// it under the topic's writer lock. Readers see the entries when this
    /// returns; the caller decides how to wait for durability.
    #[inline(always)]
    pub(super) fn write(&self, topic_name: &str, payloads: &[&[u8]]) -> Result<Written> {
        validate_topic(topic_name)?;
        self.write_to(&self.topic(topic_name)?, payloads)
    }

    /// [`write`](Self::write) to a topic already looked up (a
    /// [`TopicHandle`](super::TopicHandle) holds it): no map, no lock on it.
    #[inline(always)]
    pub(super) fn write_to(&self, topic: &Arc<Topic>, payloads: &[&[u8]]) -> Result<Written> {
        validate_batch_len(payloads.len())?;
        let len = frame_len(payloads.iter().map(|p| p.len()));
        self.check_frame_len(len, payloads)?;
        self.check_writable()?;
        let mut w = topic.writer.lock();
        let need = align_up(len, ALIGN);
        let extent = match &w.extent {
            Some(b) if b.room() >= need => b.clone(),
            _ => self.new_extent(topic, &mut w, need)?,
        };
        let at = extent.written();
        debug_assert!(extent.room() >= need, "the frame fits its extent");
        let first_seq = w.next_seq;
        if let Err(e) = write_frame(&extent, &mut w.buf, at.off, need, first_seq, payloads) {
            // The extent's tail may now hold a partial frame: never write
            // after it again.
            w.extent = None;
            self.retire_extent(&mut w, extent.clone());
            return Err(Error::io(
                format!("appending to {}", extent.segment.path.display()),
                e,
            ));
        }
        Ok(self.record_written(&mut w, extent, at.off + need, payloads.len() as u64))
    }

    /// Refuses a frame of `len` bytes larger than any extent can hold.
    #[inline(always)]
    fn check_frame_len(&self, len: u64, payloads: &[&[u8]]) -> Result<()> {
        if len <= self.max_frame_bytes {
            return Ok(());
        }
        let biggest = payloads.iter().map(|p| p.len()).max().unwrap_or(0) as u64;
        Err(if payloads.len() == 1 || biggest > self.max_frame_bytes {
            Error::EntryTooLarge {
                size: biggest,
                max: self.max_frame_bytes - frame_len([0]),
            }
        } else {
            Error::InvalidBatch {
                reason: format!(
                    "batch frame of {len} bytes exceeds the limit of {}",
                    self.max_frame_bytes
                ),
            }
        })
    }

    /// Records a frame of `entries` entries written up to `end`: the
    /// topic's next sequence number, the extent's written mark, the ticket
    /// its durability waits for, and (`SyncEach`) what to publish then.
    // The steps of `write` are inlined into it: as calls of their own they
    // cost about 47 instructions per 1 KiB append, 3% (callgrind,
    // `examples/append_cost.rs`).
    #[inline(always)]
    fn record_written(
        &self,
        w: &mut Writer,
        extent: Arc<Extent>,
        end: u64,
        entries: u64,
    ) -> Written {
        let sync_each = self.fsync == FsyncSchedule::SyncEach;
        debug_assert!(end > extent.written().off, "a frame moves the mark forward");
        w.next_seq += entries;
        let mark = Mark {
            off: end,
            seq: w.next_seq,
        };
        // The ticket is taken before the frame is recorded: a recovery snapshot
        // that sees the frame then also finds it counted, so the sync it
        // runs before vouching covers the frame.
        let ticket = extent.segment.sync.note_write();
        extent.record_write(mark, ticket, !sync_each);
        let publication = sync_each.then(|| {
            w.behind.retain(|b| !b.fully_readable());
            Publication {
                extent: extent.clone(),
                mark,
                behind: w.behind.clone(),
            }
        });
        Written {
            segment: sync_each.then(|| extent.segment.clone()),
            ticket,
            publication,
        }
    }

    /// The writer is done with `extent`: no frame is written there again.
    /// Under `SyncEach` an extent whose last frames are not readable yet is
    /// kept in `behind`, so that later appends wait for them.
    pub(super) fn retire_extent(&self, w: &mut Writer, extent: Arc<Extent>) {
        extent.seal();
        // The writer is done with it; readers fault back what they need.
        extent.evict();
        if self.fsync == FsyncSchedule::SyncEach && !extent.fully_readable() {
            w.behind.push(extent);
        }
    }

    /// Gives the topic a fresh extent with room for a frame of `need` bytes.
    pub(super) fn new_extent(
        &self,
        topic: &Topic,
        w: &mut Writer,
        need: u64,
    ) -> Result<Arc<Extent>> {
        let data_offset = ExtentHeader::data_offset(topic.name.len());
        let extent_len = self
            .extent_bytes
            .max(align_up(data_offset + need, EXTENT_UNIT));
        let header = ExtentHeader {
            topic: topic.name.clone(),
            extent_len,
            extent_seq: w.next_extent_seq,
            first_entry_seq: w.next_seq,
        };
        let mut deletable = None;
        let lane = *w.lane.get_or_insert_with(|| self.alloc.pick());
        let allocation = self.alloc.lane(lane).lock().allocate(
            &*self.storage,
            &self.dir,
            &header,
            |segment| {
                self.segments.lock().insert(segment.id, segment.clone());
            },
            |segment| deletable = Some(segment),
        )?;
        if let Some(segment) = deletable {
            self.delete_segment(&segment);
        }
        let start = allocation.start;
        debug_assert!(
            data_offset + need <= extent_len,
            "the new extent holds its header and the frame"
        );
        let extent = Arc::new(Extent::new(
            allocation.segment,
            start + data_offset,
            start + extent_len,
            w.next_extent_seq,
            w.next_seq,
        ));
        w.next_extent_seq += 1;
        topic.extents.write().push_back(extent.clone());
        self.count_toward_snapshot(extent_len);
        if let Some(old) = w.extent.replace(extent.clone()) {
            self.retire_extent(w, old);
        }
        Ok(extent)
    }
}

/// Writes the frame of `payloads` (first entry `first_seq`, `need` bytes
/// padded) at `off` in `extent`'s segment: encoded into `buf` and written
/// with one call, or streamed from the payloads when large.
#[inline(always)]
fn write_frame(
    extent: &Extent,
    buf: &mut Vec<u8>,
    off: u64,
    need: u64,
    first_seq: u64,
    payloads: &[&[u8]],
) -> std::io::Result<()> {
    if need <= STREAMED_FRAME_BYTES {
        encode_frame(buf, first_seq, payloads);
        assert_eq!(buf.len() as u64, need, "frame length as computed");
        extent.segment.file.write_all_at(buf, off)
    } else {
        write_streamed_frame(&*extent.segment.file, buf, off, first_seq, payloads)
    }
}
