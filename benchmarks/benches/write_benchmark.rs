//! Append cost per entry size per store (no fsync: the CPU path).
//! `cargo bench --bench write_benchmark`; `cargo flamegraph --bench write_benchmark`.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use walrus_adapters::StoreKind;
use walrus_benchmarks::RotatingStore;

const ENTRY_SIZES: [usize; 3] = [64, 1024, 16 * 1024];
/// Appends per store before a fresh one replaces it (bounds disk use).
const ROTATE_EVERY_BYTES: u64 = 256 << 20;

fn appends(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for kind in StoreKind::all_available() {
        for size in ENTRY_SIZES {
            let payload = vec![0xA5u8; size];
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_with_input(BenchmarkId::new(kind.to_string(), size), &size, |b, _| {
                let mut store = RotatingStore::new(kind, ROTATE_EVERY_BYTES / size as u64);
                b.iter_custom(|iters| {
                    let mut timed = Duration::ZERO;
                    let mut left = iters;
                    while left > 0 {
                        let n = left.min(10_000);
                        let started = Instant::now();
                        for _ in 0..n {
                            store
                                .store()
                                .append("bench", std::hint::black_box(&payload))
                                .expect("append");
                        }
                        timed += started.elapsed();
                        store.rotate_if_full(n);
                        left -= n;
                    }
                    timed
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, appends);
criterion_main!(benches);
