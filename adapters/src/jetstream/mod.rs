//! The NATS JetStream store (`jetstream-r1`, `jetstream-r3`): a `LogStore`
//! on a real Raft-replicated stream server.
//!
//! # What it owns
//!
//! * its nodes ([`cluster`]): `open` starts them (one for R1, three on
//!   loopback for R3) with their data under the store's directory, so every
//!   suite that opens a store by directory works unchanged; dropping the
//!   store parks them, and a reopen of the same directory in the same
//!   process picks them up again (a client restart: a cluster restart costs
//!   a 4-9 s Raft election, which the conformance suite's many reopens
//!   cannot afford). A reopen from a new process, or after
//!   [`JetStreamStore::close_and_stop`], restarts the nodes on the same
//!   data. At most [`MAX_PARKED`] clusters are parked per process, and none
//!   outlives the process (see [`cluster`]). One set of nodes runs on a
//!   directory at a time, across processes ([`dir_lock`]): a second open
//!   while a store is open elsewhere fails with `Locked`, and an open from
//!   another process stops the nodes parked here and then starts its own.
//! * two streams: `WALRUS` holds every topic's records on `w.<topic>` (and
//!   the parts of large records on `p.<topic>`); `WALRUS_CURSORS` keeps one
//!   message per topic on `c.<topic>`, the topic's cursor. Both have the
//!   store's replica count. Subjects and records: [`codec`].
//! * a cursor per topic, guarded by one async mutex per topic: the stream
//!   sequence of the record being read, the index inside it, and the topic
//!   position (the entry `seq`) at that point.
//!
//! Reads go to the stream leader (`STREAM.MSG.GET` with `next_by_subj`),
//! never to a follower's direct get, so a read sees every acknowledged
//! append. Publishes carry a `Nats-Msg-Id`, so a publish retried after a
//! timeout or a leader change (for up to [`PUBLISH_DEADLINE`]) is stored once.

pub(crate) mod cluster;
mod codec;
pub mod dir_lock;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use async_nats::HeaderMap;
use bytes::Bytes;
use walrus_wal::store::{validate_batch_len, validate_topic};
use walrus_wal::{
    Entry, Error, FsyncSchedule, LogStore, ReadConsistency, Result, StoreConfig, MAX_BATCH_ENTRIES,
};

pub use cluster::{check_server_installed, nats_server_path, Cluster, Node, INSTALL_TARGET};
use codec::{decode_batch, encode_batch, escape_topic, parse_parts, ENC_HEADER, PARTS_HEADER};

/// Largest message payload the store publishes; larger records are cut into
/// parts (the nodes allow 8 MiB, leaving room for headers).
const PART_BYTES: usize = 4 * 1024 * 1024;
/// How long a publish or read is retried through timeouts and leader
/// elections before it fails.
pub const PUBLISH_DEADLINE: Duration = Duration::from_secs(30);
/// Most clusters kept running for a reopen in one process.
pub const MAX_PARKED: usize = 2;
const DATA_STREAM: &str = "WALRUS";
const CURSOR_STREAM: &str = "WALRUS_CURSORS";

fn backend(message: impl Into<String>) -> Error {
    Error::backend("jetstream", message.into())
}

/// A cursor: where the next consuming read of a topic starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cursor {
    /// Stream sequence to search the topic's next record from (the record
    /// being read, when `idx > 0`).
    seq: u64,
    /// Entries of that record already consumed.
    idx: u32,
    /// Topic position of the next entry.
    pos: u64,
}

impl Cursor {
    const START: Cursor = Cursor {
        seq: 1,
        idx: 0,
        pos: 0,
    };

    fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(20);
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.idx.to_le_bytes());
        out.extend_from_slice(&self.pos.to_le_bytes());
        Bytes::from(out)
    }

    fn decode(bytes: &[u8]) -> Option<Cursor> {
        if bytes.len() != 20 {
            return None;
        }
        Some(Cursor {
            seq: u64::from_le_bytes(bytes[0..8].try_into().ok()?),
            idx: u32::from_le_bytes(bytes[8..12].try_into().ok()?),
            pos: u64::from_le_bytes(bytes[12..20].try_into().ok()?),
        })
    }
}

