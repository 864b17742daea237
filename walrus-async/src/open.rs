//! Opening any store by name for async use: the async counterpart of
//! `walrus_adapters::open_store`.

use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use walrus_adapters::{open_store, open_walrus, StoreKind};
use walrus_wal::{Error, LogStore, Result, StoreConfig};

use crate::runtime::ensure_inside;
use crate::{AsyncLogStore, AsyncWalrus, Blocking};

/// Opens a `kind` store in `dir` exactly as `open_store` does (same
/// directory layout and marker, so the blocking API can reopen it): Walrus
/// natively as an [`AsyncWalrus`], the JetStream stores natively on their
/// async client (feature `jetstream`), every other store through [`Blocking`].
/// Opening runs on the blocking pool. Must run inside
/// [`Runtime::block_on`](crate::Runtime::block_on).
pub async fn open_async_store(
    kind: StoreKind,
    dir: &Path,
    config: StoreConfig,
) -> Result<Rc<dyn AsyncLogStore>> {
    ensure_inside("open_async_store")?;
    let dir = dir.to_owned();
    let died = |e: tokio::task::JoinError| Error::Failed(format!("opening died: {e}"));
    Ok(match kind {
        StoreKind::Walrus(backend) => {
            let wal = tokio::task::spawn_blocking(move || open_walrus(&dir, backend, config))
                .await
                .map_err(died)??;
            Rc::new(AsyncWalrus::from_walrus(wal)?)
        }
        // The NATS client is async itself: it runs on this runtime.
        #[cfg(feature = "jetstream")]
        StoreKind::JetStreamR1 | StoreKind::JetStreamR3 => {
            Rc::new(crate::AsyncJetStream::open(kind, &dir, config).await?)
        }
        _ => {
            let store = tokio::task::spawn_blocking(move || open_store(kind, &dir, config))
                .await
                .map_err(died)??;
            Rc::new(
                Blocking::<dyn LogStore>::from_arc(Arc::from(store))
                    .with_consistency(config.consistency),
            )
        }
    })
}
