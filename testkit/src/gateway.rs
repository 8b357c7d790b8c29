//! The local gateway started inside the test process on a free port.

use cubewalk_server::gateway::{self, Authorizer, GatewayConfig};
use cubewalk_server::realtime::{MemorySubscriptions, Subscriptions};
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
    /// store's connection tasks must live on the runtime that serves it); the subscription
    /// index is in memory.
    pub fn start_with<F, Fut>(
        config: GatewayConfig,
        authorizer: Arc<dyn Authorizer>,
        make_store: F,
    ) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Arc<dyn ChunkStore>>,
    {
        Self::start_full(config, authorizer, move || async move {
            let index: Arc<dyn Subscriptions> = Arc::new(MemorySubscriptions::new());
            (make_store().await, index)
        })
    }

    /// As [`TestGateway::start_with`], making both the store and the subscription index.
    /// Puts notify subscribers through the gateway's own `@connections` endpoint unless
    /// `config.management_endpoint` says otherwise.
    pub fn start_full<F, Fut>(
        config: GatewayConfig,
        authorizer: Arc<dyn Authorizer>,
        make_backends: F,
    ) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = (Arc<dyn ChunkStore>, Arc<dyn Subscriptions>)>,
    {
        Self::start_full_at(0, config, authorizer, make_backends)
    }

    /// As [`TestGateway::start_full`] on loopback port `port` (0: a free one), to restart a
    /// stopped gateway where its clients expect it.
    pub fn start_full_at<F, Fut>(
        port: u16,
        mut config: GatewayConfig,
        authorizer: Arc<dyn Authorizer>,
        make_backends: F,
    ) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = (Arc<dyn ChunkStore>, Arc<dyn Subscriptions>)>,
    {
        let (addr, stop_tx, thread) =
            crate::serve_on_thread_at(port, move |listener, stop_rx| async move {
                let (store, index) = make_backends().await;
                if config.management_endpoint.is_none() {
                    let addr = listener.local_addr().expect("bound");
                    config.management_endpoint = Some(format!("http://{addr}/{}", config.stage));
                }
                let limits = config.connections.clone();
                let app = gateway::router(config, authorizer, store, index);
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

    /// The WebSocket API's URL under stage `prod`.
    pub fn realtime_url(&self) -> String {
        format!("ws://127.0.0.1:{}/prod", self.port)
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
