//! `make bench-longrun`: the long run (`crate::longrun`) on every store,
//! once per fsync mode and thread count, as rows per tenth of the bytes,
//! the drain and the total. A failed store fails its cell alone.

use walrus_wal::StoreConfig;

use crate::bench::store_config;
use crate::config::Settings;
use crate::error::BenchError;
use crate::format::text_table;
use crate::longrun::{long_run, LongRunOutcome, LongRunSpec, Slice};
use crate::rounds::{run_env, CommandOutput, OpenKind};
use crate::runner::{quiesce_disk, FreshDir, RunEnv};
use crate::stores::{backend_label, StoreKind};

/// One row of `longrun_*.csv`: a tenth of the bytes (`slice` = `10%` ..
/// `100%`; a run so short that the writes crossed several tenths between
/// two looks has fewer rows), the drain after the last write (`drain`), or the whole run
/// (`total`, with the peak and final disk use and the verified counts).
#[derive(Clone, Debug, serde::Serialize)]
pub struct LongRunRow {
    pub store: String,
    pub backend: String,
    pub fsync_mode: String,
    pub consistency: String,
    pub threads: usize,
    pub entry_size: usize,
    pub slice: String,
    pub written_bytes: u64,
    pub consumed_bytes: u64,
    /// Written but not yet consumed when the slice ended.
    pub backlog_bytes: u64,
    pub at_s: f64,
    pub length_s: f64,
    pub write_mb_per_sec: f64,
    pub read_mb_per_sec: f64,
    pub disk_bytes: u64,
    pub peak_disk_bytes: u64,
    pub entries_written: u64,
    pub entries_consumed: u64,
    /// `ok`, or `failed: <why>`.
    pub status: String,
}

/// One long-run cell: a fresh directory, the store, the run, and any ERROR
/// the store logged meanwhile (which fails the cell).
fn longrun_cell(
    open: &OpenKind<'_>,
    kind: StoreKind,
    config: StoreConfig,
    spec: &LongRunSpec,
    env: &RunEnv,
) -> Result<LongRunOutcome, String> {
    quiesce_disk();
    let mark = crate::logs::mark();
    let result = (|| {
        let dir = FreshDir::create(&env.data_dir, &kind.to_string(), env.keep_data)?;
        let store = open(kind, dir.path(), config).map_err(|source| BenchError::Store {
            store: kind.to_string(),
            source,
        })?;
        let outcome = long_run(store.as_ref(), dir.path(), spec, &env.progress);
        drop(store);
        outcome
    })();
    let logged = crate::logs::claim_since(mark);
    match (result, logged.first()) {
        (Err(e), _) => Err(e.to_string()),
        (Ok(_), Some(first)) => Err(format!(
            "the store logged {} error(s) during the cell, the first: {first}",
            logged.len()
        )),
        (Ok(o), None) => Ok(o),
    }
}

/// `make bench-longrun`: every store once per fsync mode and thread count
/// (a long run is its own steady state; it is not repeated in rounds).
pub(crate) fn run_longrun(
    settings: &Settings,
    open: &OpenKind<'_>,
) -> Result<CommandOutput, BenchError> {
    let env = run_env(settings);
    let mut out = CommandOutput::default();
    let mut rows = Vec::new();
    let consistency = settings.consistency[0];
    let total = settings.fsync.len() * settings.threads.len() * settings.stores.len();
    let mut n = 0;
    for &fsync in &settings.fsync {
        for &threads in &settings.threads {
            let spec = LongRunSpec {
                threads,
                entry_size: settings.entry_size,
                total_bytes: settings.longrun_bytes,
            };
            for &kind in &settings.stores {
                n += 1;
                let what = format!(
                    "long run: {} MiB, {threads} producer(s) + {threads} consumer(s), {fsync}, \
                     {consistency}",
                    settings.longrun_bytes >> 20
                );
                env.progress.cell(n, total, format!("{kind} {what}"));
                let result =
                    longrun_cell(open, kind, store_config(fsync, consistency), &spec, &env);
                env.progress.cell_done();
                let row = |slice: String, s: &Slice, status: String| LongRunRow {
                    store: kind.to_string(),
                    backend: backend_label(kind),
                    fsync_mode: fsync.to_string(),
                    consistency: consistency.to_string(),
                    threads,
                    entry_size: settings.entry_size,
                    slice,
                    written_bytes: s.written_bytes,
                    consumed_bytes: s.consumed_bytes,
                    backlog_bytes: s.written_bytes.saturating_sub(s.consumed_bytes),
                    at_s: s.at_s,
                    length_s: s.length_s,
                    write_mb_per_sec: s.write_mb_per_sec,
                    read_mb_per_sec: s.read_mb_per_sec,
                    disk_bytes: s.disk_bytes,
                    peak_disk_bytes: 0,
                    entries_written: 0,
                    entries_consumed: 0,
                    status,
                };
                match result {
                    Ok(o) => {
                        for s in &o.slices {
                            rows.push(row(s.label.clone(), s, "ok".into()));
                        }
                        rows.push(LongRunRow {
                            peak_disk_bytes: o.peak_disk_bytes,
                            entries_written: o.entries_written,
                            entries_consumed: o.entries_consumed,
                            ..row("total".into(), &o.total, "ok".into())
                        });
                    }
                    Err(e) => {
                        env.progress.line(format!("  FAILED: {e}"));
                        out.failures.push(format!("{kind} {what}: {e}"));
                        rows.push(row(
                            "total".into(),
                            &Slice::default(),
                            format!("failed: {e}"),
                        ));
                    }
                }
            }
        }
    }
    let mib = |b: u64| format!("{:.0}", b as f64 / (1u64 << 20) as f64);
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let ok = r.status == "ok";
            vec![
                r.store.clone(),
                r.fsync_mode.clone(),
                r.threads.to_string(),
                r.slice.clone(),
                if ok {
                    mib(r.written_bytes)
                } else {
                    format!("FAILED ({})", r.status)
                },
                format!("{:.1}", r.write_mb_per_sec),
                format!("{:.1}", r.read_mb_per_sec),
                mib(r.backlog_bytes),
                mib(r.disk_bytes),
                if r.slice == "total" {
                    mib(r.peak_disk_bytes)
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    out.text = text_table(
        &[
            "store",
            "fsync",
            "threads",
            "slice",
            "written MiB",
            "write MiB/s",
            "read MiB/s",
            "backlog MiB",
            "disk MiB",
            "peak disk MiB",
        ],
        &table_rows,
    );
    out.text += "(each slice: a tenth of the bytes; drain: consuming what was left after the \
                 last write; total: the whole run, every entry consumed and verified, disk after \
                 a final sync)\n";
    out.set_rows(&rows)?;
    Ok(out)
}
