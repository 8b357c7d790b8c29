//! The local gateway started inside the test process on a free port.

use cubewalk_server::gateway::{self, Authorizer, GatewayConfig};
use cubewalk_server::store::ChunkStore;
use std::sync::Arc;

/// A running local gateway; stopped when dropped.
pub struct TestGateway {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The port it listens on.
    pub port: u16,
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
        let (addr, stop_tx, thread) = crate::serve_on_thread(move |listener, stop_rx| async move {
            let store = make_store().await;
            let limits = config.connections.clone();
            let app = gateway::router(config, authorizer, store);
            gateway::serve(listener, app, limits, async {
                let _ = stop_rx.await;
            })
            .await
            .expect("serve");
        });
        Self {
            base: format!("http://{addr}"),
            port: addr.port(),
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
