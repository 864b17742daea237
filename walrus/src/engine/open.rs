//! Opening an instance: the directory lock, recovery, and the reconciliation
//! of the recovered chains with the persisted cursors.

use super::background::{release_consumed, Background, Signal};
use super::builder::{WalrusBuilder, MAX_SEGMENT_BYTES};
use super::{Inner, Walrus};
use crate::alloc::Lanes;
use crate::cursor::CursorStore;
use crate::recovery::{self, Dropped, RecoveryReport, TopicState};
use crate::segment::{Segment, EXTENT_UNIT};
use crate::storage::Storage;
use crate::store::{Error, FailureLatch, FsyncSchedule, ReadConsistency, Result};
use crate::topic::Topic;
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// The topics an instance opens with, and the segments it can delete at once.
type Reconciled = (HashMap<String, Arc<Topic>>, Vec<Arc<Segment>>);

impl Walrus {
    pub(super) fn open(mut b: WalrusBuilder) -> Result<Walrus> {
        b.validate()?;
        if let ReadConsistency::AtLeastOnce { persist_every: 0 } = b.consistency {
            // As walrus-rust does: persisting every 0 reads can only mean
            // the strictest at-least-once setting.
            tracing::warn!("walrus: AtLeastOnce {{ persist_every: 0 }} taken as persist_every: 1");
            b.consistency = ReadConsistency::AtLeastOnce { persist_every: 1 };
        }
        let dir = crate::key::instance_dir(&b.data_dir, &b.key)?;
        let (storage, lock) = storage_and_lock(&b, &dir)?;
        let lanes = b.lanes();
        if !b.quiet {
            tracing::info!(
                "walrus: {} at {}, {lanes} active segment(s)",
                storage.describe(),
                dir.display(),
            );
        }
        let (cursors, mut positions, cursor_damage) = CursorStore::open(storage.clone(), &dir)?;
        let snapshot = crate::recovery_snapshot::take(&*storage, &dir)?;
        let cursors_lost = cursor_damage.positions_lost;
        let recovered =
            recovery::recover(&*storage, &dir, &positions, cursors_lost, snapshot.as_ref())?;
        let report = log_damage(recovered.report, cursor_damage.found);
        sync_recovered(&recovered.segments)?;
        let (topics, mut deletable) = reconcile(recovered.topics, &mut positions, cursors_lost);
        cursors.reset(positions)?;
        for segment in recovered.segments.values() {
            if segment.seal() {
                deletable.push(segment.clone());
            }
        }
        let inner = Arc::new(Inner {
            dir,
            storage,
            consistency: b.consistency,
            fsync: b.fsync,
            extent_bytes: b.extent_bytes,
            // A frame larger than a segment gets a segment of its own (the
            // allocator sizes it), up to the largest one a mark describes.
            max_frame_bytes: MAX_SEGMENT_BYTES - 2 * EXTENT_UNIT,
            topics: RwLock::new(topics),
            alloc: Lanes::new(lanes, recovered.next_segment_id, b.segment_bytes),
            segments: Mutex::new(recovered.segments),
            cursors,
            since_snapshot: AtomicU64::new(0),
            snapshot_every: b.snapshot_every,
            snapshotting: Mutex::new(()),
            signal: Signal::default(),
            failure: FailureLatch::new(),
            report,
            _lock: lock,
        });
        for segment in deletable {
            inner.delete_segment(&segment);
        }
        let background = Background::start(inner.clone(), b.fsync.interval())
            .map_err(|e| Error::io("starting the background thread", e))?;
        Ok(Walrus {
            inner,
            background: Some(background),
            crashed: false,
        })
    }
}

/// The storage the instance runs on, and the lock of its directory (none
/// for a storage the tests supply).
fn storage_and_lock(b: &WalrusBuilder, dir: &Path) -> Result<(Arc<dyn Storage>, Option<File>)> {
    #[cfg(feature = "test-support")]
    if let Some(super::builder::StorageOverride(s)) = &b.storage {
        return Ok((s.clone(), None));
    }
    Ok((
        b.backend.storage(b.fsync == FsyncSchedule::SyncEach),
        Some(lock_dir(&b.data_dir, dir)?),
    ))
}

