//! Helpers shared by the async front end's tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use walrus_wal::testing::SimStorage;
use walrus_wal::{Backend, FsyncSchedule, ReadConsistency, Walrus, WalrusBuilder};

pub const BACKENDS: [Backend; 2] = [Backend::Fd, Backend::Mmap];

/// Small segments and extents, so appends cross both often.
pub fn on_disk(dir: &Path, backend: Backend) -> WalrusBuilder {
    Walrus::builder()
        .data_dir(dir)
        .backend(backend)
        .quiet(true)
        .segment_bytes(256 * 1024)
        .block_bytes(16 * 1024)
        .consistency(ReadConsistency::StrictlyAtOnce)
        .fsync(FsyncSchedule::SyncEach)
}

pub fn on_sim(sim: &SimStorage) -> WalrusBuilder {
    Walrus::builder()
        .data_dir(Path::new("/sim"))
        .storage(Arc::new(sim.clone()))
        .quiet(true)
        .segment_bytes(64 * 1024)
        .block_bytes(8 * 1024)
        .consistency(ReadConsistency::StrictlyAtOnce)
        .fsync(FsyncSchedule::SyncEach)
}

/// Entry `i` of writer `w`: parseable, of varying length.
pub fn payload(w: usize, i: usize) -> Vec<u8> {
    let mut p = format!("w{w}:{i}:").into_bytes();
    p.resize(p.len() + (i * 31 + w * 7) % 200, b'x');
    p
}

/// (writer, index) of a payload; panics on anything `payload` cannot make.
pub fn parse(p: &[u8]) -> (usize, usize) {
    let text = std::str::from_utf8(p).expect("utf-8 payload");
    let mut it = text.splitn(3, ':');
    let w = it.next().and_then(|s| s.strip_prefix('w')).expect("writer");
    let i = it.next().expect("index");
    let rest = it.next().expect("padding");
    let (w, i): (usize, usize) = (w.parse().unwrap(), i.parse().unwrap());
    assert_eq!(
        p,
        payload(w, i).as_slice(),
        "entry {w}:{i} is damaged: {rest:?}"
    );
    (w, i)
}

/// Every entry of `topic`, consumed, through the blocking engine.
pub fn drain(wal: &Walrus, topic: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let batch = wal.batch_read_for_topic(topic, 1 << 20, true).unwrap();
        if batch.is_empty() {
            return out;
        }
        out.extend(batch.into_iter().map(|e| e.data.to_vec()));
    }
}

/// Checks one topic's entries against what writers were told: each
/// writer's entries appear in its append order, at most once, undamaged;
/// every acknowledged one is there. Returns how many entries it saw.
pub fn check_topic(entries: &[Vec<u8>], acked: &[(usize, usize)], label: &str) -> usize {
    use std::collections::{HashMap, HashSet};
    let mut last: HashMap<usize, usize> = HashMap::new();
    let mut seen = HashSet::new();
    for e in entries {
        let (w, i) = parse(e);
        assert!(seen.insert((w, i)), "{label}: entry {w}:{i} appears twice");
        if let Some(prev) = last.insert(w, i) {
            assert!(prev < i, "{label}: writer {w}'s {i} after its {prev}");
        }
    }
    for a in acked {
        assert!(
            seen.contains(a),
            "{label}: acknowledged entry {a:?} is lost"
        );
    }
    entries.len()
}
