//! Writes GiB of 1 KiB entries across 8 topics, then reports peak RSS and how
//! long reopening takes after a clean close (recovery checkpoint) and after a
//! crash (full scan).
//!
//! `cargo run --release -p walrus-wal --example resource_probe -- <GiB> <mmap|fd>`

use std::time::Instant;
use walrus_wal::{Backend, FsyncSchedule, Walrus};

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status.lines().find_map(|l| l.strip_prefix("VmHWM:"));
    kb.and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn main() {
    let gib: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let backend: Backend = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "fd".into())
        .parse()
        .expect("mmap or fd");
    let tmp = tempfile::tempdir().expect("temporary directory");
    let open = || {
        Walrus::builder()
            .data_dir(tmp.path())
            .backend(backend)
            .fsync(FsyncSchedule::Milliseconds(1000))
            .quiet(true)
            .open()
            .expect("open")
    };
    let payload = vec![0x5a_u8; 1024];
    let start = Instant::now();
    {
        let wal = open();
        for i in 0..gib << 20 {
            wal.append_for_topic(&format!("topic-{}", i % 8), &payload)
                .expect("append");
        }
    }
    println!(
        "{backend}: wrote {gib} GiB in {:.2} s; peak RSS {:.1} MiB",
        start.elapsed().as_secs_f64(),
        peak_rss_mib()
    );
    for round in 1..=3 {
        let t = Instant::now();
        let wal = open();
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let r = wal.recovery_report();
        println!("reopen after clean close #{round}: {ms:.1} ms ({} entries, {} extents from the checkpoint)", r.entries, r.checkpointed_extents);
        if round == 3 {
            wal.simulate_crash();
        }
    }
    let t = Instant::now();
    let wal = open();
    println!(
        "reopen after a crash (full scan): {:.1} ms ({} entries)",
        t.elapsed().as_secs_f64() * 1e3,
        wal.recovery_report().entries
    );
}
