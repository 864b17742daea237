//! One benchmark cell: a fresh data directory, a freshly opened store, the
//! workload, verification, bytes on disk, cleanup.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use walrus_async::{AsyncLogStore, Blocking, Runtime, StoreKind};
use walrus_wal::{LogStore, StoreConfig};

use crate::error::BenchError;
use crate::metrics::disk_usage_bytes;
use crate::progress::Progress;
use crate::workload::{read_phase, verify_written, write_phase, PhaseStats, ReadSpec, WriteSpec};
use crate::workload::{BENCH_PREFIX, WARMUP_PREFIX};

/// Opens a store of one kind in a directory. Production passes the adapters;
/// tests pass in-memory doubles.
pub type Opener<'a> = dyn Fn(&Path, StoreConfig) -> walrus_wal::Result<Box<dyn LogStore>> + 'a;

/// What a cell runs against its store.
#[derive(Clone, Debug)]
pub enum Workload {
    /// Timed writes, then every entry read back and verified (untimed).
    Write(WriteSpec),
    /// Timed writes, then timed verified reads of what was written. `cold`:
    /// between the two the store is closed, the page cache dropped
    /// (`/proc/sys/vm/drop_caches`) and the store reopened, so the reads
    /// come from the disk; where the cache cannot be dropped the cell fails
    /// with [`BenchError::ColdReadUnavailable`] rather than measure hot.
    Read {
        write: WriteSpec,
        read: ReadSpec,
        cold: bool,
    },
    /// `Write`, but from tasks on one tokio-uring thread awaiting each
    /// append through the async front end (`crate::async_workload`).
    AsyncWrite(WriteSpec),
}

/// Where cells put their data and whether they keep it.
#[derive(Clone, Debug)]
pub struct RunEnv {
    pub data_dir: PathBuf,
    pub keep_data: bool,
    pub progress: Progress,
}

/// What one cell measured.
#[derive(Clone, Debug)]
pub struct CellOutcome {
    pub write: PhaseStats,
    pub read: Option<PhaseStats>,
    /// Entries read back and checked (write cells: all of them).
    pub verified_entries: u64,
    /// Allocated bytes in the data directory after the writes and a `sync()`.
    pub disk_bytes: u64,
    /// `disk_bytes` over payload bytes written (warm-up included).
    pub space_amp: f64,
}

/// Runs `workload` on a store opened by `open` in a fresh directory named
/// after `label`, under `config`.
pub fn run_cell(
    open: &Opener<'_>,
    label: &str,
    config: StoreConfig,
    workload: &Workload,
    env: &RunEnv,
) -> Result<CellOutcome, BenchError> {
    if let Workload::AsyncWrite(spec) = workload {
        return run_async_cell(AsyncOpen::Blocking(open), label, config, spec, env);
    }
    quiesce_disk();
    let dir = FreshDir::create(&env.data_dir, label, env.keep_data)?;
    let open_here = || {
        open(dir.path(), config).map_err(|source| BenchError::Store {
            store: label.to_string(),
            source,
        })
    };
    let mut boxed = open_here()?;
    let store: &dyn LogStore = boxed.as_ref();
    let write_spec = match workload {
        Workload::Write(w) | Workload::AsyncWrite(w) => w,
        Workload::Read { write, .. } => write,
    };
    let written = write_phase(store, write_spec, &env.progress)?;
    // Untimed: makes every store's footprint comparable (sled, for one,
    // holds unflushed data in memory).
    store.sync().map_err(|e| BenchError::store(store, e))?;
    let disk_bytes = disk_usage_bytes(dir.path())
        .map_err(|e| BenchError::io(format!("measuring {}", dir.path().display()), e))?;
    if let Workload::Read { cold: true, .. } = workload {
        drop(boxed);
        drop_page_cache()?;
        boxed = open_here()?;
    }
    let store: &dyn LogStore = boxed.as_ref();
    let (read, verified_entries) = match workload {
        Workload::Write(spec) | Workload::AsyncWrite(spec) => {
            (None, verify_written(store, spec, &written)?)
        }
        Workload::Read { write, read, .. } => {
            let stats = read_phase(store, read, write.entry_size, &written.acked, &env.progress)?;
            let verified = stats.entries;
            (Some(stats), verified)
        }
    };
    Ok(CellOutcome {
        space_amp: disk_bytes as f64 / written.logical_bytes.max(1) as f64,
        write: written.stats,
        read,
        verified_entries,
        disk_bytes,
    })
}

