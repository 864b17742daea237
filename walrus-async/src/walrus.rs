//! `AsyncWalrus`: the engine with awaited durability.

use walrus_wal::{Entry, Result, Walrus, WalrusBuilder};

use crate::blocking::Blocking;
use crate::runtime::ensure_inside;
use crate::store::forward_async_log_store;
use crate::syncer::Syncer;

/// A [`Walrus`] whose appends resolve once durable under the instance's
/// [`FsyncSchedule`](walrus_wal::FsyncSchedule), without blocking the
/// runtime thread on an fsync.
///
/// An append writes its frame at once, on the runtime thread (a copy into
/// the page cache or the mapping; the rare step that creates a new segment
/// also fsyncs it there). With `SyncEach` it then awaits the instance's
/// syncer task, which covers every waiting task's append with one io_uring
/// fdatasync per dirty segment. With `Milliseconds(n)` and `NoFsync` it
/// resolves at once, as the blocking append returns at once. Reads and
/// `sync` run on tokio's blocking pool (a consuming read may fsync its
/// cursor).
///
/// Share it between tasks with `Rc<AsyncWalrus>`; finish with
/// [`AsyncWalrus::close`]. Dropping it without `close` still closes the
/// engine cleanly, but blocks the dropping thread for the final flush.
pub struct AsyncWalrus {
    syncer: Syncer,
    engine: Blocking<Walrus>,
}

impl AsyncWalrus {
    /// Opens (and recovers) an instance on the blocking pool. Must run
    /// inside [`Runtime::block_on`](crate::Runtime::block_on).
    pub async fn open(builder: WalrusBuilder) -> Result<AsyncWalrus> {
        ensure_inside("AsyncWalrus::open")?;
        let wal = tokio::task::spawn_blocking(move || builder.open())
            .await
            .unwrap_or_else(|e| Err(walrus_wal::Error::Failed(format!("opening died: {e}"))))?;
        AsyncWalrus::from_walrus(wal)
    }

    /// Wraps an open instance. Must run inside
    /// [`Runtime::block_on`](crate::Runtime::block_on). Under `AtLeastOnce`
    /// (the instance's own setting) a consuming read consumes in the engine
    /// only once its caller has the entries, so that a read cancelled before
    /// a crash never skips them (see [`Blocking`]).
    pub fn from_walrus(wal: Walrus) -> Result<AsyncWalrus> {
        ensure_inside("AsyncWalrus::from_walrus")?;
        let consistency = wal.consistency();
        Ok(AsyncWalrus {
            syncer: Syncer::start(),
            engine: Blocking::new(wal).with_consistency(consistency),
        })
    }

    /// The engine, for what has no async form (topic info, the recovery
    /// report). Its blocking calls block the runtime thread.
    pub fn walrus(&self) -> &Walrus {
        self.engine.store()
    }

    /// Appends one entry; resolves once it is acknowledged.
    pub async fn append(&self, topic: &str, payload: &[u8]) -> Result<()> {
        self.batch_append(topic, &[payload]).await
    }

    /// Appends up to 2,000 entries atomically; resolves once acknowledged.
    /// An empty batch writes nothing and succeeds.
    pub async fn batch_append(&self, topic: &str, payloads: &[&[u8]]) -> Result<()> {
        if payloads.is_empty() {
            return walrus_wal::store::validate_topic(topic);
        }
        let pending = self.walrus().append_pending(topic, payloads)?;
        self.syncer.durable(pending).await
    }

    /// The entry at the topic's cursor, consumed if `checkpoint`.
    pub async fn read_next(&self, topic: &str, checkpoint: bool) -> Result<Option<Entry>> {
        self.engine.read_next(topic, checkpoint).await
    }

    /// Entries totalling at most `max_bytes` of payload (at least one when
    /// one is available), consumed if `checkpoint`.
    pub async fn batch_read(
        &self,
        topic: &str,
        max_bytes: usize,
        checkpoint: bool,
    ) -> Result<Vec<Entry>> {
        self.engine.batch_read(topic, max_bytes, checkpoint).await
    }

    /// Makes every acknowledged append durable.
    pub async fn sync(&self) -> Result<()> {
        self.engine.sync().await
    }

    /// Serves every append still awaiting its sync, waits for reads in
    /// flight, flushes, and closes the engine (cursors persisted, recovery
    /// checkpoint written) off the runtime thread.
    pub async fn close(self) -> Result<()> {
        let AsyncWalrus { syncer, engine } = self;
        syncer.close().await;
        engine.close().await
    }

    /// Like `close`, but hands the engine back instead of closing it (to
    /// carry on with blocking calls, or for a test to simulate a crash).
    pub async fn into_walrus(self) -> Result<Walrus> {
        let AsyncWalrus { syncer, engine } = self;
        syncer.close().await;
        engine.into_inner().await
    }
}

forward_async_log_store!([] AsyncWalrus, |_me| "walrus");
