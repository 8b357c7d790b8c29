//! Section 1: the C ABI against a direct Rust fetch of the same chunks.

use crate::env::*;
use crate::report::*;
use crate::stats::us;
use cubewalk::ffi::*;
use cubewalk::ChunkKey;
use cubewalk_e2e::TOKEN;
use cubewalk_protocol::codec::{blob_from_base64, decode_chunk_into, fixtures};
use cubewalk_protocol::{FetchQuery, FetchResponse, WorldId};
use std::fmt::Write as _;
use std::time::Instant;

pub(crate) fn sdk(env: &Env) -> Section {
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
        let (s, d) = interleaved(
            env.rounds,
            |_| {
                versions.fill(CW_NO_VERSION);
                let start = Instant::now();
                abi_fetch(world, &ckeys, &mut versions, &ptrs, &mut changed);
                start.elapsed()
            },
            |_| {
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
            },
        );
        assert_eq!(buffers[n - 1], *terrain);
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
