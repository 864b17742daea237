//! The async write workload (`ASYNC=1 make compare`): `threads` tasks on one
//! tokio-uring thread, each appending to its topic and awaiting every
//! append, against the async front end. Walrus runs natively (group commit
//! across tasks through io_uring fdatasync); every other store runs behind
//! `walrus_async::Blocking`, i.e. on tokio's blocking pool. What is written
//! is read back and verified exactly as in the sync write workload. The
//! cell around it (fresh directory, open, sync, disk use) is
//! `crate::runner::run_async_cell`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use walrus_async::AsyncLogStore;

use crate::error::BenchError;
use crate::metrics::{process_cpu_time, LatencyRecorder};
use crate::payload::{PayloadGen, TopicVerifier};
use crate::progress::Progress;
use crate::workload::{
    topic_name, PhaseStats, TopicMode, WriteSpec, BENCH_PREFIX, VERIFY_READ_BYTES,
};

/// How often the coordinator wakes to check the clock and redraw progress.
const TICK: Duration = Duration::from_millis(200);

/// What one writer task measured.
#[derive(Default)]
struct TaskTotals {
    recorder: LatencyRecorder,
    entries: u64,
    calls: u64,
    bytes: u64,
}

/// `spec.threads` tasks append until the duration ends; per-task entries
/// acknowledged are returned with the phase's stats.
pub(crate) async fn timed_writes(
    store: &Rc<dyn AsyncLogStore>,
    spec: &WriteSpec,
    prefix: &str,
    progress: &Progress,
) -> Result<(PhaseStats, Vec<u64>), BenchError> {
    let stop = Rc::new(Cell::new(false));
    let ops = Rc::new(Cell::new(0u64));
    let failure: Rc<RefCell<Option<BenchError>>> = Rc::default();
    let start = Instant::now();
    let cpu_start = process_cpu_time();
    let tasks: Vec<_> = (0..spec.threads)
        .map(|i| {
            let (store, stop, ops, failure) =
                (store.clone(), stop.clone(), ops.clone(), failure.clone());
            let (spec, topic) = (spec.clone(), topic_name(prefix, spec.topics, i));
            walrus_async::spawn(async move {
                let gen = PayloadGen::new(i as u32, spec.entry_size);
                let mut buf = vec![0u8; spec.entry_size * spec.batch_size];
                let mut t = TaskTotals::default();
                while !stop.get() {
                    for (k, slot) in buf.chunks_mut(spec.entry_size).enumerate() {
                        gen.fill(t.entries + k as u64, slot);
                    }
                    let started = Instant::now();
                    let result = if spec.batch_size == 1 {
                        store.append(&topic, &buf).await
                    } else {
                        let parts: Vec<&[u8]> = buf.chunks(spec.entry_size).collect();
                        store.batch_append(&topic, &parts).await
                    };
                    if let Err(source) = result {
                        stop.set(true);
                        failure.borrow_mut().get_or_insert(BenchError::Store {
                            store: store.name().to_string(),
                            source,
                        });
                        break;
                    }
                    t.recorder.record(started.elapsed());
                    t.entries += spec.batch_size as u64;
                    t.bytes += (spec.batch_size * spec.entry_size) as u64;
                    t.calls += 1;
                    ops.set(ops.get() + spec.batch_size as u64);
                }
                (t, Instant::now())
            })
        })
        .collect();
    let deadline = start + spec.duration;
    while Instant::now() < deadline && !stop.get() {
        tokio::time::sleep((deadline - Instant::now()).min(TICK)).await;
        progress.tick("write (async)", start.elapsed(), spec.duration, ops.get());
    }
    stop.set(true);
    let mut merged = LatencyRecorder::default();
    let mut stats = PhaseStats::default();
    let mut acked = Vec::with_capacity(spec.threads);
    let mut last_finish = start;
    for task in tasks {
        let (t, finished) = task
            .await
            .map_err(|e| BenchError::Other(format!("async writer task died: {e}")))?;
        merged.merge(&t.recorder);
        stats.entries += t.entries;
        stats.calls += t.calls;
        stats.bytes += t.bytes;
        acked.push(t.entries);
        last_finish = last_finish.max(finished);
    }
    progress.clear();
    if let Some(e) = failure.take() {
        return Err(e);
    }
    stats.close_phase(start, last_finish, cpu_start, &merged);
    Ok((stats, acked))
}

