//! Concurrent crash model: appenders, consumers and a `sync()` loop run at
//! once on one `Walrus` over the simulated storage, while a storage hook takes
//! crash images at arbitrary storage operations: power losses (unsynced
//! writes lost, a random subset kept, the last one torn) and process crashes.
//! After the threads stop, every image is recovered and checked against what
//! the threads had been told before it was taken:
//!
//! - nothing acknowledged is lost: a process crash keeps every acknowledged
//!   append; a power loss keeps every append acknowledged under `SyncEach`,
//!   and under every schedule each append acknowledged before a `sync()` call
//!   that returned before the image;
//! - each topic holds a prefix of what was appended, byte for byte, in order,
//!   with no batch cut;
//! - the cursor keeps its promise: it never passes an entry that no consuming
//!   read had returned (nothing skipped); `StrictlyAtOnce` never returns again
//!   what a completed consuming read returned; `AtLeastOnce { n }` returns
//!   fewer than n entries again;
//! - under `SyncEach` a reader (peek or consume) only ever saw entries that a
//!   power loss cannot take;
//! - no topic is wedged: a read from the cursor returns exactly
//!   `next_to_append - next_to_read` entries, and a fresh append reads back;
//! - recovering with and without `recovery.ckpt` gives the same topics.
//!
//! Soundness: a thread logs an acknowledgement only after the engine call
//! returned, and logs a read as started before calling it. The hook runs
//! under the storage's lock, before the operation it interrupts, and records
//! the log's length there. So everything logged before that length happened
//! before the image, and a read not logged as started had not touched the
//! storage yet. Entries acknowledged but not logged yet are simply not
//! required.
//!
//! Each run takes one to three active segments (lanes), so some topics
//! share a segment file and others do not, and the recovery opens the image
//! with the default count.
//!
//! The simulated storage stands in for both production backends (fd and
//! mmap): they differ only below the `Storage` seam, in how bytes reach the
//! disk, so one model covers both; the process-kill suite runs the real ones.
//!
//! `CRASH_IMAGES` (default 10,800) sets how many crash images are checked in
//! all, split evenly over the six consistency × fsync modes; `make crash-soak`
//! raises it. Each mode prints a summary line (images, storage operations,
//! acknowledgements) to stderr. Thread scheduling decides the interleavings,
//! so a run cannot be replayed from its seed: a failure prints the mode, the
//! run, the image, the storage operation it was taken before, the topic, and
//! what was expected, and the regressions at the end pin down what it found.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use walrus_wal::testing::{Crash, FaultKind, SimStorage, Storage};
use walrus_wal::{Entry, FsyncSchedule, ReadConsistency, TopicInfo, Walrus, WalrusBuilder};

const TOPICS: [&str; 3] = ["a", "b/shared", "c"];
/// Entry lengths of the appends larger than a segment.
const LARGE_ENTRY_LEN: Range<usize> = 20_000..60_000;
const CHECKPOINT: &str = "/sim/default/recovery.ckpt";
const DEFAULT_IMAGES: usize = 10_800;
const MODES: usize = 6;
/// Images one run captures at most: each keeps the bytes of every file it
/// holds alive until the run is checked.
const IMAGES_PER_RUN: usize = 150;
/// Failing images printed in full per mode and check (the first ones); the
/// rest are only counted.
const PRINTED: usize = 3;

/// Tiny geometry: a segment holds one 8 KiB extent, so every extent is a new
/// segment file, and a running checkpoint follows nearly every sync round.
fn builder(sim: &SimStorage, consistency: ReadConsistency, fsync: FsyncSchedule) -> WalrusBuilder {
    Walrus::builder()
        .data_dir(Path::new("/sim"))
        .storage(Arc::new(sim.clone()))
        .quiet(true)
        .segment_bytes(16 * 1024)
        .extent_bytes(8 * 1024)
        .recovery_snapshot_every_bytes(8 * 1024)
        .consistency(consistency)
        .fsync(fsync)
}

/// Reopens an image. NoFsync: the checks only read, and append one probe.
fn recover(image: &SimStorage, consistency: ReadConsistency) -> walrus_wal::Result<Walrus> {
    builder(image, consistency, FsyncSchedule::NoFsync).open()
}

// --- entries --------------------------------------------------------------

/// Names an appended entry; its payload follows from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Id {
    topic: u8,
    thread: u8,
    n: u32,
    len: u16,
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}|{}|{}",
            TOPICS[self.topic as usize], self.thread, self.n
        )
    }
}

/// Self-describing: "topic|thread|n|" and then bytes derived from the id.
fn payload(id: Id) -> Vec<u8> {
    let mut p = format!("{id}|").into_bytes();
    let len = (id.len as usize).max(p.len());
    let salt = id.n.wrapping_mul(7) ^ u32::from(id.thread);
    p.extend((p.len()..len).map(|i| (i as u32).wrapping_mul(131).wrapping_add(salt) as u8));
    p
}

/// The id whose payload `data` is exactly, if any.
fn identify(data: &[u8]) -> Option<Id> {
    let mut parts = data.splitn(4, |&b| b == b'|');
    let mut field = || std::str::from_utf8(parts.next()?).ok();
    let name = field()?;
    let topic = TOPICS.iter().position(|&t| t == name)?;
    let id = Id {
        topic: topic as u8,
        thread: field()?.parse().ok()?,
        n: field()?.parse().ok()?,
        len: u16::try_from(data.len()).ok()?,
    };
    (payload(id) == data).then_some(id)
}

fn describe(data: &[u8]) -> String {
    match identify(data) {
        Some(id) => format!("entry {id}"),
        None => format!("{} bytes that no append wrote", data.len()),
    }
}

// --- the log of what the threads were told ----------------------------------

enum Event {
    /// An append or batch returned Ok; its entries, in order.
    Acked {
        topic: usize,
        ids: Vec<Id>,
    },
    SyncStarted,
    SyncDone,
    /// Logged before the read is called.
    ReadStarted {
        read: usize,
    },
    ReadDone {
        read: usize,
        topic: usize,
        consume: bool,
        got: Vec<(u64, Id)>,
    },
}

#[derive(Default)]
struct Log(Mutex<Vec<Event>>);

impl Log {
    fn push(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// xorshift64: the workload's choices.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn within(&mut self, r: &Range<usize>) -> usize {
        r.start + self.below(r.end - r.start)
    }
}

// --- the workload -----------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    LoseUnsynced,
    KeepRandom,
    TearLast,
    Process,
}

