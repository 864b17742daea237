//! Sync rounds and running recovery snapshots: what makes appends
//! durable outside the appenders' own group commits.

use super::Inner;
use crate::store::{Error, FsyncSchedule, Result};
use crate::topic::{Extent, Mark};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The longest a sync waits for the reserve-ahead thread.
const RESERVE_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

impl Inner {
    /// Records where each live extent's frames end, syncs every segment, and
    /// writes that down as the recovery snapshot, so that the next open
    /// re-reads only what follows. Positions are taken before the sync, so
    /// the recovery snapshot claims nothing the sync did not cover; concurrent
    /// appends only make it conservative.
    pub(super) fn write_recovery_snapshot(&self) -> Result<()> {
        self.check_writable()?;
        let _one_writer = self.snapshotting.lock();
        self.since_snapshot.store(0, Ordering::Relaxed);
        let mut extents = crate::recovery_snapshot::Extents::new();
        for topic in self.topics.read().values() {
            for extent in topic.extents.read().iter() {
                if extent.is_damaged() {
                    // A read found damage: the next open must re-read it.
                    continue;
                }
                // Sealed first: a sealed extent's written mark is final. The
                // mark is one atomic, so its offset and entry agree.
                let sealed = extent.is_sealed();
                let end = extent.written();
                debug_assert!(
                    end.seq >= extent.first_seq && end.off <= extent.end,
                    "a written mark lies inside its extent"
                );
                let vouched = crate::recovery_snapshot::Vouched {
                    end_off: end.off,
                    end_seq: end.seq,
                    sealed,
                };
                extents.insert((extent.segment.id, extent.extent_start()), vouched);
            }
        }
        self.sync_segments()?;
        crate::recovery_snapshot::write(&*self.storage, &self.dir, &extents)
    }

    /// Syncs every segment, and writes a recovery snapshot too once one is due.
    pub(super) fn sync_round(&self) -> Result<()> {
        let every = self.snapshot_every;
        if every > 0 && self.since_snapshot.load(Ordering::Relaxed) >= every {
            self.write_recovery_snapshot()
        } else {
            self.sync_segments()
        }
    }

    /// Counts extent space toward the next recovery snapshot. Under `SyncEach`
    /// nothing else runs sync rounds, so the background thread is asked for
    /// one each time another `snapshot_every` bytes have been handed out.
    pub(super) fn count_toward_snapshot(&self, extent_len: u64) {
        if self.snapshot_every == 0 {
            return;
        }
        let before = self.since_snapshot.fetch_add(extent_len, Ordering::Relaxed);
        if self.fsync == FsyncSchedule::SyncEach
            && before < self.snapshot_every
            && before + extent_len >= self.snapshot_every
        {
            let mut state = self.signal.state.lock();
            state.snapshot = true;
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
        // Pages the reserve-ahead thread faults in are dirty: let it finish
        // what the appends asked of it, so this sync covers them too.
        self.alloc.reserves().wait_idle(RESERVE_WAIT);
        let segments: Vec<_> = self.segments.lock().values().cloned().collect();
        for segment in segments {
            segment.sync_all().map_err(|e| {
                self.fail(Error::io(format!("syncing {}", segment.path.display()), e))
            })?;
        }
        for (extent, mark) in unreadable {
            extent.publish(mark);
        }
        Ok(())
    }

    /// The written marks of every extent whose frames are not all readable.
    /// Extents become readable in order, so each topic's walk stops at its
    /// first sealed, fully readable extent from the tail.
    pub(super) fn unreadable_marks(&self) -> Vec<(Arc<Extent>, Mark)> {
        let mut marks = Vec::new();
        for topic in self.topics.read().values() {
            for extent in topic.extents.read().iter().rev() {
                // Sealed first: then the written mark read below is final.
                let sealed = extent.is_sealed();
                if extent.fully_readable() {
                    if sealed {
                        break;
                    }
                    continue;
                }
                marks.push((extent.clone(), extent.written()));
            }
        }
        marks
    }
}
