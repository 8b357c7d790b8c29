//! The local gateway started inside the test process on a free port.

use cubewalk_server::gateway::{
    self, Authorizer, GatewayConfig, MqttGate, RealtimeRoutes, TokenAuthorizer,
};
use cubewalk_server::identity::Verifier;
use cubewalk_server::realtime::{channel, run_publisher, BrokerAddress, MqttPublisher, Notifier};
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
    /// store's connection tasks must live on the runtime that serves it); no realtime.
    pub fn start_with<F, Fut>(
        config: GatewayConfig,
        authorizer: Arc<dyn Authorizer>,
        make_store: F,
    ) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Arc<dyn ChunkStore>>,
    {
        Self::launch(0, config, authorizer, None, make_store)
    }

    /// A gateway with realtime, as `serve` runs it: the token authorizer of `verifier`, an
    /// MQTT broker (`broker`, or an embedded one), the publisher and the gate at `/mqtt`, on
    /// loopback port `port` (0: a free one; a fixed one restarts a stopped gateway where its
    /// clients expect it).
    pub fn start_realtime_at<F, Fut>(
        port: u16,
        config: GatewayConfig,
        verifier: Verifier,
        broker: Option<BrokerAddress>,
        make_store: F,
    ) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Arc<dyn ChunkStore>>,
    {
        let authorizer = Arc::new(TokenAuthorizer(verifier.clone()));
        Self::launch(
            port,
            config,
            authorizer,
            Some((verifier, broker)),
            make_store,
        )
    }

    fn launch<F, Fut>(
        port: u16,
        config: GatewayConfig,
        authorizer: Arc<dyn Authorizer>,
        realtime: Option<(Verifier, Option<BrokerAddress>)>,
        make_store: F,
    ) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Arc<dyn ChunkStore>>,
    {
        let (addr, stop_tx, thread) =
            crate::serve_on_thread_at(port, move |listener, stop_rx| async move {
                let store = make_store().await;
                let routes = match realtime {
                    Some((verifier, broker)) => {
                        let broker = match broker {
                            Some(b) => b,
                            None => cubewalk_server::broker::start_embedded()
                                .await
                                .expect("embedded broker"),
                        };
                        let (sink, queue) = channel();
                        let publisher = Arc::new(MqttPublisher::start(&broker));
                        tokio::spawn(run_publisher(queue, publisher, None, Default::default()));
                        let mut gate = MqttGate::new(broker, verifier, store.clone());
                        gate.max_connections = config.connections.max_realtime_connections;
                        tokio::spawn(gate.run_fanout());
                        let gate = Arc::new(gate);
                        Some(RealtimeRoutes {
                            notifier: Notifier {
                                sink,
                                sessions: Some(gate.sessions()),
                            },
                            gate: Some(gate),
                        })
                    }
                    None => None,
                };
                let limits = config.connections.clone();
                let app = gateway::router(config, authorizer, store, routes);
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

    /// The realtime (MQTT over WebSocket) URL.
    pub fn realtime_url(&self) -> String {
        format!("ws://127.0.0.1:{}/mqtt", self.port)
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
