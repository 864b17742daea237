//! Soak run: producers and consumers on many topics for a set time, checking
//! that nothing is lost or duplicated and that disk and memory stay bounded.
//!
//! `make soak` runs it (`SOAK_SECONDS`, default 600). Settings:
//! SOAK_SECONDS, SOAK_PRODUCERS (4), SOAK_TOPICS (16), SOAK_ENTRY_SIZE (1024),
//! WALRUS_DATA_DIR (a fresh temporary directory by default), BACKEND.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use walrus_wal::{Backend, FsyncSchedule, ReadConsistency, Walrus};

/// Entries a topic's producer may run ahead of the consumer.
const MAX_BACKLOG: u64 = 20_000;

fn env_or(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
        Err(_) => default,
    }
}

/// Bytes the files of `dir` occupy on disk (sparse-aware).
fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.blocks() * 512)
                .sum()
        })
        .unwrap_or(0)
}

/// Peak resident set size of this process, from the kernel's accounting.
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    kb.unwrap_or(0) * 1024
}

fn payload(topic: usize, n: u64, size: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(size.max(16));
    p.extend_from_slice(&(topic as u64).to_le_bytes());
    p.extend_from_slice(&n.to_le_bytes());
    p.resize(size.max(16), (n % 251) as u8);
    p
}

fn main() {
    let seconds = env_or("SOAK_SECONDS", 600);
    let producers = env_or("SOAK_PRODUCERS", 4) as usize;
    let topics = env_or("SOAK_TOPICS", 16) as usize;
    let entry_size = env_or("SOAK_ENTRY_SIZE", 1024) as usize;
    let tmp = tempfile::tempdir().expect("temporary directory");
    let data_dir = std::env::var("WALRUS_DATA_DIR")
        .map(Into::into)
        .unwrap_or(tmp.path().to_owned());
    let backend = Backend::from_env().expect("BACKEND");
    let open = || {
        Walrus::builder()
            .data_dir(&data_dir)
            .instance_key("soak")
            .backend(backend)
            .quiet(true)
            .consistency(ReadConsistency::AtLeastOnce {
                persist_every: 1_000,
            })
            .fsync(FsyncSchedule::Milliseconds(200))
            .open()
            .expect("open")
    };
    let wal = Arc::new(open());
    let dir = wal.dir().to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let produced: Arc<Vec<AtomicU64>> = Arc::new((0..topics).map(|_| AtomicU64::new(0)).collect());
    let consumed: Arc<Vec<AtomicU64>> = Arc::new((0..topics).map(|_| AtomicU64::new(0)).collect());

    // Producer p owns topics p, p + producers, ...: each topic has one writer,
    // so its entries carry consecutive numbers.
    let mut handles = Vec::new();
    for p in 0..producers {
        let (wal, stop, written, produced) =
            (wal.clone(), stop.clone(), written.clone(), produced.clone());
        let consumed = consumed.clone();
        handles.push(std::thread::spawn(move || {
            let mine: Vec<usize> = (p..topics).step_by(producers).collect();
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) && !mine.is_empty() {
                let t = mine[i % mine.len()];
                let n = produced[t].load(Ordering::Relaxed);
                // A steady workload: producers wait when the consumer is
                // more than MAX_BACKLOG entries behind on a topic.
                if n - consumed[t].load(Ordering::Acquire) > MAX_BACKLOG {
                    std::thread::sleep(Duration::from_micros(200));
                    continue;
                }
                wal.append_for_topic(&format!("topic-{t}"), &payload(t, n, entry_size))
                    .expect("append");
                produced[t].store(n + 1, Ordering::Release);
                written.fetch_add(entry_size as u64, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    // One consumer checks every topic's numbers: a gap is a lost entry, a
    // repeat a duplicate.
    let consumer = {
        let (wal, stop, consumed) = (wal.clone(), stop.clone(), consumed.clone());
        std::thread::spawn(move || {
            let mut next = vec![0u64; topics];
            let (mut lost, mut duplicated) = (0u64, 0u64);
            loop {
                let stopping = stop.load(Ordering::Acquire);
                let mut got_any = false;
                for (t, expected) in next.iter_mut().enumerate() {
                    let batch = wal
                        .batch_read_for_topic(&format!("topic-{t}"), 256 * 1024, true)
                        .expect("read");
                    got_any |= !batch.is_empty();
                    for e in batch {
                        let n = u64::from_le_bytes(e.data[8..16].try_into().unwrap());
                        match n.cmp(expected) {
                            std::cmp::Ordering::Less => duplicated += 1,
                            std::cmp::Ordering::Greater => lost += n - *expected,
                            std::cmp::Ordering::Equal => {}
                        }
                        *expected = (*expected).max(n + 1);
                    }
                    consumed[t].store(*expected, Ordering::Release);
                }
                if stopping && !got_any {
                    return (next, lost, duplicated);
                }
            }
        })
    };

    let start = Instant::now();
    let (mut peak_disk, mut last_report) = (0u64, Instant::now());
    while start.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_millis(200));
        peak_disk = peak_disk.max(disk_bytes(&dir));
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!(
                "soak: {:>5.0}s  {:>7.2} GiB written  disk {:>6.1} MiB (peak {:.1})  peak RSS {:.1} MiB",
                start.elapsed().as_secs_f64(),
                written.load(Ordering::Relaxed) as f64 / (1u64 << 30) as f64,
                disk_bytes(&dir) as f64 / (1 << 20) as f64,
                peak_disk as f64 / (1 << 20) as f64,
                peak_rss_bytes() as f64 / (1 << 20) as f64
            );
        }
    }
    stop.store(true, Ordering::Release);
    for h in handles {
        h.join().expect("producer");
    }
    let (next, lost, duplicated) = consumer.join().expect("consumer");
    let missing: u64 = next
        .iter()
        .zip(produced.iter())
        .map(|(n, p)| p.load(Ordering::Acquire).saturating_sub(*n))
        .sum();
    drop(wal);
    // A clean reopen must bring nothing consumed back.
    let reopened = open();
    let redelivered: usize = (0..topics)
        .map(|t| {
            reopened
                .batch_read_for_topic(&format!("topic-{t}"), usize::MAX, false)
                .unwrap()
                .len()
        })
        .sum();
    println!("soak result ({producers} producers, {topics} topics, {entry_size} B entries, {backend} backend, {seconds} s):");
    println!(
        "  GiB written       {:.2}",
        written.load(Ordering::Relaxed) as f64 / (1u64 << 30) as f64
    );
    println!(
        "  peak RSS          {:.1} MiB",
        peak_rss_bytes() as f64 / (1 << 20) as f64
    );
    println!(
        "  peak disk usage   {:.1} MiB",
        peak_disk as f64 / (1 << 20) as f64
    );
    println!("  lost entries      {}", lost + missing);
    println!("  duplicated        {duplicated}");
    println!("  back after reopen {redelivered}");
    if lost + missing + duplicated > 0 || redelivered > 0 {
        std::process::exit(1);
    }
}
