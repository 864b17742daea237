//! The public face of group commit: [`PendingWrite`] (an append written but
//! not yet acknowledged), [`SegmentSync`] and [`SyncLead`] (for a driver
//! that runs the covering fdatasync itself). The mechanism they drive is
//! [`crate::group_commit::GroupSync`], one per segment.

use super::Inner;
use crate::segment::Segment;
use crate::store::{Error, Result};
use crate::topic::{Extent, Mark};
use std::os::fd::BorrowedFd;
use std::sync::Arc;

/// An append that is written but may not be durable yet: returned by
/// [`Walrus::append_pending`](crate::Walrus::append_pending). Dropping it does not undo the write; the
/// entries stay in the log and a later sync makes them durable, but the
/// append was never acknowledged.
///
/// Under `SyncEach` the entries become readable only once the write is
/// durable: when [`PendingWrite::wait`] returns, when a dropped
/// `PendingWrite` finds itself durable, when a later append of the topic is
/// acknowledged, or when `sync()` returns.
#[must_use = "an append is acknowledged only once its PendingWrite is durable"]
pub struct PendingWrite {
    /// `None` when the schedule asks for no sync before acknowledging
    /// (`Milliseconds`, `NoFsync`).
    pub(super) sync: Option<SegmentSync>,
    pub(super) ticket: u64,
    /// `SyncEach`: what the acknowledgement makes readable.
    pub(super) publication: Option<Publication>,
}

/// The frames an acknowledged `SyncEach` append makes readable: its own, and
/// those of the topic's earlier extents that were not readable yet (whose
/// durability it waits for too).
pub(super) struct Publication {
    pub(super) extent: Arc<Extent>,
    pub(super) mark: Mark,
    pub(super) behind: Vec<Arc<Extent>>,
}

impl Publication {
    fn behind_durable(&self) -> bool {
        self.behind
            .iter()
            .all(|b| b.segment.sync.is_synced(b.last_ticket()))
    }

    /// Makes the frames readable; the caller has checked they are durable.
    fn publish(self) {
        for extent in &self.behind {
            extent.publish(extent.written());
        }
        self.extent.publish(self.mark);
    }
}

impl PendingWrite {
    /// Whether the append is already as durable as the schedule promises
    /// at acknowledgement: always for `Milliseconds` and `NoFsync`; for
    /// `SyncEach` once a sync of its segment that started after the write
    /// has finished (and the topic's earlier writes in other segments are
    /// durable too).
    pub fn is_durable(&self) -> bool {
        self.sync.as_ref().is_none_or(|s| s.is_synced(self.ticket))
            && self
                .publication
                .as_ref()
                .is_none_or(Publication::behind_durable)
    }

    /// Whether durability needs more than a sync of [`PendingWrite::segment`]
    /// through [`PendingWrite::ticket`]: the topic's previous extent lives in
    /// another segment and its last frames are not durable yet. A driver
    /// that syncs segments itself then calls [`PendingWrite::wait`] where
    /// blocking is allowed.
    pub fn needs_other_segments(&self) -> bool {
        self.publication
            .as_ref()
            .is_some_and(|p| !p.behind_durable())
    }

    /// The write's place in its segment's sequence of writes; a sync that
    /// covers this ticket makes it durable.
    pub fn ticket(&self) -> u64 {
        self.ticket
    }

    /// The segment whose sync makes this write durable; `None` when the
    /// schedule needs no sync before acknowledging.
    pub fn segment(&self) -> Option<&SegmentSync> {
        self.sync.as_ref()
    }

    /// Blocks until the append is durable, sharing the fdatasync with every
    /// concurrent waiter on the same segment (group commit), and makes its
    /// entries readable. A failed sync is final: it fails this and every
    /// later write of the instance. Returns at once when the append is
    /// durable already.
    pub fn wait(mut self) -> Result<()> {
        if let Some(sync) = &self.sync {
            sync.sync_append(self.ticket)?;
            if let Some(publication) = &self.publication {
                for extent in &publication.behind {
                    let ticket = extent.last_ticket();
                    if !extent.segment.sync.is_synced(ticket) {
                        let behind = SegmentSync {
                            inner: sync.inner.clone(),
                            segment: extent.segment.clone(),
                        };
                        behind.sync_through(ticket)?;
                    }
                }
            }
        }
        if let Some(publication) = self.publication.take() {
            publication.publish();
        }
        Ok(())
    }
}

