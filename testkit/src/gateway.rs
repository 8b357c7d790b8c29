//! The local gateway started inside the test process on a free port.

use cubewalk_server::gateway::{self, Authorizer, GatewayConfig};
use cubewalk_server::store::ChunkStore;
use std::sync::Arc;

/// A running local gateway; stopped when dropped.
pub struct TestGateway {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestGateway {
    /// Starts the gateway on its own runtime thread, so it serves blocking callers too.
    pub fn start(
        config: GatewayConfig,
        authorizer: Arc<dyn Authorizer>,
        store: Arc<dyn ChunkStore>,
    ) -> Self {
        Self::start_with(config, authorizer, move || async move { store })
    }

    /// As [`TestGateway::start`], making the store inside the gateway's runtime (a Redis
    /// store's connection tasks must live on the runtime that serves it).
    pub fn start_with<F, Fut>(
        config: GatewayConfig,
        authorizer: Arc<dyn Authorizer>,
        make_store: F,
    ) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Arc<dyn ChunkStore>>,
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
                let store = make_store().await;
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                addr_tx
                    .send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                let app = gateway::router(config, authorizer, store);
                gateway::serve(listener, app, async {
                    let _ = stop_rx.await;
                })
                .await
                .expect("serve");
            });
        });
        let addr = addr_rx.recv().expect("gateway did not start");
        Self {
            base: format!("http://{addr}"),
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// The blocks URL under stage `prod`.
    pub fn blocks_url(&self) -> String {
        format!("{}/prod/cubewalkblocks", self.base)
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
