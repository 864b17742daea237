use super::*;

#[test]
fn crash_keeps_synced_data_and_drops_the_rest() {
    let sim = SimStorage::new();
    let dir = Path::new("/d");
    let f = sim
        .open(&dir.join("a"), OpenMode::CreateNew, FileKind::Small)
        .unwrap();
    f.write_all_at(b"hello", 0).unwrap();
    f.sync().unwrap();
    sim.sync_dir(dir).unwrap();
    f.write_all_at(b"world", 5).unwrap();
    let after = sim.crash(Crash::LoseUnsynced);
    let g = after
        .open(&dir.join("a"), OpenMode::Existing, FileKind::Small)
        .unwrap();
    assert_eq!(g.len().unwrap(), 5);
    let process = sim.crash(Crash::Process);
    let h = process
        .open(&dir.join("a"), OpenMode::Existing, FileKind::Small)
        .unwrap();
    assert_eq!(h.len().unwrap(), 10);
}

#[test]
fn an_op_hook_images_the_storage_before_each_operation() {
    let sim = SimStorage::new();
    let path = Path::new("/d/a");
    let images = Arc::new(Mutex::new(Vec::new()));
    let taken = images.clone();
    sim.set_op_hook(move |at| {
        let image = at.crash(Crash::Process);
        taken
            .lock()
            .push((at.op, at.kind, at.path.to_owned(), image));
    });
    let f = sim
        .open(path, OpenMode::CreateNew, FileKind::Small)
        .unwrap();
    f.write_all_at(b"hello", 0).unwrap();
    sim.clear_op_hook();
    let images = images.lock();
    let points: Vec<_> = images
        .iter()
        .map(|(op, kind, p, _)| (*op, *kind, p.as_path()))
        .collect();
    assert_eq!(
        points,
        [(0, FaultKind::Open, path), (1, FaultKind::Write, path)]
    );
    assert!(
        images[0].3.files().is_empty(),
        "the first image precedes the open"
    );
    let before_write = images[1].3.open(path, OpenMode::Existing, FileKind::Small);
    assert_eq!(
        before_write.unwrap().len().unwrap(),
        0,
        "the second precedes the write"
    );
}

#[test]
fn a_power_loss_keeps_a_new_segment_at_its_length_or_not_at_all() {
    let sim = SimStorage::new();
    let dir = Path::new("/d");
    let segment = FileKind::Segment { size_bytes: 4096 };
    let f = sim
        .open(&dir.join("s"), OpenMode::CreateNew, segment)
        .unwrap();
    f.write_all_at(b"header", 0).unwrap();
    // The name is durable now, the length and the header are not.
    sim.sync_dir(dir).unwrap();
    let mut lengths = std::collections::BTreeSet::new();
    for seed in 0..16 {
        for how in [
            Crash::KeepRandom { seed },
            Crash::TearLast { seed },
            Crash::LoseUnsynced,
        ] {
            let after = sim.crash(how);
            let g = after.open(&dir.join("s"), OpenMode::Existing, FileKind::Small);
            lengths.insert(g.unwrap().len().unwrap());
        }
    }
    assert_eq!(lengths.into_iter().collect::<Vec<_>>(), [0, 4096]);
}

#[test]
fn the_before_op_callback_may_use_the_storage() {
    let sim = SimStorage::new();
    let dir = Path::new("/d");
    let inner = sim.clone();
    // Makes every created name durable at its first write.
    sim.set_before_op(move |kind, path| {
        if kind == FaultKind::Write {
            inner.sync_dir(path.parent().unwrap()).unwrap();
        }
    });
    let f = sim
        .open(&dir.join("a"), OpenMode::CreateNew, FileKind::Small)
        .unwrap();
    f.write_all_at(b"x", 0).unwrap();
    sim.clear_before_op();
    assert_eq!(sim.count(FaultKind::SyncDir), 1);
    assert_eq!(sim.crash(Crash::LoseUnsynced).files(), [(dir.join("a"), 0)]);
}

#[test]
fn an_injected_fault_fails_once() {
    let sim = SimStorage::new();
    sim.inject(Fault {
        kind: FaultKind::Open,
        nth: 0,
        errno: libc::ENOSPC,
    });
    let p = Path::new("/d/a");
    let err = sim
        .open(p, OpenMode::CreateNew, FileKind::Small)
        .err()
        .unwrap();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
    assert!(sim.open(p, OpenMode::CreateNew, FileKind::Small).is_ok());
}
