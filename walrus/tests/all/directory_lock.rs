//! One instance per directory: a second open, in this process or another,
//! gets `Error::Locked`; bad directories and keys get typed errors.
//! (How any UTF-8 key names its own directory: tests/instance_keys.rs.)

use crate::common::*;
use walrus_wal::{Backend, Error, Walrus};

#[test]
fn a_second_open_of_the_same_directory_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path(), Backend::Fd);
    first.append_for_topic("t", b"kept").unwrap();
    for backend in BACKENDS {
        assert!(matches!(
            builder(dir.path(), backend).open(),
            Err(Error::Locked(_))
        ));
    }
    // Another instance key is another directory.
    let other = builder(dir.path(), Backend::Fd)
        .instance_key("other")
        .open()
        .unwrap();
    drop(other);
    drop(first);
    let again = open(dir.path(), Backend::Mmap);
    assert_eq!(drain(&again, "t"), vec![b"kept".to_vec()]);
}

#[test]
fn a_second_process_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let _held = open(dir.path(), Backend::Fd);
    // flock conflicts across processes; `flock -n` exits 1 when it cannot lock.
    let lock = dir.path().join("default").join("LOCK");
    let status = std::process::Command::new("flock")
        .arg("-n")
        .arg(&lock)
        .arg("true")
        .status();
    if let Ok(status) = status {
        assert_eq!(
            status.code(),
            Some(1),
            "another process could take the lock"
        );
    }
}

#[test]
fn bad_directories_and_keys_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(
        builder(&file, Backend::Fd).open(),
        Err(Error::BadDirectory { .. })
    ));
    for key in ["", &"k".repeat(1025)] {
        let r = Walrus::builder()
            .data_dir(dir.path())
            .instance_key(key)
            .open();
        assert!(matches!(r, Err(Error::InvalidKey { .. })), "{key:?}");
    }
}

#[test]
fn invalid_topics_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), Backend::Fd);
    for topic in ["", "a\0b", &"t".repeat(256)] {
        assert!(matches!(
            wal.append_for_topic(topic, b"x"),
            Err(Error::InvalidTopic { .. })
        ));
        assert!(matches!(
            wal.read_next(topic, true),
            Err(Error::InvalidTopic { .. })
        ));
    }
}
