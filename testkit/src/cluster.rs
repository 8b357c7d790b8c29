//! A Redis Cluster on loopback for one test, killed when dropped: three primaries alone
//! ([`RedisCluster::start`]), or three primaries with a replica each
//! ([`RedisCluster::start_with_replicas`]), whose primaries a test can kill and whose replicas
//! it can promote (`CLUSTER FAILOVER TAKEOVER`), as ElastiCache (cluster mode enabled) and
//! MemoryDB fail over a shard.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `redis-server --cluster-enabled yes` nodes joined with `redis-cli --cluster create`.
pub struct RedisCluster {
    /// The running node on each port (a killed node has none until restarted).
    children: HashMap<u16, Child>,
    /// The nodes' ports, in the order given to `redis-cli --cluster create` (with replicas:
    /// the first three start as primaries).
    pub ports: Vec<u16>,
    dir: PathBuf,
    node_timeout_ms: u32,
}

/// A free port whose cluster bus port (+10000) is free too.
fn cluster_port() -> u16 {
    for _ in 0..1000 {
        let candidate = 20_000 + (rand_u16() % 20_000);
        let ok = std::net::TcpListener::bind(("127.0.0.1", candidate)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", candidate + 10_000)).is_ok();
        if ok {
            return candidate;
        }
    }
    panic!("no free port pair for a cluster node");
}

fn rand_u16() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    (nanos ^ (std::process::id() << 7)) as u16
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone)]
struct NodeLine {
    id: String,
    port: u16,
    flags: Vec<String>,
    /// The primary's id, for a replica.
    primary: Option<String>,
    /// Slot ranges served (primaries).
    slots: Vec<(u16, u16)>,
}

impl NodeLine {
    fn parse(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            return None;
        }
        // `127.0.0.1:6379@16379[,hostname]`
        let addr = f[1].split('@').next()?;
        let port = addr.rsplit(':').next()?.parse().ok()?;
        let slots = f[8..]
            .iter()
            .filter(|s| !s.starts_with('['))
            .filter_map(|s| match s.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => s.parse().ok().map(|a| (a, a)),
            })
            .collect();
        Some(Self {
            id: f[0].to_string(),
            port,
            flags: f[2].split(',').map(str::to_string).collect(),
            primary: (f[3] != "-").then(|| f[3].to_string()),
            slots,
        })
    }

    fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    fn serves(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(a, b)| a <= slot && slot <= b)
    }
}

impl RedisCluster {
    /// Starts three nodes, creates the cluster (no replicas) and waits until every node
    /// reports `cluster_state:ok`.
    pub fn start() -> Self {
        Self::create(3, 0, 5000)
    }

