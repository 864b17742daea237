//! An async front end for Walrus on tokio-uring.
//!
//! [`AsyncWalrus`] appends resolve once the entry is durable under the
//! instance's fsync schedule; with `SyncEach`, concurrent appenders of every
//! task share one io_uring fdatasync per segment (group commit across
//! tasks), and no runtime thread ever blocks on an fsync. [`AsyncLogStore`]
//! is the `LogStore` contract awaited; [`Blocking`] runs any `LogStore`
//! (RocksDB, sled, the raw baseline) on tokio's blocking pool behind it, and
//! [`open_async_store`] opens any store by name, Walrus natively.
//!
//! ```no_run
//! use std::rc::Rc;
//! use walrus_async::{AsyncWalrus, Runtime};
//! use walrus_wal::{FsyncSchedule, Walrus};
//!
//! Runtime::new()?.block_on(async {
//!     let builder = Walrus::builder().data_dir("/var/lib/app/wal").fsync(FsyncSchedule::SyncEach);
//!     let wal = Rc::new(AsyncWalrus::open(builder).await?);
//!     let tasks: Vec<_> = (0..64)
//!         .map(|i| {
//!             let wal = wal.clone();
//!             walrus_async::spawn(async move { wal.append("orders", format!("#{i}").as_bytes()).await })
//!         })
//!         .collect();
//!     for t in tasks {
//!         t.await.expect("task")?; // Ok: durable
//!     }
//!     let first = wal.read_next("orders", true).await?;
//!     Rc::try_unwrap(wal).ok().expect("tasks are done").close().await
//! })?;
//! # Ok::<(), walrus_wal::Error>(())
//! ```
//!
//! The crate is separate from `walrus-wal` so that the engine never pulls
//! in a runtime. It needs Linux 5.6 or later; where io_uring is refused,
//! [`Runtime::new`] fails with a typed error instead of panicking.

#![forbid(unsafe_code)]

mod blocking;
#[cfg(feature = "jetstream")]
mod jetstream;
mod open;
mod runtime;
mod store;
mod syncer;
mod walrus;

pub use blocking::Blocking;
#[cfg(feature = "jetstream")]
pub use jetstream::AsyncJetStream;
pub use open::open_async_store;
pub use runtime::{spawn, start, Runtime};
pub use store::{AsyncLogStore, LocalBoxFuture};
pub use walrus::AsyncWalrus;
pub use walrus_adapters::StoreKind;
