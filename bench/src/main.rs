//! `cubewalk-bench`: measures CubeWalk Net end to end in one run and writes BENCHMARKS.md.
//!
//! `cargo run --release -p cubewalk-bench -- all` starts what it needs (a real redis-server on
//! a free port, the local gateway on it, a byte-counting proxy, Mono for the C# rows), prints
//! each table as it is measured, then writes BENCHMARKS.md and the plots in docs/bench/.
//! Paths compared with each other are measured interleaved, so they share the machine's noise.

mod plot;
mod proxy;
mod rawhttp;
mod stats;

use clap::Parser;
use cubewalk::ffi::*;
use cubewalk::{ChunkEdit, ChunkKey, Client, ClientOptions, Status};
use cubewalk_e2e::{fetch_into, init_with, Stack, TOKEN};
use cubewalk_protocol::codec::{blob_from_base64, decode_chunk_into, fixtures, ChunkData};
use cubewalk_protocol::{FetchQuery, FetchResponse, WorldId};
use cubewalk_server::store::redis_chunk_key;
use stats::{ms, us, Samples};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Measure CubeWalk Net end to end and write BENCHMARKS.md")]
struct Args {
    /// Sections to run: all, sizes, server, sdk, neighbourhood, scaling, csharp.
    #[arg(default_value = "all")]
    sections: Vec<String>,
    /// Where to write the report (only when running `all`).
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    /// Fewer rounds (a smoke run; figures are noisier).
    #[arg(long)]
    quick: bool,
}

/// Everything the sections share: Redis, the gateway on it, a byte-counting proxy in front.
struct Env {
    rt: tokio::runtime::Runtime,
    stack: Stack,
    url: String,
    proxy_url: String,
    counters: Arc<proxy::Counters>,
    http: reqwest::blocking::Client,
    client: Client,
    rounds: usize,
}

impl Env {
    fn start(quick: bool) -> Self {
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
        let client = {
            let _g = rt.enter();
            Client::new(
                &url,
                TOKEN,
                ClientOptions {
                    timeout: Duration::from_secs(60),
                    ..ClientOptions::default()
                },
            )
            .unwrap()
        };
        Self {
            rt,
            stack,
            url,
            proxy_url,
            counters,
            http: reqwest::blocking::Client::new(),
            client,
            rounds: if quick { 300 } else { 2000 },
        }
    }

    fn redis(&self) -> &cubewalk_e2e::RedisServer {
        self.stack.redis_ref()
    }

    /// Writes whole chunks with the Rust client.
    fn seed(&self, world: &str, chunks: &[(ChunkKey, &ChunkData)]) {
        let edits: Vec<ChunkEdit> = chunks
            .iter()
            .flat_map(|(k, c)| {
                c.iter()
                    .enumerate()
                    .filter(|(_, &v)| v != 0)
                    .map(move |(i, &v)| ChunkEdit::at_index(*k, i as u16, v))
            })
            .collect();
        if !edits.is_empty() {
            self.rt.block_on(self.client.put(world, &edits)).unwrap();
        }
    }

    /// (Re)initializes the C ABI on `endpoint`.
    fn init_abi(&self, endpoint: &str) {
        let s = init_with(endpoint, |o| {
            o.timeout_ms = 60_000;
            o.max_in_flight = 64;
        });
        assert_eq!(s, Status::Ok);
    }
}

/// A fetch of `keys` through the C ABI (blocking), into the buffers behind `ptrs`.
fn abi_fetch(
    world: &str,
    keys: &[CwChunkKey],
    versions: &mut [u64],
    ptrs: &[*mut i32],
    changed: &mut [u8],
) {
    assert_eq!(fetch_into(world, keys, versions, ptrs, changed), Status::Ok);
}

fn cw_keys(keys: &[ChunkKey]) -> Vec<CwChunkKey> {
    keys.iter()
        .map(|k| CwChunkKey {
            x: k.x,
            y: k.y,
            z: k.z,
        })
        .collect()
}

/// A report section: its title, markdown body, and rows for the goals table.
struct Section {
    title: &'static str,
    body: String,
    goals: Vec<String>,
}

