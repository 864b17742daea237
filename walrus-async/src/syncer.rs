//! Group commit across tasks: one syncer task per instance makes pending
//! writes durable for every task that awaits one.
//!
//! An appender writes its frame synchronously (`Walrus::append_pending`),
//! registers its ticket here and awaits a oneshot. The syncer wakes, first
//! yields until every task that can run has written its next entry, then
//! takes every registered waiter and, per dirty segment, issues one
//! `IORING_OP_FSYNC` (datasync) on a duplicate of the segment's descriptor,
//! all segments' at once.
//! With 64 tasks on the runtime, one fdatasync acknowledges up to 64 appends.
//!
//! Cancellation: a waiter that is dropped only drops its receiver. Its frame
//! is already whole in the file, is made durable by the same or a later
//! sync, and was never acknowledged. The syncer itself is never cancelled
//! while the instance is open; if the runtime drops it mid-sync, the engine
//! counts that sync as failed (`SyncLead`'s drop), so nothing is ever
//! acknowledged on an unknown outcome.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::rc::Rc;

use futures_util::future::join_all;
use tokio::sync::{oneshot, Notify};
use walrus_wal::{Error, PendingWrite, Result, SegmentSync};

/// Waiters of one segment, with the tickets their writes got.
struct Dirty {
    sync: SegmentSync,
    waiters: Vec<(u64, oneshot::Sender<Result<()>>)>,
}

/// Duplicated segment descriptors for io_uring, by segment id.
type UringFiles = HashMap<u64, Rc<tokio_uring::fs::File>>;

#[derive(Default)]
struct State {
    /// Dirty segments by id. Bounded by the appends in flight: each waiter
    /// is one awaiting task.
    dirty: BTreeMap<u64, Dirty>,
    stopping: bool,
}

#[derive(Default)]
struct Shared {
    state: RefCell<State>,
    wake: Notify,
    /// Waiters registered so far, ever: tells the syncer when the tasks
    /// that can run have all written.
    registered: Cell<u64>,
}

