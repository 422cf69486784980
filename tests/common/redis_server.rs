//! Redis for tests: the shared server at `REDIS_URL` (with a random key
//! prefix per test), and private `redis-server` processes (single node, a
//! master with replicas, a 3-master cluster, or 3 masters with one replica
//! each) on free loopback ports, always stopped by a Drop guard.
//!
//! Rules: when Redis (or the `redis-server` binary) is missing, a test goes
//! through [`super::skip`]: a failure under CI, a visible `SKIPPED` line
//! otherwise.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Weak},
    time::{Duration, Instant},
};

use rand::RngExt;
use tower_otp::store::RedisStore;

/// The shared Redis of the test run, read at run time.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned())
}

pub use super::skip::skip as unavailable;

/// A fresh random key prefix, so tests sharing one Redis never collide.
pub fn random_prefix() -> String {
    format!("otp-test:{:016x}:", rand::rng().random::<u64>())
}

/// A random email address (so digests differ between tests and runs).
pub fn random_email() -> String {
    format!("user{:012x}@example.com", rand::rng().random::<u64>() >> 16)
}

/// A raw connection to a single Redis at `url`, for inspecting keys.
pub async fn raw_connection(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection to redis")
}

async fn ping(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let attempt = async {
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Some(_))
    )
}

/// The shared Redis URL if it answers `PING`; `None` (skip) or a panic (CI)
/// otherwise.
pub async fn shared_redis() -> Option<String> {
    let url = redis_url();
    if ping(&url).await {
        Some(url)
    } else {
        unavailable(&format!("Redis at REDIS_URL={url} is unreachable"))
    }
}

/// A store on the shared Redis with a random prefix.
pub async fn shared_store(timeout: Duration) -> Option<RedisStore> {
    let url = shared_redis().await?;
    Some(
        RedisStore::builder(url)
            .prefix(random_prefix())
            .timeout(timeout)
            .build()
            .expect("store"),
    )
}

/// Whether `redis-server` and `redis-cli` can be run.
pub fn binaries_available() -> Option<()> {
    for bin in ["redis-server", "redis-cli"] {
        let ok = Command::new(bin)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return unavailable(&format!("`{bin}` is not on PATH"));
        }
    }
    Some(())
}

/// A loopback port that was free a moment ago (bind port 0, read, release).
fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind port 0")
            .local_addr()
            .expect("local addr")
            .port();
        // Leave room below 65535 is not needed (the cluster bus port is
        // set explicitly), but avoid the ephemeral range's very top.
        if port < 65000 {
            return port;
        }
    }
}

