//! Writes GiB of 1 KiB entries across 8 topics, then reports peak RSS, how
//! long reopening takes after a clean close (recovery checkpoint) and after a
//! crash (full scan), and how fast one thread reads everything back, in
//! batches and one entry at a time.
//!
//! `cargo run --release -p walrus-wal --example resource_probe -- <GiB> <mmap|fd>`

use std::time::Instant;
use walrus_wal::{Backend, FsyncSchedule, ReadConsistency, Walrus};

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status.lines().find_map(|l| l.strip_prefix("VmHWM:"));
    kb.and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// CPU time this process has used, user plus system.
fn cpu_secs() -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
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
            .consistency(ReadConsistency::AtLeastOnce {
                persist_every: 100_000,
            })
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
    // Half the topics are consumed in batches, the other half one entry at
    // a time.
    let (t, cpu) = (Instant::now(), cpu_secs());
    let mut bytes = 0u64;
    for topic in 0..4 {
        let topic = format!("topic-{topic}");
        loop {
            let batch = wal
                .batch_read_for_topic(&topic, BATCH_READ_BYTES, true)
                .expect("batch read");
            if batch.is_empty() {
                break;
            }
            bytes += batch.iter().map(|e| e.data.len() as u64).sum::<u64>();
        }
    }
    let (secs, cpu) = (t.elapsed().as_secs_f64(), cpu_secs() - cpu);
    println!(
        "batch reads ({} MiB batches, 1 thread): {:.0} MB/s, {:.0} MB per CPU-second",
        BATCH_READ_BYTES >> 20,
        bytes as f64 / secs / 1e6,
        bytes as f64 / cpu / 1e6
    );
    let (t, cpu) = (Instant::now(), cpu_secs());
    let mut entries = 0u64;
    for topic in 4..8 {
        let topic = format!("topic-{topic}");
        while wal.read_next(&topic, true).expect("read").is_some() {
            entries += 1;
        }
    }
    let (secs, cpu) = (t.elapsed().as_secs_f64(), cpu_secs() - cpu);
    println!(
        "read_next (1 thread): {:.0} entries/s, {:.0} per CPU-second",
        entries as f64 / secs,
        entries as f64 / cpu
    );
}

const BATCH_READ_BYTES: usize = 4 << 20;
