//! Each command writes its CSV with the guide's columns first, in order, and
//! `compare` writes a Markdown table per workload; all through the public
//! entry point with in-memory stores.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::{Fault, MemStore};
use walrus_harness::{run, BenchArgs, Command, CommandOutput, Settings, StoreKind};
use walrus_wal::{LogStore, StoreConfig};

fn settings(command: Command, out: &Path, extra: &[(&str, &str)]) -> Settings {
    let mut env: HashMap<String, String> = [
        ("WALRUS_DURATION", "80ms"),
        ("WALRUS_WARMUP", "20ms"),
        ("WALRUS_ROUNDS", "2"),
        ("WALRUS_QUIET", "1"),
        ("READ_ENTRIES", "2000"),
        ("FSYNC", "no-fsync"),
        ("THREADS", "1,2"),
        ("ENTRY_SIZE", "100"),
        ("WALRUS_BATCH_SIZE", "4"),
        ("WALRUS_DATA_DIR", out.join("data").to_str().unwrap()),
        ("WALRUS_OUT_DIR", out.to_str().unwrap()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    Settings::resolve(command, &BenchArgs::default(), &env).unwrap()
}

fn mem(kind: StoreKind, _: &Path, _: StoreConfig) -> walrus_wal::Result<Box<dyn LogStore>> {
    Ok(Box::new(MemStore::new(kind.to_string(), Fault::None)))
}

fn csv_of(out: &CommandOutput) -> (PathBuf, String, usize) {
    let path = out.files[0].clone();
    let text = std::fs::read_to_string(&path).unwrap();
    let header = text.lines().next().unwrap().to_string();
    (path, header, text.lines().count() - 1)
}

#[test]
fn write_csv_columns_and_rows() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&settings(Command::Write, dir.path(), &[]), &mem).unwrap();
    assert!(out.failures.is_empty(), "{:?}", out.failures);
    let (path, header, rows) = csv_of(&out);
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with("write_benchmark_") && name.ends_with(".csv"),
        "{name}"
    );
    assert!(
        header.starts_with("threads,fsync_mode,ops_per_sec,mb_per_sec,avg_latency_us,"),
        "{header}"
    );
    for col in [
        "p50_us",
        "p99_us",
        "p999_us",
        "max_us",
        "store",
        "backend",
        "disk_bytes",
    ] {
        assert!(
            header.split(',').any(|c| c == col),
            "{col} missing from {header}"
        );
    }
    // Per thread count: a row per round (2) and the median round's.
    assert_eq!(rows, 2 * 3, "three rows per thread count");
    assert!(
        header.ends_with(",round,status,median_of_round,ops_min,ops_max,offered_rate"),
        "{header}"
    );
    assert!(out.text.contains("ops/s"));
    // The data directories of the runs are gone.
    assert_eq!(
        std::fs::read_dir(dir.path().join("data")).unwrap().count(),
        0
    );
}

#[test]
fn read_csv_has_a_write_and_a_read_row_per_cell() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(
        Command::Read,
        dir.path(),
        &[("CONSISTENCY", "strict,at-least-once:10")],
    );
    let out = run(&s, &mem).unwrap();
    assert!(out.failures.is_empty(), "{:?}", out.failures);
    let (path, header, rows) = csv_of(&out);
    assert!(path.to_str().unwrap().contains("read_benchmark_"));
    assert!(
        header.starts_with("phase,threads,ops_per_sec,mb_per_sec,avg_latency_us,"),
        "{header}"
    );
    // 2 consistencies x (single + batch) x 2 thread counts x (write + read),
    // for each of 2 rounds and the median
    assert_eq!(rows, 16 * 3);
}

#[test]
fn scaling_csv_columns() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        &settings(Command::Scaling, dir.path(), &[("THREADS", "1-3")]),
        &mem,
    )
    .unwrap();
    let (path, header, rows) = csv_of(&out);
    assert!(path.to_str().unwrap().contains("scaling_benchmark_"));
    assert!(
        header.starts_with("threads,ops_per_sec,mb_per_sec,cpu_usage,"),
        "{header}"
    );
    assert_eq!(rows, 3 * 3, "per thread count: 2 rounds and the median");
}

