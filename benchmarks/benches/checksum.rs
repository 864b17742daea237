//! crc64 (crc64fast) over record-sized buffers: the guide expects checksums
//! to stay under 5% of an append's CPU, and this is the number to check
//! that against.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn crc64(c: &mut Criterion) {
    let mut group = c.benchmark_group("crc64");
    for size in [64usize, 1024, 16 * 1024, 1 << 20] {
        let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &data, |b, data| {
            b.iter(|| {
                let mut digest = crc64fast::Digest::new();
                digest.write(std::hint::black_box(data));
                digest.sum64()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, crc64);
criterion_main!(benches);
