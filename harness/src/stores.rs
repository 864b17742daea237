//! Which stores a run uses and how they are opened: the one place that
//! knows about the adapters crate. Workloads only ever see `&dyn LogStore`.

use std::path::Path;

use walrus_wal::{LogStore, Result, StoreConfig};

pub use stand_in::StoreKind;

/// Opens `kind` in `dir` with `config`.
pub fn open(kind: StoreKind, dir: &Path, config: StoreConfig) -> Result<Box<dyn LogStore>> {
    stand_in::open_store(kind, dir, config)
}

// STAND-IN until walrus-adapters lands: same API as promised.
mod stand_in {
    use super::*;
    use std::fmt;
    use std::str::FromStr;
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum StoreKind {
        Walrus,
        WalrusMmap,
        WalrusFd,
        Rocksdb,
        Sled,
        Raw,
    }
    const ALL: [(StoreKind, &str); 6] = [
        (StoreKind::Walrus, "walrus"),
        (StoreKind::WalrusMmap, "walrus-mmap"),
        (StoreKind::WalrusFd, "walrus-fd"),
        (StoreKind::Rocksdb, "rocksdb"),
        (StoreKind::Sled, "sled"),
        (StoreKind::Raw, "raw"),
    ];
    impl FromStr for StoreKind {
        type Err = String;
        fn from_str(s: &str) -> std::result::Result<Self, String> {
            ALL.iter()
                .find(|(_, n)| *n == s)
                .map(|(k, _)| *k)
                .ok_or_else(|| s.to_string())
        }
    }
    impl fmt::Display for StoreKind {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(ALL.iter().find(|(k, _)| k == self).unwrap().1)
        }
    }
    impl StoreKind {
        pub fn all_available() -> Vec<StoreKind> {
            vec![
                StoreKind::Walrus,
                StoreKind::WalrusMmap,
                StoreKind::WalrusFd,
                StoreKind::Raw,
            ]
        }
    }
    pub fn open_store(_: StoreKind, _: &Path, _: StoreConfig) -> Result<Box<dyn LogStore>> {
        Err(walrus_wal::Error::InvalidInput(
            "adapters not landed".into(),
        ))
    }
}

/// The backend column of the reports: `mmap`/`fd` for Walrus, `-` otherwise.
pub fn backend_label(kind: StoreKind) -> String {
    let name = kind.to_string();
    match name.strip_prefix("walrus") {
        Some("") => "default".into(),
        Some(rest) => rest.trim_start_matches('-').into(),
        None => "-".into(),
    }
}
