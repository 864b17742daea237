//! Choosing a store by name: the one line an application changes to swap
//! its log backend.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use walrus_store::{Error, FsyncSchedule, LogStore, Result, StoreConfig};
use walrus_wal::{Backend, Walrus};

use crate::marker::claim_dir;

/// Every store this crate can open. All variants exist whatever features are
/// enabled, so that a name always parses and a store that is compiled out
/// gets a clear error from [`open_store`] rather than "unknown store".
///
/// Everything else about a store (its names, feature, guarantees, library,
/// opener) lives in its [`StoreInfo`] entry of [`REGISTRY`]: adding a store
/// is one module, one variant here and one entry there
/// (`docs/adding-a-store.md`).
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
    /// The raw-file baseline: plain files, `pwrite` + `fdatasync`.
    Raw,
    /// The null store: entries kept in memory, no I/O. Not durable; its
    /// benchmark row is the harness's own ceiling.
    Null,
    /// NATS JetStream on one node (cargo feature `jetstream`).
    JetStreamR1,
    /// NATS JetStream on a three-node loopback cluster, three replicas
    /// (cargo feature `jetstream`).
    JetStreamR3,
}

/// One store, in one place: what parsing, the reports, the durability table
/// and [`open_store`] read about it.
pub struct StoreInfo {
    pub kind: StoreKind,
    /// The name that parses and prints (`Display`), e.g. `walrus-fd`.
    pub name: &'static str,
    /// What [`LogStore::name`] returns and the directory's `LOGSTORE` marker
    /// holds; the store's files go in `<dir>/<store_name>`.
    pub store_name: &'static str,
    /// Other names that parse to this store, e.g. `rocks`.
    pub aliases: &'static [&'static str],
    /// The cargo feature of `walrus-adapters` that compiles it in (`None`:
    /// always built).
    pub feature: Option<&'static str>,
    /// Whether this build has it (`cfg!(feature = ...)`).
    pub compiled: bool,
    /// Whether it keeps acknowledged entries across a reopen. Only durable
    /// stores are in [`StoreKind::all_available`], the list the
    /// conformance, crash and async suites run over.
    pub durable: bool,
    /// Crates (as named in `Cargo.lock`) whose versions identify the store's
    /// library, for the benchmark reports' version fields.
    pub crates: &'static [&'static str],
    /// What the store promises under each fsync mode (the rows of
    /// `docs/guarantees.md`), shown next to every benchmark figure.
    pub guarantee: fn(FsyncSchedule) -> String,
    /// Whether it can run here beyond being compiled in (e.g. a server
    /// binary it needs is installed); the error says what is missing.
    pub ready: fn() -> std::result::Result<(), String>,
    /// Opens the store's own files in `dir` (the `<dir>/<store_name>`
    /// subdirectory, or for Walrus the data directory itself; [`open_store`]
    /// claims the data directory).
    pub open: fn(&Path, StoreConfig) -> Result<Box<dyn LogStore>>,
}

