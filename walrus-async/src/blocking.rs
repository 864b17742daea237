//! `Blocking`: any `LogStore` as an `AsyncLogStore`, its calls run on tokio's
//! blocking pool so that no runtime thread waits for an fsync.
//!
//! Consuming reads are serialized per topic by an async lock that the
//! blocking job itself releases, after it has either handed its entries to
//! the caller or, when the caller's future was dropped meanwhile, put them
//! in the topic's stash. The next read of the topic returns the stash first,
//! so a cancelled read neither loses nor reorders entries.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, Mutex as AsyncMutex};
use walrus_wal::{Entry, Error, LogStore, Result};

use crate::store::forward_async_log_store;

/// Entries consumed by a read whose caller went away, per topic.
type Stash = Arc<AsyncMutex<VecDeque<Entry>>>;

/// How long `close` sleeps between looks for blocking jobs still running.
const CLOSE_POLL: Duration = Duration::from_millis(1);

/// Runs a [`LogStore`] on tokio's blocking pool. Appends copy their payload
/// once (a blocking job cannot borrow the caller's bytes).
pub struct Blocking<S: ?Sized + LogStore + 'static> {
    store: Arc<S>,
    stashes: Mutex<HashMap<String, Stash>>,
}

/// What a read asks for.
#[derive(Clone, Copy)]
enum Want {
    Next,
    Bytes(usize),
}

impl<S: LogStore + 'static> Blocking<S> {
    pub fn new(store: S) -> Blocking<S> {
        Blocking::from_arc(Arc::new(store))
    }

    /// The store back, once no blocking job holds it any more. Entries that
    /// cancelled reads left in a stash are returned by no later read: they
    /// were consumed.
    pub async fn into_inner(self) -> Result<S> {
        let store = self.store;
        run_blocking(move || {
            wait_alone(&store);
            Arc::try_unwrap(store).map_err(|_| Error::Failed("the store is still shared".into()))
        })
        .await
    }
}

/// Blocks until `store` is the last handle: blocking jobs in flight (of
/// reads whose callers went away) each hold one until they finish.
fn wait_alone<S: ?Sized>(store: &Arc<S>) {
    while Arc::strong_count(store) > 1 {
        std::thread::sleep(CLOSE_POLL);
    }
}

impl<S: ?Sized + LogStore + 'static> Blocking<S> {
    /// Wraps a shared store, e.g. `Arc::<dyn LogStore>::from(open_store(..)?)`.
    pub fn from_arc(store: Arc<S>) -> Blocking<S> {
        Blocking {
            store,
            stashes: Mutex::new(HashMap::new()),
        }
    }

    /// The wrapped store (for blocking calls of the caller's own).
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    pub async fn append(&self, topic: &str, payload: &[u8]) -> Result<()> {
        let (store, topic, payload) = (self.store.clone(), topic.to_owned(), payload.to_vec());
        run_blocking(move || store.append(&topic, &payload)).await
    }

    pub async fn batch_append(&self, topic: &str, payloads: &[&[u8]]) -> Result<()> {
        let store = self.store.clone();
        let topic = topic.to_owned();
        let owned: Vec<Vec<u8>> = payloads.iter().map(|p| p.to_vec()).collect();
        run_blocking(move || {
            let refs: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
            store.batch_append(&topic, &refs)
        })
        .await
    }

    pub async fn read_next(&self, topic: &str, checkpoint: bool) -> Result<Option<Entry>> {
        Ok(self.read(topic, Want::Next, checkpoint).await?.pop())
    }

    pub async fn batch_read(
        &self,
        topic: &str,
        max_bytes: usize,
        checkpoint: bool,
    ) -> Result<Vec<Entry>> {
        self.read(topic, Want::Bytes(max_bytes), checkpoint).await
    }

    pub async fn sync(&self) -> Result<()> {
        let store = self.store.clone();
        run_blocking(move || store.sync()).await
    }

    /// Waits until no blocking job holds the store any more, then syncs and
    /// drops it on the blocking pool (a store's drop may fsync).
    pub async fn close(self) -> Result<()> {
        let store = self.store;
        run_blocking(move || {
            wait_alone(&store);
            let synced = store.sync();
            drop(store);
            synced
        })
        .await
    }

    fn stash(&self, topic: &str) -> Stash {
        let mut stashes = self.stashes.lock().unwrap_or_else(|e| e.into_inner());
        stashes.entry(topic.to_owned()).or_default().clone()
    }

    async fn read(&self, topic: &str, want: Want, checkpoint: bool) -> Result<Vec<Entry>> {
        let mut stash = self.stash(topic).lock_owned().await;
        if !stash.is_empty() {
            return Ok(take(&mut stash, want, checkpoint));
        }
        let (store, topic) = (self.store.clone(), topic.to_owned());
        let (tx, rx) = oneshot::channel();
        tokio::task::spawn_blocking(move || {
            let result = match want {
                Want::Next => store
                    .read_next(&topic, checkpoint)
                    .map(|e| e.into_iter().collect()),
                Want::Bytes(max) => store.batch_read(&topic, max, checkpoint),
            };
            drop(store);
            if let Err(Ok(orphans)) = tx.send(result) {
                if checkpoint {
                    stash.extend(orphans);
                }
            }
            // The topic's next read starts only now, after the stash.
            drop(stash);
        });
        rx.await
            .unwrap_or_else(|_| Err(Error::Failed("the blocking read task died".into())))
    }
}

/// Serves a read from a topic's stash, as the store would have.
fn take(stash: &mut VecDeque<Entry>, want: Want, checkpoint: bool) -> Vec<Entry> {
    let count = match want {
        Want::Next => 1,
        Want::Bytes(max) => {
            let mut total = 0usize;
            let fits = stash
                .iter()
                .take_while(|e| {
                    total += e.data.len();
                    total <= max
                })
                .count();
            fits.max(1)
        }
    };
    let count = count.min(stash.len());
    if checkpoint {
        stash.drain(..count).collect()
    } else {
        stash.iter().take(count).cloned().collect()
    }
}

async fn run_blocking<T: Send + 'static>(
    job: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(job)
        .await
        .unwrap_or_else(|e| Err(Error::Failed(format!("a blocking store call died: {e}"))))
}

forward_async_log_store!([S: ?Sized + LogStore + 'static] Blocking<S>, |me| me.store.name());
