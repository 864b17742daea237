//! The background thread, and the reclamation of consumed segments it
//! finishes.

use super::Inner;
use crate::segment::Segment;
use crate::store::{Error, Result};
use crate::topic::Topic;
use parking_lot::{Condvar, Mutex};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Drops the topic's leading extents whose entries are all below `consumed`;
/// returns segments that became empty.
pub(super) fn release_consumed(topic: &Topic, consumed: u64) -> Vec<Arc<Segment>> {
    let mut deletable = Vec::new();
    let mut extents = topic.extents.write();
    while let Some(front) = extents.front() {
        if !front.is_sealed() || front.written().seq > consumed {
            break;
        }
        let extent = extents.pop_front().expect("front exists");
        extent.evict();
        if extent.segment.release_extent() {
            deletable.push(extent.segment.clone());
        }
    }
    deletable
}

impl Inner {
    /// Retires a segment whose entries are all consumed: it is no longer
    /// synced or vouched for, and the background thread deletes the file
    /// and, normally, drops the last reference to it. That last drop closes
    /// the file, and the kernel then frees its cached pages on the dropping
    /// thread: about a tenth of a consumer's CPU when it was the consumer's
    /// (`perf`: page-cache invalidation under batch reads). A file left
    /// behind by a crash is deleted by the next open (its entries are below
    /// the cursor).
    pub(super) fn delete_segment(&self, segment: &Arc<Segment>) {
        self.segments.lock().remove(&segment.id);
        self.signal.state.lock().reclaim.push(segment.clone());
        self.signal.wake.notify_all();
    }

    pub(super) fn reclaim(&self, segment: Arc<Segment>) {
        // Unmapping takes the process's memory-map lock for writing, which
        // stalls every page fault of the consumers meanwhile; dropping the
        // pages first (under the lock for reading) keeps that section short.
        segment.file.evict(0, segment.size_bytes);
        if let Err(e) = self.storage.remove(&segment.path) {
            tracing::warn!(
                "walrus: could not delete consumed {}: {e}",
                segment.path.display()
            );
        }
    }
}

/// The background thread. It deletes consumed segments; under
/// `Milliseconds(n)` it runs a sync round every n ms (a recovery snapshot included
/// when one is due) and once more when stopped; under `SyncEach` it writes
/// the recovery snapshots the appenders ask for.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
enum Stop {
    #[default]
    No,
    Flush,
    Now,
}

#[derive(Default)]
pub(super) struct SignalState {
    stop: Stop,
    pub(super) snapshot: bool,
    /// Consumed segments to delete.
    pub(super) reclaim: Vec<Arc<Segment>>,
}

/// How the engine and `Walrus::drop` reach the background thread.
#[derive(Default)]
pub(super) struct Signal {
    pub(super) state: Mutex<SignalState>,
    pub(super) wake: Condvar,
}

pub(super) struct Background {
    inner: Arc<Inner>,
    /// The thread's result: that of its last flush when stopped with one.
    handle: JoinHandle<Result<()>>,
}

impl Background {
    pub(super) fn start(
        inner: Arc<Inner>,
        interval: Option<Duration>,
    ) -> std::io::Result<Background> {
        let inner2 = inner.clone();
        let handle = std::thread::Builder::new()
            .name("walrus-background".into())
            .spawn(move || Background::run(&inner2, interval))?;
        Ok(Background { inner, handle })
    }

    fn run(inner: &Inner, interval: Option<Duration>) -> Result<()> {
        // When the next sync round is due (never without an interval). Other
        // wake-ups (deletions, recovery snapshot requests) do not move it, so they
        // add no sync rounds to the schedule.
        // An interval too long for `Instant` (`Milliseconds(u64::MAX)`)
        // means no timed round at all.
        let mut next_round = interval.and_then(|every| Instant::now().checked_add(every));
        loop {
            let (stop, snapshot, reclaim) = {
                let mut state = inner.signal.state.lock();
                if state.stop == Stop::No && !state.snapshot && state.reclaim.is_empty() {
                    match next_round {
                        Some(at) => {
                            inner.signal.wake.wait_until(&mut state, at);
                        }
                        None => inner.signal.wake.wait(&mut state),
                    }
                }
                (
                    state.stop,
                    std::mem::take(&mut state.snapshot),
                    std::mem::take(&mut state.reclaim),
                )
            };
            if stop == Stop::Now {
                return Ok(());
            }
            for segment in reclaim {
                inner.reclaim(segment);
            }
            let round_due =
                next_round.is_some_and(|at| stop == Stop::Flush || Instant::now() >= at);
            let round = if snapshot && stop == Stop::No {
                inner.write_recovery_snapshot()
            } else if round_due {
                next_round = interval.and_then(|every| Instant::now().checked_add(every));
                inner.sync_round()
            } else {
                Ok(())
            };
            if let Err(e) = &round {
                tracing::error!("walrus background thread: {e}");
            }
            if stop == Stop::Flush {
                return round;
            }
        }
    }

    /// Stops the thread, after one last flush if `flush`; returns that
    /// flush's outcome.
    pub(super) fn stop(self, flush: bool) -> Result<()> {
        self.inner.signal.state.lock().stop = if flush { Stop::Flush } else { Stop::Now };
        self.inner.signal.wake.notify_all();
        self.handle.join().unwrap_or_else(|_| {
            tracing::error!("walrus background thread panicked");
            Err(Error::Failed("the background thread panicked".into()))
        })
    }
}