/// How a cell opens its async store.
pub(crate) enum AsyncOpen<'a> {
    /// By kind, as an application would: Walrus natively.
    Kind(StoreKind),
    /// Any store from a blocking opener (test doubles), behind `Blocking`.
    Blocking(&'a Opener<'a>),
}

/// Runs one async write cell in a fresh directory: warm-up, timed writes,
/// `sync`, bytes on disk, verified read-back, close.
pub(crate) fn run_async_cell(
    open: AsyncOpen<'_>,
    label: &str,
    config: StoreConfig,
    spec: &WriteSpec,
    env: &RunEnv,
) -> Result<CellOutcome, BenchError> {
    let store_err = |source| BenchError::Store {
        store: label.to_string(),
        source,
    };
    quiesce_disk();
    let dir = FreshDir::create(&env.data_dir, label, env.keep_data)?;
    let runtime = Runtime::new().map_err(store_err)?;
    runtime.block_on(async {
        let store: Rc<dyn AsyncLogStore> = match open {
            AsyncOpen::Kind(kind) => walrus_async::open_async_store(kind, dir.path(), config)
                .await
                .map_err(store_err)?,
            AsyncOpen::Blocking(open) => {
                let store = open(dir.path(), config).map_err(store_err)?;
                Rc::new(Blocking::<dyn LogStore>::from_arc(Arc::from(store)))
            }
        };
        let mut logical_bytes = 0;
        if !spec.warmup.is_zero() {
            let warm = WriteSpec {
                duration: spec.warmup,
                ..spec.clone()
            };
            let (stats, _) =
                crate::async_workload::timed_writes(&store, &warm, WARMUP_PREFIX, &env.progress)
                    .await?;
            logical_bytes += stats.bytes;
        }
        let (stats, acked) =
            crate::async_workload::timed_writes(&store, spec, BENCH_PREFIX, &env.progress).await?;
        logical_bytes += stats.bytes;
        store.sync().await.map_err(store_err)?;
        let disk_bytes = disk_usage_bytes(dir.path())
            .map_err(|e| BenchError::io(format!("measuring {}", dir.path().display()), e))?;
        let verified_entries = crate::async_workload::verify(&store, spec, &acked).await?;
        store.close().await.map_err(store_err)?;
        Ok(CellOutcome {
            space_amp: disk_bytes as f64 / logical_bytes.max(1) as f64,
            write: stats,
            read: None,
            verified_entries,
            disk_bytes,
        })
    })
}

/// Writes back every dirty page and drops the clean ones (`echo 3 >
/// /proc/sys/vm/drop_caches`), for cold reads. Needs root outside a
/// read-only `/proc/sys`; otherwise [`BenchError::ColdReadUnavailable`].
pub(crate) fn drop_page_cache() -> Result<(), BenchError> {
    quiesce_disk();
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").map_err(|e| {
        BenchError::ColdReadUnavailable(format!("writing /proc/sys/vm/drop_caches: {e}"))
    })
}

/// Flushes every dirty page of the system before a cell starts (untimed).
/// Without it the writeback of earlier cells' data lands on whichever store
/// runs next: on ext4 an appending fdatasync waits for a journal commit,
/// which waits for that writeback, so sync-each numbers would depend on
/// what ran before rather than on the store.
pub(crate) fn quiesce_disk() {
    // SAFETY: sync(2) takes no arguments, touches no memory of ours and
    // cannot fail.
    unsafe { libc::sync() };
}

/// A data directory no earlier run has touched, removed on drop unless kept.
pub(crate) struct FreshDir {
    path: PathBuf,
    keep: bool,
}

impl FreshDir {
    pub(crate) fn create(parent: &Path, label: &str, keep: bool) -> Result<FreshDir, BenchError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        std::fs::create_dir_all(parent)
            .map_err(|e| BenchError::io(format!("creating {}", parent.display()), e))?;
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = parent.join(format!("{label}-{}-{n}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(FreshDir { path, keep }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(BenchError::io(format!("creating {}", path.display()), e)),
            }
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FreshDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
