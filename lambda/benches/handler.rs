//! CPU cost of the blocks handler per invocation, compiled exactly as the Lambda binaries are
//! (this crate's release profile), on the embedded store so Redis latency is not measured.
//! `cargo bench -p cubewalk-lambda` (see BENCHMARKS.md for the comparison it was written for).

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use criterion::{criterion_group, criterion_main, Criterion};
use cubewalk_protocol::codec::fixtures;
use cubewalk_protocol::messages::{ChunkEdits, CubeRef};
use cubewalk_protocol::{ChunkKey, WorldId};
use cubewalk_server::handlers::blocks::{handle, RESOURCE};
use cubewalk_server::store::{ChunkStore, MemoryStore};
use std::collections::HashMap;

/// What the authorizer hands every request: an editor of every world.
fn authorized() -> ApiGatewayProxyRequest {
    let mut e = ApiGatewayProxyRequest::default();
    let player = cubewalk_server::identity::Player {
        id: "bench".into(),
        role: cubewalk_server::identity::Role::Editor,
        worlds: cubewalk_server::identity::Worlds::All,
    };
    e.request_context.authorizer.fields = serde_json::from_value(player.to_context()).unwrap();
    e
}

fn get(world: &str, chunks: &str) -> ApiGatewayProxyRequest {
    let mut e = authorized();
    e.resource = Some(RESOURCE.into());
    e.http_method = http::Method::GET;
    let q: HashMap<String, String> = [("world", world), ("chunks", chunks)]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    e.query_string_parameters = q.into();
    e
}

fn put(world: &str, body: String) -> ApiGatewayProxyRequest {
    let mut e = authorized();
    e.resource = Some(RESOURCE.into());
    e.http_method = http::Method::PUT;
    e.query_string_parameters = HashMap::from([("world".to_string(), world.to_string())]).into();
    e.body = Some(body);
    e
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store = MemoryStore::new();
    let world = WorldId::new("bench").unwrap();
    // 27 chunks of typical terrain around (0,0,0).
    let keys: Vec<ChunkKey> = (-1..=1)
        .flat_map(|x| (-1..=1).flat_map(move |z| (-1..=1).map(move |y| ChunkKey { x, y, z })))
        .collect();
    let terrain = fixtures::terrain();
    let edits: Vec<ChunkEdits> = keys
        .iter()
        .map(|k| {
            let cubes = terrain
                .iter()
                .enumerate()
                .map(|(i, v)| CubeRef {
                    index: i as u16,
                    value: *v,
                })
                .collect();
            (*k, cubes)
        })
        .collect();
    rt.block_on(store.apply(&world, &edits, None)).unwrap();
    let selection: Vec<String> = keys
        .iter()
        .map(|k| format!("{},{},{}", k.x, k.y, k.z))
        .collect();
    let fetch27 = get("bench", &selection.join(";"));

    // Two bodies each, alternated, so every put changes the cubes it names.
    let one_cube: Vec<ApiGatewayProxyRequest> = (1..=2)
        .map(|v| {
            put(
                "bench",
                format!(r#"{{"edits":[{{"chunk":[0,0,0],"index":100,"value":{v}}}]}}"#),
            )
        })
        .collect();
    let bulk: Vec<ApiGatewayProxyRequest> = (1..=2)
        .map(|v| {
            let edits: Vec<String> = (0..4096)
                .map(|i| {
                    format!(
                        r#"{{"chunk":[{},0,0],"index":{},"value":{}}}"#,
                        i % 4,
                        i,
                        v * i
                    )
                })
                .collect();
            put("bench", format!(r#"{{"edits":[{}]}}"#, edits.join(",")))
        })
        .collect();

    for event in [&fetch27, &one_cube[0], &bulk[0]] {
        let answer = rt.block_on(handle(event, &store));
        assert_eq!(answer.status_code, 200, "{:?}", answer.body);
    }

    c.bench_function("GET 27 terrain chunks", |b| {
        b.iter(|| rt.block_on(handle(&fetch27, &store)))
    });
    let mut n = 0;
    c.bench_function("PUT 1 cube", |b| {
        b.iter(|| {
            n += 1;
            rt.block_on(handle(&one_cube[n % 2], &store))
        })
    });
    c.bench_function("PUT 4096 cubes over 4 chunks", |b| {
        b.iter(|| {
            n += 1;
            rt.block_on(handle(&bulk[n % 2], &store))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