/// A decoded record, kept so a batch is fetched once however it is read.
struct Record {
    /// The sequence searched from and the one found: no record of the topic
    /// lies between them, so either names this record.
    searched_from: u64,
    seq: u64,
    entries: Arc<Vec<Bytes>>,
}

#[derive(Default)]
struct TopicState {
    cursor: Option<Cursor>,
    /// Consuming reads (entries) since the cursor was last persisted.
    unpersisted: u64,
    record: Option<Record>,
}

/// The store's client side: async, on the caller's tokio runtime.
/// [`JetStreamStore`] drives it from blocking calls; `walrus-async` uses it
/// natively.
pub struct JetStreamClient {
    name: &'static str,
    js: jetstream::Context,
    data: stream::Stream,
    cursors: stream::Stream,
    config: StoreConfig,
    topics: Mutex<HashMap<String, Arc<tokio::sync::Mutex<TopicState>>>>,
    msg_id_prefix: String,
    msg_ids: AtomicU64,
    /// The store directories of the nodes, when they run on this machine
    /// (what `sync()` fsyncs); empty for nodes elsewhere.
    node_dirs: Vec<PathBuf>,
}

fn is_retryable_publish(kind: &jetstream::context::PublishErrorKind) -> bool {
    use jetstream::context::PublishErrorKind as K;
    !matches!(
        kind,
        K::MaxPayloadExceeded | K::WrongLastMessageId | K::WrongLastSequence
    )
}

