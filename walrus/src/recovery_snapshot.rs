//! The recovery snapshot records, for every live extent, a prefix of its
//! frames known to be durable, so that the next open verifies only what
//! follows. It is written at a clean close (covering everything) and after a
//! sync round (the `Milliseconds` flusher's, an explicit `sync()`, or under
//! `SyncEach` one run for the purpose) once `recovery_snapshot_every_bytes` of new
//! extents were handed out since the last one: the writer notes each
//! extent's committed end (and whether it is sealed), syncs every segment,
//! and only then writes the recovery snapshot. An open after a crash therefore
//! re-reads about what was written since the last sync round plus the
//! topics' current extents, not the whole log.
//!
//! It is only ever trusted by the next open: open reads it and deletes it
//! (durably) before anything new is written, and within one run an
//! (segment id, extent start) pair never names two extents, because segment
//! ids only grow and extents are never reused. Extents it lists that are
//! gone (reclaimed) are ignored. Any damage to it costs only speed: open
//! falls back to the full scan.
//!
//! The file's layout is in `crate::format::recovery_snapshot`.

use crate::format::recovery_snapshot as layout;
pub use crate::format::recovery_snapshot::Vouched;
use crate::storage::{FileKind, OpenMode, Storage};
use crate::store::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

pub const NAME: &str = "recovery.ckpt";
const TMP_NAME: &str = "recovery.ckpt.tmp";

/// (segment id, extent start) -> what is vouched for.
pub type Extents = HashMap<(u64, u64), Vouched>;

/// Reads and deletes the recovery snapshot. `Ok(None)` when there is none or it is
/// damaged (a warning is logged); `Err` only when it cannot be deleted.
pub fn take(storage: &dyn Storage, dir: &Path) -> Result<Option<Extents>> {
    let path = dir.join(NAME);
    let names = storage
        .list(dir)
        .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    let _ = storage.remove(&dir.join(TMP_NAME));
    if !names.iter().any(|n| n == NAME) {
        return Ok(None);
    }
    let extents = read(storage, &path);
    if extents.is_none() {
        tracing::warn!(
            "walrus: ignoring damaged {}; scanning every extent",
            path.display()
        );
    }
    storage
        .remove(&path)
        .and_then(|()| storage.sync_dir(dir))
        .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
    Ok(extents)
}

fn read(storage: &dyn Storage, path: &Path) -> Option<Extents> {
    let file = storage
        .open(path, OpenMode::Existing, FileKind::Small)
        .ok()?;
    let len = file.len().ok()?;
    if !(24..=1 << 30).contains(&len) {
        return None;
    }
    let mut b = vec![0u8; len as usize];
    file.read_exact_at(&mut b, 0).ok()?;
    Some(layout::decode(&b)?.into_iter().collect())
}

/// Writes the recovery snapshot crash-safely (temp file, fsync, rename, fsync dir).
/// The caller has made every extent it lists durable first.
pub fn write(storage: &dyn Storage, dir: &Path, extents: &Extents) -> Result<()> {
    let b = layout::encode(extents.iter());
    let (tmp, path) = (dir.join(TMP_NAME), dir.join(NAME));
    let io = |e| Error::io(format!("writing {}", path.display()), e);
    let _ = storage.remove(&tmp);
    let file = storage
        .open(&tmp, OpenMode::CreateNew, FileKind::Small)
        .map_err(io)?;
    file.write_all_at(&b, 0)
        .and_then(|()| file.sync())
        .map_err(io)?;
    storage
        .rename(&tmp, &path)
        .and_then(|()| storage.sync_dir(dir))
        .map_err(io)
}
