//! A store error fails its cell, not the run: the cell's rows say
//! `failed: <why>` in the CSV, the table and the JSON, every other cell
//! still runs, and the run ends with a failure.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use common::{Fault, MemStore};
use walrus_harness::{run, BenchArgs, Command, CommandOutput, Settings, StoreKind};
use walrus_wal::{LogStore, StoreConfig};

/// The log of ERROR events is the process's: tests that run cells take
/// turns, so one test's logged error never lands in another's cell.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn settings(command: Command, out: &Path) -> Settings {
    let env: HashMap<String, String> = [
        ("WALRUS_DURATION", "60ms"),
        ("WALRUS_WARMUP", "0s"),
        ("WALRUS_ROUNDS", "2"),
        ("WALRUS_QUIET", "1"),
        ("READ_ENTRIES", "500"),
        ("FSYNC", "no-fsync"),
        ("THREADS", "1"),
        ("ENTRY_SIZE", "100"),
        ("WALRUS_BATCH_SIZE", "4"),
        ("STORES", "null,raw,walrus-fd"),
        ("WALRUS_DATA_DIR", out.join("data").to_str().unwrap()),
        ("WALRUS_OUT_DIR", out.to_str().unwrap()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Settings::resolve(command, &BenchArgs::default(), &env).unwrap()
}

/// `raw` misbehaves with `fault`; the other stores are correct.
fn raw_fails(
    fault: Fault,
) -> impl Fn(StoreKind, &Path, StoreConfig) -> walrus_wal::Result<Box<dyn LogStore>> {
    move |kind, _, _| {
        let fault = if kind.to_string() == "raw" {
            fault
        } else {
            Fault::None
        };
        Ok(Box::new(MemStore::new(kind.to_string(), fault)))
    }
}

/// (store, round, status) of every CSV row.
fn statuses(out: &CommandOutput) -> Vec<(String, String, String)> {
    let csv = out
        .files
        .iter()
        .find(|f| f.extension().is_some_and(|e| e == "csv"))
        .expect("a CSV even though a cell failed");
    let mut reader = csv::Reader::from_path(csv).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (store, round, status) = (col("store"), col("round"), col("status"));
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[store].into(), r[round].into(), r[status].into())
        })
        .collect()
}

fn check(out: &CommandOutput, why: &str) {
    let rows = statuses(out);
    let failed: Vec<_> = rows.iter().filter(|r| r.2 != "ok").collect();
    assert!(!failed.is_empty(), "{rows:?}");
    for (store, round, status) in &failed {
        assert_eq!(store, "raw", "only raw's cells fail: {rows:?}");
        assert_ne!(round, "median", "a failed cell has no median row");
        assert!(
            status.starts_with("failed: ") && status.contains(why),
            "{status}"
        );
    }
    // The other stores ran every cell, and have their medians.
    for store in ["null", "walrus-fd"] {
        assert!(
            rows.iter()
                .any(|r| r.0 == store && r.1 == "median" && r.2 == "ok"),
            "{store}: {rows:?}"
        );
    }
    // The run fails (the CLI exits non-zero when `failures` is not empty).
    assert!(!out.failures.is_empty());
    assert!(
        out.failures.iter().all(|f| f.starts_with("raw ")),
        "{:?}",
        out.failures
    );
    assert!(out.text.contains("FAILED"), "{}", out.text);
    // FORMAT=json carries the failure too.
    let json: serde_json::Value =
        serde_json::from_str(&walrus_harness::results_json(&out.files).unwrap()).unwrap();
    assert!(json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["status"].as_str().unwrap().contains(why)));
}

#[test]
fn a_store_call_that_errs_fails_its_cells_and_the_others_run() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    for command in [Command::Write, Command::Read, Command::Compare] {
        let s = settings(command, dir.path());
        let out = run(&s, &raw_fails(Fault::FailAppendAfter(10))).unwrap();
        check(&out, "the disk is on fire");
    }
}

#[test]
fn an_error_a_store_logs_fails_the_cell_it_logged_in() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    walrus_harness::logs::install(true);
    let dir = tempfile::tempdir().unwrap();
    for command in [Command::Scaling, Command::Compare] {
        let s = settings(command, dir.path());
        let out = run(&s, &raw_fails(Fault::LogErrorOnAppend(3))).unwrap();
        check(&out, "background sync failed");
        assert!(
            walrus_harness::logs::unclaimed() == 0,
            "every error was a cell's"
        );
    }
}

/// The binary's exit status: a run whose cells fail ends non-zero, after
/// writing the CSV with the failed rows.
#[test]
fn the_run_exits_non_zero_after_a_failed_cell() {
    let dir = tempfile::tempdir().unwrap();
    // A data directory that cannot be created: every cell fails to start.
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_write_benchmark"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WALRUS_DURATION", "50ms")
        .env("WALRUS_WARMUP", "0s")
        .env("WALRUS_ROUNDS", "1")
        .env("THREADS", "1")
        .env("FSYNC", "no-fsync")
        .env("STORES", "null")
        .env("WALRUS_QUIET", "1")
        .env("WALRUS_DATA_DIR", blocker.join("data"))
        .env("WALRUS_OUT_DIR", dir.path().join("out"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("1 cell(s) failed"), "{stderr}");
    assert!(stdout.contains("FAILED"), "{stdout}");
    let csv = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "csv"))
        .expect("the CSV is written");
    assert!(std::fs::read_to_string(csv).unwrap().contains(",failed: "));
}
