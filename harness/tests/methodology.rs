//! The methodology the published tables rest on: rounds alternate the
//! stores, a median row is one whole round, every CSV has a complete sidecar
//! JSON, and the null store runs through the real opener.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use walrus_harness::{run, BenchArgs, Command, Settings, StoreKind};
use walrus_wal::StoreConfig;

fn settings(out: &Path, extra: &[(&str, &str)]) -> Settings {
    settings_of(Command::Compare, out, extra)
}

fn settings_of(command: Command, out: &Path, extra: &[(&str, &str)]) -> Settings {
    let mut env: HashMap<String, String> = [
        ("WALRUS_DURATION", "60ms"),
        ("WALRUS_WARMUP", "10ms"),
        ("WALRUS_ROUNDS", "3"),
        ("WALRUS_QUIET", "1"),
        ("READ_ENTRIES", "2000"),
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
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    Settings::resolve(command, &BenchArgs::default(), &env).unwrap()
}

/// Runs `s` with every store opened as the null store, recording the order
/// in which the stores' cells ran, and checks it: every round runs every
/// store once per case, and no store goes first in two rounds of the same
/// case, so position in the round (and what ran just before) is not left
/// to favour one store. `opens_per_cell` is 2 for cold reads (a reopen).
fn assert_rounds_alternate(s: &Settings, opens_per_cell: usize) {
    let opened = Mutex::new(Vec::new());
    let open = |kind: StoreKind, d: &Path, c: StoreConfig| {
        opened.lock().unwrap().push(kind);
        walrus_adapters::open_store(StoreKind::Null, d, c)
    };
    let out = run(s, &open).unwrap();
    assert!(out.failures.is_empty(), "{:?}", out.failures);
    let opened: Vec<StoreKind> = opened
        .into_inner()
        .unwrap()
        .into_iter()
        .step_by(opens_per_cell)
        .collect();
    let stores = s.stores.len();
    assert!(!opened.is_empty());
    assert_eq!(opened.len() % s.rounds, 0, "{:?}: {opened:?}", s.command);
    let cells_per_round = opened.len() / s.rounds;
    let cases = cells_per_round / stores;
    for case in 0..cases {
        let mut firsts = Vec::new();
        for round in 0..s.rounds {
            let start = round * cells_per_round + case * stores;
            let cell = &opened[start..start + stores];
            for kind in &s.stores {
                assert_eq!(cell.iter().filter(|k| *k == kind).count(), 1, "{cell:?}");
            }
            firsts.push(cell[0]);
        }
        firsts.sort_by_key(|k| k.to_string());
        firsts.dedup();
        assert_eq!(
            firsts.len(),
            s.rounds,
            "{:?} case {case}: the same store led twice",
            s.command
        );
    }
    // The CSV has a row per round and one median row per case and store.
    let csv = out
        .files
        .iter()
        .find(|f| f.extension().is_some_and(|e| e == "csv"))
        .unwrap();
    let mut reader = csv::Reader::from_path(csv).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let round = header.iter().position(|h| h == "round").unwrap();
    let rounds: Vec<String> = reader
        .records()
        .map(|r| r.unwrap()[round].to_string())
        .collect();
    for r in 1..=s.rounds {
        assert!(
            rounds.contains(&r.to_string()),
            "{:?}: no round {r}",
            s.command
        );
    }
    let medians = rounds.iter().filter(|r| *r == "median").count();
    assert!(
        medians >= cases * stores,
        "{:?}: {medians} medians",
        s.command
    );
}

#[test]
fn rounds_alternate_the_stores() {
    let dir = tempfile::tempdir().unwrap();
    assert_rounds_alternate(&settings(dir.path(), &[]), 1);
}

/// The single-purpose benchmarks and the scenarios alternate the same way.
#[test]
fn every_command_alternates_the_stores_across_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let short = [
        ("WALRUS_DURATION", "30ms"),
        ("WALRUS_WARMUP", "0s"),
        ("THREADS", "1,2"),
    ];
    for command in [
        Command::Write,
        Command::Batch,
        Command::Scaling,
        Command::Read,
        Command::Scenarios,
    ] {
        let s = settings_of(command, dir.path(), &short);
        assert_eq!(s.rounds, 3);
        assert_rounds_alternate(&s, 1);
    }
}