/// Logs what recovery dropped and the cursor files' damage, and adds the
/// latter to the report.
fn log_damage(mut report: RecoveryReport, cursor_damage: Vec<Dropped>) -> RecoveryReport {
    for d in &report.dropped {
        tracing::warn!(
            "walrus recovery dropped {} at {}: {}",
            d.file.display(),
            d.offset,
            d.reason
        );
    }
    for d in &cursor_damage {
        tracing::warn!(
            "walrus: cursor file {} damaged at {}: {}",
            d.file.display(),
            d.offset,
            d.reason
        );
    }
    report.cursor_damage = cursor_damage;
    report
}

/// What recovery accepted may exist only in the page cache (the previous
/// process crashed before syncing). Readers are shown it from now on, and
/// under `SyncEach` they may only see durable entries; and new acknowledged
/// entries must not follow entries a power loss could still take.
fn sync_recovered(segments: &BTreeMap<u64, Arc<Segment>>) -> Result<()> {
    for segment in segments.values() {
        segment
            .file
            .sync()
            .map_err(|e| Error::io(format!("syncing {}", segment.path.display()), e))?;
    }
    Ok(())
}

/// Builds each topic from its recovered chain and its cursor, moving
/// `positions` to where each topic's cursor really is.
fn reconcile(
    recovered: HashMap<String, TopicState>,
    positions: &mut HashMap<String, u64>,
    cursors_lost: bool,
) -> Reconciled {
    let mut topics = HashMap::new();
    let mut deletable = Vec::new();
    for (name, state) in recovered {
        // Recovery starts each chain at or below the cursor. Entries
        // below it may be gone (reclaimed, or consumed before a power
        // loss took them); sequence numbers never go back, so the topic
        // continues at least from its cursor.
        let mut cursor = positions.get(&name).copied().unwrap_or(0);
        if cursors_lost {
            // A cursor lost with a damaged cursor file restarts at the
            // oldest entry kept (never below it: that one was reclaimed).
            cursor = cursor.max(state.extents.front().map_or(0, |b| b.first_seq));
        }
        debug_assert!(state.extents.front().is_none_or(|b| b.first_seq <= cursor));
        positions.insert(name.clone(), cursor);
        let topic = Topic::new(
            name.clone(),
            state.extents,
            state.next_seq.max(cursor),
            state.next_extent_seq,
            cursor,
        );
        deletable.extend(release_consumed(&topic, cursor));
        topics.insert(name, Arc::new(topic));
    }
    // Topics whose data is all reclaimed live on in their cursors only.
    for (name, &cursor) in positions.iter() {
        topics.entry(name.clone()).or_insert_with(|| {
            Arc::new(Topic::new(
                name.clone(),
                Default::default(),
                cursor,
                0,
                cursor,
            ))
        });
    }
    (topics, deletable)
}

/// Takes the advisory lock of an instance directory, creating it if needed.
fn lock_dir(data_dir: &Path, dir: &Path) -> Result<File> {
    let bad = |reason: String| Error::BadDirectory {
        path: data_dir.to_owned(),
        reason,
    };
    if data_dir.exists() && !data_dir.is_dir() {
        return Err(bad("it is not a directory".into()));
    }
    create_dir_durably(dir).map_err(|e| bad(format!("cannot create {}: {e}", dir.display())))?;
    // The data directory says it holds Walrus instances, as `open_store`
    // marks it: either opens what the other made, and no other store
    // opens it.
    crate::store::marker::mark_dir(data_dir, STORE_NAME)?;
    crate::store::lock_dir(dir)
}

/// The store name the `LOGSTORE` marker of a data directory holds.
const STORE_NAME: &str = "walrus";

/// Creates `dir` and any missing parents, and fsyncs the parent of each
/// directory it created: a directory entry is durable only once its parent
/// is synced, and a segment synced into a directory a power loss forgets is
/// lost with it.
fn create_dir_durably(dir: &Path) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.exists() {
        missing.push(at);
        match at.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => at = parent,
            _ => break,
        }
    }
    std::fs::create_dir_all(dir)?;
    for created in missing.iter().rev() {
        let parent = created
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        crate::storage::sync_dir(parent)?;
    }
    Ok(())
}
