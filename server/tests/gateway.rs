//! Parity of the local gateway with API Gateway's REST behaviour (authorizer outcomes and their
//! bodies, caching, limits), as listed in `protocol/README.md` and the README.

use async_trait::async_trait;
use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequest;
use cubewalk_server::gateway::{Authorizer, GatewayConfig, TokenAuthorizer};
use cubewalk_server::identity::TokenSet;
use cubewalk_server::store::MemoryStore;
use cubewalk_testkit::TestGateway;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "good-token-123";

/// What a scripted authorizer answers for an event.
type Answer =
    Box<dyn Fn(&ApiGatewayCustomAuthorizerRequest) -> Result<Value, String> + Send + Sync>;

/// An authorizer whose answer the test scripts, counting its invocations.
struct Scripted {
    calls: AtomicUsize,
    answer: Answer,
    delay: Duration,
    panic: bool,
}

#[async_trait]
impl Authorizer for Scripted {
    async fn invoke(&self, event: ApiGatewayCustomAuthorizerRequest) -> Result<Value, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        assert!(!self.panic, "authorizer bug");
        (self.answer)(&event)
    }
}

fn scripted(
    answer: impl Fn(&ApiGatewayCustomAuthorizerRequest) -> Result<Value, String> + Send + Sync + 'static,
) -> Arc<Scripted> {
    Arc::new(Scripted {
        calls: AtomicUsize::new(0),
        answer: Box::new(answer),
        delay: Duration::ZERO,
        panic: false,
    })
}

fn policy(effect: &str, resource: &str) -> Value {
    json!({
        "principalId": "tester",
        "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}
        ]},
        "context": {"who": "tester", "n": 3, "ok": true, "player": "tester", "role": "editor", "worlds": "*"}
    })
}

fn start(config: GatewayConfig, auth: Arc<dyn Authorizer>) -> TestGateway {
    TestGateway::start(config, auth, Arc::new(MemoryStore::new()))
}

