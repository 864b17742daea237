//! Any non-empty UTF-8 instance key names a directory of its own inside the
//! data directory, as walrus-rust's `new_for_key` does: keys that a
//! sanitizer would map alike stay apart, none escapes the data directory,
//! and every directory name decodes back to its key.

use crate::common::*;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use walrus_wal::{key, Backend, ReadConsistency, Walrus};

/// Keys chosen to collide under any lossy sanitizer, and to try to leave
/// the data directory.
fn hostile_keys() -> Vec<String> {
    let mut keys: Vec<String> = [
        "prod/payments::v1",
        "prod_payments__v1",
        "prod-payments--v1",
        "prod%2Fpayments%3A%3Av1",
        "..",
        ".",
        "../escape",
        "a/../../escape",
        "/etc/passwd",
        "a\0b",
        "a b",
        "Orders",
        "orders",
        "ORDERS",
        "orders+",
        "\u{4e2d}\u{6587}",
        "emoji \u{1f9ad}",
        "default",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    keys.push("k".repeat(1024));
    keys.push(format!("{}/..", "k".repeat(62)));
    keys.push(format!("{}..", "k".repeat(64)));
    keys.push(format!("{}x", "k".repeat(1023)));
    keys.push("\u{4e2d}".repeat(341));
    keys
}

/// Every instance directory under `root`: directories holding a LOCK file.
fn instance_dirs(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "LOCK") {
                found.push(dir.clone());
            }
        }
    }
    found
}

#[test]
fn every_key_gets_its_own_directory_inside_the_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let keys = hostile_keys();
    for (i, k) in keys.iter().enumerate() {
        let wal = builder(&data, Backend::Fd).instance_key(k).open().unwrap();
        assert!(wal.dir().starts_with(&data), "{k:?} opened {:?}", wal.dir());
        wal.append_for_topic("t", format!("entry of key {i}").as_bytes())
            .unwrap();
    }
    // Nothing was created outside the data directory.
    let outside: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, vec![std::ffi::OsString::from("data")]);

    // One directory per key, each decoding to its key.
    let dirs = instance_dirs(&data);
    assert_eq!(dirs.len(), keys.len(), "one directory per key: {dirs:?}");
    let decoded: HashSet<String> = dirs
        .iter()
        .map(|d| key::decode(d.strip_prefix(&data).unwrap()).expect("decodes"))
        .collect();
    assert_eq!(decoded, keys.iter().cloned().collect());

    // Each key reads back its own entry, on either backend.
    for (i, k) in keys.iter().enumerate() {
        let wal = builder(&data, BACKENDS[i % 2])
            .instance_key(k)
            .open()
            .unwrap();
        assert_eq!(
            drain(&wal, "t"),
            vec![format!("entry of key {i}").into_bytes()],
            "{k:?}"
        );
    }
}

#[test]
fn keys_that_differ_only_in_case_do_not_share_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let a = builder(tmp.path(), Backend::Fd)
        .instance_key("Payments")
        .open()
        .unwrap();
    // A live instance holds its directory's lock: had the two keys shared a
    // directory, this open would fail with `Locked`.
    let b = builder(tmp.path(), Backend::Fd)
        .instance_key("payments")
        .open()
        .unwrap();
    assert_ne!(a.dir(), b.dir());
    // The encoded names differ in more than case, so a case-insensitive
    // filesystem keeps them apart too.
    assert_ne!(
        a.dir().to_string_lossy().to_lowercase(),
        b.dir().to_string_lossy().to_lowercase()
    );
}

#[test]
fn a_legacy_directory_named_by_the_raw_key_is_still_opened() {
    let tmp = tempfile::tempdir().unwrap();
    // Written as an engine before encoded keys would have: the key verbatim.
    let legacy = tmp.path().join("Orders.V1");
    {
        let wal = builder(tmp.path(), Backend::Fd)
            .instance_key("Orders.V1")
            .open()
            .unwrap();
        wal.append_for_topic("t", b"old").unwrap();
        let encoded = wal.dir().to_owned();
        drop(wal);
        std::fs::rename(&encoded, &legacy).unwrap();
    }
    let wal = builder(tmp.path(), Backend::Fd)
        .instance_key("Orders.V1")
        .open()
        .unwrap();
    assert_eq!(wal.dir(), legacy);
    assert_eq!(drain(&wal, "t"), vec![b"old".to_vec()]);
}

#[test]
fn walrus_rust_constructors_take_any_key() {
    // `Walrus::new_for_key` and friends read WALRUS_DATA_DIR, as walrus-rust's
    // do; every test that sets it holds `ENV_LOCK`.
    let _env = crate::ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    std::env::set_var("WALRUS_DATA_DIR", tmp.path());
    std::env::set_var("WALRUS_QUIET", "1");
    let wal = Walrus::new_for_key("prod/payments::v1").unwrap();
    wal.append_for_topic("t", b"x").unwrap();
    assert_eq!(wal.dir(), tmp.path().join("prod%2Fpayments%3A%3Av1"));
    drop(wal);
    let wal = Walrus::with_consistency_for_key(
        "prod/payments::v1",
        ReadConsistency::AtLeastOnce { persist_every: 0 },
    )
    .unwrap();
    // persist_every: 0 is taken as 1, as walrus-rust does.
    assert_eq!(
        wal.consistency(),
        ReadConsistency::AtLeastOnce { persist_every: 1 }
    );
    assert_eq!(wal.read_next("t", true).unwrap().unwrap().data, &b"x"[..]);
    std::env::remove_var("WALRUS_DATA_DIR");
}
