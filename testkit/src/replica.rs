//! A Redis primary with one replica on loopback, and the failover a managed service performs:
//! the primary dies, its replica is promoted, the endpoint's name moves to it, and a new node
//! joins as the new replica.
//!
//! Clients reach "the primary" through a [`Relay`] (the endpoint): as ElastiCache's primary
//! endpoint is a DNS name that moves on failover, and connections to the old node break. The
//! replica reaches its primary through a second relay (the link), which a test can
//! [`RedisPair::hold_replication`] to make the replica lag: replication is asynchronous, and
//! on loopback it is otherwise so quick that a failover would almost never lose a write.

use crate::{RedisServer, Relay};
use std::process::Command;
use std::time::{Duration, Instant};

/// Two `redis-server`s, one replicating the other, behind an endpoint relay; killed when
/// dropped.
pub struct RedisPair {
    nodes: [RedisServer; 2],
    /// Which of `nodes` is the primary now.
    primary: usize,
    /// Where clients connect: forwards to the primary.
    endpoint: Relay,
    /// The replica's way to its primary.
    link: Relay,
}

impl RedisPair {
    /// Starts a primary and a replica (no persistence), and returns once the replica's link
    /// is up and it holds the primary's data.
    pub fn start() -> Self {
        let nodes = [Self::node(), Self::node()];
        let endpoint = Relay::start(nodes[0].port);
        let link = Relay::start(nodes[0].port);
        let pair = Self {
            nodes,
            primary: 0,
            endpoint,
            link,
        };
        pair.attach_replica();
        pair
    }

    /// A node without persistence that sends a full copy to a new replica at once (by default
    /// a primary waits 5 s for more replicas to share the copy with).
    fn node() -> RedisServer {
        RedisServer::start_with(&[
            "--save",
            "",
            "--appendonly",
            "no",
            "--repl-diskless-sync-delay",
            "0",
        ])
    }

    /// `redis://127.0.0.1:<endpoint>`: the URL clients use, which always leads to the primary
    /// once a failover is over.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.endpoint.port)
    }

    /// The current primary.
    pub fn primary(&self) -> &RedisServer {
        &self.nodes[self.primary]
    }

    /// The current replica (down between [`RedisPair::kill_primary`] and
    /// [`RedisPair::rejoin`], once promoted).
    pub fn replica(&self) -> &RedisServer {
        &self.nodes[1 - self.primary]
    }

    /// Stops the replication stream where it is: the replica holds nothing the primary
    /// applies from now on, until [`RedisPair::release_replication`] or a failover (which
    /// loses whatever was held).
    pub fn hold_replication(&self) {
        self.link.hold();
    }

    /// Lets the held replication stream through again.
    pub fn release_replication(&self) {
        self.link.release();
    }

    /// Kills the primary as a crash does (SIGKILL: no save, no goodbye to the replica).
    pub fn kill_primary(&mut self) {
        self.nodes[self.primary].kill();
    }

    /// Promotes the replica (`REPLICAOF NO ONE`) and points the endpoint at it, closing every
    /// client connection to the old primary: the failover a managed service does after the
    /// primary died. Until [`RedisPair::rejoin`] the new primary has no replica.
    pub fn promote_replica(&mut self) {
        let replica = 1 - self.primary;
        assert_eq!(
            self.nodes[replica]
                .command(&["REPLICAOF", "NO", "ONE"])
                .as_deref(),
            Some("+OK"),
            "the replica refused to be promoted"
        );
        self.primary = replica;
        self.endpoint.switch(self.nodes[replica].port);
    }

    /// [`RedisPair::kill_primary`], then [`RedisPair::promote_replica`].
    pub fn fail_over(&mut self) {
        self.kill_primary();
        self.promote_replica();
    }

    /// Starts the dead node again, empty, as the new primary's replica (as a managed service
    /// replaces a failed node), and returns once it holds the primary's data. Whatever the old
    /// link still held is dropped first: it belonged to the dead primary.
    pub fn rejoin(&mut self) {
        let dead = 1 - self.primary;
        self.link.switch(self.nodes[self.primary].port);
        self.link.release();
        self.nodes[dead].restart();
        self.attach_replica();
    }

    /// Makes the replica node follow the primary through the link and waits until it is in
    /// sync and the primary counts it for `WAIT` (only once the replica's first
    /// acknowledgement after the copy arrived, up to a second after its link is up).
    fn attach_replica(&self) {
        let link = self.link.port.to_string();
        assert_eq!(
            self.replica()
                .command(&["REPLICAOF", "127.0.0.1", &link])
                .as_deref(),
            Some("+OK")
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while !info(self.replica().port, "replication").contains("master_link_status:up") {
            assert!(
                Instant::now() < deadline,
                "replica on port {} never reached its primary",
                self.replica().port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        while !info(self.primary().port, "replication").contains("state=online") {
            assert!(
                Instant::now() < deadline,
                "primary on port {} never counted its replica online",
                self.primary().port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `INFO <section>` of the server on loopback `port`, as text (empty when it does not answer).
pub fn info(port: u16, section: &str) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "INFO", section])
        .output()
        .expect("cannot run redis-cli (package redis-tools)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
