//! Test helpers shared by the workspace's tests and benchmarks: real `redis-server` processes
//! on free loopback ports, the local gateway started in-process on a free port, and a TCP relay
//! that can be re-pointed or made to lose answers.

mod cluster;
mod gateway;
mod process;
mod redis;
mod relay;

pub use cluster::RedisCluster;
pub use gateway::TestGateway;
pub use process::ServerProcess;
pub use redis::{throwaway_certificates, RedisServer, TLS_USER};
pub use relay::{DropHook, Relay};

/// A free TCP port on loopback (bound, then released, so a server can take it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}
