//! How long each store takes to reopen after GiB of 1 KiB entries on 8
//! topics (1000 ms fsync schedule): after a clean close, after the writing
//! process called `sync()` and died without closing, and after it died right
//! after its last append (a child process that exits mid-flight, as a crash
//! would leave it). Stores are compared in one run, on the same disk.
//!
//! ```text
//! cargo run --release -p walrus-adapters --features rocksdb,sled --example reopen_probe -- 1 walrus-fd,walrus-mmap,rocksdb,sled,raw
//! ```

use std::path::Path;
use std::process::Command;
use std::time::Instant;
use walrus_adapters::{open_store, StoreKind};
use walrus_wal::{FsyncSchedule, LogStore, ReadConsistency, StoreConfig};

const TOPICS: u64 = 8;

fn config() -> StoreConfig {
    StoreConfig {
        consistency: ReadConsistency::AtLeastOnce {
            persist_every: 1_000,
        },
        fsync: FsyncSchedule::Milliseconds(1_000),
    }
}

fn open(kind: StoreKind, dir: &Path) -> Box<dyn LogStore> {
    open_store(kind, dir, config()).unwrap_or_else(|e| panic!("opening {kind}: {e}"))
}

/// How the writer process ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    /// `sync()`, then a clean close.
    Close,
    /// `sync()`, then exit without closing.
    SyncAndExit,
    /// Exit right after the last append: whatever the 1000 ms schedule has
    /// not synced yet is the unsynced tail.
    Exit,
}

impl End {
    const ALL: [End; 3] = [End::Close, End::SyncAndExit, End::Exit];

    fn arg(self) -> &'static str {
        match self {
            End::Close => "close",
            End::SyncAndExit => "sync-exit",
            End::Exit => "exit",
        }
    }

    fn label(self) -> &'static str {
        match self {
            End::Close => "after a clean close",
            End::SyncAndExit => "after sync + crash",
            End::Exit => "after a crash",
        }
    }
}

/// Writes `gib` GiB, then ends as `end` says.
fn write(kind: StoreKind, dir: &Path, gib: u64, end: End) {
    let store = open(kind, dir);
    let payload = vec![0x5a_u8; 1024];
    for i in 0..gib << 20 {
        store
            .append(&format!("topic-{}", i % TOPICS), &payload)
            .expect("append");
    }
    if end != End::Exit {
        store.sync().expect("sync");
    }
    if end != End::Close {
        std::process::exit(0);
    }
}

/// Reopens and reads one entry of each topic, so that a store that defers
/// its recovery work to the first read pays it here too.
fn timed_reopen(kind: StoreKind, dir: &Path) -> f64 {
    let t = Instant::now();
    let store = open(kind, dir);
    for topic in 0..TOPICS {
        store
            .read_next(&format!("topic-{topic}"), false)
            .expect("read")
            .expect("an entry");
    }
    t.elapsed().as_secs_f64() * 1e3
}

fn child(args: &[String], end: End) {
    let exe = std::env::current_exe().expect("own path");
    let status = Command::new(exe)
        .args(args)
        .arg(end.arg())
        .status()
        .expect("running the writer");
    assert!(status.success(), "writer failed: {status}");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() == 5 && args[0] == "write" {
        let kind: StoreKind = args[1].parse().expect("store");
        let gib = args[3].parse().expect("GiB");
        let end = End::ALL
            .into_iter()
            .find(|e| e.arg() == args[4])
            .expect("close, sync-exit or exit");
        write(kind, Path::new(&args[2]), gib, end);
        return;
    }
    let gib: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(1);
    let stores = args
        .get(1)
        .map(String::as_str)
        .unwrap_or("walrus-fd,walrus-mmap,raw");
    println!("reopen after {gib} GiB of 1 KiB entries on {TOPICS} topics (ms, then first read of each topic)");
    for name in stores.split(',') {
        let kind: StoreKind = name.parse().expect("store name");
        let mut row = format!("{name:>12}:");
        for end in End::ALL {
            let tmp = tempfile::tempdir().expect("temporary directory");
            let dir = tmp.path().to_str().expect("utf-8 path").to_owned();
            child(&["write".into(), name.into(), dir, gib.to_string()], end);
            let ms = timed_reopen(kind, tmp.path());
            row += &format!("  {} {ms:>8.1}", end.label());
        }
        println!("{row}");
    }
}
