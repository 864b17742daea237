//! Process-kill crash suite, for every store × fsync mode.
//!
//! The test re-runs its own binary as a child that appends (single entries
//! and batches) and consumes under a given mode, and reports every
//! acknowledgement to the parent over a pipe. The parent SIGKILLs the child
//! at a random moment, reopens the store itself and checks what a process
//! crash may cost under that mode (see `docs/guarantees.md`):
//!
//! * every acknowledged append is present, in order, byte-exact, and nothing
//!   else is there except the one append that was in flight;
//! * a batch is wholly present or wholly absent;
//! * `StrictlyAtOnce`: no entry reported consumed is returned again;
//! * `AtLeastOnce { persist_every: n }`: fewer than n entries are returned
//!   again;
//! * under both, nothing is skipped: the cursor is never past the entries
//!   reported consumed, except by what the one read in flight at the kill
//!   could have taken (the child announces each consuming read before it
//!   starts);
//! * every consuming read of a child starts where the previous one (or the
//!   cursor the parent found) ended and returns the acknowledged bytes.
//!
//! Every kill comes after real work: the parent watches the reports and
//! kills only once the child has had at least `MIN_ACKS` entries
//! acknowledged and `MIN_CONSUMED` consumed, at a random moment up to
//! `KILL_JITTER_MS` later. The totals (kills, acknowledged and consumed
//! entries) are printed at the end.
//!
//! `KILL_POINTS` sets the kills per store × mode (default 20, and 2 for
//! jetstream-r3; `make crash-soak` raises it). `KILL_SEED` fixes the random
//! kill times. `KILL_STORES=jetstream-r1,raw` runs only the stores named.
//!
//! For the JetStream stores a kill takes the client process and the nodes
//! it started; the parent's next open waits until they have stopped.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use walrus_adapters::{open_store, StoreKind};
use walrus_wal::{FsyncSchedule, LogStore, ReadConsistency, StoreConfig};

const CHILD_ENV: &str = "WALRUS_KILL_CHILD";
const TOPICS: [&str; 2] = ["k1", "k2"];
const PERSIST_EVERY: u32 = 4;
/// Entries a child must have had acknowledged before it may be killed.
const MIN_ACKS: u64 = 40;
/// Entries a child must have consumed before it may be killed.
const MIN_CONSUMED: u64 = 15;
/// The kill comes up to this long after the minimum work was seen.
const KILL_JITTER_MS: u64 = 60;
/// A child that has not done the minimum work by then has stalled.
const WORK_DEADLINE: Duration = Duration::from_secs(60);
/// The child's consuming reads take at most this many payload bytes (at
/// least one entry).
const READ_BUDGET: usize = 600;

/// Entry point of the child process; a no-op unless the parent started it.
#[test]
fn kill_child_entry() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.splitn(5, '|');
    let kind: StoreKind = parts.next().unwrap().parse().unwrap();
    let fsync: FsyncSchedule = parts.next().unwrap().parse().unwrap();
    let consistency: ReadConsistency = parts.next().unwrap().parse().unwrap();
    let round: u64 = parts.next().unwrap().parse().unwrap();
    let dir = PathBuf::from(parts.next().unwrap());
    let store = open_store(kind, &dir, StoreConfig { consistency, fsync }).unwrap();
    let out = std::io::stdout();
    let mut out = out.lock();
    // The test runner has printed "test kill_child_entry ... " without a
    // newline; reports start on a line of their own.
    writeln!(out).unwrap();
    for i in 0u64.. {
        let topic = TOPICS[(i % 2) as usize];
        if i % 5 == 4 {
            let batch: Vec<Vec<u8>> = (0..3).map(|k| payload(round, i, k)).collect();
            let refs: Vec<&[u8]> = batch.iter().map(|b| b.as_slice()).collect();
            store.batch_append(topic, &refs).unwrap();
            writeln!(out, "A {topic} {round} {i} 3").unwrap();
        } else {
            store.append(topic, &payload(round, i, 0)).unwrap();
            writeln!(out, "A {topic} {round} {i} 1").unwrap();
        }
        out.flush().unwrap();
        if i % 3 == 2 {
            // Announced first: a kill between here and the report leaves a
            // read in flight, whose persisted cursor may be ahead of what the
            // parent saw consumed.
            writeln!(out, "B {topic}").unwrap();
            out.flush().unwrap();
            let got = store.batch_read(topic, READ_BUDGET, true).unwrap();
            match (got.first(), got.last()) {
                (Some(first), Some(last)) => {
                    let hash = digest(got.iter().map(|e| &e.data[..]));
                    writeln!(out, "R {topic} {} {} {hash:016x}", first.seq, last.seq).unwrap()
                }
                _ => writeln!(out, "E {topic}").unwrap(),
            }
            out.flush().unwrap();
        }
    }
}