impl Kind {
    const ALL: [Kind; 4] = [
        Kind::LoseUnsynced,
        Kind::KeepRandom,
        Kind::TearLast,
        Kind::Process,
    ];

    fn crash(self, seed: u64) -> Crash {
        match self {
            Kind::LoseUnsynced => Crash::LoseUnsynced,
            Kind::KeepRandom => Crash::KeepRandom { seed },
            Kind::TearLast => Crash::TearLast { seed },
            Kind::Process => Crash::Process,
        }
    }
}

/// Where the hook takes images.
#[derive(Clone, Copy)]
enum Capture {
    /// Every `n`-th operation on average (randomly spaced), rotating through
    /// the crash kinds.
    Stride(u64),
    /// A process crash right after each rename (a checkpoint or cursor
    /// snapshot just put in place).
    AfterRename,
}

struct Workload {
    consistency: ReadConsistency,
    fsync: FsyncSchedule,
    /// The topics (indices into `TOPICS`) each appender thread writes.
    appenders: Vec<Vec<usize>>,
    /// The topics each consumer thread reads.
    consumers: Vec<Vec<usize>>,
    /// Whether a thread calls `sync()` in a loop, pausing up to this long
    /// between calls (so that unsynced data sometimes piles up).
    sync_loop: Option<Duration>,
    /// Whether some storage syncs and writes wait before they run, letting
    /// other threads overtake them (see `perturb`).
    delays: bool,
    /// Appends (single or batch) per appender thread, at most.
    appends: usize,
    /// How long the appenders run, at most.
    duration: Duration,
    /// An appender pauses up to this long after each append, so that the
    /// consumers keep up: the log stays short, and every image cheap to check.
    pace: Duration,
    entry_len: Range<usize>,
}

impl Workload {
    /// Two appenders sharing topic b, two consumers sharing it too, and a
    /// `sync()` loop.
    fn model(consistency: ReadConsistency, fsync: FsyncSchedule) -> Workload {
        Workload {
            consistency,
            fsync,
            appenders: vec![vec![0, 1], vec![1, 2]],
            consumers: vec![vec![0, 1], vec![1, 2]],
            sync_loop: Some(Duration::from_millis(2)),
            delays: true,
            appends: 120,
            duration: Duration::from_secs(10),
            pace: Duration::from_micros(400),
            entry_len: 50..1500,
        }
    }

    fn label(&self) -> String {
        format!("{:?} × {}", self.consistency, self.fsync)
    }
}

/// A crash image and what the threads had been told when it was taken.
struct Image {
    op: u64,
    /// The operation the image was taken before; `None` at the run's end.
    kind: Option<FaultKind>,
    how: Crash,
    log_len: usize,
    storage: SimStorage,
}

/// The hook's state: decides where to take images and records them.
struct Capturer {
    capture: Capture,
    log: Arc<Log>,
    images: Arc<Mutex<Vec<Image>>>,
    max: usize,
    rng: Rng,
    next: u64,
    after_rename: bool,
}

impl Capturer {
    fn at(&mut self, op: u64, kind: FaultKind, crash: impl FnOnce(Crash) -> SimStorage) {
        let due = match self.capture {
            Capture::Stride(n) => {
                let due = op >= self.next;
                if due {
                    self.next = op + 1 + self.rng.next() % (2 * n);
                }
                due
            }
            Capture::AfterRename => {
                std::mem::replace(&mut self.after_rename, kind == FaultKind::Rename)
            }
        };
        let mut images = self.images.lock().unwrap();
        if !due || images.len() >= self.max {
            return;
        }
        let how = match self.capture {
            Capture::Stride(_) => Kind::ALL[images.len() % Kind::ALL.len()].crash(self.rng.next()),
            Capture::AfterRename => Crash::Process,
        };
        // The length first: whatever it covers happened before this
        // operation, hence before the image.
        let log_len = self.log.len();
        images.push(Image {
            op,
            kind: Some(kind),
            how,
            log_len,
            storage: crash(how),
        });
    }
}

/// What one run leaves to check.
struct Run {
    log: Vec<Event>,
    images: Vec<Image>,
    /// The live instance's final contents, or why they contradict the log.
    truth: Result<Truth, String>,
    ops: u64,
}

fn run_workload(w: &Workload, seed: u64, capture: Capture, max_images: usize) -> Run {
    let sim = SimStorage::new();
    // One to three active segments, so topics share a segment file or not,
    // and each recovery (at the default count) opens another lane count.
    let wal = builder(&sim, w.consistency, w.fsync)
        .active_segments(1 + (seed % 3) as usize)
        .open()
        .expect("open a fresh instance");
    let log = Arc::new(Log::default());
    let images = Arc::new(Mutex::new(Vec::new()));
    let mut capturer = Capturer {
        capture,
        log: log.clone(),
        images: images.clone(),
        max: max_images,
        rng: Rng::new(seed ^ 0xC0FFEE),
        next: 0,
        after_rename: false,
    };
    sim.set_op_hook(move |at| capturer.at(at.op, at.kind, |how| at.crash(how)));
    if w.delays {
        perturb(&sim, seed);
    }
    let stop = AtomicBool::new(false);
    let reads = AtomicUsize::new(0);
    let deadline = Instant::now() + w.duration;
    thread::scope(|s| {
        let mut others = Vec::new();
        for (i, topics) in w.consumers.iter().enumerate() {
            let (wal, log, reads, stop) = (&wal, &*log, &reads, &stop);
            let seed = seed ^ (100 + i as u64);
            others.push(s.spawn(move || consume_loop(wal, log, reads, topics, seed, stop)));
        }
        if let Some(pause) = w.sync_loop {
            let (wal, log, stop) = (&wal, &*log, &stop);
            others.push(s.spawn(move || sync_loop(wal, log, pause, seed ^ 99, stop)));
        }
        let appenders: Vec<_> = w
            .appenders
            .iter()
            .enumerate()
            .map(|(i, topics)| {
                let (wal, log) = (&wal, &*log);
                let seed = seed ^ i as u64;
                s.spawn(move || append_loop(wal, log, i as u8, topics, w, seed, deadline))
            })
            .collect();
        let mut outcomes: Vec<_> = appenders.into_iter().map(|h| h.join()).collect();
        stop.store(true, Ordering::Release);
        outcomes.extend(others.into_iter().map(|h| h.join()));
        for outcome in outcomes {
            if let Err(panic) = outcome {
                std::panic::resume_unwind(panic);
            }
        }
    });
    sim.clear_op_hook();
    sim.clear_before_op();
    let ops = sim.ops();
    let log = std::mem::take(&mut *log.0.lock().unwrap());
    let mut images = std::mem::take(&mut *images.lock().unwrap());
    // The run's end is an image too: a process crash with everything logged.
    images.push(Image {
        op: ops,
        kind: None,
        how: Crash::Process,
        log_len: log.len(),
        storage: sim.crash(Crash::Process),
    });
    let truth = Truth::build(&wal, &log);
    wal.simulate_crash();
    Run {
        log,
        images,
        truth,
        ops,
    }
}

