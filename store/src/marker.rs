//! The `LOGSTORE` marker: which store a data directory belongs to.
//!
//! Opening RocksDB on a Walrus directory (or the raw baseline on a sled
//! directory) would at best fail with a confusing backend error and at worst
//! write a second store's files next to the first. `walrus_adapters::open_store`
//! therefore writes the store's name into `<dir>/LOGSTORE` the first time and
//! checks it every time after ([`claim_dir`]). The Walrus engine marks its
//! own data directories too ([`mark_dir`]), so a directory made by
//! `Walrus::builder().data_dir(d)` and one made by `open_store` are the same
//! directory, and neither can be opened as another store.

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::Path;

use crate::{Error, Result};

/// Name of the marker file inside a data directory.
pub const MARKER_FILE: &str = "LOGSTORE";
const MARKER_TMP: &str = "LOGSTORE.tmp";

/// Makes sure `dir` is a directory that holds a `store` store, or an empty
/// (or missing) one that can become one, and marks it.
pub fn claim_dir(dir: &Path, store: &str) -> Result<()> {
    let bad = |reason: String| Error::BadDirectory {
        path: dir.to_path_buf(),
        reason,
    };
    match fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => {
            return Err(bad("it exists and is not a directory".into()));
        }
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {
            fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("creating data directory {}", dir.display()), e))?;
        }
        Err(e) => return Err(Error::io(format!("inspecting {}", dir.display()), e)),
    }

    if let Some(found) = read_marker(dir)? {
        return same_store(dir, &found, store);
    }
    // A directory with files but no marker was not made by `open_store`;
    // writing a store into it could mix two stores' files, so refuse rather
    // than guess.
    let stranger = fs::read_dir(dir)
        .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?
        .filter_map(|entry| entry.ok())
        .find(|entry| entry.file_name() != MARKER_TMP);
    if let Some(entry) = stranger {
        return Err(bad(format!(
            "it is not empty (it holds {:?}) and has no {MARKER_FILE} file naming its \
             store; use an empty or new directory",
            entry.file_name()
        )));
    }
    write_marker(dir, store)
}

/// Like [`claim_dir`] for an existing or new directory, without refusing
/// one that holds files but no marker: a directory that an engine from
/// before the marker wrote gets one. Refuses a marker naming another store.
pub fn mark_dir(dir: &Path, store: &str) -> Result<()> {
    match read_marker(dir)? {
        Some(found) => same_store(dir, &found, store),
        None => write_marker(dir, store),
    }
}

/// The store name `dir`'s marker holds, `None` when it has none.
fn read_marker(dir: &Path) -> Result<Option<String>> {
    let marker = dir.join(MARKER_FILE);
    match fs::read(&marker) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).trim().to_string())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("reading {}", marker.display()), e)),
    }
}

/// `Ok` when the marker names `store`, else the refusal that names both.
fn same_store(dir: &Path, found: &str, store: &str) -> Result<()> {
    if found == store {
        return Ok(());
    }
    Err(Error::BadDirectory {
        path: dir.to_path_buf(),
        reason: format!(
            "it holds a `{found}` store (per its {MARKER_FILE} file), not a `{store}` store; \
             open it with that store or use another directory"
        ),
    })
}

/// Writes the marker durably (temp file, fsync, rename, fsync of the
/// directory) before any store file exists, so that a crash can never leave
/// store files without a marker.
fn write_marker(dir: &Path, store: &str) -> Result<()> {
    let tmp = dir.join(MARKER_TMP);
    let io = |what: &str| {
        let what = format!("{what} {}", dir.join(MARKER_FILE).display());
        move |e| Error::io(what, e)
    };
    let mut file = File::create(&tmp).map_err(io("creating"))?;
    file.write_all(format!("{store}\n").as_bytes())
        .map_err(io("writing"))?;
    file.sync_all().map_err(io("syncing"))?;
    drop(file);
    fs::rename(&tmp, dir.join(MARKER_FILE)).map_err(io("renaming into place"))?;
    sync_dir(dir)
}

/// fsyncs a directory so that entries created or renamed in it survive a
/// power loss.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("syncing directory {}", dir.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_is_written_once_and_checked_after() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        claim_dir(&dir, "raw").unwrap();
        claim_dir(&dir, "raw").unwrap();
        let err = claim_dir(&dir, "sled").unwrap_err();
        assert!(
            matches!(&err, Error::BadDirectory { reason, .. } if reason.contains("`raw`")),
            "{err}"
        );
    }

    #[test]
    fn mark_dir_adopts_an_unmarked_directory_but_refuses_another_stores() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("engine");
        fs::create_dir(&dir).unwrap();
        fs::create_dir(dir.join("default")).unwrap();
        mark_dir(&dir, "walrus").unwrap();
        claim_dir(&dir, "walrus").expect("marked now");
        mark_dir(&dir, "walrus").unwrap();
        assert!(matches!(
            mark_dir(&dir, "raw"),
            Err(Error::BadDirectory { .. })
        ));
    }

    #[test]
    fn a_file_or_a_foreign_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        fs::write(&file, b"x").unwrap();
        assert!(matches!(
            claim_dir(&file, "raw"),
            Err(Error::BadDirectory { .. })
        ));
        let foreign = tmp.path().join("foreign");
        fs::create_dir(&foreign).unwrap();
        fs::write(foreign.join("CURRENT"), b"x").unwrap();
        assert!(matches!(
            claim_dir(&foreign, "raw"),
            Err(Error::BadDirectory { .. })
        ));
    }
}
