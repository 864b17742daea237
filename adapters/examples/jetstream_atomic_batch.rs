//! Is nats-server's atomic batch publish (2.12+) faster than the one message
//! per batch that the JetStream stores publish?
//!
//! For each replica count (1, 3) and schedule (sync-each, the default), it
//! starts the store's nodes, creates a stream with `allow_atomic`, and
//! times `ROUNDS` batches of `BATCH` entries of 1 KiB published two ways:
//!
//! * **one message**: the whole batch in one publish, acked once (what
//!   `batch_append` does);
//! * **atomic batch**: one message per entry with `Nats-Batch-Id` and
//!   `Nats-Batch-Sequence` headers, the first sent as a request (flow
//!   control, as the client libraries do), the rest published, and the last
//!   with `Nats-Batch-Commit: 1` as a request whose reply is the ack.
//!
//! ```sh
//! cargo run --release -p walrus-adapters --features jetstream --example jetstream_atomic_batch
//! ```
//! (`BATCH=100 ROUNDS=200` by default; `make nats-server` first.)

#[cfg(feature = "jetstream")]
mod bench {
    use std::time::{Duration, Instant};

    use async_nats::jetstream::{self, stream};
    use async_nats::HeaderMap;
    use bytes::Bytes;
    use walrus_adapters::jetstream::Cluster;
    use walrus_wal::FsyncSchedule;

    fn env(name: &str, default: usize) -> usize {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    /// Publishes one batch as a single message; returns when it is acked.
    async fn one_message(js: &jetstream::Context, entries: &[Bytes]) {
        let mut body = Vec::with_capacity(entries.iter().map(|e| e.len() + 4).sum());
        for entry in entries {
            body.extend_from_slice(&(entry.len() as u32).to_le_bytes());
            body.extend_from_slice(entry);
        }
        js.publish("b.one", body.into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }

    /// Publishes one batch with the atomic batch headers; returns at the
    /// commit's ack, after checking it is not an error.
    async fn atomic_batch(client: &async_nats::Client, id: &str, entries: &[Bytes]) {
        let n = entries.len();
        for (i, entry) in entries.iter().enumerate() {
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Batch-Id", id);
            headers.insert("Nats-Batch-Sequence", (i + 1).to_string().as_str());
            let last = i + 1 == n;
            if last {
                headers.insert("Nats-Batch-Commit", "1");
            }
            if i == 0 || last {
                let reply = client
                    .request_with_headers("b.atomic", headers, entry.clone())
                    .await
                    .expect("request");
                let text = String::from_utf8_lossy(&reply.payload);
                assert!(!text.contains("\"error\""), "batch {id}: {text}");
            } else {
                client
                    .publish_with_headers("b.atomic", headers, entry.clone())
                    .await
                    .expect("publish");
            }
        }
    }

    async fn measure(replicas: usize, fsync: FsyncSchedule, batch: usize, rounds: usize) {
        let dir = tempfile::tempdir().expect("tempdir");
        let cluster = Cluster::start(dir.path(), replicas, fsync).expect("nodes start");
        let client = async_nats::connect(cluster.urls()).await.expect("connect");
        let js = jetstream::new(client.clone());
        // A fresh R3 cluster may time out the first stream create while its
        // meta group settles; retry for a while, as the store does.
        let config = stream::Config {
            name: "B".into(),
            subjects: vec!["b.>".into()],
            num_replicas: replicas,
            allow_atomic_publish: true,
            max_message_size: 8 << 20,
            ..Default::default()
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Err(e) = js.get_or_create_stream(config.clone()).await {
            assert!(Instant::now() < deadline, "creating the stream: {e}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let entries: Vec<Bytes> = (0..batch)
            .map(|i| Bytes::from(vec![(i % 251) as u8; 1024]))
            .collect();
        // Alternate the two ways in rounds of ten batches, so a noisy moment of
        // the shared host costs both alike.
        let (mut one, mut atomic) = (Duration::ZERO, Duration::ZERO);
        for round in 0..rounds / 10 {
            let started = Instant::now();
            for _ in 0..10 {
                one_message(&js, &entries).await;
            }
            one += started.elapsed();
            let started = Instant::now();
            for k in 0..10 {
                atomic_batch(&client, &format!("r{round}k{k}"), &entries).await;
            }
            atomic += started.elapsed();
        }
        let done = (rounds / 10 * 10) as f64;
        let per = |d: Duration| done / d.as_secs_f64();
        println!(
            "R{replicas} {fsync:>9} batch {batch}: one message {:>7.1} batches/s, atomic batch {:>7.1} batches/s, atomic / one = {:.2}x",
            per(one),
            per(atomic),
            per(atomic) / per(one)
        );
        drop(cluster);
    }

    pub fn run() {
        let batch = env("BATCH", 100);
        let rounds = env("ROUNDS", 200);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        for replicas in [1, 3] {
            for fsync in [FsyncSchedule::SyncEach, FsyncSchedule::NoFsync] {
                runtime.block_on(measure(replicas, fsync, batch, rounds));
            }
        }
    }
}

fn main() {
    #[cfg(feature = "jetstream")]
    bench::run();
    #[cfg(not(feature = "jetstream"))]
    eprintln!("jetstream_atomic_batch needs --features jetstream");
}
