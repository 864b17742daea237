//! Recovery on arbitrary bytes: a segment file and a cursor log whose
//! contents come from the fuzzer. Opening must return Ok or a typed error,
//! never panic, and whatever it recovers must read back without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::Arc;
use walrus_wal::testing::{FileKind, OpenMode, SimStorage, Storage};
use walrus_wal::Walrus;

const SEGMENT_BYTES: usize = 64 * 1024;

/// Input layout: the segment (64 KiB, zero-padded when shorter), then a
/// u16 snapshot length, the cursor snapshot, and the cursor log.
fuzz_target!(|data: &[u8]| {
    let (segment, rest) = data.split_at(data.len().min(SEGMENT_BYTES));
    let (snapshot, log) = match rest {
        [a, b, tail @ ..] => tail.split_at((u16::from_le_bytes([*a, *b]) as usize).min(tail.len())),
        _ => (&[][..], &[][..]),
    };
    let sim = SimStorage::new();
    let dir = Path::new("/fuzz/default");
    let write = |name: &str, bytes: &[u8]| {
        let f = sim.open(&dir.join(name), OpenMode::CreateNew, FileKind::Small).unwrap();
        f.write_all_at(bytes, 0).unwrap();
    };
    // A segment's unused tail is zeros.
    let mut image = segment.to_vec();
    image.resize(SEGMENT_BYTES, 0);
    write("seg-00000000000000000001.wal", &image);
    if !snapshot.is_empty() {
        write("cursors.snap", snapshot);
    }
    if !log.is_empty() {
        // Name the log after the generation its header claims, so valid
        // logs are replayed and the rest reach the header checks.
        let generation = log.get(16..24).map_or(0, |g| u64::from_le_bytes(g.try_into().unwrap()));
        write(&format!("cursors-{generation:020}.log"), log);
    }
    let opened = Walrus::builder()
        .data_dir("/fuzz")
        .storage(Arc::new(sim))
        .quiet(true)
        .segment_bytes(SEGMENT_BYTES as u64)
        .block_bytes(8192)
        .open();
    if let Ok(wal) = opened {
        for topic in wal.topics() {
            while let Ok(batch) = wal.batch_read_for_topic(&topic, 1 << 20, true) {
                if batch.is_empty() {
                    break;
                }
            }
        }
    }
});
