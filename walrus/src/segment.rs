//! Segment files: their names, and the count of live extents that decides
//! when a consumed segment can be deleted.
//!
//! A segment is a fixed-size file carved into extents; each extent belongs to
//! one topic. Space is handed out per extent (1 MiB by default) by
//! [`crate::alloc`], not per entry, so appenders of different topics only
//! meet there once per extent. Each segment's fdatasyncs are shared by
//! [`crate::group_commit::GroupSync`].

use crate::group_commit::GroupSync;
use crate::storage::StorageFile;
// std's atomics, or loom's models of them under `--cfg loom` (see `sync`).
// `Arc` stays std's: segments and their files are shared with code that
// loom does not model.
use crate::sync::{AtomicBool, AtomicUsize, Ordering};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

pub use crate::format::EXTENT_UNIT;

pub fn segment_name(id: u64) -> String {
    format!("seg-{id:020}.wal")
}

/// Suffix of a segment file being created (see `crate::alloc::Allocator::create_segment`).
pub const TMP_SUFFIX: &str = ".tmp";

pub fn parse_segment_name(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")?
        .strip_suffix(".wal")?
        .parse()
        .ok()
}

pub struct Segment {
    pub id: u64,
    pub path: PathBuf,
    pub file: Arc<dyn StorageFile>,
    pub size_bytes: u64,
    pub sync: GroupSync,
    /// Extents of this segment whose entries are not all consumed yet, plus
    /// [`SEALED`] once no more extents will be allocated here. One word, so
    /// that the seal and the release of the last extent are ordered and
    /// exactly one of them finds the segment sealed and empty. (As two
    /// atomics, a release could decrement to 0, stall while an extent is
    /// added and the segment sealed, then see `sealed` and claim a segment
    /// with a live extent; and a seal and a last release racing could each
    /// miss the other's store, so that neither claimed it.)
    live_extents: AtomicUsize,
    deleted: AtomicBool,
}

/// The bit of [`Segment::live_extents`] that marks the segment sealed.
const SEALED: usize = 1 << (usize::BITS - 1);

impl Segment {
    pub fn new(id: u64, path: PathBuf, file: Arc<dyn StorageFile>, size_bytes: u64) -> Segment {
        Segment {
            id,
            path,
            file,
            size_bytes,
            sync: GroupSync::new(),
            live_extents: AtomicUsize::new(0),
            deleted: AtomicBool::new(false),
        }
    }

    pub fn add_extent(&self) {
        let before = self.live_extents.fetch_add(1, Ordering::AcqRel);
        debug_assert!(before & SEALED == 0, "an extent added to a sealed segment");
    }

    /// Marks one extent consumed; true when the segment can now be deleted.
    #[must_use]
    pub fn release_extent(&self) -> bool {
        let before = self.live_extents.fetch_sub(1, Ordering::AcqRel);
        // A release past zero would wrap the count and let a segment that
        // still holds live extents be deleted: checked in every build.
        assert!(before & !SEALED != 0, "more extents released than added");
        before == SEALED | 1 && self.claim_deletion()
    }

    /// Stops allocation here; true when the segment can now be deleted.
    #[must_use]
    pub fn seal(&self) -> bool {
        let before = self.live_extents.fetch_or(SEALED, Ordering::AcqRel);
        before & !SEALED == 0 && self.claim_deletion()
    }

    fn claim_deletion(&self) -> bool {
        !self.deleted.swap(true, Ordering::AcqRel)
    }

    /// Syncs every write made so far (shared with concurrent callers).
    pub fn sync_all(&self) -> io::Result<()> {
        self.sync.sync_through(self.sync.current(), &*self.file)
    }
}

/// Exhaustive interleavings of the group commit and of a segment's extent
/// accounting (`make loom`; see `crate::sync`).
#[cfg(all(test, loom))]
pub(crate) mod loom_tests {
    use super::*;
    use crate::sync::AtomicU64;
    use loom::sync::Arc as LoomArc;
    use loom::thread;
    use std::time::Instant;

