//! The damage suite (issue 15): closed logs are damaged in every way a disk
//! or a careless hand can, then opened. For every image, on both backends:
//!
//! - the open succeeds (a damaged file never blocks the instance);
//! - every acknowledged entry of every topic is either read back, in order
//!   and intact, or its loss is named in the recovery report (a `Dropped`
//!   of its topic, or one whose topic the damage hid);
//! - a read may fail with `Corruption` where a checkpoint vouched for the
//!   damaged bytes; then the next open names the loss in its report and
//!   reads go on from there without error;
//! - consumed entries come back only where the report names cursor damage;
//! - nothing panics, nothing hangs (a watchdog aborts after 120 s).
//!
//! Damage classes: truncation of a segment at every frame boundary and at
//! random offsets, byte flips, zeroed 4 KiB blocks, and garbage in (and
//! truncation of) the cursor snapshot, the cursor log and the recovery
//! checkpoint. Two base logs are damaged: one closed cleanly (a checkpoint
//! vouches for its extents) and one that crashed after a sync (no
//! checkpoint, the cursor log not folded). Three topics, 8 KiB extents and
//! 32 KiB segments, so images cover extent and segment rollover.
//!
//! The suite runs on the test's temporary directory, and, when run as root
//! where mounts are allowed, again on a 64 MiB tmpfs and a 64 MiB
//! loop-mounted ext4; otherwise it says in one line why it skipped those.

use crate::scratch_fs;

use crate::common::payload;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use walrus_wal::{Backend, Error, FsyncSchedule, ReadConsistency, RecoveryReport, Walrus};

const TOPICS: [&str; 3] = ["alpha", "b", "topic-c"];

fn builder(root: &Path, backend: Backend) -> walrus_wal::WalrusBuilder {
    Walrus::builder()
        .data_dir(root)
        .backend(backend)
        .quiet(true)
        .segment_bytes(32 << 10)
        .extent_bytes(8 << 10)
        .fsync(FsyncSchedule::NoFsync)
        .consistency(ReadConsistency::StrictlyAtOnce)
}

/// What a base log holds: per topic, entries appended and consumed.
#[derive(Clone, Debug)]
struct Base {
    dir: PathBuf,
    appended: HashMap<&'static str, u64>,
    consumed: HashMap<&'static str, u64>,
}

fn append_some(wal: &Walrus, appended: &mut HashMap<&'static str, u64>, n: u64) {
    for k in 0..n {
        for t in TOPICS {
            let next = appended.entry(t).or_insert(0);
            if k % 9 == 4 {
                let batch: Vec<Vec<u8>> = (0..3).map(|j| payload(t, *next + j)).collect();
                let refs: Vec<&[u8]> = batch.iter().map(|p| p.as_slice()).collect();
                wal.batch_append_for_topic(t, &refs).unwrap();
                *next += 3;
            } else {
                wal.append_for_topic(t, &payload(t, *next)).unwrap();
                *next += 1;
            }
        }
    }
}

fn consume_some(wal: &Walrus, consumed: &mut HashMap<&'static str, u64>, n: u64) {
    for t in TOPICS {
        for _ in 0..n {
            let e = wal.read_next(t, true).unwrap().unwrap();
            let c = consumed.entry(t).or_insert(0);
            assert_eq!(e.seq, *c);
            *c += 1;
        }
    }
}

fn make_base(root: &Path, backend: Backend, crash: bool) -> Base {
    let mut appended = HashMap::new();
    let mut consumed = HashMap::new();
    {
        let wal = builder(root, backend).open().unwrap();
        append_some(&wal, &mut appended, 50);
        consume_some(&wal, &mut consumed, 15);
    }
    let wal = builder(root, backend).open().unwrap();
    append_some(&wal, &mut appended, 50);
    consume_some(&wal, &mut consumed, 15);
    if crash {
        wal.sync().unwrap();
        wal.simulate_crash();
    } else {
        drop(wal);
    }
    Base {
        dir: root.join("default"),
        appended,
        consumed,
    }
}

/// One way to damage a copy of a base log.
#[derive(Clone, Debug)]
enum Damage {
    Truncate {
        file: String,
        len: u64,
    },
    Flip {
        file: String,
        at: u64,
        mask: u8,
    },
    ZeroBlock {
        file: String,
        at: u64,
    },
    Garbage {
        file: String,
        at: u64,
        bytes: Vec<u8>,
    },
}