/// Every store, in the stable order of the reports. Parsing, the "not a
/// store" error, [`StoreKind::all_available`], the guarantees and
/// [`open_store`] all read this table.
pub static REGISTRY: &[StoreInfo] = &[
    StoreInfo {
        kind: StoreKind::Walrus(Backend::Mmap),
        name: "walrus-mmap",
        store_name: "walrus",
        aliases: &[],
        feature: None,
        compiled: true,
        durable: true,
        crates: &[],
        guarantee: standard_guarantee,
        ready: always_ready,
        open: open_walrus_mmap,
    },
    StoreInfo {
        kind: StoreKind::Walrus(Backend::Fd),
        name: "walrus-fd",
        store_name: "walrus",
        aliases: &["walrus"],
        feature: None,
        compiled: true,
        durable: true,
        crates: &[],
        guarantee: standard_guarantee,
        ready: always_ready,
        open: open_walrus_fd,
    },
    StoreInfo {
        kind: StoreKind::RocksDb,
        name: "rocksdb",
        store_name: "rocksdb",
        aliases: &["rocks"],
        feature: Some("rocksdb"),
        compiled: cfg!(feature = "rocksdb"),
        durable: true,
        crates: &["rocksdb", "librocksdb-sys"],
        guarantee: standard_guarantee,
        ready: always_ready,
        open: open_rocksdb,
    },
    StoreInfo {
        kind: StoreKind::Sled,
        name: "sled",
        store_name: "sled",
        aliases: &[],
        feature: Some("sled"),
        compiled: cfg!(feature = "sled"),
        durable: true,
        crates: &["sled"],
        guarantee: sled_guarantee,
        ready: always_ready,
        open: open_sled,
    },
    StoreInfo {
        kind: StoreKind::Raw,
        name: "raw",
        store_name: "raw",
        aliases: &[],
        feature: None,
        compiled: true,
        durable: true,
        crates: &[],
        guarantee: standard_guarantee,
        ready: always_ready,
        open: open_raw,
    },
    StoreInfo {
        kind: StoreKind::Null,
        name: "null",
        store_name: "null",
        aliases: &[],
        feature: None,
        compiled: true,
        durable: false,
        crates: &[],
        guarantee: null_guarantee,
        ready: always_ready,
        open: open_null,
    },
    StoreInfo {
        kind: StoreKind::JetStreamR1,
        name: "jetstream-r1",
        store_name: "jetstream-r1",
        aliases: &[],
        feature: Some("jetstream"),
        compiled: cfg!(feature = "jetstream"),
        durable: true,
        crates: &["async-nats"],
        guarantee: crate::jetstream_info::r1_guarantee,
        ready: crate::jetstream_info::ready,
        open: crate::jetstream_info::open_r1,
    },
    StoreInfo {
        kind: StoreKind::JetStreamR3,
        name: "jetstream-r3",
        store_name: "jetstream-r3",
        aliases: &[],
        feature: Some("jetstream"),
        compiled: cfg!(feature = "jetstream"),
        durable: true,
        crates: &["async-nats"],
        guarantee: crate::jetstream_info::r3_guarantee,
        ready: crate::jetstream_info::ready,
        open: crate::jetstream_info::open_r3,
    },
];

fn always_ready() -> std::result::Result<(), String> {
    Ok(())
}

/// The mapping that Walrus, RocksDB and raw share (`docs/guarantees.md`).
pub fn standard_guarantee(fsync: FsyncSchedule) -> String {
    match fsync {
        FsyncSchedule::SyncEach => "durable on return".into(),
        FsyncSchedule::Milliseconds(ms) => format!("durable within {ms} ms + 1 fsync"),
        FsyncSchedule::NoFsync => "process crash only, not power loss".into(),
    }
}

/// sled 0.34: `flush()` ends in `sync_file_range` on Linux for SyncEach (the
/// data is written, the disk's write cache is never flushed), while its
/// background flusher thread (`flush_every_ms`) calls `sync_all`.
fn sled_guarantee(fsync: FsyncSchedule) -> String {
    match fsync {
        FsyncSchedule::SyncEach => {
            "written on return (sync_file_range: no disk-cache flush)".into()
        }
        FsyncSchedule::Milliseconds(ms) => {
            format!(
                "durable within {ms} ms (flusher's sync_all); unwritten lost on a process crash"
            )
        }
        FsyncSchedule::NoFsync => "none: lost even on a process crash".into(),
    }
}

fn null_guarantee(_: FsyncSchedule) -> String {
    "none: memory only, no I/O (harness ceiling)".into()
}

fn open_walrus_mmap(dir: &Path, config: StoreConfig) -> Result<Box<dyn LogStore>> {
    Ok(Box::new(crate::walrus::open(dir, Backend::Mmap, config)?))
}

fn open_walrus_fd(dir: &Path, config: StoreConfig) -> Result<Box<dyn LogStore>> {
    Ok(Box::new(crate::walrus::open(dir, Backend::Fd, config)?))
}