/// A private `redis-server` process. Killed (and its directory removed) on
/// drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    bus_port: Option<u16>,
    /// `--cluster-node-timeout` in ms (cluster nodes only).
    node_timeout_ms: u32,
    /// `--replicaof 127.0.0.1 <port>` (plain replicas only).
    replica_of: Option<u16>,
    /// More `redis-server` arguments.
    extra: Vec<String>,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts a server on a free port (retrying on a port race).
    pub async fn start() -> Self {
        Self::start_with(None, None, &[]).await
    }

    /// Starts a server with more `redis-server` arguments.
    #[allow(dead_code)]
    pub async fn start_with_args(extra: &[&str]) -> Self {
        Self::start_with(None, None, extra).await
    }

    /// Starts a replica of `master` (`--replicaof`), and waits until its
    /// link to the master is up.
    pub async fn start_replica_of(master: &RedisServer) -> Self {
        let replica = Self::start_with(None, Some(master.port), &[]).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if replica
                .info("replication")
                .await
                .contains("master_link_status:up")
            {
                return replica;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the replica on port {} never synced", replica.port);
    }

    /// `INFO <section>` of this server.
    pub async fn info(&self, section: &str) -> String {
        let mut conn = raw_connection(&self.url()).await;
        redis::cmd("INFO")
            .arg(section)
            .query_async(&mut conn)
            .await
            .expect("INFO")
    }

    async fn start_with(
        cluster_node_timeout_ms: Option<u32>,
        replica_of: Option<u16>,
        extra: &[&str],
    ) -> Self {
        let mut last_error = String::new();
        for _ in 0..10 {
            let dir = std::env::temp_dir().join(format!(
                "tower-otp-redis-{:016x}",
                rand::rng().random::<u64>()
            ));
            std::fs::create_dir_all(&dir).expect("temp dir");
            // Dropped on failure: kills the child, removes the directory.
            let mut server = Self {
                child: None,
                port: free_port(),
                bus_port: cluster_node_timeout_ms.map(|_| free_port()),
                node_timeout_ms: cluster_node_timeout_ms.unwrap_or(0),
                replica_of,
                extra: extra.iter().map(|a| (*a).to_owned()).collect(),
                dir,
            };
            match server.spawn().await {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("could not start redis-server: {last_error}");
    }

    async fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = Command::new("redis-server");
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("no")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--daemonize")
            .arg("no")
            .arg("--loglevel")
            .arg("warning")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(bus) = self.bus_port {
            cmd.arg("--cluster-enabled")
                .arg("yes")
                .arg("--cluster-port")
                .arg(bus.to_string())
                .arg("--cluster-config-file")
                .arg(format!("nodes-{}.conf", self.port))
                .arg("--cluster-node-timeout")
                .arg(self.node_timeout_ms.to_string());
        }
        cmd.args(&self.extra);
        if let Some(master) = self.replica_of {
            cmd.arg("--replicaof")
                .arg("127.0.0.1")
                .arg(master.to_string());
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("spawn redis-server: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!("redis-server exited early: {status}"));
            }
            if ping(&self.url()).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err("redis-server did not answer PING within 10 s".to_owned())
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty: nothing is saved).
    pub async fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn().await {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => panic!("restart redis-server: {e}"),
                Err(_) => {
                    self.kill();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Freezes the process (SIGSTOP): connections stay open, nothing answers.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Resumes a frozen process (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("server is running").id();
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid} failed");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of private processes (3 masters, with or without one
/// replica each), created with `redis-cli --cluster create`. Every node is
/// killed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    replicas: usize,
}

impl RedisCluster {
    /// Starts three cluster-enabled nodes and joins them into a cluster
    /// (node timeout 2 s).
    pub async fn start() -> Self {
        Self::start_with(0, 2000, true).await
    }

    /// Starts six cluster-enabled nodes and joins them into 3 masters with
    /// one replica each (`--cluster-replicas 1`), node timeout 1500 ms: a
    /// killed master's replica is promoted about 2 s later. With
    /// `full_coverage` false (`cluster-require-full-coverage no`), the
    /// other masters keep serving their slots while one is down; with Redis's
    /// default (true) the whole cluster refuses queries (`CLUSTERDOWN`) from
    /// the moment the master is marked failed until its replica takes over.
    pub async fn start_with_replicas(full_coverage: bool) -> Self {
        Self::start_with(1, 1500, full_coverage).await
    }

    async fn start_with(replicas: usize, node_timeout_ms: u32, full_coverage: bool) -> Self {
        let coverage = if full_coverage { "yes" } else { "no" };
        let mut nodes = Vec::new();
        for _ in 0..3 * (1 + replicas) {
            nodes.push(
                RedisServer::start_with(
                    Some(node_timeout_ms),
                    None,
                    &["--cluster-require-full-coverage", coverage],
                )
                .await,
            );
        }
        let cluster = Self { nodes, replicas };
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &cluster.nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        let output = create
            .arg("--cluster-replicas")
            .arg(cluster.replicas.to_string())
            .arg("--cluster-yes")
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        cluster.wait_until_ok().await;
        cluster
    }

    async fn wait_until_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        'outer: while Instant::now() < deadline {
            for node in &self.nodes {
                let mut conn = raw_connection(&node.url()).await;
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut conn)
                    .await
                    .expect("CLUSTER INFO");
                let slots: Vec<redis::Value> = redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query_async(&mut conn)
                    .await
                    .expect("CLUSTER SLOTS");
                let nodes: String = redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async(&mut conn)
                    .await
                    .expect("CLUSTER NODES");
                let known_replicas = nodes.lines().filter(|l| l.contains("slave")).count();
                if !info.contains("cluster_state:ok")
                    || slots.len() != 3
                    || known_replicas != 3 * self.replicas
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue 'outer;
                }
                let myself = nodes.lines().find(|l| l.contains("myself")).unwrap_or("");
                if myself.contains("slave")
                    && !node
                        .info("replication")
                        .await
                        .contains("master_link_status:up")
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue 'outer;
                }
            }
            return;
        }
        panic!("the test cluster did not reach cluster_state:ok");
    }

    /// The seed URLs of all nodes.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The ports of the nodes still running.
    fn live_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.port)
    }

    /// `CLUSTER NODES` as a live node sees it.
    pub async fn cluster_nodes(&self) -> String {
        let port = self.live_ports().next().expect("a live node");
        let mut conn = raw_connection(&format!("redis://127.0.0.1:{port}")).await;
        redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut conn)
            .await
            .expect("CLUSTER NODES")
    }

    /// The slot of `key` (`CLUSTER KEYSLOT` on a live node).
    pub async fn key_slot(&self, key: &str) -> u16 {
        let port = self.live_ports().next().expect("a live node");
        let mut conn = raw_connection(&format!("redis://127.0.0.1:{port}")).await;
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("CLUSTER KEYSLOT")
    }

    /// The masters that own slots and are not marked failed, with their
    /// slot ranges, as a live node sees them: `(port, line)`.
    pub async fn masters(&self) -> Vec<(u16, String)> {
        self.cluster_nodes()
            .await
            .lines()
            .filter(|l| l.contains("master") && !l.contains("fail"))
            .filter(|l| l.split_whitespace().nth(8).is_some())
            .filter_map(|l| Some((node_port(l)?, l.to_owned())))
            .collect()
    }

    /// The port of the master owning `slot`, as a live node sees it.
    pub async fn master_of_slot(&self, slot: u16) -> Option<u16> {
        self.masters()
            .await
            .into_iter()
            .find(|(_, line)| owns_slot(line, slot))
            .map(|(port, _)| port)
    }

    /// The port of a replica of the master on `master_port`.
    pub async fn replica_of(&self, master_port: u16) -> Option<u16> {
        let nodes = self.cluster_nodes().await;
        let master_id = nodes
            .lines()
            .find(|l| node_port(l) == Some(master_port))?
            .split_whitespace()
            .next()?
            .to_owned();
        nodes
            .lines()
            .find(|l| l.split_whitespace().nth(3) == Some(master_id.as_str()))
            .and_then(node_port)
    }

    /// Kills the node on `port` (SIGKILL), as a crash would.
    pub fn kill_node(&mut self, port: u16) {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node on that port")
            .kill();
    }

    /// The node on `port`.
    pub fn node(&self, port: u16) -> &RedisServer {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .expect("a node on that port")
    }

    /// A raw cluster connection, for inspecting keys.
    pub async fn raw_connection(&self) -> redis::cluster_async::ClusterConnection {
        redis::cluster::ClusterClient::new(self.urls())
            .expect("cluster client")
            .get_async_connection()
            .await
            .expect("raw cluster connection")
    }

    /// The port of the master that holds `key`'s slot.
    pub async fn node_for_key(&self, key: &str) -> u16 {
        let mut conn = raw_connection(&self.nodes[0].url()).await;
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("CLUSTER KEYSLOT");
        for node in &self.nodes {
            let mut conn = raw_connection(&node.url()).await;
            let nodes: String = redis::cmd("CLUSTER")
                .arg("NODES")
                .query_async(&mut conn)
                .await
                .expect("CLUSTER NODES");
            let myself = nodes
                .lines()
                .find(|l| l.contains("myself"))
                .expect("myself line");
            if owns_slot(myself, slot) {
                return node.port;
            }
        }
        panic!("no node owns slot {slot}");
    }
}