/// Pauses one storage sync in four and one write in sixteen before it runs:
/// other appenders and readers then run between an append's write and its
/// fsync, or between the writes of an extent switch.
fn perturb(sim: &SimStorage, seed: u64) {
    let rng = Mutex::new(Rng::new(seed ^ 0xDE1A));
    sim.set_before_op(move |kind, _| {
        let r = rng.lock().unwrap().next();
        let micros = match kind {
            FaultKind::Sync if r.is_multiple_of(4) => 300,
            FaultKind::Write if r.is_multiple_of(16) => 100,
            _ => return,
        };
        thread::sleep(Duration::from_micros(micros));
    });
}

fn append_loop(
    wal: &Walrus,
    log: &Log,
    thread: u8,
    topics: &[usize],
    w: &Workload,
    seed: u64,
    deadline: Instant,
) {
    let mut rng = Rng::new(seed);
    let mut n = 0;
    for _ in 0..w.appends {
        if Instant::now() > deadline {
            break;
        }
        let topic = topics[rng.below(topics.len())];
        let batch = rng.below(3) == 0;
        let count = if batch { 1 + rng.below(5) } else { 1 };
        // One append in twelve is larger than a whole segment (an entry of
        // up to 60 KiB, or a batch of up to 300 KiB, against 16 KiB
        // segments): its frame gets a segment of its own, so images also
        // fall in the middle of writing one.
        let len = if rng.below(12) == 0 {
            LARGE_ENTRY_LEN
        } else {
            w.entry_len.clone()
        };
        let ids: Vec<Id> = (0..count)
            .map(|_| {
                n += 1;
                Id {
                    topic: topic as u8,
                    thread,
                    n,
                    len: rng.within(&len) as u16,
                }
            })
            .collect();
        let payloads: Vec<Vec<u8>> = ids.iter().map(|&id| payload(id)).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let result = if batch {
            wal.batch_append_for_topic(TOPICS[topic], &refs)
        } else {
            wal.append_for_topic(TOPICS[topic], refs[0])
        };
        if let Err(e) = result {
            panic!("live append of {} failed: {e}", ids[0]);
        }
        log.push(Event::Acked { topic, ids });
        let pause = rng.next() % (w.pace.as_micros() as u64 + 1);
        if pause > 0 {
            thread::sleep(Duration::from_micros(pause));
        }
    }
}

fn consume_loop(
    wal: &Walrus,
    log: &Log,
    reads: &AtomicUsize,
    topics: &[usize],
    seed: u64,
    stop: &AtomicBool,
) {
    let mut rng = Rng::new(seed);
    while !stop.load(Ordering::Acquire) {
        let topic = topics[rng.below(topics.len())];
        let name = TOPICS[topic];
        // Consuming reads dominate, so that consumed segments are reclaimed.
        let (consume, batch) = match rng.below(10) {
            0..=3 => (true, false),
            4..=6 => (true, true),
            7 | 8 => (false, false),
            _ => (false, true),
        };
        let read = reads.fetch_add(1, Ordering::Relaxed);
        log.push(Event::ReadStarted { read });
        let got: Vec<Entry> = if batch {
            wal.batch_read_for_topic(name, 1 + rng.below(16_000), consume)
        } else {
            wal.read_next(name, consume)
                .map(|e| e.into_iter().collect())
        }
        .unwrap_or_else(|e| panic!("live read of {name} failed: {e}"));
        let got: Vec<(u64, Id)> = got
            .iter()
            .map(|e| match identify(&e.data) {
                Some(id) if id.topic as usize == topic => (e.seq, id),
                _ => panic!("live read of {name} entry {}: {}", e.seq, describe(&e.data)),
            })
            .collect();
        let idle = got.is_empty();
        log.push(Event::ReadDone {
            read,
            topic,
            consume,
            got,
        });
        if idle {
            thread::sleep(Duration::from_micros(100));
        }
    }
}

fn sync_loop(wal: &Walrus, log: &Log, pause: Duration, seed: u64, stop: &AtomicBool) {
    let mut rng = Rng::new(seed);
    while !stop.load(Ordering::Acquire) {
        log.push(Event::SyncStarted);
        if let Err(e) = wal.sync() {
            panic!("live sync() failed: {e}");
        }
        log.push(Event::SyncDone);
        let micros = rng.next() % (pause.as_micros() as u64 + 1);
        thread::sleep(Duration::from_micros(micros.max(50)));
    }
}

// --- what the live instance ended up holding --------------------------------

/// Every entry of every topic, by sequence number, as the live instance (which
/// never crashed) holds them; checked against the log first.
struct Truth {
    topics: Vec<TopicTruth>,
    seq_of: HashMap<Id, u64>,
}

#[derive(Default)]
struct TopicTruth {
    ids: Vec<Id>,
    payloads: Vec<Vec<u8>>,
    /// `boundary[s]`: no batch spans entries s - 1 and s.
    boundary: Vec<bool>,
}