impl Drop for PendingWrite {
    /// An append dropped unacknowledged still becomes readable once it is
    /// durable; if it is not yet, a later acknowledgement or `sync()` of
    /// the topic publishes it.
    fn drop(&mut self) {
        if self.is_durable() {
            if let Some(publication) = self.publication.take() {
                publication.publish();
            }
        }
    }
}

/// The group commit of one segment file, for a driver that performs the
/// covering sync itself (the async front end issues it through io_uring).
/// The protocol: [`SegmentSync::try_lead`] makes the caller the one syncer
/// of the file and names the last write a sync now covers; the caller
/// fdatasyncs [`SegmentSync::fd`] (a duplicate of it) and reports the
/// outcome with [`SyncLead::finish`]. Blocking waiters of the same file
/// share that sync, and a failure fails the instance exactly as a failed
/// blocking sync does.
#[derive(Clone)]
pub struct SegmentSync {
    pub(super) inner: Arc<Inner>,
    pub(super) segment: Arc<Segment>,
}

impl SegmentSync {
    /// The segment's id (distinct among an instance's live segments).
    pub fn id(&self) -> u64 {
        self.segment.id
    }

    /// Whether a finished sync covers `ticket`.
    pub fn is_synced(&self, ticket: u64) -> bool {
        self.segment.sync.is_synced(ticket)
    }

    /// The segment file's descriptor, to duplicate for an external sync.
    /// `None` for storage without one (the simulated storage of the
    /// tests): sync those with [`SegmentSync::sync_through`].
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.segment.file.fd()
    }

    /// Blocks until a sync covering `ticket` has finished, leading one if
    /// none is running (the blocking group commit).
    pub fn sync_through(&self, ticket: u64) -> Result<()> {
        self.segment
            .sync
            .sync_through(ticket, &*self.segment.file)
            .map_err(|e| self.fail(e))
    }

    /// As `sync_through`, for the appender that wrote `ticket`: a leader
    /// first gathers concurrent appenders' writes (see `GroupSync`).
    fn sync_append(&self, ticket: u64) -> Result<()> {
        self.segment
            .sync
            .sync_append(ticket, &*self.segment.file)
            .map_err(|e| self.fail(e))
    }

    /// Takes the lead of the next sync without blocking. `Ok(None)`: a sync
    /// is in progress already (wait for it with `sync_through`). An error
    /// means an earlier sync of this file failed; the instance is failed.
    pub fn try_lead(&self) -> Result<Option<SyncLead>> {
        match self.segment.sync.try_lead() {
            Ok(lead) => Ok(lead.map(|target| SyncLead {
                sync: self.clone(),
                target,
                finished: false,
            })),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn fail(&self, e: std::io::Error) -> Error {
        let context = format!("syncing {}", self.segment.path.display());
        self.inner.fail(Error::io(context, e))
    }
}

/// The lead of one sync of a segment, from [`SegmentSync::try_lead`]. Until
/// it is finished no other sync of the file starts; dropping it unfinished
/// counts the sync as failed, because its outcome is unknown.
#[must_use = "a lead must be finished with the outcome of its sync"]
pub struct SyncLead {
    sync: SegmentSync,
    target: u64,
    finished: bool,
}

impl SyncLead {
    /// Every ticket up to this one is durable once the sync succeeds.
    pub fn target(&self) -> u64 {
        self.target
    }

    /// Records the outcome of an fdatasync of the segment that started after
    /// this lead was taken. An error fails the instance (later writes get
    /// [`Error::Failed`]) and is returned with its context.
    pub fn finish(mut self, outcome: std::io::Result<()>) -> Result<()> {
        self.finished = true;
        self.sync.segment.sync.finish(self.target, outcome.is_ok());
        outcome.map_err(|e| self.sync.fail(e))
    }
}

impl Drop for SyncLead {
    fn drop(&mut self) {
        if !self.finished {
            self.sync.segment.sync.abandon();
            self.sync.fail(std::io::Error::other(
                "a sync was abandoned before its outcome was known",
            ));
        }
    }
}
