//! `AsyncLogStore`: the `LogStore` contract with awaited calls.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use walrus_wal::{Entry, Result};

/// A boxed future of this runtime's tasks (not `Send`: they all run on the
/// runtime's one thread).
pub type LocalBoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// The [`walrus_wal::LogStore`] contract, awaited: every promise of that
/// trait holds when the future resolves. Boxed futures keep the trait
/// usable as `Rc<dyn AsyncLogStore>`, so an application picks its store at
/// run time exactly as with `Box<dyn LogStore>`.
///
/// Cancellation: dropping a future never corrupts the log or loses an
/// acknowledged entry. A dropped append was not acknowledged: its entries
/// are then wholly present or wholly absent (a batch stays atomic). A
/// dropped consuming read hands its entries to the next read of the topic
/// instead of losing them.
pub trait AsyncLogStore {
    /// The store's name, as [`walrus_wal::LogStore::name`].
    fn name(&self) -> &str;

    /// Appends one entry; resolves when it is acknowledged (durable as the
    /// store's fsync schedule promises).
    fn append<'a>(&'a self, topic: &'a str, payload: &'a [u8]) -> LocalBoxFuture<'a, Result<()>>;

    /// Appends up to [`walrus_wal::MAX_BATCH_ENTRIES`] entries atomically.
    fn batch_append<'a>(
        &'a self,
        topic: &'a str,
        payloads: &'a [&'a [u8]],
    ) -> LocalBoxFuture<'a, Result<()>>;

    /// The entry at the topic's cursor, consumed if `checkpoint`.
    fn read_next<'a>(
        &'a self,
        topic: &'a str,
        checkpoint: bool,
    ) -> LocalBoxFuture<'a, Result<Option<Entry>>>;

    /// Entries from the cursor totalling at most `max_bytes` of payload, but
    /// at least one when one is available; consumed if `checkpoint`.
    fn batch_read<'a>(
        &'a self,
        topic: &'a str,
        max_bytes: usize,
        checkpoint: bool,
    ) -> LocalBoxFuture<'a, Result<Vec<Entry>>>;

    /// Every append acknowledged before the call is durable when it resolves.
    fn sync(&self) -> LocalBoxFuture<'_, Result<()>>;

    /// Waits for work in flight, makes every acknowledged append durable and
    /// closes the store. Takes the last handle: with other `Rc`s alive it
    /// fails with [`walrus_wal::Error::InvalidInput`] and closes nothing.
    fn close(self: Rc<Self>) -> LocalBoxFuture<'static, Result<()>>;
}
