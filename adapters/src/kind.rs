//! Choosing a store by name: the one line an application changes to swap
//! its log backend.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::str::FromStr;

use walrus_wal::{Backend, Error, LogStore, Result, StoreConfig, Walrus};

use crate::marker::claim_dir;

/// Every store this crate can open. All variants exist whatever features are
/// enabled, so that a name always parses and a store that is compiled out
/// gets a clear error from [`open_store`] rather than "unknown store".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreKind {
    /// The Walrus engine on the given storage backend. Both backends share
    /// one on-disk format, so either may reopen the other's directory.
    Walrus(Backend),
    /// RocksDB (cargo feature `rocksdb`).
    RocksDb,
    /// sled 0.34 (cargo feature `sled`).
    Sled,
    /// The raw-file baseline: one plain file per topic.
    Raw,
}

impl StoreKind {
    /// The stores compiled into this build, in a stable order.
    pub fn all_available() -> Vec<StoreKind> {
        let mut kinds = vec![
            StoreKind::Walrus(Backend::Mmap),
            StoreKind::Walrus(Backend::Fd),
        ];
        if cfg!(feature = "rocksdb") {
            kinds.push(StoreKind::RocksDb);
        }
        if cfg!(feature = "sled") {
            kinds.push(StoreKind::Sled);
        }
        kinds.push(StoreKind::Raw);
        kinds
    }

    /// Whether this build can open the store.
    pub fn is_available(self) -> bool {
        self.missing_feature().is_none()
    }

    /// The name the store reports from [`LogStore::name`], which is also what
    /// the `LOGSTORE` marker of its directory holds.
    pub fn store_name(self) -> &'static str {
        match self {
            StoreKind::Walrus(_) => "walrus",
            StoreKind::RocksDb => "rocksdb",
            StoreKind::Sled => "sled",
            StoreKind::Raw => "raw",
        }
    }

    /// The cargo feature that would compile the store in, if it is out.
    fn missing_feature(self) -> Option<&'static str> {
        match self {
            StoreKind::RocksDb if !cfg!(feature = "rocksdb") => Some("rocksdb"),
            StoreKind::Sled if !cfg!(feature = "sled") => Some("sled"),
            _ => None,
        }
    }
}

impl FromStr for StoreKind {
    type Err = String;

    /// Parses `walrus` (the fd backend; the name does not read
    /// `WALRUS_BACKEND`, callers that want that use `Backend::from_env`),
    /// `walrus-mmap`, `walrus-fd`, `rocksdb`, `sled` and `raw`, ignoring
    /// ASCII case.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "walrus" | "walrus-fd" => Ok(StoreKind::Walrus(Backend::Fd)),
            "walrus-mmap" => Ok(StoreKind::Walrus(Backend::Mmap)),
            "rocksdb" | "rocks" => Ok(StoreKind::RocksDb),
            "sled" => Ok(StoreKind::Sled),
            "raw" => Ok(StoreKind::Raw),
            other => Err(format!(
                "`{other}` is not a store; use one of rocksdb, sled, raw"
            )),
        }
    }
}

/// `walrus-mmap`, `walrus-fd`, `rocksdb`, `sled`, `raw`: what `FromStr` reads.
impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreKind::Walrus(backend) => write!(f, "walrus-{backend}"),
            other => f.write_str(other.store_name()),
        }
    }
}

/// By hand because `Backend` is not `Hash`; equal kinds print equally.
impl Hash for StoreKind {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.to_string().hash(state);
    }
}

/// Opens (creating if needed) a `kind` store in `dir` with the durability
/// settings of `config`.
///
/// `dir` gets a `LOGSTORE` marker naming the store, and the store's own files
/// go in the subdirectory `<dir>/<store name>`. Opening a directory whose
/// marker names another store, a non-empty directory without a marker, or a
/// path that is a regular file fails with [`Error::BadDirectory`]; a store
/// compiled out of this build fails with [`Error::InvalidInput`] naming the
/// cargo feature to enable.
pub fn open_store(kind: StoreKind, dir: &Path, config: StoreConfig) -> Result<Box<dyn LogStore>> {
    if let Some(feature) = kind.missing_feature() {
        return Err(Error::InvalidInput(format!(
            "the {kind} store is not compiled into this build; rebuild with \
             `--features {feature}` (e.g. `cargo build -p walrus-adapters --features {feature}`)"
        )));
    }
    claim_dir(dir, kind.store_name())?;
    let store_dir = dir.join(kind.store_name());
    Ok(match kind {
        StoreKind::Walrus(backend) => Box::new(crate::walrus::open(&store_dir, backend, config)?),
        StoreKind::Raw => Box::new(crate::RawStore::open(&store_dir, config)?),
        #[cfg(feature = "rocksdb")]
        StoreKind::RocksDb => Box::new(crate::RocksDbStore::open(&store_dir, config)?),
        #[cfg(feature = "sled")]
        StoreKind::Sled => Box::new(crate::SledStore::open(&store_dir, config)?),
        #[allow(unreachable_patterns)] // reached only when a feature is off
        _ => unreachable!("missing_feature() covers every compiled-out store"),
    })
}

/// Opens the Walrus engine itself rather than a `Box<dyn LogStore>`, in
/// the same place and with the same directory marker as
/// `open_store(StoreKind::Walrus(backend), dir, config)`, so that either can
/// reopen what the other wrote. The async front end wraps it.
pub fn open_walrus(dir: &Path, backend: Backend, config: StoreConfig) -> Result<Walrus> {
    let kind = StoreKind::Walrus(backend);
    claim_dir(dir, kind.store_name())?;
    crate::walrus::open(&dir.join(kind.store_name()), backend, config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in [
            StoreKind::Walrus(Backend::Mmap),
            StoreKind::Walrus(Backend::Fd),
            StoreKind::RocksDb,
            StoreKind::Sled,
            StoreKind::Raw,
        ] {
            assert_eq!(kind.to_string().parse(), Ok(kind));
        }
        assert_eq!("walrus".parse(), Ok(StoreKind::Walrus(Backend::Fd)));
        assert_eq!("RocksDB".parse(), Ok(StoreKind::RocksDb));
        assert!("mysql".parse::<StoreKind>().is_err());
    }

    #[test]
    fn walrus_and_raw_are_always_available() {
        let all = StoreKind::all_available();
        assert!(all.contains(&StoreKind::Raw));
        assert!(all.contains(&StoreKind::Walrus(Backend::Fd)));
        assert!(all.contains(&StoreKind::Walrus(Backend::Mmap)));
    }
}
