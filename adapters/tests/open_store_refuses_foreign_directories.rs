//! `open_store` never opens one store on another store's files, nor on a
//! path that is not a directory, and says which feature a missing store
//! needs.

use std::fs;

use walrus_adapters::{open_store, StoreKind};
use walrus_wal::{Error, StoreConfig};

#[test]
fn every_store_refuses_every_other_stores_directory() {
    let kinds = StoreKind::all_available();
    for owner in &kinds {
        let tmp = tempfile::tempdir().unwrap();
        {
            let store = open_store(*owner, tmp.path(), StoreConfig::default()).unwrap();
            store.append("t", b"owned").unwrap();
        }
        for intruder in &kinds {
            let opened = open_store(*intruder, tmp.path(), StoreConfig::default());
            if intruder.store_name() == owner.store_name() {
                let store = opened.unwrap_or_else(|e| panic!("{intruder} on its own dir: {e}"));
                assert_eq!(
                    store.read_next("t", false).unwrap().unwrap().data,
                    &b"owned"[..]
                );
            } else {
                match opened {
                    Err(Error::BadDirectory { reason, .. }) => assert!(
                        reason.contains(owner.store_name()),
                        "{intruder} on a {owner} dir: the reason should name the owner: {reason}"
                    ),
                    Err(e) => panic!("{intruder} on a {owner} dir: wrong error {e}"),
                    Ok(_) => panic!("{intruder} opened a {owner} directory"),
                }
            }
        }
    }
}

#[test]
fn a_regular_file_is_not_a_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    fs::write(&file, b"hello").unwrap();
    for kind in StoreKind::all_available() {
        match open_store(kind, &file, StoreConfig::default()) {
            Err(Error::BadDirectory { .. }) => {}
            Err(e) => panic!("{kind} on a file: wrong error {e}"),
            Ok(_) => panic!("{kind} opened a regular file as its directory"),
        }
    }
    assert_eq!(fs::read(&file).unwrap(), b"hello", "the file is untouched");
}

#[test]
fn a_non_empty_unmarked_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("notes.txt"), b"mine").unwrap();
    for kind in StoreKind::all_available() {
        assert!(matches!(
            open_store(kind, tmp.path(), StoreConfig::default()),
            Err(Error::BadDirectory { .. })
        ));
    }
}

#[test]
fn a_compiled_out_store_names_its_feature() {
    for kind in [StoreKind::RocksDb, StoreKind::Sled] {
        if kind.is_available() {
            continue;
        }
        let tmp = tempfile::tempdir().unwrap();
        match open_store(kind, tmp.path(), StoreConfig::default()) {
            Err(Error::InvalidInput(message)) => {
                assert!(
                    message.contains(&format!("--features {}", kind.store_name())),
                    "{message}"
                )
            }
            Err(e) => panic!("{kind}: wrong error {e}"),
            Ok(_) => panic!("{kind} opened although it is compiled out"),
        }
        assert!(
            fs::read_dir(tmp.path()).unwrap().next().is_none(),
            "a refused open leaves the directory alone"
        );
    }
}
