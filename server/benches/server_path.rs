//! Server-side figures measured in one run (`cargo bench -p cubewalk-server --bench server_path`):
//!
//! 1. bytes on the wire and bytes in Redis (`MEMORY USAGE`) per chunk for the REFERENCE.md
//!    fixtures (empty, typical terrain, solid, random) against the raw 16 KiB;
//! 2. latency of a 1-chunk fetch through the local gateway (HTTP, authorizer cache, blocks
//!    handler, Redis) next to a raw Redis `HGET` of the same stored blob, interleaved so both
//!    see the same machine noise; medians, p99 and their ratio.

use cubewalk_protocol::codec::fixtures;
use cubewalk_protocol::{ChunkEdit, ChunkKey, FetchResponse, PutRequest, WorldId};
use cubewalk_server::gateway::{GatewayConfig, TokenAuthorizer};
use cubewalk_server::handlers::authorizer::TokenSet;
use cubewalk_server::store::{RedisStore, RedisStoreConfig};
use cubewalk_testkit::{RedisServer, TestGateway};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-token-123";
const ROUNDS: usize = 3000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let redis = RedisServer::start();
    let store = {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(RedisStore::connect(&RedisStoreConfig::new(redis.url())))
            .unwrap()
    };
    let gw = TestGateway::start(
        GatewayConfig::default(),
        Arc::new(TokenAuthorizer(TokenSet::new([TOKEN]))),
        Arc::new(store),
    );
    let http = reqwest::blocking::Client::new();
    let url = gw.blocks_url();

    let chunks = [
        ("empty", fixtures::empty()),
        ("terrain", fixtures::terrain()),
        ("solid", fixtures::solid()),
        ("random", fixtures::random(42)),
    ];
    println!("## Chunk size (bytes)\n");
    println!("| fixture | raw | blob | base64 `data` | whole GET body | Redis MEMORY USAGE |");
    println!("|---|---|---|---|---|---|");
    for (i, (name, chunk)) in chunks.iter().enumerate() {
        let key = ChunkKey::new(i as i32, 0, 0);
        let put = PutRequest {
            world: WorldId::default(),
            edits: chunk
                .iter()
                .enumerate()
                .map(|(n, &v)| ChunkEdit::at_index(key, n as u16, v))
                .collect(),
        };
        let r = http
            .put(&url)
            .header("token", TOKEN)
            .json(&put)
            .send()
            .unwrap();
        assert!(r.status().is_success());
        let body = http
            .get(format!("{url}?chunks={key}"))
            .header("token", TOKEN)
            .send()
            .unwrap()
            .text()
            .unwrap();
        let parsed: FetchResponse = serde_json::from_str(&body).unwrap();
        let data = parsed.chunks[0].data.clone().unwrap();
        let blob = cubewalk_protocol::codec::blob_from_base64(&data).unwrap();
        let usage = redis
            .command(&["MEMORY", "USAGE", &format!("cw:{{default:{key}}}")])
            .unwrap();
        let usage = if usage.starts_with(':') {
            usage.trim_start_matches(':').to_owned()
        } else {
            "0 (no key)".to_owned()
        };
        println!(
            "| {name} | 16384 | {} | {} | {} | {usage} |",
            blob.len(),
            data.len(),
            body.len()
        );
    }

    // Latency: gateway fetch of the terrain chunk vs raw HGET of its stored blob.
    let terrain_key = "cw:{default:1,0,0}";
    let fetch_url = format!("{url}?chunks=1,0,0");
    let mut raw = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let mut t_gw = Vec::with_capacity(ROUNDS);
    let mut t_raw = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS + 200 {
        let start = Instant::now();
        let body = http
            .get(&fetch_url)
            .header("token", TOKEN)
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        let gw_time = start.elapsed();
        assert!(body.len() > 50);
        let start = Instant::now();
        let blob: Vec<u8> = redis::cmd("HGET")
            .arg(terrain_key)
            .arg("d")
            .query(&mut raw)
            .unwrap();
        let raw_time = start.elapsed();
        assert!(!blob.is_empty());
        if round >= 200 {
            t_gw.push(gw_time);
            t_raw.push(raw_time);
        }
    }
    t_gw.sort();
    t_raw.sort();
    let (gw_med, raw_med) = (percentile(&t_gw, 0.5), percentile(&t_raw, 0.5));
    println!("\n## 1-chunk fetch latency ({ROUNDS} interleaved rounds, terrain chunk)\n");
    println!("| path | median | p99 |");
    println!("|---|---|---|");
    println!(
        "| local gateway + authorizer cache + blocks handler + Redis | {:?} | {:?} |",
        gw_med,
        percentile(&t_gw, 0.99)
    );
    println!(
        "| raw Redis HGET of the same blob | {:?} | {:?} |",
        raw_med,
        percentile(&t_raw, 0.99)
    );
    println!(
        "\nratio gateway/raw (median): {:.2}x",
        gw_med.as_secs_f64() / raw_med.as_secs_f64()
    );
}
