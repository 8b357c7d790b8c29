//! The Rust client against a mock HTTP server: status mapping, retries and backoff, timeouts,
//! malformed answers, request splitting.

use cubewalk::retry::RetryPolicy;
use cubewalk::{ChunkEdit, ChunkKey, Client, ClientOptions, Error, Status};
use cubewalk_protocol::codec::{blob_to_base64, encode_chunk, fixtures};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TOKEN: &str = "mock-token-1";

fn options() -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        },
        ..ClientOptions::default()
    }
}

fn client(server: &MockServer, options: ClientOptions) -> Client {
    Client::new(
        &format!("{}/prod/cubewalkblocks", server.uri()),
        TOKEN,
        options,
    )
    .unwrap()
}

fn fetch_body(entries: &[(ChunkKey, u64, Option<&[i32; 4096]>)]) -> serde_json::Value {
    json!({
        "world": "default",
        "chunks": entries.iter().map(|(k, v, d)| {
            let mut e = json!({"key": [k.x, k.y, k.z], "version": v});
            if let Some(d) = d {
                e["data"] = json!(blob_to_base64(&encode_chunk(d)));
            }
            e
        }).collect::<Vec<_>>()
    })
}

async fn mount(server: &MockServer, verb: &str, template: ResponseTemplate) {
    Mock::given(method(verb))
        .and(path("/prod/cubewalkblocks"))
        .respond_with(template)
        .mount(server)
        .await;
}

#[tokio::test]
async fn fetch_decodes_chunks_and_reports_not_modified() {
    let server = MockServer::start().await;
    let terrain = fixtures::terrain();
    let a = ChunkKey::new(0, 0, 0);
    let b = ChunkKey::new(1, -1, 0);
    Mock::given(method("GET"))
        .and(path("/prod/cubewalkblocks"))
        .and(header("token", TOKEN))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fetch_body(&[(a, 4, Some(&terrain)), (b, 2, None)])),
        )
        .expect(1)
        .mount(&server)
        .await;
    let got = client(&server, options())
        .fetch("default", &[(a, None), (b, Some(2))])
        .await
        .unwrap();
    assert_eq!(got[0].version, 4);
    assert_eq!(*got[0].data.as_ref().unwrap().as_ref(), *terrain);
    assert_eq!((got[1].version, got[1].data.is_none()), (2, true));
    let req = &server.received_requests().await.unwrap()[0];
    assert_eq!(req.url.query(), Some("world=default&chunks=0,0,0;1,-1,0@2"));
}

#[tokio::test]
async fn statuses_map_and_4xx_are_not_retried() {
    for (status, expect) in [
        (401, Status::Unauthorized),
        (403, Status::Forbidden),
        (400, Status::BadRequest),
        (404, Status::BadRequest),
        (413, Status::BadRequest),
        (422, Status::BadRequest),
        (500, Status::ServerError),
    ] {
        let server = MockServer::start().await;
        mount(
            &server,
            "GET",
            ResponseTemplate::new(status).set_body_json(json!({"message": "nope"})),
        )
        .await;
        let err = client(&server, options())
            .fetch("default", &[(ChunkKey::new(0, 0, 0), None)])
            .await
            .unwrap_err();
        assert_eq!(err.status(), expect, "{status}: {err}");
        assert!(err.to_string().contains("nope"), "{err}");
        assert_eq!(
            server.received_requests().await.unwrap().len(),
            1,
            "{status} must not be retried"
        );
    }
}

#[tokio::test]
async fn transient_statuses_are_retried_within_the_budget() {
    for status in [429, 502, 503, 504] {
        let server = MockServer::start().await;
        mount(&server, "PUT", ResponseTemplate::new(status)).await;
        let err = client(&server, options())
            .put(
                "default",
                &[ChunkEdit::at_index(ChunkKey::new(0, 0, 0), 1, 1)],
            )
            .await
            .unwrap_err();
        assert_eq!(err.status(), Status::ServerError);
        assert!(matches!(err, Error::Server { attempts: 4, .. }), "{err}");
        let requests = server.received_requests().await.unwrap();
        let (cancels, puts): (Vec<_>, Vec<_>) = requests
            .iter()
            .partition(|r| String::from_utf8_lossy(&r.body).contains("\"cancel\""));
        assert_eq!(puts.len(), 4, "1 try + 3 retries for {status}");
        // A 5xx may come after the put applied somewhere: the SDK then fences it (retried as
        // any repeatable request). A 429 from the gateway never reached the store.
        let fenced = if status >= 500 { 4 } else { 0 };
        assert_eq!(cancels.len(), fenced, "fence requests for {status}");
    }
}

