//! SDK overhead, measured in one run (`cargo bench -p cubewalk --bench overhead`): median and
//! p99 latency of fetching 1 and 27 terrain chunks through the C ABI (`cw_fetch_blocks`) next
//! to the least a Rust program could do against the same local gateway (one reqwest GET on a
//! kept-alive connection, JSON parse, base64 and chunk decode). Rounds are interleaved so both
//! paths see the same machine noise.

use cubewalk::ffi::*;
use cubewalk::Status;
use cubewalk_protocol::codec::{blob_from_base64, decode_chunk_into, fixtures};
use cubewalk_protocol::{ChunkEdit, ChunkKey, FetchQuery, FetchResponse, PutRequest, WorldId};
use cubewalk_server::gateway::{GatewayConfig, TokenAuthorizer};
use cubewalk_server::handlers::authorizer::TokenSet;
use cubewalk_server::store::MemoryStore;
use cubewalk_testkit::TestGateway;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-token-123";
const ROUNDS: usize = 4000;
const WARMUP: usize = 200;

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let gw = TestGateway::start(
        GatewayConfig::default(),
        Arc::new(TokenAuthorizer(TokenSet::new([TOKEN]))),
        Arc::new(MemoryStore::new()),
    );
    let url = gw.blocks_url();
    let http = reqwest::blocking::Client::new();
    let terrain = fixtures::terrain();
    let keys: Vec<ChunkKey> = (0..27)
        .map(|i| ChunkKey::new(i % 3, i / 9, (i / 3) % 3))
        .collect();
    for &k in &keys {
        let edits = terrain
            .iter()
            .enumerate()
            .map(|(i, &v)| ChunkEdit::at_index(k, i as u16, v))
            .collect();
        let put = PutRequest {
            world: WorldId::default(),
            edits,
        };
        assert!(http
            .put(&url)
            .header("token", TOKEN)
            .json(&put)
            .send()
            .unwrap()
            .status()
            .is_success());
    }

    assert_eq!(
        unsafe { cw_init(url.as_ptr(), url.len(), TOKEN.as_ptr(), TOKEN.len()) },
        Status::Ok
    );
    println!("| chunks | path | median | p99 |");
    println!("|---|---|---|---|");
    for n in [1usize, 27] {
        let ckeys: Vec<CwChunkKey> = keys[..n]
            .iter()
            .map(|k| CwChunkKey {
                x: k.x,
                y: k.y,
                z: k.z,
            })
            .collect();
        let mut buffers = vec![Box::new([0i32; 4096]); n];
        let ptrs: Vec<*mut i32> = buffers.iter_mut().map(|b| b.as_mut_ptr()).collect();
        let mut versions = vec![CW_NO_VERSION; n];
        let query = FetchQuery {
            world: WorldId::default(),
            chunks: keys[..n].iter().map(|&k| (k, None)).collect(),
        };
        let direct_url = format!("{url}?{}", query.to_query_string());
        let mut direct_out = vec![[0i32; 4096]; n];
        let (mut t_sdk, mut t_direct) = (Vec::new(), Vec::new());
        let mut sdk_fetch = || {
            versions.fill(CW_NO_VERSION);
            let start = Instant::now();
            let s = unsafe {
                cw_fetch_blocks(
                    b"default".as_ptr(),
                    7,
                    ckeys.as_ptr(),
                    n,
                    versions.as_mut_ptr(),
                    ptrs.as_ptr(),
                    std::ptr::null_mut(),
                )
            };
            assert_eq!(s, Status::Ok);
            start.elapsed()
        };
        let mut direct_fetch = || {
            let start = Instant::now();
            let body = http
                .get(&direct_url)
                .header("token", TOKEN)
                .send()
                .unwrap()
                .bytes()
                .unwrap();
            let resp: FetchResponse = serde_json::from_slice(&body).unwrap();
            for (entry, out) in resp.chunks.iter().zip(direct_out.iter_mut()) {
                let blob = blob_from_base64(entry.data.as_deref().unwrap()).unwrap();
                decode_chunk_into(&blob, out).unwrap();
            }
            start.elapsed()
        };
        for round in 0..ROUNDS + WARMUP {
            // Alternate which path goes first so neither always follows the other.
            let (sdk, direct) = if round % 2 == 0 {
                let a = sdk_fetch();
                (a, direct_fetch())
            } else {
                let b = direct_fetch();
                (sdk_fetch(), b)
            };
            if round >= WARMUP {
                t_sdk.push(sdk);
                t_direct.push(direct);
            }
        }
        assert_eq!(*buffers[0], *terrain);
        assert_eq!(direct_out[0], *terrain);
        t_sdk.sort();
        t_direct.sort();
        println!(
            "| {n} | C ABI cw_fetch_blocks | {:?} | {:?} |",
            pct(&t_sdk, 0.5),
            pct(&t_sdk, 0.99)
        );
        println!(
            "| {n} | direct reqwest + decode | {:?} | {:?} |",
            pct(&t_direct, 0.5),
            pct(&t_direct, 0.99)
        );
        println!(
            "| {n} | **ratio SDK/direct (median)** | **{:.3}** | |",
            pct(&t_sdk, 0.5).as_secs_f64() / pct(&t_direct, 0.5).as_secs_f64()
        );
    }
    cw_shutdown();
}