#[test]
fn compare_writes_csv_and_markdown_and_reports_a_broken_store() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(
        Command::Compare,
        dir.path(),
        &[
            ("STORES", "walrus-fd,raw"),
            ("WALRUS_ROUNDS", "2"),
            ("FSYNC", "no-fsync,1000ms"),
        ],
    );
    let broken_raw =
        |kind: StoreKind, _: &Path, _: StoreConfig| -> walrus_wal::Result<Box<dyn LogStore>> {
            let fault = if kind.to_string() == "raw" {
                Fault::FlipBitOnRead(50)
            } else {
                Fault::None
            };
            Ok(Box::new(MemStore::new(kind.to_string(), fault)))
        };
    let out = run(&s, &broken_raw).unwrap();
    assert_eq!(out.files.len(), 4, "csv, md, host json, sidecar json");
    assert!(out.files[3].to_str().unwrap().ends_with(".json"));
    let md = std::fs::read_to_string(&out.files[1]).unwrap();
    assert!(out.files[1].to_str().unwrap().ends_with(".md"));
    // The report page reads the host figures from the sidecar.
    let host = std::fs::read_to_string(&out.files[2]).unwrap();
    assert!(out.files[2].to_str().unwrap().ends_with(".host.json"));
    assert!(host.contains("\"hardware\"") && host.contains("\"flushed_write_mb_per_sec\""));
    // 2 fsync x 2 threads writes + batch + read
    assert_eq!(md.matches("\n## ").count(), 6, "{md}");
    assert!(md.contains("| store | ops/s | min-max ops/s | MiB/s | p50 us | p99 us | p99.9 us | vs walrus-fd | vs raw | guarantee |"));
    assert!(md.contains("| walrus-fd |") && md.contains("1.00x"));
    assert!(
        md.contains("FAILED: raw"),
        "the broken store's cells fail: {md}"
    );
    assert!(!out.failures.is_empty());
    let csv = std::fs::read_to_string(&out.files[0]).unwrap();
    assert!(csv.lines().any(|l| l.starts_with("median,")));
    assert!(csv.lines().any(|l| l.contains("failed: raw")));
}

#[test]
fn latency_csv_has_a_median_row_per_store_and_offered_load() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(
        Command::Latency,
        dir.path(),
        &[
            ("RATES", "200,400"),
            ("STORES", "null,raw"),
            ("THREADS", "1"),
            // RATE counts store calls; with single appends, entries.
            ("WALRUS_BATCH_SIZE", "1"),
        ],
    );
    let out = run(&s, &mem).unwrap();
    assert!(out.failures.is_empty(), "{:?}", out.failures);
    let (path, header, _) = csv_of(&out);
    assert!(path.to_str().unwrap().contains("latency_benchmark_"));
    assert!(
        header.starts_with("threads,fsync_mode,ops_per_sec,mb_per_sec,avg_latency_us,"),
        "{header}"
    );
    assert!(header.ends_with(",offered_rate"), "{header}");
    let mut reader = csv::Reader::from_path(&path).unwrap();
    let h: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let col = |n: &str| h.iter().position(|c| c == n).unwrap();
    let medians: Vec<(String, String, f64)> = reader
        .records()
        .map(|r| r.unwrap())
        .filter(|r| &r[col("round")] == "median")
        .map(|r| {
            (
                r[col("store")].to_string(),
                r[col("offered_rate")].to_string(),
                r[col("ops_per_sec")].parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(medians.len(), 4, "{medians:?}");
    for (store, rate, ops) in &medians {
        let rate: f64 = rate.parse().unwrap();
        // An in-memory store keeps up: it completes about what was offered.
        assert!(
            (ops - rate).abs() <= rate * 0.5,
            "{store}: {ops} ops/s at {rate} offered"
        );
    }
    assert!(out.text.contains("offered/s"), "{}", out.text);
}