async fn call(method: &str, url: &str, token: Option<&str>, body: Option<String>) -> (u16, String) {
    let client = reqwest::Client::new();
    let mut req = client.request(method.parse().unwrap(), url);
    if let Some(t) = token {
        req = req.header("token", t);
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

const UNAUTHORIZED: &str = r#"{"message":"Unauthorized"}"#;

#[tokio::test]
async fn missing_or_malformed_token_is_401_without_calling_the_authorizer() {
    let auth = scripted(|_| Ok(policy("Allow", "*")));
    let gw = start(GatewayConfig::default(), auth.clone());
    let url = gw.blocks_url();
    assert_eq!(
        call("GET", &url, None, None).await,
        (401, UNAUTHORIZED.into())
    );
    assert_eq!(
        call("GET", &url, Some(""), None).await,
        (401, UNAUTHORIZED.into())
    );
    // Fails the default validation expression: too short, and a forbidden character.
    assert_eq!(
        call("GET", &url, Some("short"), None).await,
        (401, UNAUTHORIZED.into())
    );
    assert_eq!(
        call("GET", &url, Some("bad token!!"), None).await,
        (401, UNAUTHORIZED.into())
    );
    assert_eq!(auth.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn wrong_token_is_401_and_right_token_is_200() {
    let gw = start(
        GatewayConfig::default(),
        Arc::new(TokenAuthorizer(TokenSet::new([TOKEN]).into())),
    );
    let url = gw.blocks_url();
    assert_eq!(
        call("GET", &url, Some("wrong-token-456"), None).await,
        (401, UNAUTHORIZED.into())
    );
    let (status, body) = call("GET", &url, Some(TOKEN), None).await;
    assert_eq!(status, 200);
    assert_eq!(body, r#"{"world":"default","chunks":[]}"#);
}

#[tokio::test]
async fn deny_and_missing_allow_are_403_with_api_gateway_bodies() {
    let deny = start(
        GatewayConfig::default(),
        scripted(|_| Ok(policy("Deny", "*"))),
    );
    assert_eq!(
        call("GET", &deny.blocks_url(), Some(TOKEN), None).await,
        (
            403,
            r#"{"message":"User is not authorized to access this resource with an explicit deny"}"#
                .into()
        )
    );
    let elsewhere = start(
        GatewayConfig::default(),
        scripted(|_| Ok(policy("Allow", "arn:aws:execute-api:*:*:other/prod/*/*"))),
    );
    assert_eq!(
        call("GET", &elsewhere.blocks_url(), Some(TOKEN), None).await,
        (
            403,
            r#"{"message":"User is not authorized to access this resource"}"#.into()
        )
    );
}

#[tokio::test]
async fn authorizer_failures_are_500_with_null_message() {
    let failing: Vec<Arc<dyn Authorizer>> = vec![
        scripted(|_| Err("database exploded".into())),
        scripted(|_| Ok(json!({"principalId": "p"}))),
        scripted(|_| {
            Ok(
                json!({"policyDocument": {"Statement": [{"Action": "*", "Effect": "Allow", "Resource": "*"}]}}),
            )
        }),
        scripted(|_| {
            let mut p = policy("Allow", "*");
            p["context"] = json!({"nested": {"a": 1}});
            Ok(p)
        }),
        Arc::new(Scripted {
            calls: AtomicUsize::new(0),
            answer: Box::new(|_| Ok(policy("Allow", "*"))),
            delay: Duration::ZERO,
            panic: true,
        }),
        Arc::new(Scripted {
            calls: AtomicUsize::new(0),
            answer: Box::new(|_| Ok(policy("Allow", "*"))),
            delay: Duration::from_secs(5),
            panic: false,
        }),
    ];
    for auth in failing {
        let config = GatewayConfig {
            authorizer_timeout: Duration::from_millis(300),
            ..GatewayConfig::default()
        };
        let gw = start(config, auth);
        assert_eq!(
            call("GET", &gw.blocks_url(), Some(TOKEN), None).await,
            (500, r#"{"message": null}"#.into())
        );
    }
}

#[tokio::test]
async fn cache_hits_within_ttl_and_misses_after_it() {
    let auth = scripted(|_| Ok(policy("Allow", "arn:*/prod/*/*")));
    let config = GatewayConfig {
        auth_cache_ttl: Duration::from_millis(1500),
        ..GatewayConfig::default()
    };
    let gw = start(config, auth.clone());
    let url = gw.blocks_url();
    assert_eq!(call("GET", &url, Some(TOKEN), None).await.0, 200);
    assert_eq!(call("GET", &url, Some(TOKEN), None).await.0, 200);
    assert_eq!(
        auth.calls.load(Ordering::SeqCst),
        1,
        "second call within the TTL is cached"
    );
    // Another token is its own cache entry.
    assert_eq!(
        call("GET", &url, Some("another-token-1"), None).await.0,
        200
    );
    assert_eq!(auth.calls.load(Ordering::SeqCst), 2);
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert_eq!(call("GET", &url, Some(TOKEN), None).await.0, 200);
    assert_eq!(
        auth.calls.load(Ordering::SeqCst),
        3,
        "expired entry calls the authorizer again"
    );
}

#[tokio::test]
async fn ttl_zero_disables_the_cache() {
    let auth = scripted(|_| Ok(policy("Allow", "*")));
    let config = GatewayConfig {
        auth_cache_ttl: Duration::ZERO,
        ..GatewayConfig::default()
    };
    let gw = start(config, auth.clone());
    for _ in 0..3 {
        assert_eq!(
            call("GET", &gw.blocks_url(), Some(TOKEN), None).await.0,
            200
        );
    }
    assert_eq!(auth.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn cached_policy_serves_get_then_put_with_our_authorizer() {
    let gw = start(
        GatewayConfig::default(),
        Arc::new(TokenAuthorizer(TokenSet::new([TOKEN]).into())),
    );
    let url = gw.blocks_url();
    assert_eq!(call("GET", &url, Some(TOKEN), None).await.0, 200);
    let body = r#"{"edits":[{"chunk":[0,0,0],"index":1,"value":5}]}"#.to_string();
    let (status, text) = call("PUT", &url, Some(TOKEN), Some(body)).await;
    assert_eq!(status, 200, "{text}");
}

#[tokio::test]
async fn cached_method_only_policy_refuses_the_next_method_like_api_gateway() {
    // The pitfall our authorizer avoids: a policy naming only the calling method ARN.
    let auth = scripted(|e| Ok(policy("Allow", e.method_arn.as_deref().unwrap())));
    let gw = start(GatewayConfig::default(), auth);
    let url = gw.blocks_url();
    assert_eq!(call("GET", &url, Some(TOKEN), None).await.0, 200);
    let body = r#"{"edits":[{"chunk":[0,0,0],"index":1,"value":5}]}"#.to_string();
    assert_eq!(call("PUT", &url, Some(TOKEN), Some(body)).await.0, 403);
}

#[tokio::test]
async fn unknown_paths_and_oversized_bodies() {
    let gw = start(
        GatewayConfig::default(),
        Arc::new(TokenAuthorizer(TokenSet::new([TOKEN]).into())),
    );
    for path in ["/prod/other", "/dev/cubewalkblocks", "/cubewalkblocks", "/"] {
        assert_eq!(
            call("GET", &format!("{}{path}", gw.base), Some(TOKEN), None).await,
            (403, r#"{"message":"Missing Authentication Token"}"#.into()),
            "{path}"
        );
    }
    let huge = "x".repeat(10 * 1024 * 1024 + 1);
    let (status, _) = call("PUT", &gw.blocks_url(), Some(TOKEN), Some(huge)).await;
    assert_eq!(status, 413);
    // Between the handler's 2 MiB limit and the gateway's 10 MB the handler answers.
    let big = format!(r#"{{"edits":[],"pad":"{}"}}"#, "x".repeat(3 * 1024 * 1024));
    let (status, body) = call("PUT", &gw.blocks_url(), Some(TOKEN), Some(big)).await;
    assert_eq!(status, 413);
    assert!(body.contains(r#""code":"too_large""#), "{body}");
}

#[tokio::test]
async fn the_authorizer_receives_a_real_token_event() {
    let seen = Arc::new(std::sync::Mutex::new(None));
    let seen2 = seen.clone();
    let auth = scripted(move |e| {
        *seen2.lock().unwrap() = Some(serde_json::to_value(e).unwrap());
        Ok(policy("Allow", "*"))
    });
    let gw = start(GatewayConfig::default(), auth);
    assert_eq!(
        call(
            "PUT",
            &gw.blocks_url(),
            Some(TOKEN),
            Some("{\"edits\":[]}".into())
        )
        .await
        .0,
        200
    );
    let event = seen.lock().unwrap().clone().unwrap();
    assert_eq!(event["type"], "TOKEN");
    assert_eq!(event["authorizationToken"], TOKEN);
    assert_eq!(
        event["methodArn"],
        "arn:aws:execute-api:local:000000000000:cubewalk-local/prod/PUT/cubewalkblocks"
    );
}

#[tokio::test]
async fn large_answers_are_gzipped_for_clients_that_accept_it() {
    let gw = start(
        GatewayConfig::default(),
        Arc::new(TokenAuthorizer(TokenSet::new([TOKEN]).into())),
    );
    let chunks: Vec<String> = (0..100).map(|i| format!("{i},0,0@0")).collect();
    let url = format!("{}?chunks={}", gw.blocks_url(), chunks.join(";"));
    // reqwest without its gzip feature enabled on this client: we see the raw encoding.
    let raw = reqwest::Client::builder().no_gzip().build().unwrap();
    let resp = raw
        .get(&url)
        .header("token", TOKEN)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    let zipped = resp.bytes().await.unwrap().len();
    let plain = raw.get(&url).header("token", TOKEN).send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let plain_len = plain.bytes().await.unwrap().len();
    assert!(zipped * 4 < plain_len, "gzip {zipped} vs plain {plain_len}");
    // Small answers stay uncompressed, as with API Gateway's minimumCompressionSize.
    let small = raw
        .get(gw.blocks_url())
        .header("token", TOKEN)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert!(small.headers().get("content-encoding").is_none());
}

#[tokio::test]
async fn browsers_get_a_preflight_without_the_token_and_the_origin_header_on_every_answer() {
    // What a WebGL build of the game needs: the browser's CORS preflight is answered without
    // a token, and every answer (success, handler error, gateway refusal) lets the page read it.
    let gw = start(
        GatewayConfig::default(),
        Arc::new(TokenAuthorizer(TokenSet::new([TOKEN]).into())),
    );
    let client = reqwest::Client::new();
    let pre = client
        .request(reqwest::Method::OPTIONS, gw.blocks_url())
        .header("origin", "https://game.example")
        .header("access-control-request-method", "PUT")
        .header("access-control-request-headers", "token,content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 200);
    let h = pre.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    assert!(h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("token"));
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("PUT"));
    for (token, query, status) in [
        (Some(TOKEN), "?world=w&chunks=0,0,0", 200),
        (Some(TOKEN), "?world=bad%20id&chunks=0,0,0", 422),
        (None, "?world=w&chunks=0,0,0", 401),
    ] {
        let mut req = client.get(format!("{}{query}", gw.blocks_url()));
        if let Some(t) = token {
            req = req.header("token", t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), status);
        assert_eq!(
            resp.headers()["access-control-allow-origin"],
            "*",
            "{status}"
        );
    }
}