/// FNV-1a over the entries' lengths and bytes: what a read returned, in
/// one line of the report.
fn digest<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for data in entries {
        for b in (data.len() as u64).to_le_bytes().iter().chain(data) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

fn payload(round: u64, i: u64, k: u64) -> Vec<u8> {
    let mut p = format!("r{round}-i{i}-k{k}:").into_bytes();
    p.extend((0..(i * 13 + k * 7) % 200).map(|b| (b ^ round) as u8));
    p
}

/// What the parent knows of one topic.
#[derive(Default)]
struct Model {
    /// Acknowledged entries, in order, with the size of the append each belongs to.
    entries: Vec<(Vec<u8>, usize)>,
    /// Next sequence number a consuming read would return, as reported.
    consumed: u64,
    /// A consuming read was announced and had not reported when the child
    /// was killed.
    read_in_flight: bool,
}

impl Model {
    /// How far past `consumed` a read in flight could have moved the
    /// cursor: the entries one `batch_read(READ_BUDGET)` would return.
    fn in_flight_reach(&self) -> u64 {
        if !self.read_in_flight {
            return 0;
        }
        let (mut n, mut bytes) = (0u64, 0usize);
        for (data, _) in self.entries.iter().skip(self.consumed as usize) {
            if n > 0 && bytes + data.len() > READ_BUDGET {
                break;
            }
            bytes += data.len();
            n += 1;
        }
        n.max(1)
    }
}

/// What one child did before it was killed.
#[derive(Default, Clone, Copy)]
struct Work {
    /// Entries whose append was acknowledged.
    acks: u64,
    /// Entries returned by consuming reads.
    consumed: u64,
}

impl Work {
    /// Counts one report line.
    fn count(&mut self, line: &str) {
        let f: Vec<&str> = line.split(' ').collect();
        match f[..] {
            ["A", _, _, _, n] => self.acks += n.parse::<u64>().unwrap_or(0),
            ["R", _, first, last, _] => {
                if let (Ok(first), Ok(last)) = (first.parse::<u64>(), last.parse::<u64>()) {
                    self.consumed += last + 1 - first;
                }
            }
            _ => {}
        }
    }
}

struct Suite {
    /// Whether every acknowledged append must survive a process kill in
    /// this store × mode (docs/guarantees.md).
    keeps_acknowledged: bool,
    kind: StoreKind,
    fsync: FsyncSchedule,
    consistency: ReadConsistency,
    dir: PathBuf,
    topics: [Model; 2],
    rng: u64,
}

impl Suite {
    fn rand(&mut self, below: u64) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % below
    }

    fn spec(&self, round: u64) -> String {
        format!(
            "{}|{}|{}|{round}|{}",
            self.kind,
            self.fsync,
            self.consistency,
            self.dir.display()
        )
    }

    /// Runs one child until it has done the minimum work, kills it a
    /// random moment later, and returns its reports and what they add up to.
    fn kill_round(&mut self, round: u64) -> (Vec<String>, Work) {
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new(exe)
            .args([
                "--exact",
                "kill_child_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, self.spec(round))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut lines = Vec::new();
        let mut work = Work::default();
        // Wait for the minimum work, reading the reports as they come.
        let deadline = Instant::now() + WORK_DEADLINE;
        while work.acks < MIN_ACKS || work.consumed < MIN_CONSUMED {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    work.count(&line);
                    lines.push(line);
                }
                // The child loops until killed: if its output ended, it died.
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().unwrap();
                    panic!(
                        "{} child exited by itself ({status}) after {} acks and {} consumed: \
                         {:?}",
                        self.spec(round),
                        work.acks,
                        work.consumed,
                        lines.iter().rev().take(5).collect::<Vec<_>>()
                    );
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    child.kill().unwrap();
                    child.wait().unwrap();
                    panic!(
                        "{} child did only {} acks and {} consumed in {WORK_DEADLINE:?} \
                         (minimum {MIN_ACKS} and {MIN_CONSUMED})",
                        self.spec(round),
                        work.acks,
                        work.consumed
                    );
                }
            }
        }
        // Then kill at a random moment, in the middle of appends and reads.
        std::thread::sleep(Duration::from_millis(self.rand(KILL_JITTER_MS + 1)));
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{} child exited by itself ({status})", self.spec(round));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        for line in rx.try_iter() {
            work.count(&line);
            lines.push(line);
        }
        assert!(
            work.acks >= MIN_ACKS && work.consumed >= MIN_CONSUMED,
            "{}: {} acks and {} consumed before the kill",
            self.spec(round),
            work.acks,
            work.consumed
        );
        (lines, work)
    }

    fn apply(&mut self, lines: &[String], round: u64) {
        let label = format!(
            "{} {} {} round {round}",
            self.kind, self.fsync, self.consistency
        );
        for model in &mut self.topics {
            model.read_in_flight = false;
        }
        // Lines other than reports (the test runner's own output) are skipped.
        for line in lines {
            let f: Vec<&str> = line.split(' ').collect();
            match f[0] {
                "B" if f.len() == 2 => {
                    let t = TOPICS.iter().position(|t| *t == f[1]).unwrap();
                    self.topics[t].read_in_flight = true;
                }
                "E" if f.len() == 2 => {
                    let t = TOPICS.iter().position(|t| *t == f[1]).unwrap();
                    let model = &mut self.topics[t];
                    model.read_in_flight = false;
                    // An empty read means nothing acknowledged was left.
                    assert!(
                        model.consumed as usize >= model.entries.len(),
                        "{label}: {} read nothing at {} with {} entries acknowledged",
                        f[1],
                        model.consumed,
                        model.entries.len()
                    );
                }
                "A" if f.len() == 5 => {
                    let t = TOPICS.iter().position(|t| *t == f[1]).unwrap();
                    let (round, i, n): (u64, u64, u64) = (
                        f[2].parse().unwrap(),
                        f[3].parse().unwrap(),
                        f[4].parse().unwrap(),
                    );
                    for k in 0..n {
                        self.topics[t]
                            .entries
                            .push((payload(round, i, k), n as usize));
                    }
                }
                "R" if f.len() == 5 => {
                    let t = TOPICS.iter().position(|t| *t == f[1]).unwrap();
                    let first: u64 = f[2].parse().unwrap();
                    let last: u64 = f[3].parse().unwrap();
                    let model = &mut self.topics[t];
                    // Consumption is contiguous: each read starts where the
                    // last one ended (nothing skipped, nothing returned twice
                    // within a run) and returns what was acknowledged.
                    assert_eq!(
                        first, model.consumed,
                        "{label}: {} read from {first}, the cursor was at {}",
                        f[1], model.consumed
                    );
                    assert!(
                        last >= first && (last as usize) < model.entries.len(),
                        "{label}: {} read {first}..={last} with {} entries acknowledged",
                        f[1],
                        model.entries.len()
                    );
                    let expected = digest(
                        model.entries[first as usize..=last as usize]
                            .iter()
                            .map(|(d, _)| d.as_slice()),
                    );
                    assert_eq!(
                        f[4],
                        format!("{expected:016x}"),
                        "{label}: {} read {first}..={last} with the wrong bytes",
                        f[1]
                    );
                    model.consumed = last + 1;
                    model.read_in_flight = false;
                }
                _ => {}
            }
        }
    }

    fn check(&mut self, round: u64) {
        let config = StoreConfig {
            consistency: self.consistency,
            fsync: self.fsync,
        };
        let label = format!(
            "{} {} {} round {round}",
            self.kind, self.fsync, self.consistency
        );
        let store = open_store(self.kind, &self.dir, config)
            .unwrap_or_else(|e| panic!("{label}: reopen: {e}"));
        for (t, topic) in TOPICS.into_iter().enumerate() {
            let mut got = peek_all(&*store, topic);
            let model = &mut self.topics[t];
            if got.is_empty() {
                // Nothing unconsumed: learn where the topic ends by appending
                // a probe and peeking at its sequence number.
                let probe = format!("probe-{round}").into_bytes();
                store.append(topic, &probe).unwrap();
                got = peek_all(&*store, topic);
                let p = got
                    .first()
                    .cloned()
                    .unwrap_or_else(|| panic!("{label}: {topic} lost the probe"));
                assert_eq!(
                    p.data, probe,
                    "{label}: {topic} returned something before the probe"
                );
                assert!(
                    !self.keeps_acknowledged || p.seq as usize >= model.entries.len(),
                    "{label}: {topic} lost acknowledged entries (ends at {}, {} acknowledged)",
                    p.seq,
                    model.entries.len()
                );
                // Positions below the cursor are never compared again.
                model.entries.resize(p.seq as usize, (Vec::new(), 1));
                model.entries.push((probe, 1));
            }
            let cursor = got.first().map_or(model.entries.len() as u64, |e| e.seq);
            for (k, e) in got.iter().enumerate() {
                assert_eq!(e.seq, cursor + k as u64, "{label}: {topic} sequence gap");
                if std::env::var("KILL_DEBUG").is_ok() && k == 0 {
                    let label = |d: &[u8]| {
                        String::from_utf8_lossy(
                            &d[..d.iter().position(|&b| b == b':').unwrap_or(0)],
                        )
                        .into_owned()
                    };
                    eprintln!(
                        "{topic} cursor {cursor} consumed {} model {:?}",
                        model.consumed,
                        model
                            .entries
                            .iter()
                            .map(|(d, _)| label(d))
                            .collect::<Vec<_>>()
                    );
                    eprintln!(
                        "{topic} store {:?}",
                        got.iter()
                            .map(|e| (e.seq, label(&e.data)))
                            .collect::<Vec<_>>()
                    );
                }
                if let Some((expected, _)) = model.entries.get(e.seq as usize) {
                    assert_eq!(
                        &e.data, expected,
                        "{label}: {topic} entry {} differs",
                        e.seq
                    );
                }
            }
            let end = cursor as usize + got.len();
            if self.keeps_acknowledged {
                assert!(
                    end >= model.entries.len(),
                    "{label}: {topic} lost acknowledged entries ({end} < {})",
                    model.entries.len()
                );
            } else {
                // This store may lose a tail of acknowledged appends on a
                // kill; what is left must still be an exact prefix (above).
                model.entries.truncate(end);
            }
            // A batch (appends with i % 5 == 4 carry 3 entries) is never cut:
            // the last entry left must end its append.
            if let Some(last) = got.last() {
                let label = String::from_utf8_lossy(&last.data);
                let (i, k) = parse_label(&label);
                assert!(
                    i % 5 != 4 || k == 2,
                    "{label}: {topic} ends inside a batch at {label:.20}"
                );
            }
            // Extras can only be the one append in flight (at most one batch).
            let extra = end - model.entries.len();
            assert!(
                extra <= 3,
                "{label}: {topic} holds {extra} unacknowledged entries"
            );
            // Nothing is skipped: the cursor is past the reported reads by
            // at most what the read in flight could have taken.
            let reach = model.in_flight_reach();
            assert!(
                cursor <= model.consumed + reach,
                "{label}: {topic} resumes at {cursor}, past the {} entries consumed (a read \
                 in flight could reach {}): entries skipped",
                model.consumed,
                model.consumed + reach
            );
            match self.consistency {
                ReadConsistency::StrictlyAtOnce => assert!(
                    got.is_empty() || cursor >= model.consumed,
                    "{label}: {topic} redelivers from {cursor}, consumed {}",
                    model.consumed
                ),
                ReadConsistency::AtLeastOnce { persist_every } => {
                    // The read in flight may have persisted up to 600 bytes more.
                    assert!(
                        got.is_empty()
                            || model.consumed.saturating_sub(cursor) < persist_every as u64,
                        "{label}: {topic} redelivers {} entries",
                        model.consumed - cursor
                    );
                }
            }
            // Adopt what the store holds: the in-flight append, if it landed.
            for e in got
                .iter()
                .skip(model.entries.len().saturating_sub(cursor as usize))
            {
                model.entries.push((e.data.to_vec(), 1));
            }
            if !got.is_empty() {
                model.consumed = cursor;
            }
            model.read_in_flight = false;
        }
    }
}