impl Damage {
    fn class(&self) -> &'static str {
        match self {
            Damage::Truncate { file, .. } if file.starts_with("seg-") => "segment truncation",
            Damage::Truncate { .. } => "cursor/checkpoint truncation",
            Damage::Flip { .. } => "byte flip",
            Damage::ZeroBlock { .. } => "zeroed 4 KiB block",
            Damage::Garbage { file, .. } if file == "cursors.snap" => "cursor snapshot garbage",
            Damage::Garbage { file, .. } if file == "recovery.ckpt" => "checkpoint garbage",
            Damage::Garbage { .. } => "cursor log garbage",
        }
    }

    fn apply(&self, dir: &Path) {
        use std::os::unix::fs::FileExt;
        let open = |f: &str| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join(f))
                .unwrap()
        };
        match self {
            Damage::Truncate { file, len } => open(file).set_len(*len).unwrap(),
            Damage::Flip { file, at, mask } => {
                let mut b = [0u8];
                std::fs::File::open(dir.join(file))
                    .unwrap()
                    .read_exact_at(&mut b, *at)
                    .unwrap();
                open(file).write_all_at(&[b[0] ^ mask], *at).unwrap();
            }
            Damage::ZeroBlock { file, at } => open(file).write_all_at(&[0; 4096], *at).unwrap(),
            Damage::Garbage { file, at, bytes } => open(file).write_all_at(bytes, *at).unwrap(),
        }
    }
}

/// Frame and extent boundaries of a segment file (its written part).
fn boundaries(seg: &[u8]) -> Vec<u64> {
    extents_and_frames(seg).0
}

/// Where a segment file's extents start.
fn extent_starts(seg: &[u8]) -> Vec<u64> {
    extents_and_frames(seg).1
}

fn extents_and_frames(seg: &[u8]) -> (Vec<u64>, Vec<u64>) {
    let mut starts = Vec::new();
    let u16_at = |at: usize| u16::from_le_bytes([seg[at], seg[at + 1]]) as u64;
    let u32_at = |at: usize| u32::from_le_bytes(seg[at..at + 4].try_into().unwrap()) as u64;
    let u64_at = |at: usize| u64::from_le_bytes(seg[at..at + 8].try_into().unwrap());
    let mut out = Vec::new();
    let mut off = 4096u64;
    while off + 4096 <= seg.len() as u64 && &seg[off as usize..off as usize + 4] == b"WBLK" {
        let extent_len = u64_at(off as usize + 8);
        let end = off + extent_len;
        out.push(off);
        starts.push(off);
        let mut f = off + (40 + u16_at(off as usize + 4)).div_ceil(8) * 8;
        while f + 24 <= end.min(seg.len() as u64) {
            let len = u32_at(f as usize + 8);
            if len == 0 {
                break;
            }
            f += len.div_ceil(8) * 8;
            out.push(f);
        }
        if extent_len == 0 {
            break;
        }
        off = end;
    }
    (out, starts)
}

/// Where a segment's written bytes end (its last non-zero byte, rounded up).
fn written_len(seg: &[u8]) -> u64 {
    seg.iter()
        .rposition(|&b| b != 0)
        .map_or(0, |i| i as u64 + 1)
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_str().unwrap().to_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    v.sort();
    v
}

