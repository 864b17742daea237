//! Sync rounds and running recovery checkpoints: what makes appends
//! durable outside the appenders' own group commits.

use super::Inner;
use crate::store::{Error, FsyncSchedule, Result};
use crate::topic::{Block, Mark};
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Inner {
    /// Records where each live extent's frames end, syncs every segment, and
    /// writes that down as the recovery checkpoint, so that the next open
    /// re-reads only what follows. Positions are taken before the sync, so
    /// the checkpoint claims nothing the sync did not cover; concurrent
    /// appends only make it conservative.
    pub(super) fn checkpoint(&self) -> Result<()> {
        self.check_writable()?;
        let _one_writer = self.checkpointing.lock();
        self.since_checkpoint.store(0, Ordering::Relaxed);
        let mut extents = crate::checkpoint::Extents::new();
        for topic in self.topics.read().values() {
            for block in topic.blocks.read().iter() {
                if block.is_damaged() {
                    // A read found damage: the next open must re-read it.
                    continue;
                }
                // Sealed first: a sealed block's written mark is final. The
                // mark is one atomic, so its offset and entry agree.
                let sealed = block.is_sealed();
                let end = block.written();
                debug_assert!(
                    end.seq >= block.first_seq && end.off <= block.end,
                    "a written mark lies inside its extent"
                );
                let vouched = crate::checkpoint::Vouched {
                    end_off: end.off,
                    end_seq: end.seq,
                    sealed,
                };
                extents.insert((block.segment.id, block.extent_start()), vouched);
            }
        }
        self.sync_segments()?;
        crate::checkpoint::write(&*self.storage, &self.dir, &extents)
    }

    /// Syncs every segment, and writes a checkpoint too once one is due.
    pub(super) fn sync_round(&self) -> Result<()> {
        let every = self.checkpoint_every;
        if every > 0 && self.since_checkpoint.load(Ordering::Relaxed) >= every {
            self.checkpoint()
        } else {
            self.sync_segments()
        }
    }

    /// Counts extent space toward the next checkpoint. Under `SyncEach`
    /// nothing else runs sync rounds, so the background thread is asked for
    /// one each time another `checkpoint_every` bytes have been handed out.
    pub(super) fn count_toward_checkpoint(&self, extent_len: u64) {
        if self.checkpoint_every == 0 {
            return;
        }
        let before = self
            .since_checkpoint
            .fetch_add(extent_len, Ordering::Relaxed);
        if self.fsync == FsyncSchedule::SyncEach
            && before < self.checkpoint_every
            && before + extent_len >= self.checkpoint_every
        {
            let mut state = self.signal.state.lock();
            state.checkpoint = true;
            self.signal.wake.notify_all();
        }
    }

    /// Syncs every segment. Under `SyncEach` the frames written before the
    /// sync then become readable (appends that were never acknowledged
    /// would otherwise stay invisible until a later one is).
    pub(super) fn sync_segments(&self) -> Result<()> {
        let unreadable = if self.fsync == FsyncSchedule::SyncEach {
            self.unreadable_marks()
        } else {
            Vec::new()
        };
        let segments: Vec<_> = self.segments.lock().values().cloned().collect();
        for segment in segments {
            segment.sync_all().map_err(|e| {
                self.fail(Error::io(format!("syncing {}", segment.path.display()), e))
            })?;
        }
        for (block, mark) in unreadable {
            block.publish(mark);
        }
        Ok(())
    }

    /// The written marks of every block whose frames are not all readable.
    /// Blocks become readable in order, so each topic's walk stops at its
    /// first sealed, fully readable block from the tail.
    pub(super) fn unreadable_marks(&self) -> Vec<(Arc<Block>, Mark)> {
        let mut marks = Vec::new();
        for topic in self.topics.read().values() {
            for block in topic.blocks.read().iter().rev() {
                // Sealed first: then the written mark read below is final.
                let sealed = block.is_sealed();
                if block.fully_readable() {
                    if sealed {
                        break;
                    }
                    continue;
                }
                marks.push((block.clone(), block.written()));
            }
        }
        marks
    }
}