/// Reads back (through the async store) and checks every acknowledged
/// entry of the timed phase, as `workload::verify_written` does for the
/// sync workload. Returns the entries verified.
pub(crate) async fn verify(
    store: &Rc<dyn AsyncLogStore>,
    spec: &WriteSpec,
    acked: &[u64],
) -> Result<u64, BenchError> {
    let gens: Vec<PayloadGen> = (0..spec.threads)
        .map(|i| PayloadGen::new(i as u32, spec.entry_size))
        .collect();
    let jobs: Vec<(usize, Vec<PayloadGen>, Vec<u64>)> = match spec.topics {
        TopicMode::Shared => vec![(0, gens, acked.to_vec())],
        TopicMode::PerThread => gens
            .into_iter()
            .enumerate()
            .map(|(i, g)| (i, vec![g], vec![acked[i]]))
            .collect(),
    };
    let mut total = 0;
    for (writer, gens, acked) in jobs {
        let topic = topic_name(BENCH_PREFIX, spec.topics, writer);
        let expected: u64 = acked.iter().sum();
        let mut verifier = TopicVerifier::new(topic.clone(), gens);
        let verify_err = |source| BenchError::Verify {
            store: store.name().to_string(),
            source,
        };
        loop {
            let batch = store
                .batch_read(&topic, VERIFY_READ_BYTES, true)
                .await
                .map_err(|source| BenchError::Store {
                    store: store.name().to_string(),
                    source,
                })?;
            if batch.is_empty() || verifier.checked() > expected {
                break;
            }
            for entry in &batch {
                verifier.check(entry).map_err(verify_err)?;
            }
        }
        verifier.finish(&acked).map_err(verify_err)?;
        total += verifier.checked();
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{run_async_cell as run_cell, AsyncOpen, RunEnv};
    use std::path::Path;
    use walrus_async::StoreKind;
    use walrus_wal::{Backend, FsyncSchedule, ReadConsistency, StoreConfig};

    fn spec(threads: usize, topics: TopicMode) -> WriteSpec {
        WriteSpec {
            threads,
            entry_size: 256,
            batch_size: 1,
            topics,
            duration: Duration::from_millis(150),
            warmup: Duration::from_millis(20),
            rate: None,
            count: None,
        }
    }

    #[test]
    fn async_cells_write_and_verify_natively_and_through_the_blocking_pool() {
        let tmp = tempfile::tempdir().unwrap();
        let env = RunEnv {
            data_dir: tmp.path().to_owned(),
            keep_data: false,
            progress: Progress::silent(),
        };
        let config = StoreConfig {
            consistency: ReadConsistency::AtLeastOnce {
                persist_every: 1000,
            },
            fsync: FsyncSchedule::SyncEach,
        };
        let raw = |dir: &Path, cfg| walrus_adapters::open_store(StoreKind::Raw, dir, cfg);
        for topics in [TopicMode::PerThread, TopicMode::Shared] {
            for open in [
                AsyncOpen::Kind(StoreKind::Walrus(Backend::Fd)),
                AsyncOpen::Kind(StoreKind::Walrus(Backend::Mmap)),
                AsyncOpen::Blocking(&raw),
            ] {
                let o = run_cell(open, "cell", config, &spec(8, topics), &env).unwrap();
                assert!(o.write.entries > 0);
                assert_eq!(o.verified_entries, o.write.entries, "{topics}");
                assert!(o.disk_bytes > 0);
            }
        }
    }

    #[test]
    fn async_compare_adds_one_case_beside_every_write_case() {
        use crate::config::{BenchArgs, Command, Settings};
        use std::collections::HashMap;
        let env = |asynch: &str| -> HashMap<String, String> {
            [
                ("FSYNC", "sync-each,no-fsync"),
                ("THREADS", "1,64"),
                ("ASYNC", asynch),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
        };
        let resolve = |asynch| {
            Settings::resolve(Command::Compare, &BenchArgs::default(), &env(asynch)).unwrap()
        };
        let (with, without) = (resolve("1"), resolve("0"));
        let cells = |s: &Settings| crate::compare::cell_count(s).0;
        let per_case = with.stores.len() * with.rounds;
        assert_eq!(cells(&with) - cells(&without), 2 * 2 * per_case);
    }
}