fn open_raw(dir: &Path, config: StoreConfig) -> Result<Box<dyn LogStore>> {
    Ok(Box::new(crate::RawStore::open(dir, config)?))
}

fn open_null(dir: &Path, config: StoreConfig) -> Result<Box<dyn LogStore>> {
    Ok(Box::new(crate::NullStore::open(dir, config)?))
}

/// An opener for a store behind a cargo feature: the real one when the
/// feature is on, one that is never called (open_store checks `compiled`
/// first) when it is off.
macro_rules! feature_opener {
    ($fn_name:ident, $feature:literal, $open:path) => {
        #[cfg(feature = $feature)]
        fn $fn_name(dir: &Path, config: StoreConfig) -> Result<Box<dyn LogStore>> {
            Ok(Box::new($open(dir, config)?))
        }
        #[cfg(not(feature = $feature))]
        fn $fn_name(_: &Path, _: StoreConfig) -> Result<Box<dyn LogStore>> {
            Err(Error::InvalidInput(
                concat!("not compiled in: rebuild with `--features ", $feature, "`").into(),
            ))
        }
    };
}

feature_opener!(open_rocksdb, "rocksdb", crate::RocksDbStore::open);
feature_opener!(open_sled, "sled", crate::SledStore::open);

impl StoreKind {
    /// This store's registry entry.
    pub fn info(self) -> &'static StoreInfo {
        REGISTRY
            .iter()
            .find(|info| info.kind == self)
            .expect("every StoreKind has a REGISTRY entry")
    }

    /// Every store kind, compiled in or not, durable or not, in the stable
    /// order of the reports.
    pub fn all() -> impl Iterator<Item = StoreKind> {
        REGISTRY.iter().map(|info| info.kind)
    }

    /// The durable stores compiled into this build, in a stable order: what
    /// the conformance, crash and async suites run over. The null store is
    /// left out (it keeps nothing across a reopen); ask for it by name.
    pub fn all_available() -> Vec<StoreKind> {
        REGISTRY
            .iter()
            .filter(|info| info.compiled && info.durable)
            .map(|info| info.kind)
            .collect()
    }

    /// What `FromStr` accepts, for messages: `walrus (= walrus-fd)`, then
    /// every kind, those compiled out of this build marked with the cargo
    /// feature that compiles them in.
    pub fn accepted_names() -> String {
        let mut names = Vec::new();
        for info in REGISTRY {
            for alias in info.aliases.iter().filter(|a| **a != "rocks") {
                names.push(format!("{alias} (= {})", info.name));
            }
        }
        for info in REGISTRY {
            names.push(match info.feature.filter(|_| !info.compiled) {
                None => info.name.to_string(),
                Some(feature) => format!("{} (needs cargo feature `{feature}`)", info.name),
            });
        }
        names.join(", ")
    }

    /// Whether this build can open the store.
    pub fn is_available(self) -> bool {
        self.info().compiled
    }

    /// Whether the store can run here: compiled in and [`StoreInfo::ready`]
    /// (e.g. its server installed). The error is one line saying why not.
    pub fn check_runnable(self) -> std::result::Result<(), String> {
        let info = self.info();
        if let Some(feature) = info.feature.filter(|_| !info.compiled) {
            return Err(format!(
                "store {} is not compiled into this build; rebuild with `--features {feature}`",
                info.name
            ));
        }
        (info.ready)().map_err(|why| format!("store {} cannot run here: {why}", info.name))
    }

    /// The name the store reports from [`LogStore::name`], which is also what
    /// the `LOGSTORE` marker of its directory holds.
    pub fn store_name(self) -> &'static str {
        self.info().store_name
    }

    /// What the store promises under `fsync` (see [`StoreInfo::guarantee`]).
    pub fn guarantee(self, fsync: FsyncSchedule) -> String {
        (self.info().guarantee)(fsync)
    }

    /// The cargo feature that would compile the store in, if it is out.
    fn missing_feature(self) -> Option<&'static str> {
        let info = self.info();
        info.feature.filter(|_| !info.compiled)
    }
}