impl Truth {
    /// The entries' sequence numbers come from the consuming reads (which
    /// saw every consumed entry) and from a final peek at the rest.
    fn build(wal: &Walrus, log: &[Event]) -> Result<Truth, String> {
        let mut at: Vec<BTreeMap<u64, Id>> = vec![BTreeMap::new(); TOPICS.len()];
        let mut note = |topic: usize, seq: u64, id: Id| match at[topic].insert(seq, id) {
            _ if id.topic as usize != topic => Err(format!(
                "live {}: entry {seq} is {id}, appended to another topic",
                TOPICS[topic]
            )),
            Some(other) if other != id => Err(format!(
                "live {}: entry {seq} was read as {other} and as {id}",
                TOPICS[topic]
            )),
            _ => Ok(()),
        };
        let mut consumed: Vec<HashSet<u64>> = vec![HashSet::new(); TOPICS.len()];
        for event in log {
            if let Event::ReadDone {
                topic,
                consume,
                got,
                ..
            } = event
            {
                for &(seq, id) in got {
                    note(*topic, seq, id)?;
                    if *consume && !consumed[*topic].insert(seq) {
                        return Err(format!(
                            "live {}: entry {seq} ({id}) was consumed twice without a crash",
                            TOPICS[*topic]
                        ));
                    }
                }
            }
        }
        let mut ends = Vec::new();
        for (topic, name) in TOPICS.iter().enumerate() {
            let info = wal.topic_info(name);
            let (cursor, end) = info.map_or((0, 0), |i| (i.next_to_read, i.next_to_append));
            let rest = wal
                .batch_read_for_topic(name, usize::MAX, false)
                .map_err(|e| format!("live {name}: the final read failed: {e}"))?;
            for (k, e) in rest.iter().enumerate() {
                let id = identify(&e.data).ok_or_else(|| {
                    format!("live {name}: entry {}: {}", e.seq, describe(&e.data))
                })?;
                if e.seq != cursor + k as u64 {
                    return Err(format!(
                        "live {name}: read entry {} at {}",
                        e.seq,
                        cursor + k as u64
                    ));
                }
                note(topic, e.seq, id)?;
            }
            if cursor + rest.len() as u64 != end {
                return Err(format!(
                    "live {name}: positions {cursor}..{end} but {} entries readable",
                    rest.len()
                ));
            }
            ends.push(end);
        }
        let mut truth = Truth {
            topics: Vec::new(),
            seq_of: HashMap::new(),
        };
        for (topic, entries) in at.into_iter().enumerate() {
            let end = ends[topic];
            let known = entries.len() as u64;
            if known != end || entries.keys().next_back().is_some_and(|&s| s + 1 != end) {
                return Err(format!(
                    "live {}: {known} entries were ever read, {end} appended",
                    TOPICS[topic]
                ));
            }
            let mut t = TopicTruth {
                boundary: vec![false; end as usize + 1],
                ..TopicTruth::default()
            };
            t.boundary[0] = true;
            for (seq, id) in entries {
                if let Some(first) = truth.seq_of.insert(id, seq) {
                    return Err(format!("live: {id} is entry {first} and entry {seq}"));
                }
                t.ids.push(id);
                t.payloads.push(payload(id));
            }
            truth.topics.push(t);
        }
        truth.check_appends(log)?;
        Ok(truth)
    }

    /// Every acknowledged append is there exactly once, batches contiguous,
    /// each thread's appends to a topic in the order it made them; nothing
    /// else is there.
    fn check_appends(&mut self, log: &[Event]) -> Result<(), String> {
        let mut acked = 0;
        let mut last: HashMap<(usize, u8), u64> = HashMap::new();
        for event in log {
            let Event::Acked { topic, ids } = event else {
                continue;
            };
            let Some(&first) = self.seq_of.get(&ids[0]) else {
                return Err(format!("live: acknowledged {} is not there", ids[0]));
            };
            for (k, id) in ids.iter().enumerate() {
                if self.seq_of.get(id) != Some(&(first + k as u64)) {
                    return Err(format!(
                        "live: batch from {} is not contiguous at {id}",
                        ids[0]
                    ));
                }
            }
            let key = (*topic, ids[0].thread);
            if last.get(&key).is_some_and(|&prev| prev > first) {
                return Err(format!(
                    "live: {} comes before an earlier append of its thread",
                    ids[0]
                ));
            }
            last.insert(key, first);
            let t = &mut self.topics[*topic];
            t.boundary[first as usize] = true;
            t.boundary[first as usize + ids.len()] = true;
            acked += ids.len();
        }
        if acked != self.seq_of.len() {
            return Err(format!(
                "live: {} entries present, {acked} acknowledged",
                self.seq_of.len()
            ));
        }
        Ok(())
    }

    /// The end (last sequence number + 1) of the entries `ids`.
    fn end_of(&self, ids: &[Id]) -> u64 {
        ids.last().map_or(0, |id| self.seq_of[id] + 1)
    }
}

// --- what was promised at each image ----------------------------------------

/// Per topic, ends (one past a sequence number) of what the log says had
/// happened at some point.
#[derive(Clone, Copy, Default, Debug)]
struct Promise {
    /// Acknowledged appends.
    acked: u64,
    /// Appends acknowledged before a `sync()` that has returned was called.
    synced: u64,
    /// Entries returned by reads (peeks included) that have returned.
    seen: u64,
    /// Entries returned by consuming reads that have returned.
    consumed: u64,
    /// Entries returned by consuming reads that had started (done or in
    /// flight): the cursor may not pass anything beyond.
    delivered: u64,
}

/// Walks the log once, handing out the promises at each length asked for
/// (in increasing order).
struct Promises<'a> {
    log: &'a [Event],
    truth: &'a Truth,
    /// Read number -> (topic, end) of consuming reads that returned entries.
    consuming: HashMap<usize, (usize, u64)>,
    at: usize,
    now: Vec<Promise>,
    /// `acked` when the sync in progress was called.
    sync_started: Option<Vec<u64>>,
}

impl<'a> Promises<'a> {
    fn new(log: &'a [Event], truth: &'a Truth) -> Promises<'a> {
        let consuming = log
            .iter()
            .filter_map(|e| match e {
                Event::ReadDone {
                    read,
                    topic,
                    consume: true,
                    got,
                } if !got.is_empty() => Some((*read, (*topic, got.last().unwrap().0 + 1))),
                _ => None,
            })
            .collect();
        Promises {
            log,
            truth,
            consuming,
            at: 0,
            now: vec![Promise::default(); TOPICS.len()],
            sync_started: None,
        }
    }

    fn at(&mut self, len: usize) -> &[Promise] {
        assert!(len >= self.at, "images are taken in log order");
        for event in &self.log[self.at..len] {
            match event {
                Event::Acked { topic, ids } => {
                    let p = &mut self.now[*topic];
                    p.acked = p.acked.max(self.truth.end_of(ids));
                }
                Event::SyncStarted => {
                    self.sync_started = Some(self.now.iter().map(|p| p.acked).collect());
                }
                Event::SyncDone => {
                    let started = self.sync_started.take().expect("one sync thread");
                    for (p, acked) in self.now.iter_mut().zip(started) {
                        p.synced = p.synced.max(acked);
                    }
                }
                Event::ReadStarted { read } => {
                    if let Some(&(topic, end)) = self.consuming.get(read) {
                        let p = &mut self.now[topic];
                        p.delivered = p.delivered.max(end);
                    }
                }
                Event::ReadDone {
                    topic,
                    consume,
                    got,
                    ..
                } => {
                    if let Some(&(last, _)) = got.last() {
                        let p = &mut self.now[*topic];
                        p.seen = p.seen.max(last + 1);
                        if *consume {
                            p.consumed = p.consumed.max(last + 1);
                        }
                    }
                }
            }
        }
        self.at = len;
        &self.now
    }
}