/// The handle appenders use; stops the task when dropped or closed.
pub(crate) struct Syncer {
    shared: Rc<Shared>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Syncer {
    /// Spawns the syncer task on the current runtime (callers check that
    /// there is one).
    pub(crate) fn start() -> Syncer {
        let shared = Rc::new(Shared::default());
        let task = tokio_uring::spawn(run(shared.clone()));
        Syncer {
            shared,
            task: Some(task),
        }
    }

    /// Resolves once `pending` is durable (or its sync failed), and makes
    /// its entries readable (`PendingWrite::wait`, which returns at once
    /// for a durable write).
    pub(crate) async fn durable(&self, pending: PendingWrite) -> Result<()> {
        if pending.needs_other_segments() {
            // The topic's previous block, in another segment, is not durable
            // yet (once per block switch at most). Its sync may be one this
            // thread's syncer leads, so wait where blocking is allowed.
            return tokio::task::spawn_blocking(move || pending.wait())
                .await
                .unwrap_or_else(|e| {
                    Err(Error::Failed(format!("the blocking sync task died: {e}")))
                });
        }
        let Some(sync) = pending.segment().filter(|_| !pending.is_durable()) else {
            // Nothing to wait for (NoFsync, Milliseconds). Still spend a
            // unit of the task's coop budget: a task appending in a loop
            // would otherwise never yield, and starve every other task on
            // the thread, timers included.
            tokio::task::coop::consume_budget().await;
            return pending.wait();
        };
        let (tx, rx) = oneshot::channel();
        self.shared
            .state
            .borrow_mut()
            .dirty
            .entry(sync.id())
            .or_insert_with(|| Dirty {
                sync: sync.clone(),
                waiters: Vec::new(),
            })
            .waiters
            .push((pending.ticket(), tx));
        self.shared.registered.set(self.shared.registered.get() + 1);
        self.shared.wake.notify_one();
        rx.await.unwrap_or_else(|_| {
            Err(Error::Failed(
                "the async syncer stopped before this append was synced".into(),
            ))
        })?;
        debug_assert!(pending.is_durable(), "acknowledged only once synced");
        pending.wait()
    }

    /// Serves every registered waiter, then ends the task.
    pub(crate) async fn close(mut self) {
        self.shared.state.borrow_mut().stopping = true;
        self.shared.wake.notify_one();
        if let Some(task) = self.task.take() {
            // A JoinError means the task panicked or the runtime is going
            // down; its waiters then got errors from their dropped senders.
            let _ = task.await;
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.shared.state.borrow_mut().stopping = true;
        self.shared.wake.notify_one();
    }
}

async fn run(shared: Rc<Shared>) {
    // Duplicated descriptors of the segments synced last round.
    let mut files = UringFiles::new();
    loop {
        let idle = shared.state.borrow().dirty.is_empty();
        if idle {
            if shared.state.borrow().stopping {
                return;
            }
            shared.wake.notified().await;
            continue;
        }
        // Let every task that can run write first, so that one fsync covers
        // them all: yield until a pass adds no waiter. A task registers at
        // most once per round (it then awaits its answer), so this ends
        // after at most one pass per task.
        loop {
            let seen = shared.registered.get();
            tokio::task::yield_now().await;
            if shared.registered.get() == seen {
                break;
            }
        }
        let round = std::mem::take(&mut shared.state.borrow_mut().dirty);
        files.retain(|id, _| round.contains_key(id));
        // Segments are synced concurrently: the current extents of many
        // topics can span two segments, and their fsyncs need not queue.
        let syncs = round.into_values().map(|dirty| {
            let file = uring_file(&dirty.sync, &mut files);
            async move {
                let outcome = sync_segment(&dirty, file).await;
                (dirty, outcome)
            }
        });
        for (dirty, outcome) in join_all(syncs).await {
            resolve(&shared, dirty, outcome);
        }
    }
}

/// The segment's descriptor, duplicated once and kept while the segment is
/// being written; `None` for storage without one (simulated storage) or
/// with no descriptor to spare (EMFILE): those sync through the engine.
fn uring_file(sync: &SegmentSync, files: &mut UringFiles) -> Option<Rc<tokio_uring::fs::File>> {
    if let Some(file) = files.get(&sync.id()) {
        return Some(file.clone());
    }
    let fd = sync.fd()?.try_clone_to_owned().ok()?;
    let file = Rc::new(tokio_uring::fs::File::from_std(std::fs::File::from(fd)));
    files.insert(sync.id(), file.clone());
    Some(file)
}

/// Makes every waiter's ticket of one segment durable.
async fn sync_segment(dirty: &Dirty, file: Option<Rc<tokio_uring::fs::File>>) -> Result<()> {
    let newest = dirty.waiters.iter().map(|w| w.0).max().unwrap_or(0);
    if dirty.sync.is_synced(newest) {
        return Ok(());
    }
    let Some(file) = file else {
        return blocking_sync(dirty.sync.clone(), newest).await;
    };
    let Some(lead) = dirty.sync.try_lead()? else {
        // A blocking caller (Walrus::sync, the close) is syncing this file;
        // wait for it where waiting may block.
        return blocking_sync(dirty.sync.clone(), newest).await;
    };
    lead.finish(file.sync_data().await)
}

async fn blocking_sync(sync: SegmentSync, ticket: u64) -> Result<()> {
    tokio::task::spawn_blocking(move || sync.sync_through(ticket))
        .await
        .unwrap_or_else(|e| Err(Error::Failed(format!("the blocking sync task died: {e}"))))
}

/// Answers the waiters of one synced segment. A waiter whose ticket the
/// sync did not cover (none should be left, but an ack must never be
/// guessed) goes back for the next round.
fn resolve(shared: &Shared, dirty: Dirty, outcome: Result<()>) {
    let Dirty { sync, waiters } = dirty;
    let mut again = Vec::new();
    for (ticket, tx) in waiters {
        let answer = match &outcome {
            Ok(()) if sync.is_synced(ticket) => Ok(()),
            Ok(()) => {
                again.push((ticket, tx));
                continue;
            }
            Err(e) => Err(copy_error(e)),
        };
        // The receiver is gone when its append was cancelled: its entry is
        // durable now but was never acknowledged, which the contract allows.
        let _ = tx.send(answer);
    }
    if !again.is_empty() {
        let mut state = shared.state.borrow_mut();
        let entry = state.dirty.entry(sync.id()).or_insert_with(|| Dirty {
            sync,
            waiters: Vec::new(),
        });
        entry.waiters.extend(again);
        shared.wake.notify_one();
    }
}

/// One failed sync answers many waiters; `Error` is not `Clone`.
pub(crate) fn copy_error(e: &Error) -> Error {
    match e {
        Error::Io { context, source } => Error::Io {
            context: context.clone(),
            source: match source.raw_os_error() {
                Some(code) => io::Error::from_raw_os_error(code),
                None => io::Error::new(source.kind(), source.to_string()),
            },
        },
        Error::Failed(reason) => Error::Failed(reason.clone()),
        other => Error::Failed(other.to_string()),
    }
}
