//! What a timed phase measures besides throughput: per-call latency in an
//! HDR histogram, the process's CPU time, and bytes on disk.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Highest latency the histograms track exactly; slower calls saturate here.
const MAX_TRACKED_LATENCY_NS: u64 = 3_600 * 1_000_000_000;

/// Per-call latencies of one thread, in nanoseconds.
pub struct LatencyRecorder {
    hist: Histogram<u64>,
    sum_ns: u128,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        LatencyRecorder {
            hist: Histogram::new_with_bounds(1, MAX_TRACKED_LATENCY_NS, 3)
                .expect("static histogram bounds are valid"),
            sum_ns: 0,
        }
    }
}

impl LatencyRecorder {
    pub fn record(&mut self, latency: Duration) {
        let ns = latency.as_nanos().min(u128::from(u64::MAX)) as u64;
        self.hist.saturating_record(ns.max(1));
        self.sum_ns += u128::from(ns);
    }

    pub fn merge(&mut self, other: &LatencyRecorder) {
        self.hist
            .add(&other.hist)
            .expect("histograms with identical bounds merge");
        self.sum_ns += other.sum_ns;
    }

    pub fn summary(&self) -> LatencySummary {
        let count = self.hist.len();
        if count == 0 {
            return LatencySummary::default();
        }
        let us = |ns: u64| ns as f64 / 1_000.0;
        LatencySummary {
            avg_us: self.sum_ns as f64 / count as f64 / 1_000.0,
            p50_us: us(self.hist.value_at_quantile(0.50)),
            p99_us: us(self.hist.value_at_quantile(0.99)),
            p999_us: us(self.hist.value_at_quantile(0.999)),
            max_us: us(self.hist.max()),
        }
    }
}

/// Latency of one store call, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LatencySummary {
    pub avg_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

/// User plus system CPU time this process has used so far, all threads
/// (the store's background threads included, which is the point).
pub fn process_cpu_time() -> Duration {
    // SAFETY: getrusage only writes into the zeroed struct we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return Duration::ZERO;
        }
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1_000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Bytes allocated on disk under `dir` (block count, so sparse files count
/// what they really use). Space amplification is this over payload bytes.
/// Files that vanish during the walk (a store's background thread deleting
/// an old log) are skipped, not an error.
pub fn disk_usage_bytes(dir: &Path) -> io::Result<u64> {
    let gone = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if gone(&e) && path != dir => continue,
            Err(e) => return Err(e),
        };
        total += meta.blocks() * 512;
        if meta.is_dir() {
            let entries = match fs::read_dir(&path) {
                Ok(entries) => entries,
                Err(e) if gone(&e) && path != dir => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                match entry {
                    Ok(entry) => stack.push(entry.path()),
                    Err(e) if gone(&e) => continue,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reports_microseconds() {
        let mut r = LatencyRecorder::default();
        for us in 1..=1000u64 {
            r.record(Duration::from_micros(us));
        }
        let s = r.summary();
        assert!((s.avg_us - 500.5).abs() < 0.01);
        assert!((s.p50_us - 500.0).abs() < 1.0, "{s:?}");
        assert!((s.p99_us - 990.0).abs() < 1.0, "{s:?}");
        assert!((s.max_us - 1000.0).abs() < 1.0, "{s:?}");
    }

    #[test]
    fn disk_usage_counts_written_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), vec![1u8; 64 * 1024]).unwrap();
        assert!(disk_usage_bytes(dir.path()).unwrap() >= 64 * 1024);
    }
}
