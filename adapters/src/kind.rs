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
    /// Every store kind, compiled in or not, in the stable order of the
    /// reports. The one list that parsing, [`StoreKind::all_available`] and
    /// the "not a store" error are derived from.
    pub const ALL: [StoreKind; 5] = [
        StoreKind::Walrus(Backend::Mmap),
        StoreKind::Walrus(Backend::Fd),
        StoreKind::RocksDb,
        StoreKind::Sled,
        StoreKind::Raw,
    ];

    /// Names that parse besides each kind's own (its `Display`): a bare
    /// `walrus` is the fd backend.
    const ALIASES: [(&'static str, StoreKind); 2] = [
        ("walrus", StoreKind::Walrus(Backend::Fd)),
        ("rocks", StoreKind::RocksDb),
    ];

    /// The stores compiled into this build, in a stable order.
    pub fn all_available() -> Vec<StoreKind> {
        Self::ALL
            .into_iter()
            .filter(|kind| kind.is_available())
            .collect()
    }

    /// What `FromStr` accepts, for messages: `walrus (= walrus-fd)`, then
    /// every kind, those compiled out of this build marked with the cargo
    /// feature that compiles them in.
    pub fn accepted_names() -> String {
        let mut names = vec![format!("walrus (= {})", StoreKind::Walrus(Backend::Fd))];
        for kind in Self::ALL {
            names.push(match kind.missing_feature() {
                None => kind.to_string(),
                Some(feature) => format!("{kind} (needs cargo feature `{feature}`)"),
            });
        }
        names.join(", ")
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

    /// Parses the name of every kind in [`StoreKind::ALL`] (`walrus-mmap`,
    /// `walrus-fd`, `rocksdb`, `sled`, `raw`) and the aliases `walrus` (the
    /// fd backend; the name does not read `WALRUS_BACKEND`, callers that
    /// want that use `Backend::from_env`) and `rocks`, ignoring ASCII case
    /// and surrounding spaces. A kind compiled out of this build still
    /// parses, so that [`open_store`] can name the feature it needs; the
    /// error for an unknown name lists [`StoreKind::accepted_names`].
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let name = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|kind| kind.to_string() == name)
            .or_else(|| {
                Self::ALIASES
                    .into_iter()
                    .find_map(|(alias, kind)| (alias == name).then_some(kind))
            })
            .ok_or_else(|| {
                format!(
                    "`{}` is not a store; use one of {}",
                    s.trim(),
                    Self::accepted_names()
                )
            })
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
        for kind in StoreKind::ALL {
            assert_eq!(kind.to_string().parse(), Ok(kind));
        }
        assert_eq!("walrus".parse(), Ok(StoreKind::Walrus(Backend::Fd)));
        assert_eq!("RocksDB".parse(), Ok(StoreKind::RocksDb));
        assert_eq!(
            " Walrus-MMAP ".parse(),
            Ok(StoreKind::Walrus(Backend::Mmap))
        );
        assert!("mysql".parse::<StoreKind>().is_err());
    }

    /// The error for an unknown name lists every name that parses, each
    /// listed name parses, and a store this build lacks is listed with the
    /// feature that compiles it in.
    #[test]
    fn unknown_store_error_names_every_kind() {
        let err = "mysql".parse::<StoreKind>().unwrap_err();
        assert!(
            err.starts_with("`mysql` is not a store; use one of "),
            "{err}"
        );
        let listed: Vec<&str> = err
            .trim_start_matches("`mysql` is not a store; use one of ")
            .split(", ")
            .collect();
        let first_word = |entry: &str| entry.split(' ').next().unwrap().to_string();
        let listed_names: Vec<String> = listed.iter().map(|e| first_word(e)).collect();
        for kind in StoreKind::ALL {
            assert!(
                listed_names.contains(&kind.to_string()),
                "{kind} missing from: {err}"
            );
        }
        for (alias, _) in StoreKind::ALIASES {
            // Every alias but the old `rocks` spelling is advertised.
            assert!(
                alias == "rocks" || listed_names.iter().any(|n| n == alias),
                "{err}"
            );
        }
        for name in &listed_names {
            assert!(
                name.parse::<StoreKind>().is_ok(),
                "`{name}` is listed but does not parse"
            );
        }
        for entry in &listed {
            let kind: StoreKind = first_word(entry).parse().unwrap();
            assert_eq!(
                entry.contains("needs cargo feature"),
                !kind.is_available(),
                "{entry}"
            );
        }
        if !cfg!(feature = "rocksdb") {
            assert!(
                err.contains("rocksdb (needs cargo feature `rocksdb`)"),
                "{err}"
            );
        }
        if !cfg!(feature = "sled") {
            assert!(err.contains("sled (needs cargo feature `sled`)"), "{err}");
        }
    }

    /// `ALL` is what parsing and the error list come from, so it must hold
    /// every variant: a new one fails to compile here until it is added.
    #[test]
    fn all_holds_every_variant() {
        for kind in StoreKind::ALL {
            match kind {
                StoreKind::Walrus(_) | StoreKind::RocksDb | StoreKind::Sled | StoreKind::Raw => {}
            }
        }
        for kind in [StoreKind::RocksDb, StoreKind::Sled, StoreKind::Raw] {
            assert!(StoreKind::ALL.contains(&kind), "{kind}");
        }
        for backend in [Backend::Mmap, Backend::Fd] {
            assert!(StoreKind::ALL.contains(&StoreKind::Walrus(backend)));
        }
    }

    #[test]
    fn walrus_and_raw_are_always_available() {
        let all = StoreKind::all_available();
        assert!(all.contains(&StoreKind::Raw));
        assert!(all.contains(&StoreKind::Walrus(Backend::Fd)));
        assert!(all.contains(&StoreKind::Walrus(Backend::Mmap)));
        assert_eq!(
            all,
            StoreKind::ALL
                .into_iter()
                .filter(|k| k.is_available())
                .collect::<Vec<_>>()
        );
    }
}
