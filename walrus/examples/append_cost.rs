//! Instruction-count probe of the append path: appends 20,000 entries of
//! 1 KiB to one topic with `FsyncSchedule::NoFsync`, on the backend named by
//! the first argument (`fd` or `mmap`), in a fresh directory (the second
//! argument). Run it under `valgrind --tool=callgrind` and divide the
//! instruction count by 20,000 (minus an empty run's count, if wanted).
//! A fourth argument `handle` appends through a [`walrus_wal::TopicHandle`]
//! instead of by topic name.
//!
//! ```text
//! valgrind --tool=callgrind target/release/examples/append_cost fd /tmp/ac 20000 [handle]
//! ```

use walrus_wal::{Backend, FsyncSchedule, ReadConsistency, Walrus};

const ENTRIES: usize = 20_000;
const ENTRY_BYTES: usize = 1024;

fn main() -> walrus_wal::Result<()> {
    let mut args = std::env::args().skip(1);
    let backend = match args.next().as_deref() {
        Some("mmap") => Backend::Mmap,
        _ => Backend::Fd,
    };
    let dir = args.next().unwrap_or_else(|| "append_cost_dir".into());
    let entries: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(ENTRIES);
    let by_handle = args.next().as_deref() == Some("handle");
    let wal = Walrus::builder()
        .data_dir(&dir)
        .backend(backend)
        .consistency(ReadConsistency::AtLeastOnce {
            persist_every: 1_000,
        })
        .fsync(FsyncSchedule::NoFsync)
        .quiet(true)
        .open()?;
    let payload = vec![0x5au8; ENTRY_BYTES];
    if by_handle {
        let topic = wal.topic("probe")?;
        for _ in 0..entries {
            topic.append(&payload)?;
        }
    } else {
        for _ in 0..entries {
            wal.append_for_topic("probe", &payload)?;
        }
    }
    drop(wal);
    Ok(())
}
