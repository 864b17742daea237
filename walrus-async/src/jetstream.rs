//! The JetStream stores (`jetstream-r1`, `jetstream-r3`) on the client's own
//! async API: the `async-nats` client runs on this crate's runtime (tokio
//! underneath tokio-uring), so no call goes through the blocking pool
//! except starting the nodes.

use std::path::Path;

use walrus_adapters::jetstream::{store_name, JetStreamClient, LocalNodes};
use walrus_adapters::StoreKind;
use walrus_wal::{Entry, Error, Result, StoreConfig};

use crate::store::forward_async_log_store;

/// A JetStream store opened for async use. Same directory layout, marker
/// and nodes as `open_store`, so either API reopens what the other wrote.
pub struct AsyncJetStream {
    client: JetStreamClient,
    /// Held so the nodes stay up (and are parked, not stopped, on close).
    _nodes: LocalNodes,
}

impl AsyncJetStream {
    /// Starts the nodes (on the blocking pool) and connects natively.
    pub async fn open(kind: StoreKind, dir: &Path, config: StoreConfig) -> Result<AsyncJetStream> {
        let replicas = match kind {
            StoreKind::JetStreamR1 => 1,
            StoreKind::JetStreamR3 => 3,
            other => {
                return Err(Error::InvalidInput(format!(
                    "{other} is not a JetStream store"
                )))
            }
        };
        let dir = dir.to_owned();
        let nodes =
            tokio::task::spawn_blocking(move || LocalNodes::start(&dir, replicas, config.fsync))
                .await
                .map_err(|e| Error::Failed(format!("starting nats-server died: {e}")))??;
        let client = JetStreamClient::connect(
            store_name(replicas),
            nodes.urls.clone(),
            replicas,
            config,
            nodes.node_dirs.clone(),
        )
        .await?;
        Ok(AsyncJetStream {
            client,
            _nodes: nodes,
        })
    }

    async fn append(&self, topic: &str, payload: &[u8]) -> Result<()> {
        self.client.append(topic, payload).await
    }

    async fn batch_append(&self, topic: &str, payloads: &[&[u8]]) -> Result<()> {
        self.client.batch_append(topic, payloads).await
    }

    async fn read_next(&self, topic: &str, checkpoint: bool) -> Result<Option<Entry>> {
        self.client.read_next(topic, checkpoint).await
    }

    async fn batch_read(
        &self,
        topic: &str,
        max_bytes: usize,
        checkpoint: bool,
    ) -> Result<Vec<Entry>> {
        self.client.batch_read(topic, max_bytes, checkpoint).await
    }

    async fn sync(&self) -> Result<()> {
        self.client.sync().await
    }

    /// Persists every cursor, then drops the client (the nodes are parked).
    async fn close(self) -> Result<()> {
        self.client.persist_cursors().await
    }
}

forward_async_log_store!([] AsyncJetStream, |me| me.client.name());

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{open_async_store, Runtime};
    use walrus_wal::{FsyncSchedule, ReadConsistency};

    /// Written natively, reopened natively and through the blocking API:
    /// both see one store, and the cursor carries over.
    #[test]
    fn native_async_jetstream_round_trips_with_the_blocking_api() {
        let tmp = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            consistency: ReadConsistency::StrictlyAtOnce,
            fsync: FsyncSchedule::SyncEach,
        };
        let rt = Runtime::new().unwrap();
        rt.block_on(async {
            let store = open_async_store(StoreKind::JetStreamR1, tmp.path(), config)
                .await
                .unwrap();
            assert_eq!(store.name(), "jetstream-r1");
            store.append("a.b", b"one").await.unwrap();
            store
                .batch_append("a.b", &[b"two", b"three"])
                .await
                .unwrap();
            let first = store.read_next("a.b", true).await.unwrap().unwrap();
            assert_eq!((first.seq, &first.data[..]), (0, &b"one"[..]));
            store.sync().await.unwrap();
            store.close().await.unwrap();
        });
        let blocking =
            walrus_adapters::open_store(StoreKind::JetStreamR1, tmp.path(), config).unwrap();
        let rest = blocking.batch_read("a.b", usize::MAX, false).unwrap();
        let rest: Vec<(u64, &[u8])> = rest.iter().map(|e| (e.seq, &e.data[..])).collect();
        assert_eq!(rest, vec![(1, &b"two"[..]), (2, &b"three"[..])]);
    }
}