/// (i, k) of a payload "r<round>-i<i>-k<k>:...".
fn parse_label(label: &str) -> (u64, u64) {
    let head = label.split(':').next().unwrap_or_default();
    let mut parts = head.split('-').skip(1);
    let i = parts
        .next()
        .and_then(|p| p.strip_prefix('i')?.parse().ok())
        .unwrap_or(0);
    let k = parts
        .next()
        .and_then(|p| p.strip_prefix('k')?.parse().ok())
        .unwrap_or(0);
    (i, k)
}

/// Every unconsumed entry, without consuming.
fn peek_all(store: &dyn LogStore, topic: &str) -> Vec<walrus_wal::Entry> {
    store.batch_read(topic, 64 << 20, false).unwrap()
}

/// Kills per store x mode: `KILL_POINTS`, or 20; 2 for jetstream-r3,
/// whose every round starts its nodes twice, each start waiting 4-9 s for
/// a Raft election (about 13 s a round).
fn kill_points(kind: StoreKind) -> u64 {
    let default = if kind == StoreKind::JetStreamR3 {
        2
    } else {
        20
    };
    std::env::var("KILL_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn run(kind: StoreKind, fsync: FsyncSchedule, consistency: ReadConsistency) -> (u64, Work) {
    let kills = kill_points(kind);
    let seed: u64 = std::env::var("KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    let tmp = tempfile::tempdir().unwrap();
    let mut suite = Suite {
        keeps_acknowledged: keeps_acknowledged_on_kill(kind, fsync),
        kind,
        fsync,
        consistency,
        dir: tmp.path().join("store"),
        topics: Default::default(),
        rng: seed | 1,
    };
    let mut total = Work::default();
    for round in 0..kills {
        let (lines, work) = suite.kill_round(round);
        suite.apply(&lines, round);
        suite.check(round);
        total.acks += work.acks;
        total.consumed += work.consumed;
    }
    (kills, total)
}

fn modes() -> Vec<(FsyncSchedule, ReadConsistency)> {
    vec![
        (FsyncSchedule::SyncEach, ReadConsistency::StrictlyAtOnce),
        (
            FsyncSchedule::Milliseconds(50),
            ReadConsistency::AtLeastOnce {
                persist_every: PERSIST_EVERY,
            },
        ),
        (FsyncSchedule::NoFsync, ReadConsistency::StrictlyAtOnce),
    ]
}

#[test]
fn every_store_survives_process_kills_under_every_mode() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let started = Instant::now();
    let (mut kills, mut total, mut runs) = (0u64, Work::default(), 0);
    // The JetStream stores are also killed node by node, with damage, in
    // tests/jetstream_cluster.rs. Here a kill takes the client process and,
    // with it, the nodes it started; the next open waits for them to stop
    // (adapters/src/jetstream/dir_lock.rs). Before that lock, the parent's
    // parked nodes and the child's ran on one directory at once, and
    // jetstream-r1 sync-each lost acknowledged appends (58 of 91 kept).
    // `KILL_STORES=jetstream-r1,raw` runs only those stores.
    let only: Option<Vec<StoreKind>> = std::env::var("KILL_STORES").ok().map(|names| {
        names
            .split(',')
            .map(|name| name.trim().parse().expect("KILL_STORES names stores"))
            .collect()
    });
    let kinds = StoreKind::all_available()
        .into_iter()
        .filter(|kind| only.as_ref().is_none_or(|only| only.contains(kind)));
    for kind in kinds {
        for (fsync, consistency) in modes() {
            let (k, work) = run(kind, fsync, consistency);
            eprintln!(
                "process-kill: {kind} {fsync} {consistency}: {k} kills, {} acknowledged and {} \
                 consumed entries, invariants held",
                work.acks, work.consumed
            );
            kills += k;
            total.acks += work.acks;
            total.consumed += work.consumed;
            runs += 1;
        }
    }
    eprintln!(
        "process-kill: {kills} kills over {runs} store x mode runs, {} acknowledged and {} \
         consumed entries (at least {MIN_ACKS} and {MIN_CONSUMED} per kill), all invariants \
         held, {:.1} s",
        total.acks,
        total.consumed,
        started.elapsed().as_secs_f64()
    );
    assert!(only.is_some() || kills >= 20);
    assert!(total.acks >= kills * MIN_ACKS && total.consumed >= kills * MIN_CONSUMED);
}

/// sled buffers appends in its own memory until its flusher (N ms) or a
/// flush writes them, so a killed process may lose a tail of acknowledged
/// appends unless every append is flushed (docs/guarantees.md). For those
/// modes the suite checks the weaker promise: what survives is an exact
/// prefix, batches whole, cursors as promised.
fn keeps_acknowledged_on_kill(kind: StoreKind, fsync: FsyncSchedule) -> bool {
    kind != StoreKind::Sled || fsync == FsyncSchedule::SyncEach
}
