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
/// instead of losing them. After a crash, under `AtLeastOnce` they are
/// still in the store; under `StrictlyAtOnce` they were consumed, and a
/// crash before that next read loses them (see [`crate::Blocking`]).
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

/// Implements [`AsyncLogStore`] for a type whose inherent async methods of
/// the same names do the work (and whose `close(self)` closes it).
macro_rules! forward_async_log_store {
    ([$($generics:tt)*] $ty:ty, |$me:ident| $name:expr) => {
        impl<$($generics)*> $crate::store::AsyncLogStore for $ty {
            fn name(&self) -> &str {
                let $me = self;
                $name
            }

            fn append<'a>(
                &'a self,
                topic: &'a str,
                payload: &'a [u8],
            ) -> $crate::store::LocalBoxFuture<'a, walrus_wal::Result<()>> {
                Box::pin(<$ty>::append(self, topic, payload))
            }

            fn batch_append<'a>(
                &'a self,
                topic: &'a str,
                payloads: &'a [&'a [u8]],
            ) -> $crate::store::LocalBoxFuture<'a, walrus_wal::Result<()>> {
                Box::pin(<$ty>::batch_append(self, topic, payloads))
            }

            fn read_next<'a>(
                &'a self,
                topic: &'a str,
                checkpoint: bool,
            ) -> $crate::store::LocalBoxFuture<'a, walrus_wal::Result<Option<walrus_wal::Entry>>>
            {
                Box::pin(<$ty>::read_next(self, topic, checkpoint))
            }

            fn batch_read<'a>(
                &'a self,
                topic: &'a str,
                max_bytes: usize,
                checkpoint: bool,
            ) -> $crate::store::LocalBoxFuture<'a, walrus_wal::Result<Vec<walrus_wal::Entry>>> {
                Box::pin(<$ty>::batch_read(self, topic, max_bytes, checkpoint))
            }

            fn sync(&self) -> $crate::store::LocalBoxFuture<'_, walrus_wal::Result<()>> {
                Box::pin(<$ty>::sync(self))
            }

            fn close(
                self: std::rc::Rc<Self>,
            ) -> $crate::store::LocalBoxFuture<'static, walrus_wal::Result<()>> {
                Box::pin(async move {
                    match std::rc::Rc::try_unwrap(self) {
                        Ok(me) => me.close().await,
                        Err(_) => Err(walrus_wal::Error::InvalidInput(
                            "close: other handles to the store are still alive".into(),
                        )),
                    }
                })
            }
        }
    };
}
pub(crate) use forward_async_log_store;
