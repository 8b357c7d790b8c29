//! A 3-node Redis Cluster on loopback for one test, killed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Three `redis-server --cluster-enabled yes` nodes joined with `redis-cli --cluster create`.
pub struct RedisCluster {
    children: Vec<Child>,
    /// The nodes' ports.
    pub ports: Vec<u16>,
    dir: std::path::PathBuf,
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

impl RedisCluster {
    /// Starts the three nodes, creates the cluster and waits until every node reports
    /// `cluster_state:ok`.
    pub fn start() -> Self {
        let ports: Vec<u16> = (0..3).map(|_| cluster_port()).collect();
        let dir = std::env::temp_dir().join(format!(
            "cubewalk-cluster-{}-{}",
            std::process::id(),
            ports[0]
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut children = Vec::new();
        for &p in &ports {
            let child = Command::new("redis-server")
                .args(["--port", &p.to_string(), "--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", &format!("nodes-{p}.conf")])
                .args(["--cluster-node-timeout", "5000"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("cannot start redis-server: install it (README: test set-up)");
            children.push(child);
        }
        let cluster = Self {
            children,
            ports,
            dir,
        };
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
            .args(["--cluster-replicas", "0", "--cluster-yes"])
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
            let out = Command::new("redis-cli")
                .args(["-p", &port.to_string(), "CLUSTER", "INFO"])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&out.stdout).contains("cluster_state:ok") {
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
            .map(|p| {
                let out = std::process::Command::new("redis-cli")
                    .args(["-p", &p.to_string(), "DBSIZE"])
                    .output()
                    .expect("redis-cli");
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse()
                    .expect("DBSIZE answers a number")
            })
            .collect()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
