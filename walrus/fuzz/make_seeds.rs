//! Writes the seed corpus: real segments and cursor logs produced by the
//! engine on the simulated storage, in the fuzz target's input layout
//! (one split byte, the segment, then the cursor log).

use std::path::Path;
use std::sync::Arc;
use walrus_wal::testing::{Crash, FileKind, OpenMode, SimStorage, Storage};
use walrus_wal::{FsyncSchedule, ReadConsistency, Walrus};

const SEGMENT_BYTES: usize = 64 * 1024;

fn read(sim: &SimStorage, path: &Path) -> Vec<u8> {
    let f = sim.open(path, OpenMode::Existing, FileKind::Small).unwrap();
    let mut buf = vec![0u8; f.len().unwrap() as usize];
    f.read_exact_at(&mut buf, 0).unwrap();
    buf
}

fn main() {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/recovery");
    std::fs::create_dir_all(&out).unwrap();
    for (n, (batch, reads)) in [(1usize, 0usize), (5, 3), (40, 10), (2000, 1)].into_iter().enumerate() {
        let sim = SimStorage::new();
        let wal = Walrus::builder()
            .data_dir("/fuzz")
            .storage(Arc::new(sim.clone()))
            .quiet(true)
            .segment_bytes(SEGMENT_BYTES as u64)
            .block_bytes(8192)
            .fsync(FsyncSchedule::NoFsync)
            .consistency(ReadConsistency::AtLeastOnce { persist_every: 2 })
            .open()
            .unwrap();
        for i in 0..12u8 {
            let topic = ["a", "b", "orders"][i as usize % 3];
            let items: Vec<Vec<u8>> = (0..batch.min(20)).map(|k| vec![i ^ k as u8; (k * 7) % 90]).collect();
            let refs: Vec<&[u8]> = items.iter().map(|v| v.as_slice()).collect();
            wal.batch_append_for_topic(topic, &refs).unwrap();
        }
        for _ in 0..reads {
            wal.read_next("a", true).unwrap();
        }
        wal.simulate_crash();
        let sim = sim.crash(Crash::Process);
        let dir = Path::new("/fuzz/default");
        let segment = read(&sim, &dir.join("seg-00000000000000000001.wal"));
        let find = |ext: &str| {
            sim.files()
                .into_iter()
                .find(|(p, _)| p.extension().is_some_and(|e| e == ext))
                .map(|(p, _)| read(&sim, &p))
                .unwrap_or_default()
        };
        let (snapshot, log) = (find("snap"), find("log"));
        let mut input = segment;
        input.resize(SEGMENT_BYTES, 0);
        input.extend_from_slice(&(snapshot.len() as u16).to_le_bytes());
        input.extend_from_slice(&snapshot);
        input.extend_from_slice(&log);
        std::fs::write(out.join(format!("seed-{n}")), input).unwrap();
    }
}
