//! Shared helpers of the end-to-end tests: start a local gateway on a chosen store and call the
//! C ABI with Rust strings.

use cubewalk::ffi::*;
use cubewalk::Status;
use cubewalk_server::gateway::GatewayConfig;
use cubewalk_server::identity::TokenSet;
use cubewalk_server::store::{ChunkStore, MemoryStore, RedisStore, RedisStoreConfig};
pub use cubewalk_testkit::{RedisCluster, RedisServer, TestGateway};
use std::sync::{Arc, Mutex, MutexGuard};

/// The token every end-to-end gateway accepts.
pub const TOKEN: &str = "e2e-token-0123456789";

static SERIAL: Mutex<()> = Mutex::new(());

/// The C ABI's state is per process: tests that init it take this lock.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Which store a gateway runs on.
pub enum Backend {
    /// The embedded in-memory store.
    Memory,
    /// A real redis-server started for the test.
    Redis(RedisServer),
    /// A real 3-node Redis Cluster started for the test.
    Cluster(RedisCluster),
    /// Redis at a URL the test manages itself (behind a relay, a replica pair, ...).
    External(String),
}

/// A gateway and the store behind it, kept alive together.
pub struct Stack {
    /// The gateway.
    pub gateway: TestGateway,
    /// The Redis server, if any (kept so it lives as long as the gateway).
    pub backend: Backend,
}

impl Stack {
    /// A gateway on the embedded store.
    pub fn memory() -> Self {
        Self::on(Backend::Memory)
    }

    /// A gateway on a fresh real Redis.
    pub fn redis() -> Self {
        Self::on(Backend::Redis(RedisServer::start()))
    }

    /// A gateway on a fresh real Redis started with extra arguments (persistence, ...).
    pub fn redis_with(args: &[&str]) -> Self {
        Self::on(Backend::Redis(RedisServer::start_with(args)))
    }

    /// The Redis server behind the gateway, to inspect it.
    pub fn redis_ref(&self) -> &RedisServer {
        match &self.backend {
            Backend::Redis(r) => r,
            _ => panic!("this stack has no single Redis server"),
        }
    }

    /// The Redis server behind the gateway (to kill, restart or inspect it).
    pub fn redis_server(&mut self) -> &mut RedisServer {
        match &mut self.backend {
            Backend::Redis(r) => r,
            _ => panic!("this stack has no single Redis server"),
        }
    }

    /// A gateway on Redis at `url`, which the test starts, moves and stops itself.
    pub fn redis_at(url: String) -> Self {
        Self::on(Backend::External(url))
    }

    /// A gateway on a fresh 3-node Redis Cluster.
    pub fn cluster() -> Self {
        Self::on(Backend::Cluster(RedisCluster::start()))
    }

    fn on(backend: Backend) -> Self {
        let redis = match &backend {
            Backend::Memory => None,
            Backend::Redis(r) => Some((r.url(), false)),
            Backend::External(url) => Some((url.clone(), false)),
            Backend::Cluster(c) => Some((c.url(), true)),
        };
        let config = GatewayConfig::default();
        let gateway = TestGateway::start_realtime_at(
            0,
            config,
            TokenSet::new([TOKEN]).into(),
            None,
            move || async move { backends(redis).await },
        );
        Self { gateway, backend }
    }

    /// The endpoint URL to give `cw_init`.
    pub fn endpoint(&self) -> String {
        self.gateway.blocks_url()
    }

    /// The realtime (MQTT over WebSocket) endpoint to give `cw_realtime_start`.
    pub fn realtime_endpoint(&self) -> String {
        self.gateway.realtime_url()
    }
}

/// The store of a gateway: in memory, or in the Redis at `redis` (`(url, cluster mode)`), as
/// the Lambdas keep it.
pub async fn backends(redis: Option<(String, bool)>) -> Arc<dyn ChunkStore> {
    match redis {
        None => Arc::new(MemoryStore::new()),
        Some((url, cluster)) => {
            let mut config = RedisStoreConfig::new(url);
            config.cluster = cluster;
            Arc::new(if cluster {
                RedisStore::connect(&config).await.unwrap()
            } else {
                RedisStore::connect_lazy(&config).unwrap()
            })
        }
    }
}

pub use cubewalk::ffi::test_hooks::{fetch, fetch_into, init, key, last_error, put};

/// `cw_init_with_options` with the test token and the defaults changed by `configure`.
pub fn init_with(endpoint: &str, configure: impl FnOnce(&mut CwOptions)) -> Status {
    cubewalk::ffi::test_hooks::init_with(endpoint, TOKEN, configure)
}

/// The directory holding this profile's build output (`target/debug`), after making sure the
/// workspace's libraries and binaries there are current (a no-op when `cargo build` ran).
pub fn built_artifacts() -> std::path::PathBuf {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--workspace", "--locked"])
        .current_dir(workspace)
        .status()
        .unwrap();
    assert!(status.success(), "cargo build --workspace failed");
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// A 2-thread Tokio runtime for a test that drives the async Rust client from plain code.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// One `cw_realtime_poll`, as a game would call it each frame.
pub fn poll_realtime() -> Vec<(
    cubewalk::ffi::types::CwChange,
    Vec<cubewalk::ffi::types::CwEdit>,
)> {
    let mut changes = [cubewalk::ffi::types::CwChange::default(); 16];
    let mut edits = [cubewalk::ffi::types::CwEdit::default(); 256];
    let (mut n, mut e) = (usize::MAX, usize::MAX);
    // SAFETY: arrays of the stated lengths, outputs writable.
    let s = unsafe {
        cubewalk::ffi::realtime::cw_realtime_poll(
            changes.as_mut_ptr(),
            changes.len(),
            edits.as_mut_ptr(),
            edits.len(),
            &mut n,
            &mut e,
        )
    };
    assert_eq!(s, Status::Ok, "{}", last_error());
    changes[..n]
        .iter()
        .map(|c| {
            let first = c.first_edit as usize;
            (*c, edits[first..first + c.edit_count as usize].to_vec())
        })
        .collect()
}