/// Every damaged image of one base log: about 500 for the default scale.
fn images(base: &Base, seed: u64, scale: u64) -> Vec<Damage> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::new();
    let all = files(&base.dir);
    let segs: Vec<_> = all.iter().filter(|(n, _)| n.starts_with("seg-")).collect();
    for (name, bytes) in &segs {
        for len in boundaries(bytes) {
            out.push(Damage::Truncate {
                file: name.clone(),
                len,
            });
        }
    }
    for _ in 0..20 * scale {
        let (name, bytes) = segs[rng.below(segs.len() as u64) as usize];
        let len = rng.below(written_len(bytes) + 1);
        out.push(Damage::Truncate {
            file: name.clone(),
            len,
        });
    }
    for _ in 0..60 * scale {
        let (name, bytes) = segs[rng.below(segs.len() as u64) as usize];
        // Mostly in the written part; sometimes in the zeros past it.
        let span = if rng.below(8) == 0 {
            bytes.len() as u64
        } else {
            written_len(bytes).max(1)
        };
        out.push(Damage::Flip {
            file: name.clone(),
            at: rng.below(span),
            mask: 1 << rng.below(8),
        });
    }
    for _ in 0..20 * scale {
        let (name, bytes) = segs[rng.below(segs.len() as u64) as usize];
        let blocks = written_len(bytes).div_ceil(4096).max(1);
        out.push(Damage::ZeroBlock {
            file: name.clone(),
            at: rng.below(blocks) * 4096,
        });
    }
    for (name, bytes) in &all {
        if name.starts_with("seg-") {
            continue;
        }
        let span = written_len(bytes).max(1);
        for _ in 0..10 * scale {
            let at = rng.below(span);
            let n = 1 + rng.below(48);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            out.push(Damage::Garbage {
                file: name.clone(),
                at,
                bytes,
            });
        }
        for _ in 0..2 * scale {
            out.push(Damage::Truncate {
                file: name.clone(),
                len: rng.below(span),
            });
        }
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// Names the loss of `topic`'s entries.
fn names(report: &RecoveryReport, topic: &str, blind: bool) -> bool {
    blind
        || report
            .dropped
            .iter()
            .any(|d| d.topic.is_none() || d.topic.as_deref() == Some(topic))
}

/// Reads `topic` to its end; returns the sequence numbers read and whether
/// the reading ended in a `Corruption` error. Panics on a wrong entry.
fn read_topic(wal: &Walrus, topic: &str, what: &str) -> (Vec<u64>, bool) {
    let mut seqs = Vec::new();
    loop {
        match wal.batch_read_for_topic(topic, 4096, true) {
            Ok(batch) if batch.is_empty() => return (seqs, false),
            Ok(batch) => {
                for e in batch {
                    assert_eq!(
                        e.data.as_ref(),
                        payload(topic, e.seq).as_slice(),
                        "{what}: {topic} entry {} altered",
                        e.seq
                    );
                    if let Some(&last) = seqs.last() {
                        assert_eq!(e.seq, last + 1, "{what}: {topic} out of order");
                    }
                    seqs.push(e.seq);
                }
            }
            Err(Error::Corruption { .. }) => return (seqs, true),
            Err(e) => panic!("{what}: {topic}: read error {e}"),
        }
    }
}

/// Opens a damaged image and checks it against what was acknowledged.
/// `blind`: the damage may go unnoticed (see `blind_spot`).
fn check_image(root: &Path, backend: Backend, base: &Base, what: &str, blind: bool) {
    let open = || {
        builder(root, backend)
            .open()
            .unwrap_or_else(|e| panic!("{what}: open refused: {e}"))
    };
    let wal = open();
    let report = wal.recovery_report().clone();
    let mut failed = Vec::new();
    let mut resume = HashMap::new();
    for t in TOPICS {
        let (seqs, corrupt) = read_topic(&wal, t, what);
        let (appended, consumed) = (base.appended[t], base.consumed[t]);
        let first = seqs.first().copied();
        if first.is_some_and(|s| s < consumed) {
            assert!(
                !report.cursor_damage.is_empty(),
                "{what}: {t}: consumed entries from {} redelivered, no cursor damage reported",
                first.unwrap_or_default()
            );
        }
        if first.is_some_and(|s| s > consumed) || (first.is_none() && !corrupt) {
            let end = seqs.last().map_or(first.unwrap_or(consumed), |&s| s + 1);
            if end < appended || first.is_some_and(|s| s > consumed) {
                assert!(
                    names(&report, t, blind),
                    "{what}: {t}: entries {consumed}..{appended} partly missing \
                     (read {first:?}..{end}), not in the report: {report:?}"
                );
            }
        }
        let end = seqs.last().map_or(0, |&s| s + 1);
        if corrupt {
            failed.push(t);
            resume.insert(t, end);
        } else if !seqs.is_empty() && end < appended {
            assert!(
                names(&report, t, blind),
                "{what}: {t}: read ended at {end} of {appended} acknowledged, not in the \
                 report: {report:?}"
            );
        }
    }
    drop(wal);
    if failed.is_empty() {
        return;
    }
    // The read found damage a checkpoint vouched for: the next open must
    // name it and read on without error.
    let wal = open();
    let report = wal.recovery_report().clone();
    for t in failed {
        assert!(
            names(&report, t, blind),
            "{what}: {t}: a read failed at entry {}, and the reopen's report is silent: \
             {report:?}",
            resume[t]
        );
        let (_, corrupt) = read_topic(&wal, t, what);
        assert!(!corrupt, "{what}: {t}: the read error did not clear");
    }
}

/// The one damage the engine cannot see (docs/reliability.md): with no
/// checkpoint, a zeroed block holding the header of a topic's newest extent
/// (the last in its segment) and all of its written frames leaves nothing
/// on disk that says the extent existed. Such images may lose entries
/// without a report; everything else is still checked.
fn blind_spot(d: &Damage, crash: bool, dir: &Path) -> bool {
    match d {
        Damage::ZeroBlock { file, at } if crash => {
            let seg = std::fs::read(dir.join(file)).unwrap();
            let starts = extent_starts(&seg);
            starts.last() == Some(at) && written_len(&seg) <= at + 4096
        }
        _ => false,
    }
}

static CURRENT: AtomicU64 = AtomicU64::new(0);

/// Runs every image of both base logs on `root`; returns image counts per
/// damage class.
fn run_suite(root: &Path, backend: Backend, label: &str) -> HashMap<&'static str, u64> {
    let scale = std::env::var("DAMAGE_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut counts = HashMap::new();
    let mut blind_images = 0;
    for (variant, crash) in [("clean close", false), ("crash", true)] {
        let base_root = root.join(format!("base-{backend}-{crash}"));
        let base = make_base(&base_root, backend, crash);
        let damages = images(
            &base,
            0x9e37_79b9 ^ crash as u64 ^ (backend as u64) << 8,
            scale,
        );
        for (i, d) in damages.iter().enumerate() {
            let what = format!("{label} {backend} {variant} image {i}: {d:?}");
            let img = root.join(format!("img-{backend}-{crash}-{i}"));
            let dir = img.join("default");
            copy_dir(&base.dir, &dir);
            d.apply(&dir);
            CURRENT.fetch_add(1, Ordering::Relaxed);
            let blind = blind_spot(d, crash, &base.dir);
            let outcome =
                std::panic::catch_unwind(|| check_image(&img, backend, &base, &what, blind));
            if let Err(e) = outcome {
                eprintln!("damage suite failed at: {what}");
                std::panic::resume_unwind(e);
            }
            *counts.entry(d.class()).or_insert(0) += 1;
            if blind {
                blind_images += 1;
            }
            std::fs::remove_dir_all(&img).unwrap();
        }
        std::fs::remove_dir_all(&base_root).unwrap();
    }
    println!("{label} {backend}: {blind_images} zeroed-block images in the blind spot");
    counts
}

fn report_counts(label: &str, backend: Backend, counts: &HashMap<&str, u64>, took: Duration) {
    let mut v: Vec<_> = counts.iter().collect();
    v.sort();
    let total: u64 = counts.values().sum();
    println!("{label} {backend}: {total} images in {took:.1?}: {v:?}");
}

fn watchdog() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        std::thread::spawn(|| {
            let mut last = (0, Instant::now());
            loop {
                std::thread::sleep(Duration::from_secs(1));
                let now = CURRENT.load(Ordering::Relaxed);
                if now != last.0 {
                    last = (now, Instant::now());
                } else if last.1.elapsed() > Duration::from_secs(120) {
                    eprintln!("damage suite: image {now} hung for 120 s");
                    std::process::abort();
                }
            }
        });
    });
}

fn suite_on(label: &str, root: &Path) {
    watchdog();
    for backend in [Backend::Fd, Backend::Mmap] {
        let start = Instant::now();
        let counts = run_suite(root, backend, label);
        report_counts(label, backend, &counts, start.elapsed());
        let total: u64 = counts.values().sum();
        assert!(total >= 200, "{label} {backend}: only {total} images");
    }
}

#[test]
fn damaged_images_on_the_default_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    suite_on("tempdir", dir.path());
}

#[test]
fn damaged_images_on_a_small_tmpfs() {
    match scratch_fs::tmpfs(64) {
        Ok(m) => suite_on("tmpfs", &m.path),
        Err(e) => println!("damage suite on tmpfs skipped: {e}"),
    }
}

#[test]
fn damaged_images_on_a_loop_mounted_ext4() {
    match scratch_fs::loop_ext4(64) {
        Ok(m) => suite_on("ext4 (loop)", &m.path),
        Err(e) => println!("damage suite on loop ext4 skipped: {e}"),
    }
}
