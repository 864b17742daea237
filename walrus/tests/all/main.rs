//! The engine's integration tests, one module per scenario file, in one
//! test binary: a change to the engine relinks one binary instead of
//! 30. Run one file's tests with a filter on its module name, e.g.
//! `cargo test -p walrus-wal --features test-support --test all -- golden::`.

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/golden_history.rs"]
mod golden_history;
#[path = "../common/scratch_fs.rs"]
mod scratch_fs;

/// Held by the tests that set the process's `WALRUS_*` variables (which
/// `Walrus::new_for_key` and friends read): in one binary they would
/// otherwise race each other.
pub static ENV_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

mod active_segments;
mod bad_files_on_open;
mod batch_atomicity;
mod close;
mod concurrent_appends;
mod concurrent_crash_model;
mod concurrent_strict_consumers;
mod crash_model;
mod cursor_persistence;
mod cursor_sync_failure;
mod damage_scenarios;
mod damage_suite;
mod directory_lock;
mod fault_sweep;
mod full_disk;
mod golden;
mod golden_decoder;
mod instance_keys;
mod large_and_empty_entries;
mod larger_than_a_segment;
mod limits_and_overflow;
mod pending_writes;
mod read_ahead;
mod reclaim_consumed_segments;
mod recovery_bit_flip;
mod recovery_io_errors;
mod recovery_keeps_a_prefix;
mod recovery_torn_tail;
mod reopen_checkpoint;
mod roundtrip_interleaved_topics;
mod walrus_rust_port;
