//! An async order service: many tasks place orders and each awaits the
//! order's durability before "confirming" it; a consumer task ships what was
//! placed; then the log is closed cleanly. The store is one argument, as in
//! the blocking `swap_backend` example: Walrus runs natively on io_uring,
//! every other store through the blocking pool.
//!
//! ```text
//! cargo run -p walrus-async --example async_orders -- --store walrus
//! cargo run -p walrus-async --example async_orders -- --store walrus-mmap --tasks 64 --orders 20
//! cargo run -p walrus-async --example async_orders -- --store raw
//! cargo run -p walrus-async --features sled --example async_orders -- --store sled
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;

use walrus_async::{open_async_store, AsyncLogStore, Runtime, StoreKind};
use walrus_wal::{FsyncSchedule, ReadConsistency, Result, StoreConfig};

const ORDERS: &str = "orders";
const SHIPMENTS: &str = "shipments";

/// One customer-facing task: every `append(..).await` that returns `Ok`
/// means the order is on disk (sync-each) and may be confirmed.
async fn place_orders(log: Rc<dyn AsyncLogStore>, task: usize, count: usize) -> Result<usize> {
    for n in 0..count {
        let order = format!("task={task};order={n};sku=widget;qty={}", n % 5 + 1);
        log.append(ORDERS, order.as_bytes()).await?;
    }
    Ok(count)
}

/// The consumer: drains `orders` and records one shipment per order.
async fn ship_orders(log: Rc<dyn AsyncLogStore>) -> Result<usize> {
    let mut shipped = 0;
    loop {
        let batch = log.batch_read(ORDERS, 64 * 1024, true).await?;
        if batch.is_empty() {
            return Ok(shipped);
        }
        for order in batch {
            let line = format!(
                "shipped seq={} {}",
                order.seq,
                String::from_utf8_lossy(&order.data)
            );
            log.append(SHIPMENTS, line.as_bytes()).await?;
            shipped += 1;
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let config = StoreConfig {
        consistency: ReadConsistency::StrictlyAtOnce,
        fsync: FsyncSchedule::SyncEach,
    };
    let log = open_async_store(args.store, &args.dir, config).await?;
    let producers: Vec<_> = (0..args.tasks)
        .map(|t| walrus_async::spawn(place_orders(log.clone(), t, args.orders)))
        .collect();
    let mut placed = 0;
    for p in producers {
        placed += p.await.expect("producer task panicked")?;
    }
    let shipped = walrus_async::spawn(ship_orders(log.clone()))
        .await
        .expect("consumer task panicked")?;
    println!(
        "{}: {placed} orders placed by {} tasks (each durable before it was confirmed), \
         {shipped} shipped this run",
        args.store, args.tasks
    );
    // Every task is done, so this is the last handle: close waits for work
    // in flight, flushes, and closes the store.
    log.close().await
}

struct Args {
    store: StoreKind,
    dir: PathBuf,
    tasks: usize,
    orders: usize,
}

fn parse_args() -> std::result::Result<Args, String> {
    let mut args = Args {
        store: StoreKind::Walrus(walrus_wal::Backend::Fd),
        dir: std::env::temp_dir().join(format!("walrus-async-orders-{}", std::process::id())),
        tasks: 16,
        orders: 50,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--store" => args.store = value()?.parse()?,
            "--dir" => args.dir = PathBuf::from(value()?),
            "--tasks" => args.tasks = value()?.parse().map_err(|e| format!("--tasks: {e}"))?,
            "--orders" => args.orders = value()?.parse().map_err(|e| format!("--orders: {e}"))?,
            other => {
                return Err(format!(
                    "unknown flag {other}; use --store, --dir, --tasks, --orders"
                ))
            }
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // Fails with a typed error (not a panic) where io_uring is refused.
    let outcome = Runtime::new().and_then(|rt| rt.block_on(run(args)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
