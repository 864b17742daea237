//! An application written against walrus-rust 0.2's API, ported by changing
//! the crate name: the constructors, appends, reads and `io::Result` error
//! handling it uses compile and behave as it expects.

use std::io;
use walrus_wal::{FsyncSchedule, ReadConsistency, Walrus};

/// As in walrus-rust's README, in a function returning `io::Result`.
fn application(key: &str) -> io::Result<Vec<String>> {
    let wal = Walrus::with_consistency_and_schedule_for_key(
        key,
        ReadConsistency::AtLeastOnce {
            persist_every: 1000,
        },
        FsyncSchedule::Milliseconds(500),
    )?;
    wal.append_for_topic("my-topic", b"Hello, Walrus!")?;
    wal.batch_append_for_topic("my-topic", &[b"one", b"two", b"three"])?;
    wal.batch_append_for_topic("my-topic", &[])?;
    let mut seen = Vec::new();
    if let Some(entry) = wal.read_next("my-topic", false)? {
        seen.push(format!("peek {}", String::from_utf8_lossy(&entry.data)));
    }
    while let Some(entry) = wal.read_next("my-topic", true)? {
        seen.push(String::from_utf8_lossy(&entry.data).into_owned());
    }
    wal.append_for_topic("batch", &[7u8; 10])?;
    for entry in wal.batch_read_for_topic("batch", 1024 * 1024, true)? {
        seen.push(format!("{} bytes", entry.data.len()));
    }
    Ok(seen)
}

#[test]
fn a_walrus_rust_application_runs_unchanged() {
    // walrus-rust reads WALRUS_DATA_DIR; every test that sets it holds
    // `ENV_LOCK`.
    let _env = crate::ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    std::env::set_var("WALRUS_DATA_DIR", tmp.path());
    std::env::set_var("WALRUS_QUIET", "1");
    let seen = application("prod/payments::v1").unwrap();
    assert_eq!(
        seen,
        [
            "peek Hello, Walrus!",
            "Hello, Walrus!",
            "one",
            "two",
            "three",
            "10 bytes"
        ]
    );

    // Errors convert into io::Error with a kind that says what went wrong.
    let wal = Walrus::new_for_key("errors").unwrap();
    let err: io::Error = wal.append_for_topic("", b"x").unwrap_err().into();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let locked: io::Error = Walrus::new_for_key("errors").err().unwrap().into();
    assert_eq!(locked.kind(), io::ErrorKind::WouldBlock);
}