// --- checking an image ------------------------------------------------------

/// One broken promise: which check, and the details.
struct Problem {
    check: &'static str,
    detail: String,
}

fn problem(check: &'static str, detail: String) -> Problem {
    Problem { check, detail }
}

/// Recovers the image and checks every topic against the promises; then the
/// same image without its checkpoint; then appends a probe to each topic.
fn check_image(w: &Workload, truth: &Truth, image: &Image, promises: &[Promise]) -> Vec<Problem> {
    let mut problems = Vec::new();
    let checkpoint = Path::new(CHECKPOINT);
    let has_checkpoint = image.storage.files().iter().any(|(p, _)| p == checkpoint);
    // Copied before recovery changes the image (it consumes the checkpoint).
    let without_checkpoint = has_checkpoint.then(|| {
        let copy = image.storage.crash(Crash::Process);
        copy.remove(checkpoint)
            .expect("the copy has the checkpoint");
        copy
    });
    let wal = match recover(&image.storage, w.consistency) {
        Ok(wal) => wal,
        Err(e) => return vec![problem("recovery fails", e.to_string())],
    };
    for name in wal.topics() {
        if !TOPICS.contains(&name.as_str()) {
            problems.push(problem("invented topic", name));
        }
    }
    let mut views = Vec::new();
    for (topic, name) in TOPICS.iter().enumerate() {
        let info = wal.topic_info(name);
        let entries = wal
            .batch_read_for_topic(name, usize::MAX, false)
            .unwrap_or_else(|e| {
                problems.push(problem("read fails", format!("{name}: {e}")));
                Vec::new()
            });
        let (cursor, end) = info.map_or((0, 0), |i| (i.next_to_read, i.next_to_append));
        let recovered = Recovered {
            cursor,
            end,
            got: &entries,
        };
        let t = &truth.topics[topic];
        for (check, detail) in check_topic(w, image.how, t, &promises[topic], &recovered) {
            problems.push(problem(check, format!("{name}: {detail}")));
        }
        views.push((info, entries));
    }
    if let Some(copy) = without_checkpoint {
        problems.extend(compare_without_checkpoint(&copy, w, &views));
    }
    problems.extend(probe(&wal, &views));
    if !problems.is_empty() {
        // What recovery says it dropped usually explains the problem.
        let dropped = &wal.recovery_report().dropped;
        for d in dropped.iter().take(4) {
            let file = d.file.file_name().unwrap_or_default().to_string_lossy();
            let detail = format!("{file} at {} ({:?}): {}", d.offset, d.topic, d.reason);
            problems.push(problem("(recovery dropped)", detail));
        }
    }
    wal.simulate_crash();
    problems
}

/// A recovered topic: its positions and what a read from its cursor returns.
struct Recovered<'a> {
    cursor: u64,
    end: u64,
    got: &'a [Entry],
}

