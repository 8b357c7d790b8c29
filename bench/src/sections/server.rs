//! Section 3: the server path (gateway and handler) against a raw Redis read.

use crate::env::*;
use crate::rawhttp;
use crate::report::*;
use crate::stats::{us, Samples};
use cubewalk::{ChunkEdit, ChunkKey, Client, ClientOptions};
use cubewalk_e2e::{Stack, TOKEN};
use cubewalk_protocol::codec::fixtures;
use cubewalk_protocol::WorldId;
use cubewalk_server::store::redis_chunk_key;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) fn server(env: &Env) -> Section {
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
    let mut t_mem = Vec::new();
    let (g, r) = interleaved(
        env.rounds,
        |measured| {
            // The embedded-store reference rides along with the gateway path, untimed by it.
            let start = Instant::now();
            assert!(http_memory.get(&path, TOKEN).len() > 50);
            if measured {
                t_mem.push(start.elapsed());
            }
            let start = Instant::now();
            let body = http.get(&path, TOKEN);
            assert!(body.len() > 50);
            start.elapsed()
        },
        |_| {
            let start = Instant::now();
            let blob: Vec<u8> = redis::cmd("HGET")
                .arg(&redis_key)
                .arg("d")
                .query(&mut raw)
                .unwrap();
            assert!(!blob.is_empty());
            start.elapsed()
        },
    );
    let m = Samples::new(t_mem);
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