impl FromStr for StoreKind {
    type Err = String;

    /// Parses every [`REGISTRY`] name and alias (`walrus` is the fd backend;
    /// the name does not read `WALRUS_BACKEND`, callers that want that use
    /// `Backend::from_env`), ignoring ASCII case and surrounding spaces. A
    /// kind compiled out of this build still parses, so that [`open_store`]
    /// can name the feature it needs; the error for an unknown name lists
    /// [`StoreKind::accepted_names`].
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let name = s.trim().to_ascii_lowercase();
        REGISTRY
            .iter()
            .find(|info| info.name == name || info.aliases.contains(&name.as_str()))
            .map(|info| info.kind)
            .ok_or_else(|| {
                format!(
                    "`{}` is not a store; use one of {}",
                    s.trim(),
                    Self::accepted_names()
                )
            })
    }
}

/// The registry name (`walrus-mmap`, `walrus-fd`, `rocksdb`, ...): what
/// `FromStr` reads.
impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.info().name)
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
/// go in the subdirectory `<dir>/<store name>` (Walrus: its instance
/// directories go in `dir` itself, where `Walrus::builder().data_dir(dir)`
/// puts them). Opening a directory whose
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
    let info = kind.info();
    claim_dir(dir, info.store_name)?;
    (info.open)(&files_dir(kind, dir), config)
}

/// Where a store's own files go in its data directory: `<dir>/<store
/// name>`, except for Walrus, whose instances sit in `dir` itself as the
/// engine's `Walrus::builder().data_dir(dir)` puts them (`<dir>/default`),
/// so either opens what the other wrote. A directory from before that
/// (`<dir>/walrus/default`) keeps its layout.
fn files_dir(kind: StoreKind, dir: &Path) -> PathBuf {
    let own = dir.join(kind.store_name());
    match kind {
        StoreKind::Walrus(_) if !own.join("default").is_dir() => dir.to_path_buf(),
        _ => own,
    }
}

