//! The record checksum (CRC-64/XZ) over record-sized buffers, as the engine
//! computes it (`walrus_wal::crc64`, carry-less-multiply kernels on x86_64)
//! and as `crc64fast` does (its fallback elsewhere, and the oracle of its
//! tests). The guide expects checksums to stay under 5% of an append's CPU;
//! this is the number to check that against.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn crc64(c: &mut Criterion) {
    let mut group = c.benchmark_group("crc64");
    for size in [64usize, 1024, 1044, 16 * 1024, 1 << 20] {
        // One byte in, so that the buffer is not 16-byte aligned, as frames
        // in a read-ahead buffer usually are not.
        let buf: Vec<u8> = (0..size + 1).map(|i| (i * 31 % 251) as u8).collect();
        let data = &buf[1..];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("walrus", size), data, |b, data| {
            b.iter(|| walrus_wal::crc64(&[std::hint::black_box(data)]));
        });
        group.bench_with_input(BenchmarkId::new("crc64fast", size), data, |b, data| {
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