type Found = Vec<(&'static str, String)>;

fn check_topic(w: &Workload, how: Crash, t: &TopicTruth, p: &Promise, r: &Recovered) -> Found {
    if r.cursor > r.end {
        let detail = format!("next_to_read {} > next_to_append {}", r.cursor, r.end);
        return vec![("cursor beyond the end", detail)];
    }
    let mut found = check_contents(t, r);
    found.extend(check_durability(w, how, t, p, r.end));
    found.extend(check_cursor(w.consistency, p, r));
    found
}

/// A prefix of what was appended, byte for byte, readable from the cursor
/// to the end, and not cut inside a batch.
fn check_contents(t: &TopicTruth, r: &Recovered) -> Found {
    let mut found = Vec::new();
    let (cursor, end) = (r.cursor, r.end);
    let appended = t.ids.len() as u64;
    if end > appended {
        found.push((
            "invented entries",
            format!("next_to_append is {end}, but only {appended} entries were ever appended"),
        ));
    }
    if r.got.len() as u64 != end - cursor {
        found.push((
            "wedged topic",
            format!(
                "positions {cursor}..{end} promise {} entries, a read from the cursor returns {}",
                end - cursor,
                r.got.len()
            ),
        ));
    }
    let wrong =
        r.got
            .iter()
            .zip(cursor..)
            .find_map(|(e, seq)| match t.payloads.get(seq as usize) {
                _ if e.seq != seq => Some(format!("the entry read at {seq} says it is {}", e.seq)),
                Some(bytes) if bytes[..] == e.data[..] => None,
                Some(_) => Some(format!(
                    "entry {seq} is {}, {} was appended there",
                    describe(&e.data),
                    t.ids[seq as usize]
                )),
                None => Some(format!(
                    "entry {seq} is {} and was never appended",
                    describe(&e.data)
                )),
            });
    if let Some(wrong) = wrong {
        found.push(("altered or invented entry", wrong));
    }
    // A cut among consumed entries is not observable (and allowed: they may
    // be gone).
    if end > cursor && end <= appended && !t.boundary[end as usize] {
        found.push((
            "batch cut",
            format!(
                "the topic ends at {end}, inside the batch holding {}",
                t.ids[end as usize]
            ),
        ));
    }
    found
}

/// Everything the schedule promised durable at the image is there; under
/// `SyncEach`, so is everything a reader had seen.
fn check_durability(w: &Workload, how: Crash, t: &TopicTruth, p: &Promise, end: u64) -> Found {
    let power_loss = how != Crash::Process;
    let (required, why) = match (power_loss, w.fsync) {
        (false, _) => (p.acked, "acknowledged before a process crash"),
        (true, FsyncSchedule::SyncEach) => (p.acked, "acknowledged under SyncEach"),
        (true, _) => (
            p.synced,
            "acknowledged before a sync() that returned before the image",
        ),
    };
    if end < required {
        let last = required - 1;
        let detail = format!(
            "entry {last} ({}) was {why}, but recovery ends the topic at {end}",
            t.ids[last as usize]
        );
        return vec![("acknowledged entries lost", detail)];
    }
    if power_loss && w.fsync == FsyncSchedule::SyncEach && end < p.seen {
        let last = p.seen - 1;
        let detail = format!(
            "a read returned entry {last} ({}) before the image, but recovery ends the topic \
             at {end}: under SyncEach a reader may only see durable entries",
            t.ids[last as usize]
        );
        return vec![("reader saw an entry a power loss took", detail)];
    }
    Vec::new()
}

/// Nothing skipped; no redelivery under `StrictlyAtOnce`, fewer than
/// `persist_every` entries under `AtLeastOnce`.
fn check_cursor(consistency: ReadConsistency, p: &Promise, r: &Recovered) -> Found {
    let (cursor, end) = (r.cursor, r.end);
    if cursor > p.delivered {
        let detail = format!(
            "the cursor is at {cursor}, but consuming reads started before the image returned \
             entries below {} only",
            p.delivered
        );
        return vec![("cursor skips entries", detail)];
    }
    match consistency {
        ReadConsistency::StrictlyAtOnce if cursor < p.consumed => {
            let detail = format!(
                "the cursor is back at {cursor}, but consuming reads returned entries up to {} \
                 before the image",
                p.consumed - 1
            );
            vec![("redelivery under StrictlyAtOnce", detail)]
        }
        ReadConsistency::AtLeastOnce { persist_every } => {
            // Consumed entries a power loss took are not returned again.
            let survived = p.consumed.min(end);
            if survived > cursor && survived - cursor >= u64::from(persist_every) {
                let detail = format!(
                    "entries {cursor}..{survived}, consumed before the image, come again; \
                     persist_every is {persist_every}"
                );
                vec![("redelivery beyond persist_every", detail)]
            } else {
                Vec::new()
            }
        }
        ReadConsistency::StrictlyAtOnce => Vec::new(),
    }
}

type View = (Option<TopicInfo>, Vec<Entry>);

/// The checkpoint may save reads, never change the outcome.
fn compare_without_checkpoint(copy: &SimStorage, w: &Workload, views: &[View]) -> Vec<Problem> {
    let wal = match recover(copy, w.consistency) {
        Ok(wal) => wal,
        Err(e) => {
            return vec![problem(
                "recovery fails",
                format!("without recovery.ckpt: {e}"),
            )]
        }
    };
    let mut problems = Vec::new();
    for (name, (info, entries)) in TOPICS.iter().zip(views) {
        let scanned_info = wal.topic_info(name);
        let scanned = wal
            .batch_read_for_topic(name, usize::MAX, false)
            .unwrap_or_default();
        if scanned_info != *info || scanned != *entries {
            problems.push(problem(
                "checkpoint changes the outcome",
                format!(
                    "{name}: with recovery.ckpt {info:?} and {} entries readable, \
                     without it {scanned_info:?} and {}",
                    entries.len(),
                    scanned.len()
                ),
            ));
        }
    }
    wal.simulate_crash();
    problems
}

/// A fresh append to each topic reads back at the topic's end.
fn probe(wal: &Walrus, views: &[View]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (name, (info, entries)) in TOPICS.iter().zip(views) {
        let end = info.map_or(0, |i| i.next_to_append);
        let probe = format!("probe|{name}").into_bytes();
        if let Err(e) = wal.append_for_topic(name, &probe) {
            problems.push(problem(
                "append after recovery fails",
                format!("{name}: {e}"),
            ));
            continue;
        }
        let got = wal
            .batch_read_for_topic(name, usize::MAX, false)
            .unwrap_or_default();
        let last = got.last().map(|e| (e.seq, &e.data[..]));
        if got.len() != entries.len() + 1 || last != Some((end, &probe[..])) {
            problems.push(problem(
                "wedged topic",
                format!(
                    "{name}: after appending a probe at {end}, a read from the cursor returns {} \
                     entries ending with {:?}",
                    got.len(),
                    last.map(|(seq, data)| (seq, describe(data)))
                ),
            ));
        }
    }
    problems
}

// --- running a mode ---------------------------------------------------------

#[derive(Default)]
struct Tally {
    images: usize,
    image_bytes: u64,
    by_kind: [usize; 4],
    with_checkpoint: usize,
    runs: usize,
    ops: u64,
    appends: usize,
    entries: usize,
    reads: usize,
    syncs: usize,
    failed_images: usize,
    run_time: Duration,
    check_time: Duration,
    by_check: BTreeMap<&'static str, usize>,
    printed: Vec<String>,
}

impl Tally {
    fn count_log(&mut self, log: &[Event]) {
        for event in log {
            match event {
                Event::Acked { ids, .. } => {
                    self.appends += 1;
                    self.entries += ids.len();
                }
                Event::ReadDone { .. } => self.reads += 1,
                Event::SyncDone => self.syncs += 1,
                _ => {}
            }
        }
    }

    /// The line each mode prints (the docs quote these figures).
    fn summary(&self, label: &str, elapsed: Duration) -> String {
        let [lose, keep, tear, process] = self.by_kind;
        format!(
            "concurrent crash model [{label}]: {} images ({lose} lose-unsynced, {keep} \
             keep-random, {tear} tear-last, {process} process; {} with a checkpoint, {} KiB \
             each on average) from {} runs: {} storage ops, {} appends acknowledged ({} \
             entries), {} reads, {} syncs; {} images failed; {:.1} s ({:.1} s running, {:.1} s \
             checking)",
            self.images,
            self.with_checkpoint,
            self.image_bytes / self.images.max(1) as u64 / 1024,
            self.runs,
            self.ops,
            self.appends,
            self.entries,
            self.reads,
            self.syncs,
            self.failed_images,
            elapsed.as_secs_f64(),
            self.run_time.as_secs_f64(),
            self.check_time.as_secs_f64(),
        )
    }

    fn count_image(&mut self, image: &Image) {
        let kind = match image.how {
            Crash::LoseUnsynced => 0,
            Crash::KeepRandom { .. } => 1,
            Crash::TearLast { .. } => 2,
            Crash::Process => 3,
        };
        self.images += 1;
        self.by_kind[kind] += 1;
        let files = image.storage.files();
        self.image_bytes += files.iter().map(|(_, len)| len).sum::<u64>();
        if files.iter().any(|(p, _)| p == Path::new(CHECKPOINT)) {
            self.with_checkpoint += 1;
        }
    }

    fn fail(&mut self, at: String, problems: Vec<Problem>) {
        self.failed_images += 1;
        let mut news = false;
        for p in problems.iter().filter(|p| !p.check.starts_with('(')) {
            let n = self.by_check.entry(p.check).or_default();
            news |= *n < PRINTED;
            *n += 1;
        }
        // The first few of each kind, so that a frequent one hides no other.
        if news {
            let details: Vec<String> = problems
                .iter()
                .map(|p| format!("    {}: {}", p.check, p.detail))
                .collect();
            self.printed.push(format!("{at}:\n{}", details.join("\n")));
        }
    }
}

/// Checks every image of a run.
fn check_run(w: &Workload, run_no: usize, run: &Run, tally: &mut Tally) {
    let label = w.label();
    let truth = match &run.truth {
        Ok(truth) => truth,
        Err(e) => {
            let at = format!("[{label}] run {run_no}, no crash");
            tally.fail(
                at,
                vec![problem("live instance contradicts the log", e.clone())],
            );
            return;
        }
    };
    let mut promises = Promises::new(&run.log, truth);
    for (i, image) in run.images.iter().enumerate() {
        let p = promises.at(image.log_len).to_vec();
        tally.count_image(image);
        let problems = check_image(w, truth, image, &p);
        if !problems.is_empty() {
            let at = match image.kind {
                Some(kind) => format!("before storage op {} ({kind:?})", image.op),
                None => format!("at the end, after {} storage ops", image.op),
            };
            let at = format!(
                "[{label}] run {run_no} image {i}: {:?} {at}, {} of {} events logged",
                image.how,
                image.log_len,
                run.log.len()
            );
            tally.fail(at, problems);
        }
    }
}

fn images_wanted() -> usize {
    std::env::var("CRASH_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_IMAGES)
}

/// Appenders' pauses, run by run: the consumers keep up, nearly or not at all
/// (then the log grows long, and images cost more to check).
const PACES: [u64; 3] = [400, 150, 0];

fn run_mode(consistency: ReadConsistency, fsync: FsyncSchedule) {
    let started = Instant::now();
    let mut w = Workload::model(consistency, fsync);
    let wanted = images_wanted().div_ceil(MODES);
    let mut tally = Tally::default();
    // Storage operations between images; adjusted after each run so that a
    // run's images spread over all of it.
    let mut stride = 30;
    let mode_seed = w
        .label()
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31) ^ u64::from(b));
    while tally.images < wanted {
        let max = (wanted - tally.images)
            .min(IMAGES_PER_RUN)
            .saturating_sub(1);
        let seed = mode_seed.wrapping_add(tally.runs as u64);
        w.pace = Duration::from_micros(PACES[tally.runs % PACES.len()]);
        let t0 = Instant::now();
        let run = run_workload(&w, seed, Capture::Stride(stride), max);
        tally.run_time += t0.elapsed();
        stride = (run.ops / IMAGES_PER_RUN as u64).max(1);
        tally.runs += 1;
        tally.ops += run.ops;
        tally.count_log(&run.log);
        let t1 = Instant::now();
        check_run(&w, tally.runs, &run, &mut tally);
        tally.check_time += t1.elapsed();
        if run.truth.is_err() {
            // Its images were not checked; the live failure says enough.
            break;
        }
    }
    eprintln!("{}", tally.summary(&w.label(), started.elapsed()));
    if tally.failed_images > 0 {
        let checks: Vec<String> = tally
            .by_check
            .iter()
            .map(|(check, n)| format!("{check}: {n}"))
            .collect();
        panic!(
            "[{}] {} of {} images break a promise ({}); the first of each kind:\n{}",
            w.label(),
            tally.failed_images,
            tally.images,
            checks.join(", "),
            tally.printed.join("\n")
        );
    }
}