    /// Runs `f` under every interleaving loom explores (at most
    /// `preemptions` preemptions each, unless `LOOM_MAX_PREEMPTIONS` says
    /// otherwise), reports how many there were (also when one fails), and
    /// checks that every outcome of `coverage` was reached.
    pub(crate) fn explore(
        name: &str,
        preemptions: usize,
        coverage: &'static Coverage,
        f: impl Fn(&'static Coverage) + Sync + Send + 'static,
    ) {
        /// Prints the count when the exploration ends, by a panic too.
        struct Report<'a> {
            name: &'a str,
            runs: std::sync::Arc<std::sync::atomic::AtomicUsize>,
            started: Instant,
        }
        impl Drop for Report<'_> {
            fn drop(&mut self) {
                let runs = self.runs.load(std::sync::atomic::Ordering::Relaxed);
                let took = self.started.elapsed();
                let how = if std::thread::panicking() {
                    "failed in interleaving"
                } else {
                    "interleavings"
                };
                eprintln!("loom: {}: {runs} {how} ({took:.2?})", self.name);
            }
        }
        let report = Report {
            name,
            runs: Default::default(),
            started: Instant::now(),
        };
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = builder.preemption_bound.or(Some(preemptions));
        let counter = report.runs.clone();
        builder.check(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            f(coverage);
        });
        drop(report);
        coverage.check(name);
    }

    /// Outcomes a model must reach in at least one interleaving. Loom's
    /// partial-order reduction can skip interleavings (tokio-rs/loom#166),
    /// so each test also checks that the ones it is about were explored.
    pub(crate) struct Coverage {
        outcomes: &'static [&'static str],
        seen: std::sync::atomic::AtomicU64,
    }

    impl Coverage {
        pub(crate) const fn new(outcomes: &'static [&'static str]) -> Coverage {
            Coverage {
                outcomes,
                seen: std::sync::atomic::AtomicU64::new(0),
            }
        }

        pub(crate) fn saw(&self, outcome: &str) {
            let Some(i) = self.outcomes.iter().position(|o| *o == outcome) else {
                return; // not one this model must reach
            };
            self.seen
                .fetch_or(1 << i, std::sync::atomic::Ordering::Relaxed);
        }

        fn check(&self, name: &str) {
            let seen = self.seen.load(std::sync::atomic::Ordering::Relaxed);
            for (i, outcome) in self.outcomes.iter().enumerate() {
                assert!(
                    seen & 1 << i != 0,
                    "{name}: no interleaving where {outcome}"
                );
            }
        }
    }

    /// A file whose writes are numbered bits. A successful `sync` makes
    /// durable the writes completed before it started; once one fails, the
    /// later ones succeed without making anything durable (the lost pages
    /// are gone, as with a real fsync after an error).
    pub(crate) struct FakeFile {
        /// Bit `i`: write `i` has completed.
        written: AtomicU64,
        /// Bit `i`: a successful sync covered write `i`.
        durable: AtomicU64,
        /// Syncs in progress, and started so far.
        active: AtomicUsize,
        started: AtomicUsize,
        /// The sync (counted from 0) that fails, if any.
        pub(crate) fail_nth: Option<usize>,
        failed: AtomicBool,
    }

    impl FakeFile {
        pub(crate) fn new(fail_nth: Option<usize>) -> FakeFile {
            FakeFile {
                written: AtomicU64::new(0),
                durable: AtomicU64::new(0),
                active: AtomicUsize::new(0),
                started: AtomicUsize::new(0),
                fail_nth,
                failed: AtomicBool::new(false),
            }
        }

        /// Completes write `i`.
        pub(crate) fn write(&self, i: u32) {
            self.written.fetch_or(1 << i, Ordering::Release);
        }

        /// Whether a successful sync covered write `i`.
        pub(crate) fn is_durable(&self, i: u32) -> bool {
            self.durable.load(Ordering::Acquire) & 1 << i != 0
        }

        pub(crate) fn syncs(&self) -> usize {
            self.started.load(Ordering::Acquire)
        }
    }

    impl StorageFile for FakeFile {
        fn len(&self) -> io::Result<u64> {
            unimplemented!("only sync is modelled")
        }
        fn read_exact_at(&self, _: &mut [u8], _: u64) -> io::Result<()> {
            unimplemented!("only sync is modelled")
        }
        fn write_all_at(&self, _: &[u8], _: u64) -> io::Result<()> {
            unimplemented!("only sync is modelled")
        }
        fn reserve(&self, _: u64, _: u64) -> io::Result<()> {
            unimplemented!("only sync is modelled")
        }
        fn sync(&self) -> io::Result<()> {
            assert_eq!(
                self.active.fetch_add(1, Ordering::AcqRel),
                0,
                "two syncs at once"
            );
            let nth = self.started.fetch_add(1, Ordering::AcqRel);
            let covered = self.written.load(Ordering::Acquire);
            let result = if self.fail_nth == Some(nth) {
                self.failed.store(true, Ordering::Release);
                Err(io::Error::from_raw_os_error(libc::EIO))
            } else {
                if !self.failed.load(Ordering::Acquire) {
                    self.durable.fetch_or(covered, Ordering::Release);
                }
                Ok(())
            };
            self.active.fetch_sub(1, Ordering::AcqRel);
            result
        }
    }

    fn segment() -> Segment {
        let file: Arc<dyn StorageFile> = Arc::new(FakeFile::new(None));
        Segment::new(1, PathBuf::from("seg"), file, 1 << 20)
    }

    /// A claim is the only one, and comes once the segment is sealed and
    /// holds no live extent.
    fn claimed(seg: &Segment, claims: &AtomicUsize) {
        let state = seg.live_extents.load(Ordering::Acquire);
        assert!(state & SEALED != 0, "claimed before sealed");
        assert_eq!(state & !SEALED, 0, "claimed while an extent is live");
        assert_eq!(claims.fetch_add(1, Ordering::AcqRel), 0, "claimed twice");
    }

    /// `extents` extents added, released by one thread each while the
    /// allocator seals the segment; with `late`, the allocator adds the
    /// last extent only after the first one's release has started.
    fn release_and_seal(extents: usize, late: bool, cov: &'static Coverage) {
        let seg = LoomArc::new(segment());
        let claims = LoomArc::new(AtomicUsize::new(0));
        let release = |seg: &LoomArc<Segment>| {
            let (seg, claims) = (seg.clone(), claims.clone());
            thread::spawn(move || {
                if seg.release_extent() {
                    claimed(&seg, &claims);
                    cov.saw("a release claims the segment");
                }
            })
        };
        let mut releasers = Vec::new();
        let early = if late { extents - 1 } else { extents };
        for _ in 0..early {
            seg.add_extent();
        }
        for _ in 0..early {
            releasers.push(release(&seg));
        }
        if late {
            seg.add_extent();
            releasers.push(release(&seg));
        }
        if seg.seal() {
            claimed(&seg, &claims);
            cov.saw("the seal claims the segment");
        }
        for r in releasers {
            r.join().unwrap();
        }
        assert_eq!(
            claims.load(Ordering::Acquire),
            1,
            "the segment was never claimed"
        );
    }

    #[test]
    fn loom_segment_claimed_once_when_sealed_and_empty() {
        const BOTH: &[&str] = &[
            "a release claims the segment",
            "the seal claims the segment",
        ];
        static TWO: Coverage = Coverage::new(BOTH);
        explore("segment, 2 releases racing the seal", 3, &TWO, |cov| {
            release_and_seal(2, false, cov)
        });
        static LATE: Coverage = Coverage::new(&["a release claims the segment"]);
        explore(
            "segment, a release, a late extent, the seal",
            3,
            &LATE,
            |cov| release_and_seal(2, true, cov),
        );
        static ONE: Coverage = Coverage::new(BOTH);
        explore("segment, 1 release racing the seal", 3, &ONE, |cov| {
            release_and_seal(1, false, cov)
        });
    }
}