/// A goals-table row: what, the goal, the measured value, and whether it is met.
fn goal(what: &str, target: &str, value: f64, met: bool, unit: &str) -> String {
    let verdict = if met { "met" } else { "**missed**" };
    format!("| {what} | {target} | {value:.2}{unit} | {verdict} |")
}

fn sizes(env: &Env) -> Section {
    let mut b = String::new();
    let world = "sizes";
    let chunks: [(&str, Box<ChunkData>); 4] = [
        ("empty", fixtures::empty()),
        ("typical terrain", fixtures::terrain()),
        ("solid", fixtures::solid()),
        ("random", fixtures::random(42)),
    ];
    writeln!(b, "| fixture | raw | stored blob | base64 `data` | whole GET response body | Redis `MEMORY USAGE` | wire / raw |").unwrap();
    writeln!(b, "|---|---|---|---|---|---|---|").unwrap();
    for (i, (name, chunk)) in chunks.iter().enumerate() {
        let key = ChunkKey::new(i as i32, 0, 0);
        env.seed(world, &[(key, chunk)]);
        let body = env
            .http
            .get(format!("{}?world={world}&chunks={key}", env.url))
            .header("token", TOKEN)
            .send()
            .unwrap()
            .text()
            .unwrap();
        let parsed: FetchResponse = serde_json::from_str(&body).unwrap();
        let data = parsed.chunks[0].data.clone().unwrap();
        let blob = blob_from_base64(&data).unwrap();
        let usage = env
            .redis()
            .command(&[
                "MEMORY",
                "USAGE",
                &redis_chunk_key(&WorldId::new(world).unwrap(), key),
            ])
            .unwrap();
        let usage = usage
            .strip_prefix(':')
            .map(|u| format!("{u} B"))
            .unwrap_or_else(|| "0 B (no key stored)".into());
        writeln!(
            b,
            "| {name} | 16384 B | {} B | {} B | {} B | {usage} | {:.3} |",
            blob.len(),
            data.len(),
            body.len(),
            body.len() as f64 / 16384.0
        )
        .unwrap();
    }
    writeln!(b, "\nLambda artifacts (`cargo lambda build --release --arm64 --output-format zip -p cubewalk-lambda`):\n").unwrap();
    writeln!(b, "| function | bootstrap.zip |").unwrap();
    writeln!(b, "|---|---|").unwrap();
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    for f in ["authorizer", "blocks"] {
        let zip = Path::new(&target).join(format!("lambda/{f}/bootstrap.zip"));
        if !zip.exists() {
            let _ = std::process::Command::new("cargo")
                .args([
                    "lambda",
                    "build",
                    "--release",
                    "--arm64",
                    "--output-format",
                    "zip",
                    "-p",
                    "cubewalk-lambda",
                ])
                .status();
        }
        match std::fs::metadata(&zip) {
            Ok(m) => writeln!(
                b,
                "| {f} | {} B ({:.2} MB) |",
                m.len(),
                m.len() as f64 / 1e6
            )
            .unwrap(),
            Err(_) => writeln!(b, "| {f} | not built (cargo-lambda missing) |").unwrap(),
        }
    }
    Section {
        title: "5. Size and cost per chunk",
        body: b,
        goals: Vec::new(),
    }
}

