//! What every section shares: Redis, the gateway on it, a byte-counting proxy in front, the C
//! ABI calls, and a description of the machine.

use crate::proxy;
use cubewalk::ffi::*;
use cubewalk::{ChunkKey, Status};
use cubewalk_e2e::{fetch_into, init_with, Stack};
use cubewalk_protocol::codec::ChunkData;
use std::sync::Arc;

/// Everything the sections share: Redis, the gateway on it, a byte-counting proxy in front.
pub(crate) struct Env {
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) stack: Stack,
    pub(crate) url: String,
    pub(crate) proxy_url: String,
    pub(crate) counters: Arc<proxy::Counters>,
    pub(crate) http: reqwest::blocking::Client,

    pub(crate) rounds: usize,
}

impl Env {
    pub(crate) fn start(quick: bool) -> Self {
        let stack = Stack::redis();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let target: std::net::SocketAddr = stack
            .gateway
            .base
            .trim_start_matches("http://")
            .parse()
            .unwrap();
        let (proxy_addr, counters) = proxy::start(&rt, target);
        let url = stack.endpoint();
        let proxy_url = format!("http://{proxy_addr}/prod/cubewalkblocks");
        Self {
            rt,
            stack,
            url,
            proxy_url,
            counters,
            http: reqwest::blocking::Client::new(),
            rounds: if quick { 300 } else { 2000 },
        }
    }

    pub(crate) fn redis(&self) -> &cubewalk_e2e::RedisServer {
        self.stack.redis_ref()
    }

    /// Writes whole chunks straight into the store, as the trusted `system` player: fixture
    /// set-up, not what is measured, so no player's edit limits apply to it.
    pub(crate) fn seed(&self, world: &str, chunks: &[(ChunkKey, &ChunkData)]) {
        use cubewalk_protocol::messages::CubeRef;
        use cubewalk_server::store::{ChunkStore, RedisStore, RedisStoreConfig};
        let edits: Vec<(ChunkKey, Vec<CubeRef>)> = chunks
            .iter()
            .map(|(k, c)| {
                let cubes = c
                    .iter()
                    .enumerate()
                    .filter(|(_, &v)| v != 0)
                    .map(|(i, &v)| CubeRef {
                        index: i as u16,
                        value: v,
                    })
                    .collect();
                (*k, cubes)
            })
            .filter(|(_, cubes): &(ChunkKey, Vec<CubeRef>)| !cubes.is_empty())
            .collect();
        let world = cubewalk_protocol::WorldId::new(world).unwrap();
        let url = self.redis().url();
        self.rt.block_on(async {
            let store = RedisStore::open(&RedisStoreConfig::new(url)).await.unwrap();
            for batch in edits.chunks(64) {
                store.apply(&world, batch, None).await.unwrap();
            }
        });
    }

    /// (Re)initializes the C ABI on `endpoint`.
    pub(crate) fn init_abi(&self, endpoint: &str) {
        let s = init_with(endpoint, |o| {
            o.timeout_ms = 60_000;
            o.max_in_flight = 64;
        });
        assert_eq!(s, Status::Ok);
    }
}

/// A fetch of `keys` through the C ABI (blocking), into the buffers behind `ptrs`.
pub(crate) fn abi_fetch(
    world: &str,
    keys: &[CwChunkKey],
    versions: &mut [u64],
    ptrs: &[*mut i32],
    changed: &mut [u8],
) {
    assert_eq!(fetch_into(world, keys, versions, ptrs, changed), Status::Ok);
}

pub(crate) fn cw_keys(keys: &[ChunkKey]) -> Vec<CwChunkKey> {
    keys.iter()
        .map(|k| CwChunkKey {
            x: k.x,
            y: k.y,
            z: k.z,
        })
        .collect()
}

pub(crate) fn mono_version() -> String {
    std::process::Command::new("mono")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.split_whitespace().nth(4).unwrap_or("?").to_string())
        })
        .unwrap_or_else(|| "?".into())
}

pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().next().map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
                    / 1024
                    / 1024
            })
        })
        .unwrap_or(0);
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!(
        "{cores} cores ({cpu}), {mem} GiB RAM, Linux; {rustc}; release build; redis-server {}",
        redis_version()
    )
}

pub(crate) fn redis_version() -> String {
    std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .nth(2)
                .unwrap_or("")
                .trim_start_matches("v=")
                .to_string()
        })
        .unwrap_or_default()
}

/// (resident, peak resident) MiB of process `pid` (this process when 0), from `/proc`.
pub(crate) fn rss_mib(pid: u32) -> (f64, f64) {
    let path = if pid == 0 {
        "/proc/self/status".to_string()
    } else {
        format!("/proc/{pid}/status")
    };
    let status = std::fs::read_to_string(path).unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0)
}
