//! How long each store takes to reopen after GiB of 1 KiB entries on 8
//! topics: after a clean close, and after the writing process died without
//! closing (a child process that exits mid-flight, as a crash would leave
//! it). Stores are compared in one run, on the same disk.
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

/// Writes `gib` GiB, syncs, then closes the store or, with `crash`, exits
/// the process without closing it.
fn write(kind: StoreKind, dir: &Path, gib: u64, crash: bool) {
    let store = open(kind, dir);
    let payload = vec![0x5a_u8; 1024];
    for i in 0..gib << 20 {
        store
            .append(&format!("topic-{}", i % TOPICS), &payload)
            .expect("append");
    }
    store.sync().expect("sync");
    if crash {
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

fn child(args: &[String], crash: bool) {
    let exe = std::env::current_exe().expect("own path");
    let status = Command::new(exe)
        .args(args)
        .arg(if crash { "crash" } else { "close" })
        .status()
        .expect("running the writer");
    assert!(status.success(), "writer failed: {status}");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() == 5 && args[0] == "write" {
        let kind: StoreKind = args[1].parse().expect("store");
        let gib = args[3].parse().expect("GiB");
        write(kind, Path::new(&args[2]), gib, args[4] == "crash");
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
        for crash in [false, true] {
            let tmp = tempfile::tempdir().expect("temporary directory");
            let dir = tmp.path().to_str().expect("utf-8 path").to_owned();
            child(&["write".into(), name.into(), dir, gib.to_string()], crash);
            let ms = timed_reopen(kind, tmp.path());
            let label = if crash {
                "after a crash"
            } else {
                "after a clean close"
            };
            row += &format!("  {label} {ms:>8.1}");
        }
        println!("{row}");
    }
}