/// Every `median` row of the CSV equals, figure for figure, the round row it
/// names, and its min-max brackets every round.
#[test]
fn a_median_row_is_one_whole_round_and_the_sidecar_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), &[]);
    let out = run(&s, &walrus_adapters::open_store).unwrap();
    assert!(out.failures.is_empty(), "{:?}", out.failures);
    let csv = out
        .files
        .iter()
        .find(|f| f.extension().is_some_and(|e| e == "csv"))
        .unwrap();
    let mut reader = csv::Reader::from_path(csv).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    let figures = [
        "ops_per_sec",
        "mb_per_sec",
        "avg_latency_us",
        "p50_us",
        "p99_us",
        "p999_us",
        "max_us",
        "cpu_usage",
        "disk_bytes",
        "space_amp",
    ];
    let mut medians = 0;
    for m in rows.iter().filter(|r| r[col("round")] == "median") {
        medians += 1;
        let same_cell = |r: &&Vec<String>| {
            r[col("workload")] == m[col("workload")] && r[col("store")] == m[col("store")]
        };
        let rounds: Vec<&Vec<String>> = rows
            .iter()
            .filter(same_cell)
            .filter(|r| r[col("round")] != "median")
            .collect();
        assert_eq!(rounds.len(), s.rounds);
        let from = rounds
            .iter()
            .find(|r| r[col("round")] == m[col("median_of_round")])
            .unwrap_or_else(|| panic!("median row names no round: {m:?}"));
        for f in figures {
            assert_eq!(
                m[col(f)],
                from[col(f)],
                "{f} of {m:?} is not from round {from:?}"
            );
        }
        let ops = |r: &Vec<String>| r[col("ops_per_sec")].parse::<u64>().unwrap();
        let (lo, hi) = (
            m[col("ops_min")].parse::<u64>().unwrap(),
            m[col("ops_max")].parse::<u64>().unwrap(),
        );
        for r in &rounds {
            assert!(lo <= ops(r) && ops(r) <= hi, "{r:?} outside {lo}-{hi}");
        }
        assert!(lo <= ops(m) && ops(m) <= hi);
    }
    // One write, one batch and one read case at one fsync mode and thread count.
    assert_eq!(medians, 3 * s.stores.len(), "a median per case and store");
    // The null store ran through the registry's opener and has rows.
    assert!(rows
        .iter()
        .any(|r| r[col("store")] == "null" && r[col("status")] == "ok"));

    let sidecar = csv.with_extension("json");
    assert!(out.files.contains(&sidecar), "{:?}", out.files);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sidecar).unwrap()).unwrap();
    for key in [
        "csv",
        "command_line",
        "git_commit",
        "build_commit",
        "rustc",
        "profile",
        "host",
        "disk_probe",
        "versions",
        "settings",
    ] {
        assert!(!json[key].is_null(), "sidecar lacks {key}: {json}");
    }
    assert!(
        json["rustc"].as_str().unwrap().starts_with("rustc "),
        "{json}"
    );
    for store in ["null", "raw", "walrus-fd"] {
        assert!(json["versions"][store].is_string(), "{store}: {json}");
    }
    for key in [
        "command",
        "stores",
        "fsync",
        "threads",
        "duration_s",
        "warmup_s",
        "rounds",
        "batch_sizes",
        "entry_size",
        "consistency",
        "topics",
        "data_dir",
    ] {
        assert!(
            !json["settings"][key].is_null(),
            "settings lack {key}: {json}"
        );
    }
    assert_eq!(json["settings"]["rounds"], 3);
    assert_eq!(json["settings"]["warmup_s"], 0.01);
    // FORMAT=json prints the same rows, numbers as numbers, with the sidecar.
    let json_out: serde_json::Value =
        serde_json::from_str(&walrus_harness::results_json(&out.files).unwrap()).unwrap();
    assert_eq!(json_out["rows"].as_array().unwrap().len(), rows.len());
    assert!(json_out["rows"][0]["ops_per_sec"].is_number());
    assert_eq!(json_out["sidecar"]["git_commit"], json["git_commit"]);
    // The Markdown ends with the command that produced it.
    assert!(out.text.contains("Produced by `"), "{}", out.text);
}

/// The read benchmark fills every store with the same READ_ENTRIES entries
/// (a timed populate leaves a slow store a small set to read); a write
/// duration asked for gives the guide's timed write phase instead.
#[test]
fn the_read_benchmark_populates_a_fixed_count_unless_a_write_duration_is_set() {
    let write_entries = |extra: &[(&str, &str)]| -> Vec<(String, u64)> {
        let dir = tempfile::tempdir().unwrap();
        let mut env = vec![
            ("WALRUS_DURATION", "30ms"),
            ("WALRUS_WARMUP", "0s"),
            ("WALRUS_ROUNDS", "1"),
            ("THREADS", "2"),
        ];
        env.extend_from_slice(extra);
        let s = settings_of(Command::Read, dir.path(), &env);
        let out = run(&s, &walrus_adapters::open_store).unwrap();
        assert!(out.failures.is_empty(), "{:?}", out.failures);
        let csv = out
            .files
            .iter()
            .find(|f| f.extension().is_some_and(|e| e == "csv"))
            .unwrap();
        let mut reader = csv::Reader::from_path(csv).unwrap();
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        let col = |name: &str| header.iter().position(|h| h == name).unwrap();
        reader
            .records()
            .map(|r| r.unwrap())
            .filter(|r| &r[col("phase")] == "write" && &r[col("round")] == "median")
            .map(|r| {
                (
                    r[col("store")].to_string(),
                    r[col("entries")].parse().unwrap(),
                )
            })
            .collect()
    };
    let fixed = write_entries(&[]);
    assert!(!fixed.is_empty());
    for (store, entries) in &fixed {
        assert_eq!(*entries, 2000, "{store} wrote READ_ENTRIES (2,000) entries");
    }
    let timed = write_entries(&[("WALRUS_WRITE_DURATION", "50ms")]);
    assert!(
        timed.iter().any(|(_, entries)| *entries != 2000),
        "a timed write phase writes what 50 ms allow: {timed:?}"
    );
}