/// Answers 503 the first `failures` times, then 200, recording when each request came.
struct Flaky {
    failures: usize,
    retry_after: Option<&'static str>,
    seen: Arc<Mutex<Vec<Instant>>>,
    ok_body: serde_json::Value,
}

impl Respond for Flaky {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut seen = self.seen.lock().unwrap();
        seen.push(Instant::now());
        if seen.len() <= self.failures {
            let mut r = ResponseTemplate::new(503);
            if let Some(ra) = self.retry_after {
                r = r.insert_header("Retry-After", ra);
            }
            r
        } else {
            ResponseTemplate::new(200).set_body_json(self.ok_body.clone())
        }
    }
}

#[tokio::test]
async fn retry_recovers_and_honours_retry_after() {
    let server = MockServer::start().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let k = ChunkKey::new(0, 0, 0);
    Mock::given(method("GET"))
        .respond_with(Flaky {
            failures: 2,
            retry_after: Some("1"),
            seen: seen.clone(),
            ok_body: fetch_body(&[(k, 0, Some(&[0; 4096]))]),
        })
        .mount(&server)
        .await;
    let opts = ClientOptions {
        retry: RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_secs(3),
        },
        ..options()
    };
    let got = client(&server, opts)
        .fetch("default", &[(k, None)])
        .await
        .unwrap();
    assert_eq!(got[0].version, 0);
    let times = seen.lock().unwrap().clone();
    assert_eq!(times.len(), 3);
    for pair in times.windows(2) {
        let gap = pair[1].duration_since(pair[0]);
        assert!(
            gap >= Duration::from_millis(950),
            "Retry-After: 1 was not honoured ({gap:?})"
        );
    }
}

#[tokio::test]
async fn a_slow_server_times_out() {
    let server = MockServer::start().await;
    mount(
        &server,
        "GET",
        ResponseTemplate::new(200).set_delay(Duration::from_secs(10)),
    )
    .await;
    let opts = ClientOptions {
        timeout: Duration::from_millis(300),
        ..options()
    };
    let err = client(&server, opts)
        .fetch("default", &[(ChunkKey::new(0, 0, 0), None)])
        .await
        .unwrap_err();
    assert_eq!(err.status(), Status::Timeout, "{err}");
}

#[tokio::test]
async fn malformed_and_truncated_answers_are_protocol_errors() {
    let k = ChunkKey::new(0, 0, 0);
    let full = fetch_body(&[(k, 1, Some(&fixtures::terrain()))]).to_string();
    let bodies = vec![
        "not json".to_string(),
        full[..full.len() / 2].to_string(),
        json!({"world": "default", "chunks": []}).to_string(),
        json!({"world": "default", "chunks": [{"key": [9, 9, 9], "version": 1, "data": ""}]})
            .to_string(),
        json!({"world": "default", "chunks": [{"key": [0, 0, 0], "version": 1, "data": "!!!"}]})
            .to_string(),
        json!({"world": "default", "chunks": [{"key": [0, 0, 0], "version": 1, "data": "CQ=="}]})
            .to_string(),
        json!({"world": "default", "chunks": [{"key": [0, 0, 0], "version": 5}]}).to_string(),
    ];
    for body in bodies {
        let server = MockServer::start().await;
        mount(
            &server,
            "GET",
            ResponseTemplate::new(200).set_body_string(body.clone()),
        )
        .await;
        let err = client(&server, options())
            .fetch("default", &[(k, None)])
            .await
            .unwrap_err();
        assert_eq!(err.status(), Status::Protocol, "{body}: {err}");
    }
}

#[tokio::test]
async fn refused_connection_is_a_network_error_after_retries() {
    let port = cubewalk_testkit::free_port();
    let c = Client::new(
        &format!("http://127.0.0.1:{port}/prod/cubewalkblocks"),
        TOKEN,
        options(),
    )
    .unwrap();
    let err = c
        .fetch("default", &[(ChunkKey::new(0, 0, 0), None)])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Network { attempts: 4, .. }), "{err}");
    assert!(!err.to_string().contains(TOKEN));
}

