//! Section 4: loading and refreshing a 9x9x9 neighbourhood.

use crate::env::*;
use crate::report::*;
use crate::stats::{ms, Samples};
use cubewalk::ffi::*;
use cubewalk::ChunkKey;
use cubewalk_protocol::codec::{fixtures, ChunkData};
use std::fmt::Write as _;
use std::time::Instant;

/// The neighbourhood fixture of `protocol/README.md`: 9x9x9 chunks around (0,0,0); cy<0 solid, cy==0 terrain, cy>0 empty.
pub(crate) fn neighbourhood_keys() -> Vec<ChunkKey> {
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

pub(crate) fn neighbourhood(env: &Env) -> Section {
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