impl JetStreamClient {
    /// Connects to `urls` (any node; the client fails over between them)
    /// and makes sure both streams exist with `replicas` replicas.
    /// `node_dirs` are the nodes' store directories if they are on this
    /// machine (`sync()` needs them outside sync-each), else empty.
    pub async fn connect(
        name: &'static str,
        urls: Vec<String>,
        replicas: usize,
        config: StoreConfig,
        node_dirs: Vec<PathBuf>,
    ) -> Result<JetStreamClient> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connect(urls.clone())
            .await
            .map_err(|e| backend(format!("connecting to {urls:?}: {e}")))?;
        let mut js = jetstream::new(client);
        js.set_timeout(Duration::from_secs(5));
        let data_config = stream::Config {
            name: DATA_STREAM.into(),
            subjects: vec!["w.>".into(), "p.>".into()],
            num_replicas: replicas,
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(60),
            ..Default::default()
        };
        let cursor_config = stream::Config {
            name: CURSOR_STREAM.into(),
            subjects: vec!["c.>".into()],
            num_replicas: replicas,
            storage: stream::StorageType::File,
            max_messages_per_subject: 1,
            duplicate_window: Duration::from_secs(60),
            ..Default::default()
        };
        let deadline = Instant::now() + cluster::START_TIMEOUT;
        let (data, cursors) = loop {
            let made = async {
                let data = js.get_or_create_stream(data_config.clone()).await?;
                let cursors = js.get_or_create_stream(cursor_config.clone()).await?;
                Ok::<_, async_nats::Error>((data, cursors))
            }
            .await;
            match made {
                Ok(streams) => break streams,
                Err(e) if Instant::now() > deadline => {
                    return Err(backend(format!("creating the streams: {e}")));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        static CLIENTS: AtomicU64 = AtomicU64::new(0);
        let msg_id_prefix = format!(
            "{}-{}-{}",
            std::process::id(),
            CLIENTS.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        Ok(JetStreamClient {
            name,
            js,
            data,
            cursors,
            config,
            topics: Mutex::new(HashMap::new()),
            msg_id_prefix,
            msg_ids: AtomicU64::new(0),
            node_dirs,
        })
    }

    /// `jetstream-r1` or `jetstream-r3`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Publishes and waits for the stream's ack, retrying (same message id,
    /// so at most one copy is stored) through timeouts and leader changes.
    /// Returns the stream sequence.
    async fn publish(
        &self,
        subject: String,
        mut headers: HeaderMap,
        payload: Bytes,
    ) -> Result<u64> {
        let id = format!(
            "{}-{}",
            self.msg_id_prefix,
            self.msg_ids.fetch_add(1, Ordering::Relaxed)
        );
        headers.insert("Nats-Msg-Id", id.as_str());
        let deadline = Instant::now() + PUBLISH_DEADLINE;
        loop {
            let attempt = match self
                .js
                .publish_with_headers(subject.clone(), headers.clone(), payload.clone())
                .await
            {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            match attempt {
                Ok(ack) => return Ok(ack.sequence),
                Err(e) if !is_retryable_publish(&e.kind()) || Instant::now() > deadline => {
                    return Err(backend(format!("publishing to {subject}: {e}")));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// One leader-served get: by sequence, or the first message of
    /// `next_by` at or after `seq`, or the last of `last_by`. `None` when
    /// there is no such message.
    async fn get(
        &self,
        stream: &stream::Stream,
        seq: Option<u64>,
        next_by: Option<&str>,
        last_by: Option<&str>,
    ) -> Result<Option<jetstream::message::StreamMessage>> {
        use jetstream::stream::RawMessageErrorKind as K;
        let deadline = Instant::now() + PUBLISH_DEADLINE;
        loop {
            let mut get = stream.raw_message_builder();
            if let Some(seq) = seq {
                get = get.sequence(seq);
            }
            if let Some(subject) = next_by {
                get = get.next_by_subject(subject);
            }
            if let Some(subject) = last_by {
                get = get.last_by_subject(subject);
            }
            match get.send().await {
                Ok(message) => return Ok(Some(message)),
                Err(e) if e.kind() == K::NoMessageFound => return Ok(None),
                Err(e) if Instant::now() > deadline => {
                    return Err(backend(format!("reading the stream: {e}")));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    fn topic_state(&self, topic: &str) -> Arc<tokio::sync::Mutex<TopicState>> {
        let mut topics = self.topics.lock().expect("topic map lock");
        topics.entry(topic.to_string()).or_default().clone()
    }

    /// Publishes one record (cut into parts if it is large).
    async fn publish_record(&self, token: &str, payload: Vec<u8>, batch: bool) -> Result<()> {
        let mut headers = HeaderMap::new();
        if batch {
            headers.insert(ENC_HEADER, "b");
        }
        if payload.len() <= PART_BYTES {
            self.publish(format!("w.{token}"), headers, Bytes::from(payload))
                .await?;
            return Ok(());
        }
        let payload = Bytes::from(payload);
        let mut parts = Vec::new();
        for start in (0..payload.len()).step_by(PART_BYTES) {
            let end = (start + PART_BYTES).min(payload.len());
            let seq = self
                .publish(
                    format!("p.{token}"),
                    HeaderMap::new(),
                    payload.slice(start..end),
                )
                .await?;
            parts.push(seq.to_string());
        }
        headers.insert(PARTS_HEADER, parts.join(","));
        self.publish(format!("w.{token}"), headers, Bytes::new())
            .await?;
        Ok(())
    }

    /// See [`LogStore::append`].
    pub async fn append(&self, topic: &str, payload: &[u8]) -> Result<()> {
        validate_topic(topic)?;
        check_entry_len(payload.len())?;
        self.publish_record(&escape_topic(topic), payload.to_vec(), false)
            .await
    }

    /// See [`LogStore::batch_append`]: the whole batch is one record.
    pub async fn batch_append(&self, topic: &str, payloads: &[&[u8]]) -> Result<()> {
        validate_topic(topic)?;
        if payloads.is_empty() {
            return Ok(());
        }
        validate_batch_len(payloads.len())?;
        for p in payloads {
            check_entry_len(p.len())?;
        }
        self.publish_record(&escape_topic(topic), encode_batch(payloads), true)
            .await
    }

    /// Fetches and decodes the topic's first record at or after `from`.
    async fn fetch_record(&self, token: &str, from: u64) -> Result<Option<Record>> {
        let subject = format!("w.{token}");
        let Some(message) = self
            .get(&self.data, Some(from), Some(&subject), None)
            .await?
        else {
            return Ok(None);
        };
        let mut payload = message.payload.clone();
        if let Some(parts) = message.headers.get(PARTS_HEADER) {
            let seqs = parse_parts(parts.as_str()).ok_or_else(|| {
                backend(format!("record {} has a bad parts list", message.sequence))
            })?;
            let mut whole = Vec::new();
            for seq in seqs {
                let part = self
                    .get(&self.data, Some(seq), None, None)
                    .await?
                    .ok_or_else(|| {
                        backend(format!("part {seq} of record {} is gone", message.sequence))
                    })?;
                whole.extend_from_slice(&part.payload);
            }
            payload = Bytes::from(whole);
        }
        let entries = if message
            .headers
            .get(ENC_HEADER)
            .is_some_and(|v| v.as_str() == "b")
        {
            decode_batch(&payload).ok_or_else(|| Error::Corruption {
                file: PathBuf::from(format!("{DATA_STREAM}/{subject}")),
                offset: message.sequence,
                reason: "batch record does not decode".into(),
            })?
        } else {
            vec![payload]
        };
        Ok(Some(Record {
            searched_from: from,
            seq: message.sequence,
            entries: Arc::new(entries),
        }))
    }

    async fn load_cursor(&self, token: &str) -> Result<Cursor> {
        let subject = format!("c.{token}");
        match self.get(&self.cursors, None, None, Some(&subject)).await? {
            None => Ok(Cursor::START),
            Some(m) => Cursor::decode(&m.payload).ok_or_else(|| Error::Corruption {
                file: PathBuf::from(format!("{CURSOR_STREAM}/{subject}")),
                offset: m.sequence,
                reason: format!("cursor of {} bytes, expected 20", m.payload.len()),
            }),
        }
    }

    async fn persist_cursor(&self, token: &str, cursor: Cursor) -> Result<()> {
        self.publish(format!("c.{token}"), HeaderMap::new(), cursor.encode())
            .await
            .map(drop)
    }

    /// Reads from the cursor: at most `max_entries`, within `max_bytes`
    /// (but at least one entry), consuming them if `checkpoint`.
    async fn read(
        &self,
        topic: &str,
        max_bytes: usize,
        max_entries: usize,
        checkpoint: bool,
    ) -> Result<Vec<Entry>> {
        validate_topic(topic)?;
        let token = escape_topic(topic);
        let state = self.topic_state(topic);
        let mut state = state.lock().await;
        let mut cursor = match state.cursor {
            Some(c) => c,
            None => {
                let c = self.load_cursor(&token).await?;
                state.cursor = Some(c);
                c
            }
        };
        let mut out = Vec::new();
        let mut bytes = 0usize;
        'records: while out.len() < max_entries {
            let cached = state
                .record
                .as_ref()
                .is_some_and(|r| r.seq == cursor.seq || r.searched_from == cursor.seq);
            if !cached {
                match self.fetch_record(&token, cursor.seq).await? {
                    Some(record) => state.record = Some(record),
                    None => break,
                }
            }
            let record = state.record.as_ref().expect("just fetched");
            cursor.seq = record.seq;
            while (cursor.idx as usize) < record.entries.len() {
                let data = &record.entries[cursor.idx as usize];
                if !out.is_empty() && (bytes + data.len() > max_bytes || out.len() >= max_entries) {
                    break 'records;
                }
                bytes += data.len();
                out.push(Entry {
                    seq: cursor.pos,
                    data: data.clone(),
                });
                cursor.idx += 1;
                cursor.pos += 1;
            }
            cursor = Cursor {
                seq: record.seq + 1,
                idx: 0,
                pos: cursor.pos,
            };
        }
        if checkpoint && !out.is_empty() {
            let unpersisted = state.unpersisted + out.len() as u64;
            let persist = match self.config.consistency {
                ReadConsistency::StrictlyAtOnce => true,
                ReadConsistency::AtLeastOnce { persist_every } => {
                    unpersisted >= u64::from(persist_every)
                }
            };
            // The cursor moves only once its persist (if due) is acked: a
            // read that fails or is cancelled (async) before leaves the
            // entries to the next read.
            if persist {
                self.persist_cursor(&token, cursor).await?;
            }
            state.cursor = Some(cursor);
            state.unpersisted = if persist { 0 } else { unpersisted };
        }
        Ok(out)
    }

    /// See [`LogStore::read_next`].
    pub async fn read_next(&self, topic: &str, checkpoint: bool) -> Result<Option<Entry>> {
        Ok(self
            .read(topic, usize::MAX, 1, checkpoint)
            .await?
            .into_iter()
            .next())
    }

    /// See [`LogStore::batch_read`].
    pub async fn batch_read(
        &self,
        topic: &str,
        max_bytes: usize,
        checkpoint: bool,
    ) -> Result<Vec<Entry>> {
        self.read(topic, max_bytes, MAX_BATCH_ENTRIES, checkpoint)
            .await
    }

    /// Persists every cursor with unpersisted consuming reads.
    pub async fn persist_cursors(&self) -> Result<()> {
        let topics: Vec<(String, Arc<tokio::sync::Mutex<TopicState>>)> = {
            let map = self.topics.lock().expect("topic map lock");
            map.iter().map(|(t, s)| (t.clone(), s.clone())).collect()
        };
        for (topic, state) in topics {
            let mut state = state.lock().await;
            if let (Some(cursor), true) = (state.cursor, state.unpersisted > 0) {
                self.persist_cursor(&escape_topic(&topic), cursor).await?;
                state.unpersisted = 0;
            }
        }
        Ok(())
    }

    /// See [`LogStore::sync`]. Under `sync-each` every acknowledged publish
    /// was fsynced by a quorum before its ack (`sync_interval: always` on
    /// every node), so there is nothing left to do. Under the other
    /// schedules nats-server offers no call that forces an fsync, but an
    /// acknowledged publish has been written (to the Raft log of a quorum,
    /// or to the one node's block file) before its ack: fsyncing every file
    /// of every node from here makes it durable. Nodes that are not on this
    /// machine cannot be fsynced, so then this fails with the typed error
    /// of [`sync_unsupported`] rather than claim a durability it cannot give.
    pub async fn sync(&self) -> Result<()> {
        self.persist_cursors().await?;
        match self.config.fsync {
            FsyncSchedule::SyncEach => Ok(()),
            other if self.node_dirs.is_empty() => Err(sync_unsupported(other)),
            _ => {
                let dirs = self.node_dirs.clone();
                tokio::task::spawn_blocking(move || dirs.iter().try_for_each(|d| fsync_tree(d)))
                    .await
                    .map_err(|e| backend(format!("fsync task: {e}")))?
            }
        }
    }

    /// The server name of the `WALRUS` stream's current leader.
    pub async fn stream_leader(&self) -> Result<Option<String>> {
        let info = self
            .data
            .get_info()
            .await
            .map_err(|e| backend(format!("stream info: {e}")))?;
        Ok(info.cluster.and_then(|c| c.leader))
    }
}

/// The typed error of `sync()` under a schedule nats-server cannot force.
pub fn sync_unsupported(fsync: FsyncSchedule) -> Error {
    backend(format!(
        "sync() cannot make acknowledged publishes durable under {fsync}: nats-server has no \
         call that forces an fsync, and with sync_interval {} it fsyncs on its own schedule \
         only; open the store with sync-each (sync_interval: always) for durable acks",
        match fsync {
            FsyncSchedule::Milliseconds(ms) => format!("{ms}ms"),
            _ => "at its 2-minute default".into(),
        }
    ))
}

/// fsyncs every file and directory below `dir`. Files the server removes
/// meanwhile (compacted blocks) are skipped: what they held is elsewhere.
fn fsync_tree(dir: &Path) -> Result<()> {
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if gone(&e) => return Ok(()),
        Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => fsync_tree(&path)?,
            Ok(t) if t.is_file() => match std::fs::File::open(&path).and_then(|f| f.sync_all()) {
                Ok(()) => {}
                Err(e) if gone(&e) => {}
                Err(e) => return Err(Error::io(format!("fsyncing {}", path.display()), e)),
            },
            _ => {}
        }
    }
    match std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        Ok(()) => Ok(()),
        Err(e) if gone(&e) => Ok(()),
        Err(e) => Err(Error::io(format!("fsyncing {}", dir.display()), e)),
    }
}

fn check_entry_len(len: usize) -> Result<()> {
    // The batch encoding stores lengths as u32.
    if len > u32::MAX as usize {
        return Err(Error::EntryTooLarge {
            size: len as u64,
            max: u64::from(u32::MAX),
        });
    }
    Ok(())
}

struct Parked {
    dir: PathBuf,
    replicas: usize,
    fsync: FsyncSchedule,
    cluster: Arc<Mutex<Cluster>>,
}

/// The clusters parked in this process, and whether the thread that hands
/// them to other processes ([`watch_release_requests`]) is running.
struct Parking {
    entries: Vec<Parked>,
    watching: bool,
}

static PARKING: Mutex<Parking> = Mutex::new(Parking {
    entries: Vec::new(),
    watching: false,
});

/// How often parked clusters look for another process asking for them.
const RELEASE_POLL: Duration = Duration::from_millis(20);

fn parking() -> std::sync::MutexGuard<'static, Parking> {
    PARKING.lock().unwrap_or_else(|p| p.into_inner())
}

/// The running cluster parked for `dir` with these settings, if any; drops
/// (stops) parked clusters of vanished directories, those of `dir` with
/// other settings, and those whose nodes died.
fn unpark(dir: &Path, replicas: usize, fsync: FsyncSchedule) -> Option<Arc<Mutex<Cluster>>> {
    let mut parking = parking();
    let mut found = None;
    let mut stopped = Vec::new();
    let mut kept = Vec::new();
    for entry in parking.entries.drain(..) {
        if entry.dir == dir && entry.replicas == replicas && entry.fsync == fsync {
            found = Some(entry.cluster);
        } else if entry.dir == dir || !entry.dir.exists() {
            stopped.push(entry);
        } else {
            kept.push(entry);
        }
    }
    parking.entries = kept;
    drop(parking);
    drop(stopped); // stops their nodes, outside the lock
    let cluster = found?;
    let usable = {
        let mut nodes = cluster.lock().unwrap_or_else(|p| p.into_inner());
        nodes.all_running() && dir_lock::set_owner(dir, dir_lock::Use::Live).is_ok()
    };
    usable.then_some(cluster)
}

fn park(entry: Parked) {
    // The owner file says "parked" before another process can see the
    // cluster as such; a failed write only makes that process wait.
    if let Err(e) = dir_lock::set_owner(&entry.dir, dir_lock::Use::Parked) {
        tracing::warn!("jetstream: {e}");
    }
    let mut parking = parking();
    parking.entries.push(entry);
    let excess = parking.entries.len().saturating_sub(MAX_PARKED);
    let stopped: Vec<Parked> = parking.entries.drain(..excess).collect();
    if !parking.watching {
        let spawned = std::thread::Builder::new()
            .name("jetstream-parked".into())
            .spawn(watch_release_requests);
        parking.watching = spawned.is_ok();
    }
    drop(parking);
    drop(stopped);
}

/// Stops every parked cluster that another process asks for (see
/// [`dir_lock`]); ends when nothing is parked.
fn watch_release_requests() {
    loop {
        std::thread::sleep(RELEASE_POLL);
        let mut parking = parking();
        if parking.entries.is_empty() {
            parking.watching = false;
            return;
        }
        let (released, kept): (Vec<Parked>, Vec<Parked>) = parking
            .entries
            .drain(..)
            .partition(|entry| dir_lock::release_requested(&entry.dir));
        parking.entries = kept;
        drop(parking);
        for entry in &released {
            tracing::info!(
                "jetstream: stopping the nodes parked for {}: another process opens it",
                entry.dir.display()
            );
        }
        drop(released); // stops the nodes, which frees the directory's lock
    }
}

/// A JetStream store with a blocking API, running its own nodes.
pub struct JetStreamStore {
    client: Option<Arc<JetStreamClient>>,
    runtime: Option<tokio::runtime::Runtime>,
    cluster: Option<Arc<Mutex<Cluster>>>,
    dir: PathBuf,
    replicas: usize,
    fsync: FsyncSchedule,
}

/// The store name for a replica count.
pub fn store_name(replicas: usize) -> &'static str {
    if replicas == 1 {
        "jetstream-r1"
    } else {
        "jetstream-r3"
    }
}

/// Starts (or picks up) the nodes for `dir`. The cluster comes back with the
/// URLs to connect to.
pub fn nodes_for(
    dir: &Path,
    replicas: usize,
    fsync: FsyncSchedule,
) -> Result<(Arc<Mutex<Cluster>>, Vec<String>)> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let dir = dir
        .canonicalize()
        .map_err(|e| Error::io(format!("resolving {}", dir.display()), e))?;
    let cluster = match unpark(&dir, replicas, fsync) {
        Some(cluster) => cluster,
        None => Arc::new(Mutex::new(Cluster::start(&dir, replicas, fsync)?)),
    };
    let urls = cluster.lock().unwrap_or_else(|p| p.into_inner()).urls();
    Ok((cluster, urls))
}

/// The store directories of a cluster's nodes.
pub fn node_store_dirs(cluster: &Mutex<Cluster>) -> Vec<PathBuf> {
    let cluster = cluster.lock().unwrap_or_else(|p| p.into_inner());
    cluster.nodes().iter().map(Node::store_dir).collect()
}

/// Parks a cluster for a later reopen of `dir` in this process.
pub fn park_nodes(dir: &Path, replicas: usize, fsync: FsyncSchedule, cluster: Arc<Mutex<Cluster>>) {
    if let Ok(dir) = dir.canonicalize() {
        park(Parked {
            dir,
            replicas,
            fsync,
            cluster,
        });
    }
}

/// The nodes of a store in `dir`, started as [`open_store`](crate::open_store)
/// starts them (same `LOGSTORE` marker, data under `dir/<store name>`), for
/// a client that connects on its own runtime (`walrus-async`). Dropping it
/// parks the nodes as dropping a [`JetStreamStore`] does.
pub struct LocalNodes {
    cluster: Option<Arc<Mutex<Cluster>>>,
    store_dir: PathBuf,
    replicas: usize,
    fsync: FsyncSchedule,
    /// Client URLs of the nodes.
    pub urls: Vec<String>,
    /// The nodes' store directories, for [`JetStreamClient::connect`].
    pub node_dirs: Vec<PathBuf>,
}

impl LocalNodes {
    /// Starts (or picks up) the nodes; blocks until JetStream is ready.
    pub fn start(dir: &Path, replicas: usize, fsync: FsyncSchedule) -> Result<LocalNodes> {
        check_server_installed()?;
        let name = store_name(replicas);
        crate::marker::claim_dir(dir, name)?;
        let store_dir = dir.join(name);
        let (cluster, urls) = nodes_for(&store_dir, replicas, fsync)?;
        let node_dirs = node_store_dirs(&cluster);
        Ok(LocalNodes {
            cluster: Some(cluster),
            store_dir,
            replicas,
            fsync,
            urls,
            node_dirs,
        })
    }
}

impl Drop for LocalNodes {
    fn drop(&mut self) {
        if let Some(cluster) = self.cluster.take() {
            park_nodes(&self.store_dir, self.replicas, self.fsync, cluster);
        }
    }
}

impl JetStreamStore {
    /// Opens the store in `dir` with `replicas` (1 or 3) replicas, starting
    /// its nodes there unless this process has them running already.
    pub fn open(dir: &Path, replicas: usize, config: StoreConfig) -> Result<JetStreamStore> {
        if replicas != 1 && replicas != 3 {
            return Err(Error::InvalidInput(format!(
                "jetstream stores have 1 or 3 replicas, not {replicas}"
            )));
        }
        check_server_installed()?;
        let (cluster, urls) = nodes_for(dir, replicas, config.fsync)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("jetstream-client")
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the NATS client's runtime", e))?;
        let client = runtime.block_on(JetStreamClient::connect(
            store_name(replicas),
            urls,
            replicas,
            config,
            node_store_dirs(&cluster),
        ))?;
        Ok(JetStreamStore {
            client: Some(Arc::new(client)),
            runtime: Some(runtime),
            cluster: Some(cluster),
            dir: dir.to_path_buf(),
            replicas,
            fsync: config.fsync,
        })
    }

    fn client(&self) -> &JetStreamClient {
        self.client.as_ref().expect("open until dropped")
    }

    fn block_on<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.runtime
            .as_ref()
            .expect("open until dropped")
            .block_on(f)
    }

    /// Runs `f` on the store's nodes (the kill and damage suites stop,
    /// kill and restart nodes through this).
    pub fn with_cluster<T>(&self, f: impl FnOnce(&mut Cluster) -> T) -> T {
        let cluster = self.cluster.as_ref().expect("open until dropped");
        let mut cluster = cluster.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut cluster)
    }

    /// The server name of the data stream's leader.
    pub fn stream_leader(&self) -> Result<Option<String>> {
        self.block_on(self.client().stream_leader())
    }

    /// Closes the store and stops its nodes instead of parking them, so the
    /// next open restarts them on their data.
    pub fn close_and_stop(mut self) {
        self.close();
        self.cluster.take();
    }

    fn close(&mut self) {
        if let (Some(client), Some(runtime)) = (self.client.take(), self.runtime.as_ref()) {
            // Best effort: a cursor not persisted here is re-read, within
            // the AtLeastOnce promise. On a thread of its own, so a drop
            // inside another tokio runtime does not nest runtimes.
            let handle = runtime.handle().clone();
            std::thread::scope(|s| {
                let _ = s.spawn(|| handle.block_on(client.persist_cursors())).join();
            });
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for JetStreamStore {
    fn drop(&mut self) {
        self.close();
        if let Some(cluster) = self.cluster.take() {
            park_nodes(&self.dir, self.replicas, self.fsync, cluster);
        }
    }
}

impl LogStore for JetStreamStore {
    fn name(&self) -> &str {
        self.client().name()
    }

    fn append(&self, topic: &str, payload: &[u8]) -> Result<()> {
        self.block_on(self.client().append(topic, payload))
    }

    fn batch_append(&self, topic: &str, payloads: &[&[u8]]) -> Result<()> {
        self.block_on(self.client().batch_append(topic, payloads))
    }

    fn read_next(&self, topic: &str, checkpoint: bool) -> Result<Option<Entry>> {
        self.block_on(self.client().read_next(topic, checkpoint))
    }

    fn batch_read(&self, topic: &str, max_bytes: usize, checkpoint: bool) -> Result<Vec<Entry>> {
        self.block_on(self.client().batch_read(topic, max_bytes, checkpoint))
    }

    fn sync(&self) -> Result<()> {
        self.block_on(self.client().sync())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let c = Cursor {
            seq: 77,
            idx: 3,
            pos: 1 << 40,
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode(&[0; 19]), None);
    }

    #[test]
    fn sync_error_names_the_schedule_and_the_way_out() {
        let e = sync_unsupported(FsyncSchedule::Milliseconds(1000)).to_string();
        assert!(e.contains("1000ms") && e.contains("sync-each"), "{e}");
    }
}
