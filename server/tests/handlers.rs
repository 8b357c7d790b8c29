//! The blocks handler driven by real API Gateway REST proxy events, and its answer to bad input.

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use cubewalk_protocol::codec::{blob_from_base64, decode_chunk};
use cubewalk_protocol::limits::{MAX_CHUNKS_PER_FETCH, MAX_CHUNKS_PER_PUT, MAX_EDITS_PER_PUT};
use cubewalk_protocol::{ErrorBody, FetchResponse, PutResponse};
use cubewalk_server::handlers::blocks::handle;
use cubewalk_server::store::{ChunkStore, MemoryStore, RedisStore, RedisStoreConfig};
use serde_json::{json, Value};
use std::collections::HashMap;

fn event(name: &str) -> ApiGatewayProxyRequest {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn get_event(query: &[(&str, &str)]) -> ApiGatewayProxyRequest {
    let mut e = event("rest-get-event.json");
    let map: HashMap<String, String> = query
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    e.query_string_parameters = map.into();
    e
}

fn put_event(body: &str) -> ApiGatewayProxyRequest {
    let mut e = event("rest-put-event.json");
    e.body = Some(body.to_owned());
    e
}

fn body_text(r: &ApiGatewayProxyResponse) -> String {
    match &r.body {
        Some(Body::Text(t)) => t.clone(),
        other => panic!("unexpected body {other:?}"),
    }
}

async fn send(store: &dyn ChunkStore, e: &ApiGatewayProxyRequest) -> (u16, String) {
    let r = handle(e, store).await;
    assert_eq!(r.headers["content-type"], "application/json");
    (r.status_code as u16, body_text(&r))
}

#[tokio::test]
async fn real_events_round_trip() {
    let store = MemoryStore::new();
    let (status, body) = send(&store, &event("rest-put-event.json")).await;
    assert_eq!(status, 200, "{body}");
    let put: PutResponse = serde_json::from_str(&body).unwrap();
    let (r0, r1) = (put.chunks[0].version, put.chunks[1].version);
    assert_eq!(
        serde_json::to_value(&put).unwrap(),
        json!({"world": "default", "chunks": [
            {"key": [0, 0, 0], "version": r0},
            {"key": [1, 0, 0], "version": r1}
        ]})
    );

    // The fixture asks for chunk 0,0,0 (no version held) and 1,0,0 (holding version 0).
    let (status, body) = send(&store, &event("rest-get-event.json")).await;
    assert_eq!(status, 200, "{body}");
    let got: FetchResponse = serde_json::from_str(&body).unwrap();
    assert_eq!(got.chunks.len(), 2);
    let c0 =
        decode_chunk(&blob_from_base64(got.chunks[0].data.as_deref().unwrap()).unwrap()).unwrap();
    assert_eq!(c0[5], 3);
    let c1 =
        decode_chunk(&blob_from_base64(got.chunks[1].data.as_deref().unwrap()).unwrap()).unwrap();
    assert_eq!(c1[4095], -1);
    assert_eq!((got.chunks[0].version, got.chunks[1].version), (r0, r1));

    // Holding the current versions: both come back without data.
    let held = format!("0,0,0@{r0};1,0,0@{r1};2,0,0@0");
    let (_, body) = send(&store, &get_event(&[("chunks", held.as_str())])).await;
    let got: Value = serde_json::from_str(&body).unwrap();
    // Each written chunk carries its write sequence (the store's clock at the write).
    let (n0, n1) = (&got["chunks"][0]["n"], &got["chunks"][1]["n"]);
    assert!(n0.as_u64().is_some_and(|n| n > 0) && n1.as_u64().is_some_and(|n| n > 0));
    assert_eq!(
        got,
        json!({"world": "default", "chunks": [
            {"key": [0, 0, 0], "version": r0, "n": n0},
            {"key": [1, 0, 0], "version": r1, "n": n1},
            {"key": [2, 0, 0], "version": 0}
        ]})
    );
    // A version that names other content is answered with the data.
    let stale = format!("0,0,0@{r1}");
    let (_, body) = send(&store, &get_event(&[("chunks", stale.as_str())])).await;
    assert!(body.contains(r#""data":""#), "{body}");
    // A never-written chunk asked without a version reads as all air ("" data) at version 0.
    let (_, body) = send(&store, &get_event(&[("chunks", "9,9,9")])).await;
    assert_eq!(
        body,
        r#"{"world":"default","chunks":[{"key":[9,9,9],"version":0,"data":""}]}"#
    );
}

#[tokio::test]
async fn base64_encoded_bodies_are_read() {
    use base64::Engine;
    let store = MemoryStore::new();
    let mut e = put_event("");
    e.body = Some(
        base64::engine::general_purpose::STANDARD
            .encode(r#"{"edits":[{"chunk":[0,0,0],"index":0,"value":1}]}"#),
    );
    e.is_base64_encoded = true;
    assert_eq!(send(&store, &e).await.0, 200);
}

async fn expect_error(store: &dyn ChunkStore, e: &ApiGatewayProxyRequest, status: u16, code: &str) {
    let (got, body) = send(store, e).await;
    let parsed: ErrorBody =
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("not a JSON error: {body}"));
    assert_eq!((got, parsed.error.code.as_str()), (status, code), "{body}");
    assert!(!parsed.error.message.is_empty());
}

#[tokio::test]
async fn bad_input_gets_a_4xx_json_error() {
    let store = MemoryStore::new();
    let s = &store;
    // Query problems.
    expect_error(s, &get_event(&[("chunks", "1,2")]), 400, "bad_query").await;
    expect_error(s, &get_event(&[("chunks", "a,b,c")]), 400, "bad_query").await;
    expect_error(
        s,
        &get_event(&[("chunks", "0,0,99999999999")]),
        400,
        "bad_query",
    )
    .await;
    expect_error(s, &get_event(&[("chunks", "0,0,0@x")]), 400, "bad_query").await;
    expect_error(
        s,
        &get_event(&[("chunks", "0,0,0;0,0,0")]),
        422,
        "invalid_request",
    )
    .await;
    expect_error(
        s,
        &get_event(&[("world", "no spaces")]),
        422,
        "invalid_request",
    )
    .await;
    expect_error(s, &get_event(&[("world", "")]), 422, "invalid_request").await;
    let many: Vec<String> = (0..=MAX_CHUNKS_PER_FETCH)
        .map(|i| format!("{i},0,0"))
        .collect();
    expect_error(
        s,
        &get_event(&[("chunks", &many.join(";"))]),
        413,
        "too_large",
    )
    .await;
    // Body problems.
    expect_error(s, &put_event("{"), 400, "malformed_json").await;
    expect_error(s, &put_event(""), 400, "malformed_json").await;
    expect_error(s, &put_event("not json"), 400, "malformed_json").await;
    expect_error(s, &put_event("[]"), 422, "invalid_request").await;
    expect_error(s, &put_event(r#"{"edits":"x"}"#), 422, "invalid_request").await;
    expect_error(
        s,
        &put_event(r#"{"edits":[{"chunk":[0,0],"index":1,"value":1}]}"#),
        422,
        "invalid_request",
    )
    .await;
    expect_error(
        s,
        &put_event(r#"{"edits":[{"chunk":[0,0,0],"index":1,"value":"1"}]}"#),
        422,
        "invalid_request",
    )
    .await;
    expect_error(
        s,
        &put_event(r#"{"edits":[{"chunk":[0,0,0],"index":1,"value":4294967296}]}"#),
        422,
        "invalid_request",
    )
    .await;
    expect_error(
        s,
        &put_event(r#"{"edits":[{"chunk":[0,0,0],"index":4096,"value":1}]}"#),
        422,
        "invalid_request",
    )
    .await;
    expect_error(
        s,
        &put_event(r#"{"edits":[{"chunk":[0,0,0],"index":-1,"value":1}]}"#),
        422,
        "invalid_request",
    )
    .await;
    expect_error(
        s,
        &put_event(r#"{"edits":[{"chunk":[0,0,0],"local":[16,0,0],"value":1}]}"#),
        422,
        "invalid_request",
    )
    .await;
    expect_error(
        s,
        &put_event(r#"{"edits":[{"chunk":[0,0,0],"value":1}]}"#),
        422,
        "invalid_request",
    )
    .await;
    expect_error(
        s,
        &put_event(r#"{"world":"a/b","edits":[]}"#),
        422,
        "invalid_request",
    )
    .await;
    expect_error(
        s,
        &put_event(&format!("{}{}", "[".repeat(50_000), "]".repeat(50_000))),
        422,
        "invalid_request",
    )
    .await;
    expect_error(
        s,
        &put_event(&format!(
            r#"{{"edits":{}{}}}"#,
            "[".repeat(50_000),
            "]".repeat(50_000)
        )),
        422,
        "invalid_request",
    )
    .await;

    let edits: Vec<Value> = (0..=MAX_EDITS_PER_PUT)
        .map(|i| json!({"chunk": [0, 0, 0], "index": i % 4096, "value": 1}))
        .collect();
    expect_error(
        s,
        &put_event(&json!({"edits": edits}).to_string()),
        413,
        "too_large",
    )
    .await;
    let edits: Vec<Value> = (0..=MAX_CHUNKS_PER_PUT)
        .map(|i| json!({"chunk": [i, 0, 0], "index": 0, "value": 1}))
        .collect();
    expect_error(
        s,
        &put_event(&json!({"edits": edits}).to_string()),
        413,
        "too_large",
    )
    .await;
    expect_error(
        s,
        &put_event(&"x".repeat(3 * 1024 * 1024)),
        413,
        "too_large",
    )
    .await;
    let mut bad64 = put_event("!!!");
    bad64.is_base64_encoded = true;
    expect_error(s, &bad64, 400, "malformed_json").await;

    // Resource and method.
    let mut other = event("rest-get-event.json");
    other.resource = Some("/elsewhere".into());
    expect_error(s, &other, 404, "not_found").await;
    let mut delete = event("rest-get-event.json");
    delete.http_method = http::Method::DELETE;
    let r = handle(&delete, s).await;
    assert_eq!(r.status_code, 405);
    assert_eq!(r.headers["allow"], "GET, PUT");

    // Nothing of the refused puts landed.
    let (_, body) = send(s, &get_event(&[("chunks", "0,0,0")])).await;
    assert!(body.contains(r#""version":0"#), "{body}");
}

#[tokio::test]
async fn unreachable_redis_is_503() {
    let port = cubewalk_testkit::free_port();
    let store =
        RedisStore::connect_lazy(&RedisStoreConfig::new(format!("redis://127.0.0.1:{port}")))
            .unwrap();
    expect_error(
        &store,
        &event("rest-get-event.json"),
        503,
        "store_unavailable",
    )
    .await;
    expect_error(
        &store,
        &event("rest-put-event.json"),
        503,
        "store_unavailable",
    )
    .await;
}

#[tokio::test]
async fn lambda_response_serializes_as_api_gateway_expects() {
    let r = handle(&event("rest-get-event.json"), &MemoryStore::new()).await;
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["statusCode"], 200);
    assert_eq!(v["headers"]["content-type"], "application/json");
    assert!(v["body"].is_string());
}

mod hostile {
    use super::*;
    use proptest::prelude::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]
        /// Whatever the body, the handler answers 200 or a 4xx JSON error: never a 500 or a panic.
        #[test]
        fn any_put_body_is_200_or_a_4xx(body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
            "\\{\"edits\":\\[(\\{\"chunk\":\\[-?[0-9]{1,12},-?[0-9]{1,3},[0-9]\\],\"(index|local)\":[0-9\\[\\],]{1,8},\"value\":-?[0-9]{1,12}\\},?){0,4}\\]\\}",
        ]) {
            let store = MemoryStore::new();
            let r = runtime().block_on(handle(&put_event(&body), &store));
            let status = r.status_code;
            prop_assert!(status == 200 || (400..500).contains(&status), "status {} for {:?}", status, body);
            if status != 200 {
                let parsed: Result<ErrorBody, _> = serde_json::from_str(&body_text(&r));
                prop_assert!(parsed.is_ok());
            }
        }

        /// Whatever the query, the handler answers 200 or a 4xx JSON error.
        #[test]
        fn any_query_is_200_or_a_4xx(world in ".{0,70}", chunks in "[-0-9,;@a-z]{0,200}") {
            let store = MemoryStore::new();
            let r = runtime().block_on(handle(&get_event(&[("world", &world), ("chunks", &chunks)]), &store));
            let status = r.status_code;
            prop_assert!(status == 200 || (400..500).contains(&status), "status {}", status);
        }
    }
}
