//! How many appends share each sync under `SyncEach`, free of disk noise:
//! the engine runs on the simulated storage with every file sync taking a
//! fixed time (as an fdatasync would), and N threads append 1 KiB entries to
//! their own topics for a while. Prints appends/s and appends per sync.
//!
//! `cargo run --release -p walrus-wal --features test-support --example group_commit_probe -- [sync µs] [seconds]`

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use walrus_wal::testing::{FileKind, OpenMode, SimStorage, Storage, StorageFile};
use walrus_wal::{FsyncSchedule, Walrus};

/// The simulated storage, with a fixed latency standing in for each file
/// sync.
struct SlowSync {
    inner: SimStorage,
    latency: Duration,
    syncs: Arc<AtomicU64>,
}

struct SlowFile {
    inner: Arc<dyn StorageFile>,
    latency: Duration,
    syncs: Arc<AtomicU64>,
}

impl Storage for SlowSync {
    fn describe(&self) -> String {
        format!("simulated, {:?} per sync", self.latency)
    }
    fn open(
        &self,
        path: &Path,
        mode: OpenMode,
        kind: FileKind,
    ) -> io::Result<Arc<dyn StorageFile>> {
        Ok(Arc::new(SlowFile {
            inner: self.inner.open(path, mode, kind)?,
            latency: self.latency,
            syncs: self.syncs.clone(),
        }))
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }
}

impl StorageFile for SlowFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }
    fn reserve(&self, offset: u64, len: u64) -> io::Result<()> {
        self.inner.reserve(offset, len)
    }
    fn sync(&self) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        // Only the latency is simulated: what the simulated storage would
        // make durable does not matter here, and its sync is slow.
        std::thread::sleep(self.latency);
        Ok(())
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let sync_us: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(150);
    let secs: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    println!("sync latency {sync_us} µs; 1 KiB appends, one topic per thread");
    for threads in [1, 2, 4, 8, 16, 32] {
        let syncs = Arc::new(AtomicU64::new(0));
        let storage = SlowSync {
            inner: SimStorage::new(),
            latency: Duration::from_micros(sync_us),
            syncs: syncs.clone(),
        };
        let wal = Walrus::builder()
            .data_dir("/sim")
            .storage(Arc::new(storage))
            .fsync(FsyncSchedule::SyncEach)
            .quiet(true)
            .open()
            .expect("open");
        let stop = AtomicBool::new(false);
        let appends = AtomicU64::new(0);
        let before = syncs.load(Ordering::Relaxed);
        let started = Instant::now();
        std::thread::scope(|s| {
            for t in 0..threads {
                let (wal, stop, appends) = (&wal, &stop, &appends);
                s.spawn(move || {
                    let topic = format!("t{t}");
                    let payload = [t as u8; 1024];
                    while !stop.load(Ordering::Relaxed) {
                        wal.append_for_topic(&topic, &payload).expect("append");
                        appends.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            std::thread::sleep(Duration::from_secs_f64(secs));
            stop.store(true, Ordering::Relaxed);
        });
        let elapsed = started.elapsed().as_secs_f64();
        let (n, syncs) = (
            appends.load(Ordering::Relaxed),
            syncs.load(Ordering::Relaxed) - before,
        );
        println!(
            "{threads:>2} threads: {:>8.0} appends/s, {:>5.2} appends per sync",
            n as f64 / elapsed,
            n as f64 / syncs.max(1) as f64
        );
    }
}