const ALO: ReadConsistency = ReadConsistency::AtLeastOnce { persist_every: 3 };
const STRICT: ReadConsistency = ReadConsistency::StrictlyAtOnce;
const EVERY_2MS: FsyncSchedule = FsyncSchedule::Milliseconds(2);

#[test]
fn strictly_at_once_sync_each() {
    run_mode(STRICT, FsyncSchedule::SyncEach);
}

#[test]
fn strictly_at_once_every_2ms() {
    run_mode(STRICT, EVERY_2MS);
}

#[test]
fn strictly_at_once_no_fsync() {
    run_mode(STRICT, FsyncSchedule::NoFsync);
}

#[test]
fn at_least_once_sync_each() {
    run_mode(ALO, FsyncSchedule::SyncEach);
}

#[test]
fn at_least_once_every_2ms() {
    run_mode(ALO, EVERY_2MS);
}

#[test]
fn at_least_once_no_fsync() {
    run_mode(ALO, FsyncSchedule::NoFsync);
}

// --- regressions --------------------------------------------------------------

/// Segment files in the storage (each holds one extent).
fn segment_count(sim: &SimStorage) -> usize {
    sim.files()
        .iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "wal"))
        .count()
}

fn big_entry(i: usize) -> Vec<u8> {
    payload(Id {
        topic: 0,
        thread: 9,
        n: i as u32,
        len: 1000,
    })
}

fn one_topic(sim: &SimStorage, consistency: ReadConsistency) -> Walrus {
    builder(sim, consistency, FsyncSchedule::SyncEach)
        .recovery_snapshot_every_bytes(0)
        .open()
        .unwrap()
}

/// Entries (of `big_entry`) that fit the first segment's one extent.
fn entries_in_first_segment() -> usize {
    let sim = SimStorage::new();
    let wal = one_topic(&sim, STRICT);
    let mut i = 0;
    loop {
        wal.append_for_topic(TOPICS[0], &big_entry(i)).unwrap();
        if segment_count(&sim) > 1 {
            return i;
        }
        i += 1;
    }
}

/// Entry k is written into the last room of segment 1 and not waited for;
/// entry k + 1 goes to segment 2 and is acknowledged after its own fsync.
/// A power loss keeps segment 2 but not k: recovery then found a hole before
/// k + 1 and marked segment 2's extent dead, losing an acknowledged entry.
/// Acknowledging k + 1 must make everything before it in the topic durable.
#[test]
fn sync_each_entry_acked_in_a_new_segment_survives_while_the_old_segment_was_unsynced() {
    let k = entries_in_first_segment() - 1;
    let sim = SimStorage::new();
    let wal = one_topic(&sim, STRICT);
    for i in 0..k {
        wal.append_for_topic(TOPICS[0], &big_entry(i)).unwrap();
    }
    let pending = wal.append_pending(TOPICS[0], &[&big_entry(k)]).unwrap();
    assert_eq!(segment_count(&sim), 1, "entry {k} fits segment 1");
    wal.append_for_topic(TOPICS[0], &big_entry(k + 1)).unwrap();
    assert_eq!(segment_count(&sim), 2, "entry {} opens segment 2", k + 1);
    let image = sim.crash(Crash::LoseUnsynced);
    drop(pending);
    wal.simulate_crash();

    let wal = recover(&image, STRICT).unwrap();
    let got = wal
        .batch_read_for_topic(TOPICS[0], usize::MAX, false)
        .unwrap();
    let report = format!("{:?}", wal.recovery_report().dropped);
    assert!(
        got.len() >= k + 2,
        "entry {} was acknowledged under SyncEach, but after a power loss the topic holds \
         entries 0..{} only; recovery dropped {report}",
        k + 1,
        got.len()
    );
    for (i, e) in got.iter().enumerate() {
        assert_eq!(e.data[..], big_entry(i)[..], "entry {i}");
    }
}

