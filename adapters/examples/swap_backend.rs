//! An order pipeline whose log backend is chosen by one command-line value.
//!
//! The application code below (`place_orders`, `fulfil_orders`) sees only
//! `&dyn LogStore`; the store is picked in exactly one line of `main`, so
//! moving from Walrus to RocksDB, sled or the raw-file baseline is
//! `--store <name>` and nothing else.
//!
//! ```text
//! cargo run -p walrus-adapters --example swap_backend -- --store walrus
//! cargo run -p walrus-adapters --example swap_backend -- --store raw --orders 500
//! cargo run -p walrus-adapters --features rocksdb --example swap_backend -- --store rocksdb
//! cargo run -p walrus-adapters --features sled --example swap_backend -- --store sled --dir /tmp/orders
//! ```
//!
//! Run it twice with the same `--dir`: the second run resumes from the
//! persisted cursors and finds nothing left to fulfil from the first.

use std::path::PathBuf;
use std::process::ExitCode;

use walrus_adapters::{open_store, StoreKind};
use walrus_wal::{FsyncSchedule, LogStore, ReadConsistency, Result, StoreConfig};

const ORDERS: &str = "orders";
const SHIPMENTS: &str = "shipments";

/// Producer: appends `count` orders, the line items of every tenth order as
/// one atomic batch (all of an order's lines, or none, after a crash).
fn place_orders(log: &dyn LogStore, first_id: u64, count: u64) -> Result<()> {
    for id in first_id..first_id + count {
        if id % 10 == 0 {
            let lines: Vec<String> = (0..3)
                .map(|line| format!("order={id};line={line};sku=widget-{line};qty=1"))
                .collect();
            let refs: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
            log.batch_append(ORDERS, &refs)?;
        } else {
            let order = format!("order={id};line=0;sku=gadget;qty={}", id % 5 + 1);
            log.append(ORDERS, order.as_bytes())?;
        }
    }
    Ok(())
}

/// Consumer: drains `orders` in 4 KiB reads, appends one shipment record per
/// order line, and returns how many lines it handled.
fn fulfil_orders(log: &dyn LogStore) -> Result<u64> {
    let mut handled = 0;
    loop {
        let lines = log.batch_read(ORDERS, 4096, true)?;
        if lines.is_empty() {
            return Ok(handled);
        }
        for line in lines {
            let text = String::from_utf8_lossy(&line.data);
            let shipment = format!("shipped seq={} {text}", line.seq);
            log.append(SHIPMENTS, shipment.as_bytes())?;
            handled += 1;
        }
    }
}

struct Args {
    store: StoreKind,
    dir: Option<PathBuf>,
    orders: u64,
}

fn parse_args() -> std::result::Result<Args, String> {
    let mut args = Args {
        store: StoreKind::Walrus(walrus_wal::Backend::Fd),
        dir: None,
        orders: 100,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--store" => args.store = value()?.parse()?,
            "--dir" => args.dir = Some(PathBuf::from(value()?)),
            "--orders" => args.orders = value()?.parse().map_err(|e| format!("--orders: {e}"))?,
            "-h" | "--help" => {
                return Err(
                    "usage: swap_backend [--store walrus|walrus-mmap|rocksdb|sled|raw] \
                     [--dir PATH] [--orders N]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other}; try --help")),
        }
    }
    Ok(args)
}

fn run(args: Args) -> Result<()> {
    let scratch;
    let dir = match args.dir {
        Some(dir) => dir,
        None => {
            scratch = tempfile::tempdir()
                .map_err(|e| walrus_wal::Error::io("creating a scratch directory", e))?;
            scratch.path().to_path_buf()
        }
    };
    let config = StoreConfig {
        consistency: ReadConsistency::AtLeastOnce { persist_every: 100 },
        fsync: FsyncSchedule::Milliseconds(200),
    };

    // The one line that chooses the backend:
    let log = open_store(args.store, &dir, config)?;

    place_orders(&*log, 0, args.orders)?;
    let handled = fulfil_orders(&*log)?;
    log.sync()?;
    println!(
        "{}: placed {} orders, fulfilled {handled} order lines, data in {}",
        log.name(),
        args.orders,
        dir.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
