//! Section 6: latency and bytes by chunks per request, throughput by client threads.

use crate::env::*;
use crate::report::*;
use crate::stats::{ms, Samples};
use cubewalk::ffi::*;
use cubewalk::ChunkKey;
use cubewalk_protocol::codec::fixtures;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) struct ScalingPlot {
    pub(crate) latency: Vec<(f64, f64)>,
    pub(crate) bytes: Vec<(f64, f64)>,
    pub(crate) throughput: Vec<(f64, f64)>,
}

pub(crate) fn scaling(env: &Env) -> (Section, ScalingPlot) {
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
