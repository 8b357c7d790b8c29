//! Test helpers shared by the workspace's tests and benchmarks: real `redis-server` processes
//! on free loopback ports (alone, as a 3-node cluster, or as a primary with a replica to fail
//! over), the local gateway started in-process on a free port, a TCP relay that can be
//! re-pointed, held or made to lose answers, player tokens (good and forged), and a stand-in
//! OpenID Connect issuer.

mod cluster;
mod gateway;
pub mod issuer;
mod mosquitto;
mod process;
mod redis;
mod relay;
mod replica;
pub mod runtime_api;
pub mod tokens;

pub use cluster::RedisCluster;
pub use gateway::TestGateway;
pub use mosquitto::MosquittoServer;
pub use process::ServerProcess;
pub use redis::{throwaway_certificates, RedisServer, TLS_USER};
pub use relay::{DropHook, Relay};
pub use replica::{info, RedisPair};

/// A free TCP port on loopback (bound, then released, so a server can take it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// Runs `serve` on its own runtime thread (two workers) with a listener on a free loopback
/// port, and returns once it is bound: the port, the sender that asks `serve` to stop (it gets
/// the receiver), and the thread to join. Shared by the in-process servers of the test kit.
pub(crate) fn serve_on_thread<F, Fut>(
    serve: F,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
)
where
    F: FnOnce(tokio::net::TcpListener, tokio::sync::oneshot::Receiver<()>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    serve_on_thread_at(0, serve)
}

/// As [`serve_on_thread`], on loopback port `port` (0: a free one). Everything the server
/// spawned ends with its thread, as when a server process stops.
pub(crate) fn serve_on_thread_at<F, Fut>(
    port: u16,
    serve: F,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
)
where
    F: FnOnce(tokio::net::TcpListener, tokio::sync::oneshot::Receiver<()>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .expect("bind");
            addr_tx
                .send(listener.local_addr().expect("addr"))
                .expect("send addr");
            serve(listener, stop_rx).await;
        });
    });
    let addr = addr_rx.recv().expect("server thread did not start");
    (addr, stop_tx, thread)
}