/// A running checkpoint read an extent's end offset and sequence number as two
/// atomics, so an append between the two loads could pair an old offset with
/// a new sequence number: recovery then trusted an entry that is not there
/// (the topic wedged, later extents cut out). A process-crash image right
/// after each checkpoint is renamed into place catches it. The window is a
/// few nanoseconds: on the 2-core build machine one run in ten or twenty
/// (some 300 checkpoints each) hits it against the engine that had the bug,
/// so a pass here proves little; a failure is always real.
#[test]
fn a_checkpoint_taken_while_appends_run_never_claims_missing_entries() {
    let w = Workload {
        consistency: STRICT,
        fsync: FsyncSchedule::NoFsync,
        appenders: vec![vec![0], vec![2]],
        // Keep the log short, so that every image is cheap to check.
        consumers: vec![vec![0], vec![2]],
        sync_loop: Some(Duration::ZERO),
        delays: false,
        appends: usize::MAX,
        duration: Duration::from_millis(600),
        pace: Duration::from_micros(100),
        entry_len: 200..1500,
    };
    let run = run_workload(&w, 7, Capture::AfterRename, 400);
    let mut tally = Tally::default();
    check_run(&w, 0, &run, &mut tally);
    assert!(
        tally.failed_images == 0,
        "{} of {} images taken after a checkpoint break a promise ({:?}):\n{}",
        tally.failed_images,
        tally.images,
        tally.by_check,
        tally.printed.join("\n")
    );
}

/// Under SyncEach a consuming read persisted a cursor past an entry whose
/// append was still waiting for its fsync; a power loss then took the entry
/// while the durable cursor had consumed it. A strict consumer must not get
/// an entry before it is durable.
#[test]
fn a_strict_consumer_never_consumes_an_entry_before_it_is_durable() {
    let sim = SimStorage::new();
    let wal = one_topic(&sim, STRICT);
    wal.append_for_topic(TOPICS[0], &big_entry(0)).unwrap();
    assert_eq!(
        wal.read_next(TOPICS[0], true).unwrap().map(|e| e.seq),
        Some(0)
    );
    let pending = wal.append_pending(TOPICS[0], &[&big_entry(1)]).unwrap();
    assert!(!pending.is_durable(), "nothing synced the segment yet");
    let consumed = wal.read_next(TOPICS[0], true).unwrap();
    if let Some(entry) = consumed {
        let image = sim.crash(Crash::LoseUnsynced);
        let after = recover(&image, STRICT).unwrap();
        let info = after.topic_info(TOPICS[0]);
        let left = after
            .batch_read_for_topic(TOPICS[0], usize::MAX, false)
            .unwrap();
        panic!(
            "a consuming read returned entry {} while its append was not durable; after a \
             power loss the topic is {info:?} with {} entries readable, so a consumer acted \
             on an entry the log no longer has",
            entry.seq,
            left.len()
        );
    }
    pending.wait().unwrap();
    let entry = wal.read_next(TOPICS[0], true).unwrap();
    assert_eq!(
        entry.map(|e| (e.seq, e.data.to_vec())),
        Some((1, big_entry(1))),
        "once durable, the entry is delivered"
    );
}

/// Found by the model: a new segment's name can become durable before its
/// header does, through another thread's directory sync (a checkpoint's or a
/// cursor snapshot's rename, say). A power loss that then tears the header
/// left a segment that recovery refused (`Corruption` or `BadMagic`), and the
/// instance could not be opened at all. docs/format.md assumes writes torn
/// at any byte; the segment never held an entry.
#[test]
fn recovery_opens_after_a_power_loss_tears_the_header_of_a_segment_being_created() {
    let sim = SimStorage::new();
    let wal = one_topic(&sim, STRICT);
    let images = Arc::new(Mutex::new(Vec::new()));
    let (inner, taken) = (sim.clone(), images.clone());
    let created = Mutex::new(None);
    sim.set_before_op(move |kind, path| {
        // A segment file, under its final or its temporary creation name.
        let segment = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("seg-"));
        if kind == FaultKind::Open && segment && !inner.files().iter().any(|(p, _)| p == path) {
            *created.lock().unwrap() = Some(path.to_owned());
            return;
        }
        // The new segment's first sync is its header's: another thread
        // syncs the directory just before it, and the power fails.
        let header_sync =
            kind == FaultKind::Sync && created.lock().unwrap().as_deref() == Some(path);
        if header_sync {
            *created.lock().unwrap() = None;
            inner.sync_dir(path.parent().unwrap()).unwrap();
            let images = (0..8).map(|k| inner.crash(Crash::TearLast { seed: 2 * k + 1 }));
            taken.lock().unwrap().extend(images);
        }
    });
    let mut acked = 0;
    // The first append creates segment 1; the next rollover, segment 2.
    while images.lock().unwrap().len() < 16 {
        wal.append_for_topic(TOPICS[0], &big_entry(acked)).unwrap();
        acked += 1;
        assert!(acked < 100, "no second segment");
    }
    sim.clear_before_op();
    wal.simulate_crash();
    let images = std::mem::take(&mut *images.lock().unwrap());
    // Eight images of segment 1's creation, when nothing was acknowledged,
    // then eight of segment 2's, when all but the last append were.
    for (k, image) in images.iter().enumerate() {
        let wal = recover(image, STRICT).unwrap_or_else(|e| {
            panic!("image {k}: the header of a segment being created is torn; recovery fails: {e}")
        });
        let required = if k < 8 { 0 } else { acked - 1 };
        let got = wal
            .batch_read_for_topic(TOPICS[0], usize::MAX, false)
            .unwrap();
        assert!(
            got.len() >= required,
            "image {k}: {} of {required} acknowledged entries",
            got.len()
        );
        for (i, e) in got.iter().enumerate() {
            assert_eq!(e.data[..], big_entry(i)[..], "image {k}, entry {i}");
        }
        wal.simulate_crash();
    }
}