    /// Starts six nodes and creates a cluster of three primaries with one replica each
    /// (`--cluster-replicas 1`), with a 2 s node timeout and replicas that sync at once
    /// (`--repl-diskless-sync-delay 0`); returns once every node reports `cluster_state:ok`
    /// and every replica's link to its primary is up.
    pub fn start_with_replicas() -> Self {
        let cluster = Self::create(6, 1, 2000);
        let deadline = Instant::now() + Duration::from_secs(30);
        for &p in &cluster.ports {
            // `--cluster create` assigns replicas after the slots; wait until each node knows
            // its role and each replica is in sync.
            loop {
                let me = cluster.myself(p);
                if let Some(me) = me {
                    if me.has("master") && !me.slots.is_empty() {
                        break;
                    }
                    if me.has("slave") && cluster.replica_in_sync(p) {
                        break;
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "cluster node {p} never became an in-sync replica or a primary with slots"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // Roles travel by gossip: wait until every node sees three primaries with slots and
        // three replicas, each following one of them.
        for &p in &cluster.ports {
            loop {
                let nodes = cluster.nodes_seen_from(p);
                let primaries: Vec<&str> = nodes
                    .iter()
                    .filter(|n| n.has("master") && !n.slots.is_empty())
                    .map(|n| n.id.as_str())
                    .collect();
                let replicas = nodes
                    .iter()
                    .filter(|n| {
                        n.has("slave")
                            && n.primary
                                .as_deref()
                                .is_some_and(|id| primaries.contains(&id))
                    })
                    .count();
                if primaries.len() == 3 && replicas == 3 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "cluster node {p} never saw three primaries with a replica each"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        cluster
    }

    fn create(nodes: usize, replicas: u32, node_timeout_ms: u32) -> Self {
        let ports: Vec<u16> = (0..nodes).map(|_| cluster_port()).collect();
        let dir = std::env::temp_dir().join(format!(
            "cubewalk-cluster-{}-{}",
            std::process::id(),
            ports[0]
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cluster = Self {
            children: HashMap::new(),
            ports: ports.clone(),
            dir,
            node_timeout_ms,
        };
        for &p in &ports {
            cluster.spawn(p);
        }
        for &p in &cluster.ports {
            cluster.wait(p, "PING", "+PONG");
        }
        let nodes: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("cannot run redis-cli (package redis-tools)");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        for &p in &cluster.ports {
            cluster.wait_state_ok(p);
        }
        cluster
    }

    /// Starts the node of `port` (its `nodes-<port>.conf` kept in the cluster's directory, so
    /// a restarted node rejoins with its identity).
    fn spawn(&mut self, port: u16) {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
            .args(["--cluster-node-timeout", &self.node_timeout_ms.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            // The nodes share a directory: a replica's copy of its primary goes to a file of
            // its own.
            .args(["--dbfilename", &format!("dump-{port}.rdb")])
            .args(["--repl-diskless-sync", "yes"])
            .args(["--repl-diskless-sync-delay", "0"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start redis-server: install it (README: test set-up)");
        self.children.insert(port, child);
    }

    fn wait(&self, port: u16, cmd: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if crate::redis::command_on(port, None, &[cmd]).as_deref() == Some(want) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("cluster node {port} did not answer {cmd}");
    }

    fn wait_state_ok(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if cli(port, &["CLUSTER", "INFO"]).contains("cluster_state:ok") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("cluster node {port} never reached cluster_state:ok");
    }

    /// `redis://127.0.0.1:<first node>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.ports[0])
    }

    /// How many keys each node holds (`DBSIZE`), in node order: where a test's keys landed.
    pub fn keys_per_node(&self) -> Vec<u64> {
        self.ports
            .iter()
            .map(|&p| {
                cli(p, &["DBSIZE"])
                    .trim()
                    .parse()
                    .expect("DBSIZE answers a number")
            })
            .collect()
    }

    /// The ports of the nodes running now.
    fn live(&self) -> Vec<u16> {
        let mut live: Vec<u16> = self.children.keys().copied().collect();
        live.sort_unstable();
        live
    }

    /// `CLUSTER NODES` as node `port` sees it.
    fn nodes_seen_from(&self, port: u16) -> Vec<NodeLine> {
        cli(port, &["CLUSTER", "NODES"])
            .lines()
            .filter_map(NodeLine::parse)
            .collect()
    }

    /// Node `port`'s own line.
    fn myself(&self, port: u16) -> Option<NodeLine> {
        self.nodes_seen_from(port)
            .into_iter()
            .find(|n| n.has("myself"))
    }

    /// Whether the replica on `port` is linked to its primary and the primary counts it online
    /// (so `WAIT` counts it).
    fn replica_in_sync(&self, port: u16) -> bool {
        let own = crate::info(port, "replication");
        if !own.contains("master_link_status:up") {
            return false;
        }
        let Some(primary) = own
            .lines()
            .find_map(|l| l.trim().strip_prefix("master_port:"))
            .and_then(|p| p.parse::<u16>().ok())
        else {
            return false;
        };
        crate::info(primary, "replication")
            .lines()
            .any(|l| l.contains(&format!("port={port},")) && l.contains("state=online"))
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`).
    pub fn slot_of(&self, key: &str) -> u16 {
        let port = self.live()[0];
        cli(port, &["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .expect("CLUSTER KEYSLOT answers a number")
    }

    /// The port of the primary serving `key`'s slot, as the first running node sees it.
    pub fn primary_of(&self, key: &str) -> u16 {
        let slot = self.slot_of(key);
        self.nodes_seen_from(self.live()[0])
            .into_iter()
            .find(|n| n.has("master") && !n.has("fail") && n.serves(slot))
            .unwrap_or_else(|| panic!("no primary serves slot {slot}"))
            .port
    }

    /// The port of a replica of the primary on `primary`.
    pub fn replica_of(&self, primary: u16) -> u16 {
        let nodes = self.nodes_seen_from(primary);
        let id = &nodes
            .iter()
            .find(|n| n.has("myself"))
            .expect("a node lists itself")
            .id;
        nodes
            .iter()
            .find(|n| n.has("slave") && n.primary.as_ref() == Some(id))
            .unwrap_or_else(|| panic!("primary {primary} has no replica"))
            .port
    }

    /// Makes the replica on `replica` lag behind its primary `primary` from now on: stops the
    /// replica's process (SIGSTOP) and has the primary drop its replication link (`CLIENT KILL
    /// TYPE replica`), so nothing the primary applies from now on reaches it until
    /// [`RedisCluster::resume`] lets it reconnect. Whatever was sent before the cut still
    /// reaches it. Keep the hold shorter than the node timeout (2 s), or the cluster marks the
    /// replica failed.
    pub fn hold_replication(&self, primary: u16, replica: u16) {
        self.signal(replica, "STOP");
        let killed = cli(primary, &["CLIENT", "KILL", "TYPE", "replica"]);
        assert_eq!(
            killed.trim(),
            "1",
            "primary {primary} had no replica link to cut"
        );
    }

    /// Lets the node on `port` run again after [`RedisCluster::hold_replication`] (SIGCONT).
    pub fn resume(&self, port: u16) {
        self.signal(port, "CONT");
    }

    fn signal(&self, port: u16, signal: &str) {
        let pid = self
            .children
            .get(&port)
            .unwrap_or_else(|| panic!("no running node on port {port}"))
            .id();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("cannot run kill");
        assert!(status.success(), "kill -{signal} {pid} failed");
    }

    /// Kills the node on `port` as a crash does (SIGKILL: no save, no goodbye).
    pub fn kill(&mut self, port: u16) {
        let mut child = self
            .children
            .remove(&port)
            .unwrap_or_else(|| panic!("no running node on port {port}"));
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Promotes the replica on `replica` to primary of its (dead) primary's slots at once,
    /// without the other primaries' agreement (`CLUSTER FAILOVER TAKEOVER`, what an operator
    /// or a managed service does), and returns once every running node reports
    /// `cluster_state:ok` and sees `replica` serving those slots.
    pub fn take_over(&self, replica: u16) {
        let slots_before: Vec<(u16, u16)> = {
            let me = self.myself(replica).expect("the replica answers");
            let nodes = self.nodes_seen_from(replica);
            nodes
                .into_iter()
                .find(|n| Some(&n.id) == me.primary.as_ref())
                .expect("the replica knows its primary")
                .slots
        };
        let answer = cli(replica, &["CLUSTER", "FAILOVER", "TAKEOVER"]);
        assert_eq!(answer.trim(), "OK", "the replica refused to take over");
        let deadline = Instant::now() + Duration::from_secs(20);
        for port in self.live() {
            loop {
                let serves = self.nodes_seen_from(port).into_iter().any(|n| {
                    n.port == replica
                        && n.has("master")
                        && slots_before.iter().all(|&(a, _)| n.serves(a))
                });
                if serves && cli(port, &["CLUSTER", "INFO"]).contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {port} never saw {replica} take over"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Starts the killed node on `port` again with its cluster identity but no data: it
    /// rejoins as a replica of whichever node took over its slots (the cluster tells it so), as
    /// a managed service replaces a failed node. Returns once it is in sync and counted by
    /// its primary.
    pub fn restart(&mut self, port: u16) {
        assert!(!self.children.contains_key(&port), "node {port} is running");
        self.spawn(port);
        self.wait(port, "PING", "+PONG");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !(self.myself(port).is_some_and(|n| n.has("slave")) && self.replica_in_sync(port)) {
            assert!(
                Instant::now() < deadline,
                "restarted node {port} never became an in-sync replica"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.wait_state_ok(port);
    }
}

/// `redis-cli -p <port> <args>`'s output (empty when the node does not answer).
fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("cannot run redis-cli (package redis-tools)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for c in self.children.values_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