/// The port of a `CLUSTER NODES` line (`<id> 127.0.0.1:<port>@<bus> ...`).
fn node_port(line: &str) -> Option<u16> {
    let address = line.split_whitespace().nth(1)?;
    address.split('@').next()?.rsplit(':').next()?.parse().ok()
}

/// Whether a `CLUSTER NODES` line lists `slot` among its ranges.
pub fn owns_slot(line: &str, slot: u16) -> bool {
    line.split_whitespace().skip(8).any(|range| {
        let mut parts = range.splitn(2, '-');
        let (Some(a), b) = (parts.next(), parts.next()) else {
            return false;
        };
        let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.unwrap_or(a).parse::<u16>()) else {
            return false;
        };
        (a..=b).contains(&slot)
    })
}

/// One cluster per test binary while any test holds it; stopped when the
/// last holder drops its handle (so no process outlives the tests).
pub async fn shared_cluster() -> Option<Arc<RedisCluster>> {
    static CURRENT: tokio::sync::Mutex<Weak<RedisCluster>> =
        tokio::sync::Mutex::const_new(Weak::new());
    binaries_available()?;
    let mut current = CURRENT.lock().await;
    if let Some(cluster) = current.upgrade() {
        return Some(cluster);
    }
    let cluster = Arc::new(RedisCluster::start().await);
    *current = Arc::downgrade(&cluster);
    Some(cluster)
}