/// Opens the Walrus engine itself rather than a `Box<dyn LogStore>`, in
/// the same place and with the same directory marker as
/// `open_store(StoreKind::Walrus(backend), dir, config)`, so that either can
/// reopen what the other wrote. The async front end wraps it.
pub fn open_walrus(dir: &Path, backend: Backend, config: StoreConfig) -> Result<Walrus> {
    let kind = StoreKind::Walrus(backend);
    claim_dir(dir, kind.store_name())?;
    crate::walrus::open(&files_dir(kind, dir), backend, config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use walrus_store::{FsyncSchedule, ReadConsistency};

    const CONFIG: StoreConfig = StoreConfig {
        consistency: ReadConsistency::StrictlyAtOnce,
        fsync: FsyncSchedule::SyncEach,
    };

    /// Issue 19's "two layouts for one engine": the builder and
    /// `open_store` now put an instance in the same place.
    #[test]
    fn open_store_and_the_engine_builder_open_one_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        {
            let wal = Walrus::builder().data_dir(dir).quiet(true).open().unwrap();
            wal.append_for_topic("t", b"from the builder").unwrap();
        }
        let kind = StoreKind::Walrus(Backend::Mmap);
        {
            let store = open_store(kind, dir, CONFIG).unwrap();
            let got = store
                .read_next("t", true)
                .unwrap()
                .expect("the builder's entry");
            assert_eq!(&got.data[..], b"from the builder");
            store.append("t", b"from open_store").unwrap();
        }
        assert!(
            dir.join("default").is_dir(),
            "the instance is <dir>/default"
        );
        let wal = Walrus::builder().data_dir(dir).quiet(true).open().unwrap();
        let got = wal
            .read_next("t", true)
            .unwrap()
            .expect("open_store's entry");
        assert_eq!(&got.data[..], b"from open_store");
        drop(wal);
        match open_store(StoreKind::Raw, dir, CONFIG) {
            Err(Error::BadDirectory { reason, .. }) => assert!(reason.contains("`walrus`")),
            Err(e) => panic!("raw on a walrus directory: {e}"),
            Ok(_) => panic!("raw opened a walrus directory"),
        }
    }

    /// A directory `open_store` made before the layouts were one
    /// (`<dir>/walrus/default`) still opens where its data is.
    #[test]
    fn a_directory_in_the_old_open_store_layout_keeps_its_data() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        claim_dir(dir, "walrus").unwrap();
        {
            let old = Walrus::builder()
                .data_dir(dir.join("walrus"))
                .quiet(true)
                .open()
                .unwrap();
            old.append_for_topic("t", b"old layout").unwrap();
        }
        let store = open_store(StoreKind::Walrus(Backend::Fd), dir, CONFIG).unwrap();
        let got = store.read_next("t", true).unwrap().expect("the old entry");
        assert_eq!(&got.data[..], b"old layout");
        assert!(!dir.join("default").exists(), "no second instance made");
    }

    #[test]
    fn names_round_trip() {
        for kind in StoreKind::all() {
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
        for kind in StoreKind::all() {
            assert!(
                listed_names.contains(&kind.to_string()),
                "{kind} missing from: {err}"
            );
        }
        for alias in REGISTRY.iter().flat_map(|info| info.aliases) {
            // Every alias but the old `rocks` spelling is advertised.
            assert!(
                *alias == "rocks" || listed_names.iter().any(|n| n == alias),
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

    /// Every variant has exactly one entry, and no two entries share a
    /// name or alias: a new variant without an entry fails to compile in the
    /// match, and one without an entry panics in `info()`.
    #[test]
    fn registry_holds_every_variant_once() {
        for kind in [
            StoreKind::Walrus(Backend::Mmap),
            StoreKind::Walrus(Backend::Fd),
            StoreKind::RocksDb,
            StoreKind::Sled,
            StoreKind::Raw,
            StoreKind::Null,
            StoreKind::JetStreamR1,
            StoreKind::JetStreamR3,
        ] {
            match kind {
                StoreKind::Walrus(_)
                | StoreKind::RocksDb
                | StoreKind::Sled
                | StoreKind::Raw
                | StoreKind::Null
                | StoreKind::JetStreamR1
                | StoreKind::JetStreamR3 => {}
            }
            assert_eq!(
                REGISTRY.iter().filter(|i| i.kind == kind).count(),
                1,
                "{kind:?}"
            );
        }
        let mut names: Vec<&str> = REGISTRY
            .iter()
            .flat_map(|i| std::iter::once(i.name).chain(i.aliases.iter().copied()))
            .collect();
        let before = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), before, "a name or alias is used twice");
        for info in REGISTRY {
            assert_eq!(
                info.compiled,
                info.feature.is_none() || info.kind.is_available()
            );
        }
    }

    /// The null store parses and opens but is not in `all_available` (it is
    /// not durable); sled's N ms row names the flusher's `sync_all`.
    #[test]
    fn null_is_opt_in_and_guarantees_come_from_the_registry() {
        assert_eq!("null".parse(), Ok(StoreKind::Null));
        assert!(!StoreKind::all_available().contains(&StoreKind::Null));
        assert!(StoreKind::Null.check_runnable().is_ok());
        assert!(StoreKind::Sled
            .guarantee(FsyncSchedule::Milliseconds(200))
            .contains("sync_all"));
        assert_eq!(
            StoreKind::Raw.guarantee(FsyncSchedule::SyncEach),
            "durable on return"
        );
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(StoreKind::Null, dir.path(), StoreConfig::default()).unwrap();
        assert_eq!(store.name(), "null");
    }

    #[test]
    fn walrus_and_raw_are_always_available() {
        let all = StoreKind::all_available();
        assert!(all.contains(&StoreKind::Raw));
        assert!(all.contains(&StoreKind::Walrus(Backend::Fd)));
        assert!(all.contains(&StoreKind::Walrus(Backend::Mmap)));
        assert_eq!(
            all,
            StoreKind::all()
                .filter(|k| k.is_available() && k.info().durable)
                .collect::<Vec<_>>()
        );
    }
}
