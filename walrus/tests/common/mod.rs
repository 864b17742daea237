//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use std::path::Path;
use walrus_wal::{Backend, FsyncSchedule, ReadConsistency, Walrus, WalrusBuilder};

pub const BACKENDS: [Backend; 2] = [Backend::Mmap, Backend::Fd];

/// A builder on `dir` with small segments, so tests cross extent and segment
/// boundaries quickly.
pub fn builder(dir: &Path, backend: Backend) -> WalrusBuilder {
    Walrus::builder()
        .data_dir(dir)
        .backend(backend)
        .quiet(true)
        .segment_bytes(256 * 1024)
        .extent_bytes(16 * 1024)
        .fsync(FsyncSchedule::NoFsync)
        .consistency(ReadConsistency::StrictlyAtOnce)
}

pub fn open(dir: &Path, backend: Backend) -> Walrus {
    builder(dir, backend).open().expect("open")
}

/// Deterministic payload for entry `i` of `topic`, of varying length.
pub fn payload(topic: &str, i: u64) -> Vec<u8> {
    let len = (i as usize * 37) % 300;
    let mut p = format!("{topic}:{i}:").into_bytes();
    p.extend((0..len).map(|k| (k as u64 ^ i) as u8));
    p
}

/// Consumes everything left in `topic` (in batches: one cursor sync each).
pub fn drain(wal: &Walrus, topic: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let batch = wal
            .batch_read_for_topic(topic, 1 << 20, true)
            .expect("read");
        if batch.is_empty() {
            return out;
        }
        out.extend(batch.into_iter().map(|e| e.data.to_vec()));
    }
}

/// Paths of the instance's segment files, oldest first.
pub fn segments(wal_dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(wal_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    v.sort();
    v
}