#[tokio::test]
async fn large_fetches_and_puts_are_split() {
    let server = MockServer::start().await;
    // Echo a valid fetch answer for whatever was asked.
    struct Echo;
    impl Respond for Echo {
        fn respond(&self, req: &Request) -> ResponseTemplate {
            let q: std::collections::HashMap<String, String> =
                req.url.query_pairs().into_owned().collect();
            let keys: Vec<serde_json::Value> = q["chunks"]
                .split(';')
                .map(|k| {
                    let p: Vec<i32> = k.split(',').map(|n| n.parse().unwrap()).collect();
                    json!({"key": p, "version": 0, "data": ""})
                })
                .collect();
            ResponseTemplate::new(200).set_body_json(json!({"world": "default", "chunks": keys}))
        }
    }
    Mock::given(method("GET"))
        .respond_with(Echo)
        .mount(&server)
        .await;
    let keys: Vec<_> = (0..729)
        .map(|i| (ChunkKey::new(i % 9 - 4, i / 81 - 4, (i / 9) % 9 - 4), None))
        .collect();
    let got = client(&server, options())
        .fetch("default", &keys)
        .await
        .unwrap();
    assert_eq!(got.len(), 729);
    assert!(
        got.iter().zip(&keys).all(|(g, (k, _))| g.key == *k),
        "answers in the order asked"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 3);

    let server = MockServer::start().await;
    struct PutEcho;
    impl Respond for PutEcho {
        fn respond(&self, req: &Request) -> ResponseTemplate {
            let body: cubewalk_protocol::PutRequest = serde_json::from_slice(&req.body).unwrap();
            let mut keys: Vec<ChunkKey> = body.edits.iter().map(|e| e.chunk).collect();
            keys.dedup();
            let chunks: Vec<_> = keys
                .iter()
                .map(|k| json!({"key": [k.x, k.y, k.z], "version": 1}))
                .collect();
            ResponseTemplate::new(200).set_body_json(json!({"world": "default", "chunks": chunks}))
        }
    }
    Mock::given(method("PUT"))
        .respond_with(PutEcho)
        .mount(&server)
        .await;
    let edits: Vec<ChunkEdit> = (0..10)
        .flat_map(|c| (0..4096u16).map(move |i| ChunkEdit::at_index(ChunkKey::new(c, 0, 0), i, 1)))
        .collect();
    let versions = client(&server, options())
        .put("default", &edits)
        .await
        .unwrap();
    assert_eq!(versions.len(), 10);
    assert!(versions
        .iter()
        .enumerate()
        .all(|(i, v)| v.key == ChunkKey::new(i as i32, 0, 0)));
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        3,
        "40960 edits in 3 puts of whole chunks"
    );
}

#[tokio::test]
async fn bad_arguments_are_refused_before_sending() {
    let server = MockServer::start().await;
    let c = client(&server, options());
    let k = ChunkKey::new(0, 0, 0);
    assert_eq!(
        c.fetch("bad world", &[(k, None)])
            .await
            .unwrap_err()
            .status(),
        Status::InvalidArgument
    );
    assert_eq!(
        c.fetch("w", &[(k, None), (k, None)])
            .await
            .unwrap_err()
            .status(),
        Status::InvalidArgument
    );
    let bad = ChunkEdit {
        chunk: k,
        index: Some(5000),
        local: None,
        value: 1,
    };
    assert_eq!(
        c.put("w", &[bad]).await.unwrap_err().status(),
        Status::InvalidArgument
    );
    assert!(server.received_requests().await.unwrap().is_empty());
    for (endpoint, token) in [
        ("http://example.com/prod/cubewalkblocks", TOKEN),
        ("not a url", TOKEN),
        ("https://example.com/prod/cubewalkblocks", ""),
        ("https://example.com/prod/cubewalkblocks", "line\nbreak"),
    ] {
        let err = Client::new(endpoint, token, options()).unwrap_err();
        assert_eq!(err.status(), Status::InvalidArgument, "{endpoint}");
    }
}
