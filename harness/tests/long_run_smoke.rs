//! The long run, tiny: a few MiB per store, consumed as it is written.
//! Every store's rows reach 100% of the bytes, drain, and total with every
//! entry written consumed; a store that fails fails its cell alone.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::{Fault, MemStore};
use walrus_harness::{run, BenchArgs, Command, CommandOutput, Settings, StoreKind};
use walrus_wal::{LogStore, StoreConfig};

const BYTES: u64 = 4 << 20;
const ENTRY: u64 = 1024;

fn settings(out: &Path, stores: &str) -> Settings {
    let env: HashMap<String, String> = [
        ("LONGRUN_BYTES", "4MiB"),
        ("STORES", stores),
        ("FSYNC", "1000ms"),
        ("THREADS", "2"),
        ("WALRUS_QUIET", "1"),
        ("WALRUS_DATA_DIR", out.join("data").to_str().unwrap()),
        ("WALRUS_OUT_DIR", out.to_str().unwrap()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Settings::resolve(Command::Longrun, &BenchArgs::default(), &env).unwrap()
}

fn rows(out: &CommandOutput) -> Vec<HashMap<String, String>> {
    let csv = out
        .files
        .iter()
        .find(|f| f.extension().is_some_and(|e| e == "csv"))
        .unwrap();
    assert!(csv
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("longrun_"));
    let mut reader = csv::Reader::from_path(csv).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    reader
        .records()
        .map(|r| {
            header
                .iter()
                .cloned()
                .zip(r.unwrap().iter().map(String::from))
                .collect()
        })
        .collect()
}

fn num(row: &HashMap<String, String>, col: &str) -> u64 {
    row[col]
        .parse()
        .unwrap_or_else(|_| panic!("{col} of {row:?}"))
}

#[test]
fn every_store_writes_consumes_and_verifies_the_long_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut stores = vec!["raw", "walrus-fd", "walrus-mmap"];
    if cfg!(feature = "sled") {
        stores.push("sled");
    }
    let s = settings(dir.path(), &stores.join(","));
    let out = run(&s, &walrus_adapters::open_store).unwrap();
    assert!(out.failures.is_empty(), "{:?}", out.failures);
    let rows = rows(&out);
    for store in stores {
        let mine: Vec<_> = rows.iter().filter(|r| r["store"] == store).collect();
        let labels: Vec<&str> = mine.iter().map(|r| r["slice"].as_str()).collect();
        assert_eq!(labels.last(), Some(&"total"), "{store}: {labels:?}");
        assert_eq!(labels[labels.len() - 2], "drain", "{store}: {labels:?}");
        assert_eq!(labels[labels.len() - 3], "100%", "{store}: {labels:?}");
        // Slices advance through the bytes.
        let written: Vec<u64> = mine.iter().map(|r| num(r, "written_bytes")).collect();
        assert!(
            written.windows(2).all(|w| w[0] <= w[1]),
            "{store}: {written:?}"
        );
        let total = mine.last().unwrap();
        assert_eq!(total["status"], "ok");
        assert_eq!(num(total, "written_bytes"), BYTES);
        assert_eq!(num(total, "consumed_bytes"), BYTES, "{store}: all consumed");
        assert_eq!(num(total, "entries_written"), BYTES / ENTRY);
        assert_eq!(num(total, "entries_consumed"), BYTES / ENTRY);
        assert_eq!(num(total, "backlog_bytes"), 0);
        let (disk, peak) = (num(total, "disk_bytes"), num(total, "peak_disk_bytes"));
        assert!(
            peak > 0 && peak >= disk,
            "{store}: disk {disk}, peak {peak}"
        );
    }
    assert!(out.text.contains("peak disk MiB"), "{}", out.text);
}

#[test]
fn a_failing_store_fails_its_long_run_alone() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), "raw,walrus-fd");
    let open =
        |kind: StoreKind, _: &Path, _: StoreConfig| -> walrus_wal::Result<Box<dyn LogStore>> {
            let fault = if kind.to_string() == "raw" {
                Fault::FailAppendAfter(100)
            } else {
                Fault::None
            };
            Ok(Box::new(MemStore::new(kind.to_string(), fault)))
        };
    let out = run(&s, &open).unwrap();
    assert_eq!(out.failures.len(), 1, "{:?}", out.failures);
    let rows = rows(&out);
    let raw: Vec<_> = rows.iter().filter(|r| r["store"] == "raw").collect();
    assert!(
        raw.iter()
            .any(|r| r["status"].contains("the disk is on fire")),
        "{raw:?}"
    );
    let fd_total = rows
        .iter()
        .find(|r| r["store"] == "walrus-fd" && r["slice"] == "total")
        .unwrap();
    assert_eq!(fd_total["status"], "ok");
    assert_eq!(num(fd_total, "entries_consumed"), BYTES / ENTRY);
}
