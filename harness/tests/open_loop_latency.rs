//! `RATE=`: appends issued on a fixed schedule, latency from each append's
//! intended start. A store that stalls once must show the stall in the
//! latency of every append it held up, not only in the one that hit it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use walrus_harness::{write_phase, Progress, TopicMode, WriteSpec};
use walrus_wal::{Entry, LogStore, Result};

/// Appends go nowhere; the 20th sleeps for `STALL`.
struct StallsOnce {
    calls: AtomicU64,
}

const STALL: Duration = Duration::from_millis(150);

impl LogStore for StallsOnce {
    fn name(&self) -> &str {
        "stalls-once"
    }
    fn append(&self, _: &str, _: &[u8]) -> Result<()> {
        if self.calls.fetch_add(1, Ordering::Relaxed) == 20 {
            std::thread::sleep(STALL);
        }
        Ok(())
    }
    fn batch_append(&self, topic: &str, payloads: &[&[u8]]) -> Result<()> {
        self.append(topic, payloads.concat().as_slice())
    }
    fn read_next(&self, _: &str, _: bool) -> Result<Option<Entry>> {
        Ok(None)
    }
    fn batch_read(&self, _: &str, _: usize, _: bool) -> Result<Vec<Entry>> {
        Ok(Vec::new())
    }
    fn sync(&self) -> Result<()> {
        Ok(())
    }
}

fn spec(rate: Option<f64>) -> WriteSpec {
    WriteSpec {
        threads: 1,
        entry_size: 64,
        batch_size: 1,
        topics: TopicMode::PerThread,
        duration: Duration::from_millis(500),
        warmup: Duration::ZERO,
        rate,
        count: None,
    }
}

#[test]
fn open_loop_latency_includes_the_queueing_behind_a_stall() {
    let store = StallsOnce {
        calls: AtomicU64::new(0),
    };
    let quiet = Progress::new(true);
    // 1,000 appends/s: the 150 ms stall holds up about 150 scheduled appends
    // of the roughly 500 in the phase, each waiting part of the stall.
    let open = write_phase(&store, &spec(Some(1000.0)), &quiet).unwrap();
    let calls = open.stats.calls;
    assert!(
        (200..=600).contains(&calls),
        "the schedule, not the store, sets the pace: {calls} calls"
    );
    let l = &open.stats.latency;
    assert!(
        l.max_us >= 140_000.0,
        "max {} us misses the stall",
        l.max_us
    );
    // More than 1% of the appends were queued behind the stall for > 50 ms.
    assert!(
        l.p99_us >= 50_000.0,
        "p99 {} us leaves out the queueing",
        l.p99_us
    );
    assert!(
        l.p50_us < 50_000.0,
        "p50 {} us: most appends were on time",
        l.p50_us
    );

    // Closed loop, the same store: only the one append that stalled sees it.
    let store = StallsOnce {
        calls: AtomicU64::new(0),
    };
    let closed = write_phase(&store, &spec(None), &quiet).unwrap();
    assert!(closed.stats.latency.max_us >= 140_000.0);
    assert!(
        closed.stats.latency.p99_us < 50_000.0,
        "closed loop p99 {} us",
        closed.stats.latency.p99_us
    );
}
