use super::*;
use crate::storage::FdStorage;

fn open(dir: &Path) -> (CursorStore, HashMap<String, u64>) {
    let (store, values, damage) = CursorStore::open(Arc::new(FdStorage::new()), dir).unwrap();
    assert!(damage.found.is_empty(), "{damage:?}");
    (store, values)
}

#[test]
fn cursors_survive_reopen_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let (store, values) = open(dir.path());
    assert!(values.is_empty());
    store.reset(values).unwrap();
    store.persist("a", 3, true).unwrap();
    store.persist("b", 9, false).unwrap();
    store.persist("a", 4, true).unwrap();
    drop(store);
    let (store, values) = open(dir.path());
    assert_eq!(values.get("a"), Some(&4));
    assert_eq!(values.get("b"), Some(&9));
    store.reset(values).unwrap();
    store.persist("a", 5, true).unwrap();
    drop(store);
    let (_, values) = open(dir.path());
    assert_eq!(values.get("a"), Some(&5));
    let logs = std::fs::read_dir(dir.path()).unwrap().filter(|e| {
        e.as_ref()
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".log")
    });
    assert_eq!(logs.count(), 1, "old generations are removed");
}

#[test]
fn a_garbage_snapshot_is_reported_and_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(SNAP_NAME), b"not a snapshot at all, nope").unwrap();
    let (_, values, damage) = CursorStore::open(Arc::new(FdStorage::new()), dir.path()).unwrap();
    assert!(values.is_empty());
    assert_eq!(damage.found.len(), 1, "{damage:?}");
    assert!(damage.positions_lost);
    assert!(dir.path().join("lost+found").join(SNAP_NAME).exists());
}