fn server(env: &Env) -> Section {
    let mut b = String::new();
    let world = "server";
    let key = ChunkKey::new(0, 0, 0);
    env.seed(world, &[(key, &fixtures::terrain())]);
    let redis_key = redis_chunk_key(&WorldId::new(world).unwrap(), key);
    let mut raw = redis::Client::open(env.redis().url())
        .unwrap()
        .get_connection()
        .unwrap();
    let url = format!("{}?world={world}&chunks=0,0,0", env.url);
    let addr = env
        .url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let mut http = rawhttp::RawHttp::connect(&addr);
    let path = format!("/prod/cubewalkblocks?world={world}&chunks=0,0,0");
    // The same gateway on the embedded store: tells the gateway's own cost from the Redis hop.
    let memory = Stack::memory();
    let memory_client = {
        let _g = env.rt.enter();
        Client::new(&memory.endpoint(), TOKEN, ClientOptions::default()).unwrap()
    };
    let terrain = fixtures::terrain();
    let edits: Vec<ChunkEdit> = terrain
        .iter()
        .enumerate()
        .filter(|(_, &v)| v != 0)
        .map(|(i, &v)| ChunkEdit::at_index(key, i as u16, v))
        .collect();
    env.rt.block_on(memory_client.put(world, &edits)).unwrap();
    let mut http_memory =
        rawhttp::RawHttp::connect(memory.gateway.base.trim_start_matches("http://"));
    let (mut t_gw, mut t_raw, mut t_mem) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..env.rounds + 200 {
        let start = Instant::now();
        assert!(http_memory.get(&path, TOKEN).len() > 50);
        if round >= 200 {
            t_mem.push(start.elapsed());
        }
        let mut gw = || {
            let start = Instant::now();
            let body = http.get(&path, TOKEN);
            assert!(body.len() > 50);
            start.elapsed()
        };
        let mut direct = || {
            let start = Instant::now();
            let blob: Vec<u8> = redis::cmd("HGET")
                .arg(&redis_key)
                .arg("d")
                .query(&mut raw)
                .unwrap();
            assert!(!blob.is_empty());
            start.elapsed()
        };
        let (a, r) = if round % 2 == 0 {
            let a = gw();
            (a, direct())
        } else {
            let r = direct();
            (gw(), r)
        };
        if round >= 200 {
            t_gw.push(a);
            t_raw.push(r);
        }
    }
    let (g, r, m) = (Samples::new(t_gw), Samples::new(t_raw), Samples::new(t_mem));
    writeln!(b, "1-chunk fetch (typical terrain), {} interleaved rounds; both over one kept-alive loopback connection from a plain blocking socket, so client libraries do not count:\n", env.rounds).unwrap();
    writeln!(b, "| path | median | p99 |").unwrap();
    writeln!(b, "|---|---|---|").unwrap();
    writeln!(b, "| HTTP → local gateway (token check, authorizer cache) → blocks handler → Redis | {} | {} |", us(g.median()), us(g.p99())).unwrap();
    writeln!(
        b,
        "| raw Redis `HGET` of the same stored blob | {} | {} |",
        us(r.median()),
        us(r.p99())
    )
    .unwrap();
    writeln!(
        b,
        "| (reference) the same gateway on the embedded store: no Redis hop | {} | {} |",
        us(m.median()),
        us(m.p99())
    )
    .unwrap();
    writeln!(
        b,
        "| **ratio (median), goal ≤ 3** | **{:.2}x** | |",
        g.median().as_secs_f64() / r.median().as_secs_f64()
    )
    .unwrap();
    let server_ratio = g.median().as_secs_f64() / r.median().as_secs_f64();

    // Throughput under 64 concurrent keep-alive connections.
    let conns = 64;
    let run_for = if env.rounds < 1000 {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(5)
    };
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    env.rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..conns {
            let (ok, errors, url) = (ok.clone(), errors.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .build()
                    .unwrap();
                while started.elapsed() < run_for {
                    let served = match client.get(&url).header("token", TOKEN).send().await {
                        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    if served {
                        ok.fetch_add(1, Ordering::Relaxed)
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed)
                    };
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let secs = started.elapsed().as_secs_f64();
    writeln!(
        b,
        "\nThroughput, {conns} concurrent keep-alive connections for {secs:.1} s (load generator in the same process, on the same 2 cores): **{:.0} requests/s**, {} errors.",
        ok.load(Ordering::Relaxed) as f64 / secs,
        errors.load(Ordering::Relaxed)
    )
    .unwrap();
    Section {
        title: "3. Server path",
        body: b,
        goals: vec![goal(
            "Server path: gateway fetch / raw Redis GET (median)",
            "≤ 3x",
            server_ratio,
            server_ratio <= 3.0,
            "x",
        )],
    }
}

fn sdk(env: &Env) -> Section {
    let mut b = String::new();
    let mut goals = Vec::new();
    let world = "sdk";
    let terrain = fixtures::terrain();
    let keys: Vec<ChunkKey> = (0..27)
        .map(|i| ChunkKey::new(i % 3, i / 9, (i / 3) % 3))
        .collect();
    env.seed(
        world,
        &keys.iter().map(|k| (*k, &*terrain)).collect::<Vec<_>>(),
    );
    env.init_abi(&env.url);
    writeln!(b, "| chunks | path | median | p99 |").unwrap();
    writeln!(b, "|---|---|---|---|").unwrap();
    for n in [1usize, 27] {
        let ckeys = cw_keys(&keys[..n]);
        let mut buffers = vec![[0i32; 4096]; n];
        let ptrs: Vec<*mut i32> = buffers.iter_mut().map(|b| b.as_mut_ptr()).collect();
        let mut versions = vec![CW_NO_VERSION; n];
        let mut changed = vec![0u8; n];
        let query = FetchQuery {
            world: WorldId::new(world).unwrap(),
            chunks: keys[..n].iter().map(|&k| (k, None)).collect(),
        };
        let direct_url = format!("{}?{}", env.url, query.to_query_string());
        let mut direct_out = vec![[0i32; 4096]; n];
        let (mut t_sdk, mut t_direct) = (Vec::new(), Vec::new());
        for round in 0..env.rounds + 200 {
            let mut sdk_fetch = || {
                versions.fill(CW_NO_VERSION);
                let start = Instant::now();
                abi_fetch(world, &ckeys, &mut versions, &ptrs, &mut changed);
                start.elapsed()
            };
            let mut direct_fetch = || {
                let start = Instant::now();
                let body = env
                    .http
                    .get(&direct_url)
                    .header("token", TOKEN)
                    .send()
                    .unwrap()
                    .bytes()
                    .unwrap();
                let resp: FetchResponse = serde_json::from_slice(&body).unwrap();
                for (entry, out) in resp.chunks.iter().zip(direct_out.iter_mut()) {
                    decode_chunk_into(
                        &blob_from_base64(entry.data.as_deref().unwrap()).unwrap(),
                        out,
                    )
                    .unwrap();
                }
                start.elapsed()
            };
            let (s, d) = if round % 2 == 0 {
                let s = sdk_fetch();
                (s, direct_fetch())
            } else {
                let d = direct_fetch();
                (sdk_fetch(), d)
            };
            if round >= 200 {
                t_sdk.push(s);
                t_direct.push(d);
            }
        }
        assert_eq!(buffers[n - 1], *terrain);
        let (s, d) = (Samples::new(t_sdk), Samples::new(t_direct));
        writeln!(
            b,
            "| {n} | C ABI `cw_fetch_blocks` | {} | {} |",
            us(s.median()),
            us(s.p99())
        )
        .unwrap();
        writeln!(
            b,
            "| {n} | direct reqwest GET + JSON + decode in Rust | {} | {} |",
            us(d.median()),
            us(d.p99())
        )
        .unwrap();
        writeln!(
            b,
            "| {n} | **ratio SDK / direct (median), goal ≤ 1.05** | **{:.3}** | p99 {:.3} |",
            s.median().as_secs_f64() / d.median().as_secs_f64(),
            s.p99().as_secs_f64() / d.p99().as_secs_f64()
        )
        .unwrap();
        let ratio = s.median().as_secs_f64() / d.median().as_secs_f64();
        goals.push(goal(
            &format!("SDK overhead, {n} chunk(s): C ABI / direct reqwest (median)"),
            "≤ 1.05",
            ratio,
            ratio <= 1.05,
            "",
        ));
    }
    cw_shutdown();
    Section {
        title: "1. SDK overhead",
        body: b,
        goals,
    }
}

/// The neighbourhood fixture of `protocol/README.md`: 9x9x9 chunks around (0,0,0); cy<0 solid, cy==0 terrain, cy>0 empty.
fn neighbourhood_keys() -> Vec<ChunkKey> {
    let mut keys = Vec::new();
    for x in -4..=4 {
        for z in -4..=4 {
            for y in -4..=4 {
                keys.push(ChunkKey::new(x, y, z));
            }
        }
    }
    keys
}

fn neighbourhood(env: &Env) -> Section {
    let mut b = String::new();
    let world = "hood";
    let keys = neighbourhood_keys();
    let (solid, terrain) = (fixtures::solid(), fixtures::terrain());
    let seeds: Vec<(ChunkKey, &ChunkData)> = keys
        .iter()
        .filter(|k| k.y <= 0)
        .map(|k| (*k, if k.y < 0 { &*solid } else { &*terrain }))
        .collect();
    env.seed(world, &seeds);
    env.init_abi(&env.proxy_url);
    let ckeys = cw_keys(&keys);
    let mut buffers = vec![[0i32; 4096]; keys.len()];
    let ptrs: Vec<*mut i32> = buffers.iter_mut().map(|b| b.as_mut_ptr()).collect();
    let mut versions = vec![CW_NO_VERSION; keys.len()];
    let mut changed = vec![0u8; keys.len()];
    let runs = if env.rounds < 1000 { 5 } else { 21 };
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    let (mut cold_bytes, mut warm_bytes) = ((0, 0), (0, 0));
    for _ in 0..runs {
        versions.fill(CW_NO_VERSION);
        let before = env.counters.get();
        let start = Instant::now();
        abi_fetch(world, &ckeys, &mut versions, &ptrs, &mut changed);
        cold.push(start.elapsed());
        let after = env.counters.get();
        cold_bytes = (after.0 - before.0, after.1 - before.1);
        assert!(changed.iter().all(|&c| c == 1));
        let before = env.counters.get();
        let start = Instant::now();
        abi_fetch(world, &ckeys, &mut versions, &ptrs, &mut changed);
        warm.push(start.elapsed());
        let after = env.counters.get();
        warm_bytes = (after.0 - before.0, after.1 - before.1);
        assert!(changed.iter().all(|&c| c == 0));
    }
    let (c, w) = (Samples::new(cold), Samples::new(warm));
    writeln!(b, "729 chunks (243 solid, 81 typical terrain, 405 empty) through the C ABI; the SDK splits them into 3 concurrent requests. Bytes counted on the socket (HTTP headers included). {runs} runs.\n").unwrap();
    writeln!(
        b,
        "| load | median time | p99 time | bytes sent | bytes received | raw data size |"
    )
    .unwrap();
    writeln!(b, "|---|---|---|---|---|---|").unwrap();
    writeln!(
        b,
        "| cold (no versions held) | {} | {} | {} B | {} B | {} B |",
        ms(c.median()),
        ms(c.p99()),
        cold_bytes.0,
        cold_bytes.1,
        729 * 16384
    )
    .unwrap();
    writeln!(
        b,
        "| every chunk unchanged (versions held) | {} | {} | {} B | {} B | 0 B |",
        ms(w.median()),
        ms(w.p99()),
        warm_bytes.0,
        warm_bytes.1
    )
    .unwrap();
    cw_shutdown();
    Section {
        title: "4. Neighbourhood load (9x9x9 chunks around a player)",
        body: b,
        goals: Vec::new(),
    }
}

struct ScalingPlot {
    latency: Vec<(f64, f64)>,
    bytes: Vec<(f64, f64)>,
    throughput: Vec<(f64, f64)>,
}

fn scaling(env: &Env) -> (Section, ScalingPlot) {
    let mut b = String::new();
    let world = "scaling";
    let terrain = fixtures::terrain();
    let keys: Vec<ChunkKey> = (0..256).map(|i| ChunkKey::new(i % 16, i / 16, 7)).collect();
    env.seed(
        world,
        &keys.iter().map(|k| (*k, &*terrain)).collect::<Vec<_>>(),
    );
    env.init_abi(&env.proxy_url);
    let mut plot = ScalingPlot {
        latency: Vec::new(),
        bytes: Vec::new(),
        throughput: Vec::new(),
    };
    writeln!(b, "Fetch latency and bytes by chunks per request (typical terrain, C ABI, one request each):\n").unwrap();
    writeln!(
        b,
        "| chunks per request | median | p99 | bytes received per fetch | per chunk |"
    )
    .unwrap();
    writeln!(b, "|---|---|---|---|---|").unwrap();
    for n in [1usize, 8, 64, 256] {
        let ckeys = cw_keys(&keys[..n]);
        let mut buffers = vec![[0i32; 4096]; n];
        let ptrs: Vec<*mut i32> = buffers.iter_mut().map(|b| b.as_mut_ptr()).collect();
        let mut versions = vec![CW_NO_VERSION; n];
        let mut changed = vec![0u8; n];
        let rounds = (env.rounds / 4).max(50) / if n >= 64 { 4 } else { 1 };
        let mut t = Vec::new();
        let mut bytes = 0;
        for _ in 0..rounds {
            versions.fill(CW_NO_VERSION);
            let before = env.counters.get().1;
            let start = Instant::now();
            abi_fetch(world, &ckeys, &mut versions, &ptrs, &mut changed);
            t.push(start.elapsed());
            bytes = env.counters.get().1 - before;
        }
        let s = Samples::new(t);
        writeln!(
            b,
            "| {n} | {} | {} | {bytes} B | {} B |",
            ms(s.median()),
            ms(s.p99()),
            bytes / n as u64
        )
        .unwrap();
        plot.latency
            .push((n as f64, s.median().as_secs_f64() * 1e3));
        plot.bytes.push((n as f64, bytes as f64 / 1024.0));
    }
    env.init_abi(&env.url);
    writeln!(b, "\nThroughput by client threads (each thread: blocking 1-chunk fetches through the C ABI, 2 s):\n").unwrap();
    writeln!(b, "| client threads | fetches/s | vs 1 thread |").unwrap();
    writeln!(b, "|---|---|---|").unwrap();
    let mut base = 0.0;
    for threads in [1usize, 2, 4, 8] {
        let done = Arc::new(AtomicU64::new(0));
        let run_for = Duration::from_secs(if env.rounds < 1000 { 1 } else { 2 });
        let start = Instant::now();
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let done = done.clone();
                std::thread::spawn(move || {
                    let k = [CwChunkKey {
                        x: (t % 16) as i32,
                        y: 0,
                        z: 7,
                    }];
                    let mut buf = [0i32; 4096];
                    let ptrs = [buf.as_mut_ptr()];
                    let (mut v, mut c) = ([CW_NO_VERSION], [0u8]);
                    while start.elapsed() < run_for {
                        v[0] = CW_NO_VERSION;
                        abi_fetch("scaling", &k, &mut v, &ptrs, &mut c);
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let rate = done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
        if threads == 1 {
            base = rate;
        }
        writeln!(b, "| {threads} | {rate:.0} | {:.2}x |", rate / base).unwrap();
        plot.throughput.push((threads as f64, rate));
    }
    cw_shutdown();
    writeln!(b, "\n![latency vs chunks per request](docs/bench/latency-vs-chunks.png)\n\n![throughput vs client threads](docs/bench/throughput-vs-threads.png)").unwrap();
    (
        Section {
            title: "6. Scaling",
            body: b,
            goals: Vec::new(),
        },
        plot,
    )
}

fn csharp(quick: bool) -> Section {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../unity-sample/Tests~/Bench/bench.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg(if quick { "2" } else { "6" })
        .output();
    let body = match out {
        Ok(o) if o.status.success() => format!(
            "Under Mono {}, against the local gateway (embedded store, release build), alternating slices in one run. Managed bytes are those allocated on the calling thread (`GC.GetAllocatedBytesForCurrentThread`); HttpClient also allocates on thread-pool threads, so its figure is a lower bound.\n\n{}",
            mono_version(),
            String::from_utf8_lossy(&o.stdout)
        ),
        Ok(o) => format!("The Mono benchmark failed:\n\n```\n{}\n```", String::from_utf8_lossy(&o.stderr)),
        Err(e) => format!("Mono benchmark not run: {e}"),
    };
    let mut goals = Vec::new();
    for line in body.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if line.contains("throughput ratio") && cells.len() > 3 {
            let v: f64 = cells[3]
                .trim_matches(|c| c == '*' || c == 'x')
                .parse()
                .unwrap_or(0.0);
            goals.push(goal(
                &format!(
                    "C#: CubeWalkClient / hand-written throughput, {} chunk(s)",
                    cells[1]
                ),
                "≥ 3x",
                v,
                v >= 3.0,
                "x",
            ));
        }
        if line.contains("| CubeWalkClient.") && cells.len() > 4 {
            let bytes: f64 = cells[4].parse().unwrap_or(f64::NAN);
            goals.push(goal(
                &format!(
                    "C#: managed bytes per fetch, {} chunk(s), {}",
                    cells[1], cells[2]
                ),
                "0",
                bytes,
                bytes == 0.0,
                " B",
            ));
        }
    }
    Section {
        title: "2. Versus hand-written C# (Mono)",
        body,
        goals,
    }
}

fn mono_version() -> String {
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

fn machine() -> String {
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

fn redis_version() -> String {
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

fn main() {
    let args = Args::parse();
    let all = args.sections.iter().any(|s| s == "all");
    let want = |s: &str| all || args.sections.iter().any(|x| x == s);
    let started = Instant::now();
    let env = Env::start(args.quick);
    let mut sections = Vec::new();
    let mut scaling_plot = None;
    for name in [
        "sdk",
        "csharp",
        "server",
        "neighbourhood",
        "sizes",
        "scaling",
    ] {
        if !want(name) {
            continue;
        }
        eprintln!("== {name}");
        let section = match name {
            "sdk" => sdk(&env),
            "csharp" => csharp(args.quick),
            "server" => server(&env),
            "neighbourhood" => neighbourhood(&env),
            "sizes" => sizes(&env),
            _ => {
                let (s, p) = scaling(&env);
                scaling_plot = Some(p);
                s
            }
        };
        println!("\n## {}\n\n{}", section.title, section.body);
        sections.push(section);
    }
    if let Some(p) = &scaling_plot {
        if plot::init_font() {
            let dir = Path::new("docs/bench");
            let _ = std::fs::create_dir_all(dir);
            let r1 = plot::lines(
                &dir.join("latency-vs-chunks.png"),
                "Fetch latency vs chunks per request",
                "chunks per request",
                "median latency (ms)",
                &[
                    ("median latency (ms)", p.latency.clone()),
                    ("KiB received", p.bytes.clone()),
                ],
            );
            let r2 = plot::lines(
                &dir.join("throughput-vs-threads.png"),
                "1-chunk fetch throughput vs client threads",
                "client threads",
                "fetches per second",
                &[("fetches/s", p.throughput.clone())],
            );
            if let Err(e) = r1.and(r2) {
                eprintln!("plots not written: {e}");
            }
        } else {
            eprintln!(
                "plots not written: DejaVu Sans not found (apt-get install fonts-dejavu-core)"
            );
        }
    }
    if all {
        sections.sort_by_key(|s| s.title);
        let mut md = String::new();
        writeln!(md, "# Benchmarks\n").unwrap();
        writeln!(md, "Produced by `cargo run --release -p cubewalk-bench -- all` (after the README's test set-up) in {:.0} s on: {}.\n", started.elapsed().as_secs_f64(), machine()).unwrap();
        writeln!(md, "**Method.** One process starts a real `redis-server` on a free loopback port, the local gateway on it (in-process, its own 2-thread runtime), and a byte-counting TCP proxy in front of it; the C ABI is called exactly as C would. Paths compared with each other run interleaved round by round (alternating which goes first), after a warm-up, so both see the same machine noise; figures are medians and p99s, comparisons are ratios of medians measured in the same run. Everything shares one 2-core machine (client, gateway, Redis), so absolute figures are a floor; ratios are the point. Speed is never asserted in tests.\n").unwrap();
        writeln!(
            md,
            "## Goals in this run\n\n| measure | goal | this run | |\n|---|---|---|---|"
        )
        .unwrap();
        for s in &sections {
            for g in &s.goals {
                writeln!(md, "{g}").unwrap();
            }
        }
        writeln!(md).unwrap();
        for s in &sections {
            writeln!(md, "## {}\n\n{}", s.title, s.body).unwrap();
        }
        md.push_str(ANALYSIS);
        std::fs::write(&args.out, md).unwrap();
        eprintln!(
            "wrote {} in {:.0} s",
            args.out.display(),
            started.elapsed().as_secs_f64()
        );
    }
}

/// What the figures mean against the goals; kept with the code that produces them.
const ANALYSIS: &str = include_str!("analysis.md");
