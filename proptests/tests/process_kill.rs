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
//! * `AtLeastOnce { persist_every: n }`: nothing is skipped and fewer than n
//!   entries are returned again.
//!
//! `KILL_POINTS` sets the kills per store × mode (default 20; `make
//! crash-soak` raises it). `KILL_SEED` fixes the random kill times.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;
use walrus_adapters::{open_store, StoreKind};
use walrus_wal::{FsyncSchedule, LogStore, ReadConsistency, StoreConfig};

const CHILD_ENV: &str = "WALRUS_KILL_CHILD";
const TOPICS: [&str; 2] = ["k1", "k2"];
const PERSIST_EVERY: u32 = 4;

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
            let got = store.batch_read(topic, 600, true).unwrap();
            if let (Some(first), Some(last)) = (got.first(), got.last()) {
                writeln!(out, "R {topic} {} {}", first.seq, last.seq).unwrap();
                out.flush().unwrap();
            }
        }
    }
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

    /// Runs one child, kills it, and returns its acknowledgements.
    fn kill_round(&mut self, round: u64) -> Vec<String> {
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
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        });
        // Kill at a random moment: sometimes while the store is still
        // opening (recovering), mostly in the middle of appends and reads.
        std::thread::sleep(Duration::from_millis(30 + self.rand(120)));
        // The child loops until killed: if it has exited, it failed.
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "{} child exited by itself ({status}): {:?}",
                self.spec(round),
                reader.join().unwrap()
            );
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap()
    }

    fn apply(&mut self, lines: &[String]) {
        // Lines other than reports (the test runner's own output) are skipped.
        for line in lines {
            let f: Vec<&str> = line.split(' ').collect();
            match f[0] {
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
                "R" if f.len() == 4 => {
                    let t = TOPICS.iter().position(|t| *t == f[1]).unwrap();
                    let last: u64 = f[3].parse().unwrap();
                    self.topics[t].consumed = last + 1;
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

fn run(kind: StoreKind, fsync: FsyncSchedule, consistency: ReadConsistency) -> usize {
    let kills: u64 = std::env::var("KILL_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
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
    for round in 0..kills {
        let lines = suite.kill_round(round);
        suite.apply(&lines);
        suite.check(round);
    }
    kills as usize
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
    let mut total = 0;
    for kind in StoreKind::all_available() {
        for (fsync, consistency) in modes() {
            let kills = run(kind, fsync, consistency);
            eprintln!("process-kill: {kind} {fsync} {consistency}: {kills} kills, invariants held");
            total += kills;
        }
    }
    eprintln!("process-kill: {total} kills, all invariants held");
    assert!(total >= 20);
}

/// sled buffers appends in its own memory until its flusher (N ms) or a
/// flush writes them, so a killed process may lose a tail of acknowledged
/// appends unless every append is flushed (docs/guarantees.md). For those
/// modes the suite checks the weaker promise: what survives is an exact
/// prefix, batches whole, cursors as promised.
fn keeps_acknowledged_on_kill(kind: StoreKind, fsync: FsyncSchedule) -> bool {
    kind != StoreKind::Sled || fsync == FsyncSchedule::SyncEach
}
