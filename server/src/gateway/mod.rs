//! A local API Gateway (REST API, Lambda proxy integration, TOKEN authorizer) that runs the
//! authorizer and blocks handlers in one process with API Gateway's observable behaviour:
//!
//! | situation | answer |
//! |---|---|
//! | path other than `/<stage>/cubewalkblocks` | 403 `{"message":"Missing Authentication Token"}` |
//! | `token` header missing or failing the validation regex | 401 `{"message":"Unauthorized"}`, authorizer not called |
//! | authorizer fails with `Unauthorized` | 401 `{"message":"Unauthorized"}` |
//! | policy with an explicit Deny | 403 `{"message":"User is not authorized to access this resource with an explicit deny"}` |
//! | policy without a matching Allow | 403 `{"message":"User is not authorized to access this resource"}` |
//! | authorizer crashes, times out or answers a malformed policy | 500 `{"message": null}` |
//! | body over 10 MB (checked after authorization) | 413 `{"message":"Request Too Long"}` |
//! | body not received within 30 s (after authorization) | 408 `{"message":"Request Timeout"}` |
//! | integration takes longer than 29 s | 504 `{"message": "Endpoint request timed out"}` |
//!
//! The body is read only once the request is authorized, so a client without the token cannot
//! make the gateway read or drain it. Connections are capped and timed out ([`listen`]).
//!
//! Authorizer answers are cached per token for the configured TTL (0 disables the cache) and
//! reused for every method, as API Gateway does. Answers above `minimumCompressionSize` (1024
//! bytes, as in the SAM template) are gzipped for clients that send `Accept-Encoding: gzip`.

mod cache;
pub mod listen;
pub mod policy;

pub use listen::{serve, ConnectionLimits};

use crate::handlers::authorizer::{authorize, TokenSet};
use crate::handlers::blocks;
use crate::store::ChunkStore;
use async_trait::async_trait;
use aws_lambda_events::apigw::{ApiGatewayCustomAuthorizerRequest, ApiGatewayProxyRequest};
use aws_lambda_events::encodings::Body as LambdaBody;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use base64::Engine;
use cache::AuthCache;
use futures_util::{FutureExt, StreamExt};
use http::{HeaderMap, HeaderValue, StatusCode};
use policy::{parse_grant, Decision};
use regex::Regex;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Where `cubewalk-server serve` listens unless told otherwise: loopback only, so a developer's
/// local world is not reachable from the network by accident.
pub const DEFAULT_BIND: &str = "127.0.0.1:3000";

/// API Gateway's request payload limit.
pub const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;
/// The header the TOKEN authorizer reads.
pub const TOKEN_HEADER: &str = "token";
/// Default identity validation expression: what a generated token looks like (also in the
/// SAM template, so both refuse the same malformed tokens without invoking the authorizer).
pub const DEFAULT_TOKEN_REGEX: &str = "^[A-Za-z0-9._~+/=-]{8,512}$";

/// A TOKEN authorizer as the gateway invokes it: raw JSON answer (as a Lambda returns it), or
/// the Lambda's error message (`Unauthorized` means 401; anything else 500).
#[async_trait]
pub trait Authorizer: Send + Sync + 'static {
    /// Runs the authorizer on one TOKEN event.
    async fn invoke(&self, event: ApiGatewayCustomAuthorizerRequest) -> Result<Value, String>;
}

/// The project's token authorizer ([`authorize`]) behind the [`Authorizer`] interface.
pub struct TokenAuthorizer(pub TokenSet);

#[async_trait]
impl Authorizer for TokenAuthorizer {
    async fn invoke(&self, event: ApiGatewayCustomAuthorizerRequest) -> Result<Value, String> {
        let response = authorize(&event, &self.0).map_err(|e| e.to_string())?;
        serde_json::to_value(response).map_err(|e| e.to_string())
    }
}

/// Settings of the local gateway.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Stage name, the first path segment (`prod`).
    pub stage: String,
    /// Authorizer result cache TTL (API Gateway's `ReauthorizeEvery`; zero disables).
    pub auth_cache_ttl: Duration,
    /// Identity validation expression for the `token` header; `None` accepts any non-empty value.
    pub token_regex: Option<Regex>,
    /// Longest an authorizer may run before the caller gets 500.
    pub authorizer_timeout: Duration,
    /// API Gateway's integration timeout (29 s by default).
    pub integration_timeout: Duration,
    /// Region, account and API id used to build method ARNs.
    pub arn_prefix: String,
    /// API Gateway's `minimumCompressionSize`: answers larger than this many bytes are gzipped
    /// for clients that accept it (`None` disables compression).
    pub minimum_compression_size: Option<u16>,
    /// Longest an authorized request's body may take to arrive (408 after it).
    pub body_timeout: Duration,
    /// Connection-level limits, applied by [`serve`].
    pub connections: ConnectionLimits,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            stage: "prod".into(),
            auth_cache_ttl: Duration::from_secs(300),
            token_regex: Some(Regex::new(DEFAULT_TOKEN_REGEX).expect("static regex")),
            authorizer_timeout: Duration::from_secs(10),
            integration_timeout: Duration::from_secs(29),
            arn_prefix: "arn:aws:execute-api:local:000000000000:cubewalk-local".into(),
            minimum_compression_size: Some(1024),
            body_timeout: Duration::from_secs(30),
            connections: ConnectionLimits::default(),
        }
    }
}

struct Gateway {
    config: GatewayConfig,
    authorizer: Arc<dyn Authorizer>,
    store: Arc<dyn ChunkStore>,
    cache: AuthCache,
}

/// Builds the gateway's router: every path and method goes through the API Gateway emulation.
pub fn router(
    config: GatewayConfig,
    authorizer: Arc<dyn Authorizer>,
    store: Arc<dyn ChunkStore>,
) -> axum::Router {
    let compression = config.minimum_compression_size;
    let state = Arc::new(Gateway {
        cache: AuthCache::new(config.auth_cache_ttl),
        config,
        authorizer,
        store,
    });
    let router = axum::Router::new()
        .fallback(gateway)
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::disable());
    match compression {
        Some(min) => router.layer(
            tower_http::compression::CompressionLayer::new()
                .gzip(true)
                .compress_when(tower_http::compression::predicate::SizeAbove::new(min)),
        ),
        None => router,
    }
}

fn gateway_error(status: u16, body: &'static str, error_type: &'static str) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-amzn-errortype", error_type)
        .body(Body::from(body))
        .expect("static response")
}

fn unauthorized(why: &'static str) -> Response {
    // Say why for the operator, never with the token itself.
    tracing::info!(status = 401, reason = why, "request refused");
    gateway_error(
        401,
        r#"{"message":"Unauthorized"}"#,
        "UnauthorizedException",
    )
}

fn authorizer_failure() -> Response {
    gateway_error(
        500,
        r#"{"message": null}"#,
        "AuthorizerConfigurationException",
    )
}

async fn gateway(State(gw): State<Arc<Gateway>>, request: Request) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let (parts, body) = request.into_parts();

    let resource_path = format!("/{}{}", gw.config.stage, blocks::RESOURCE);
    if parts.uri.path().trim_end_matches('/') != resource_path {
        return gateway_error(
            403,
            r#"{"message":"Missing Authentication Token"}"#,
            "MissingAuthenticationTokenException",
        );
    }

    // Authorize before reading a byte of the body: an unauthorized client cannot make the
    // gateway read (or drain) megabytes.
    let Some(token) = parts
        .headers
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|t| !t.is_empty())
    else {
        return unauthorized("no token header");
    };
    if let Some(re) = &gw.config.token_regex {
        if !re.is_match(token) {
            return unauthorized("token fails the validation expression");
        }
    }
    let method_arn = format!(
        "{}/{}/{}{}",
        gw.config.arn_prefix,
        gw.config.stage,
        parts.method,
        blocks::RESOURCE
    );
    let grant = match gw.cache.get(token) {
        Some(g) => g,
        None => {
            let mut event = ApiGatewayCustomAuthorizerRequest::default();
            event.type_ = Some("TOKEN".into());
            event.authorization_token = Some(token.to_owned());
            event.method_arn = Some(method_arn.clone());
            let authorizer = gw.authorizer.clone();
            let run = tokio::spawn(async move { authorizer.invoke(event).await });
            let outcome = tokio::time::timeout(gw.config.authorizer_timeout, run).await;
            match outcome {
                Ok(Ok(Ok(raw))) => match parse_grant(raw) {
                    Ok(g) => {
                        let g = Arc::new(g);
                        gw.cache.put(token, g.clone());
                        g
                    }
                    Err(why) => {
                        tracing::error!(error = %why, "authorizer answer refused");
                        return authorizer_failure();
                    }
                },
                Ok(Ok(Err(message))) if message == "Unauthorized" => {
                    return unauthorized("authorizer refused the token")
                }
                Ok(Ok(Err(message))) => {
                    tracing::error!(error = %message, "authorizer failed");
                    return authorizer_failure();
                }
                Ok(Err(join)) => {
                    tracing::error!(error = %join, "authorizer crashed");
                    return authorizer_failure();
                }
                Err(_) => {
                    tracing::error!("authorizer timed out");
                    return authorizer_failure();
                }
            }
        }
    };
    match grant.decide(&method_arn) {
        Decision::Allow => {}
        Decision::ExplicitDeny => {
            return gateway_error(
                403,
                r#"{"message":"User is not authorized to access this resource with an explicit deny"}"#,
                "AccessDeniedException",
            )
        }
        Decision::NoAllow => {
            return gateway_error(
                403,
                r#"{"message":"User is not authorized to access this resource"}"#,
                "AccessDeniedException",
            )
        }
    }

    let body = match tokio::time::timeout(gw.config.body_timeout, read_body(&parts, body)).await {
        Ok(Some(body)) => body,
        Ok(None) => {
            return gateway_error(
                413,
                r#"{"message":"Request Too Long"}"#,
                "RequestTooLongException",
            )
        }
        Err(_) => {
            tracing::info!(status = 408, "request body too slow");
            return gateway_error(
                408,
                r#"{"message":"Request Timeout"}"#,
                "RequestTimeoutException",
            );
        }
    };

    let event = proxy_event(&gw.config, &parts, body, &grant.context, peer);
    // Run the integration in this task (no hop to another worker on the hot path), but still
    // turn a panic into API Gateway's 502, as a crashed Lambda would give.
    let run =
        std::panic::AssertUnwindSafe(blocks::handle(&event, gw.store.as_ref())).catch_unwind();
    match tokio::time::timeout(gw.config.integration_timeout, run).await {
        Ok(Ok(resp)) => proxy_response(resp),
        Ok(Err(_)) => {
            tracing::error!("integration crashed");
            gateway_error(
                502,
                r#"{"message": "Internal server error"}"#,
                "InternalServerErrorException",
            )
        }
        Err(_) => gateway_error(
            504,
            r#"{"message": "Endpoint request timed out"}"#,
            "IntegrationTimeoutException",
        ),
    }
}

/// Reads the body up to API Gateway's limit; `None` when it is (or is declared) longer, after
/// draining the rest.
async fn read_body(parts: &http::request::Parts, body: Body) -> Option<Bytes> {
    let mut stream = body.into_data_stream();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_REQUEST_BYTES as u64) {
        drain(&mut stream).await;
        return None;
    }
    let mut out = Vec::new();
    while let Some(frame) = stream.next().await {
        let frame = frame.ok()?;
        if out.len() + frame.len() > MAX_REQUEST_BYTES {
            drain(&mut stream).await;
            return None;
        }
        out.extend_from_slice(&frame);
    }
    Some(out.into())
}

/// Reads and drops the rest of an oversized body (up to a bound, within the body timeout) so
/// an authorized client that is still sending reads our 413 instead of a reset connection.
async fn drain(stream: &mut axum::body::BodyDataStream) {
    const DRAIN_LIMIT: usize = 4 * MAX_REQUEST_BYTES;
    let mut seen = 0;
    while let Some(Ok(frame)) = stream.next().await {
        seen += frame.len();
        if seen > DRAIN_LIMIT {
            break;
        }
    }
}

/// The Lambda proxy event API Gateway would send for this request.
fn proxy_event(
    config: &GatewayConfig,
    parts: &http::request::Parts,
    body: Bytes,
    context: &serde_json::Map<String, Value>,
    peer: Option<String>,
) -> ApiGatewayProxyRequest {
    let mut query: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()) {
        query
            .entry(k.into_owned())
            .or_default()
            .push(v.into_owned());
    }
    // API Gateway's single-value map holds the last value of a repeated parameter.
    let single: HashMap<String, String> = query
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.last()?.clone())))
        .collect();

    let mut event = ApiGatewayProxyRequest::default();
    event.resource = Some(blocks::RESOURCE.into());
    event.path = Some(blocks::RESOURCE.into());
    event.http_method = parts.method.clone();
    event.headers = parts.headers.clone();
    event.multi_value_headers = parts.headers.clone();
    event.query_string_parameters = single.into();
    event.multi_value_query_string_parameters = query.into();
    if !body.is_empty() {
        match std::str::from_utf8(&body) {
            Ok(text) => event.body = Some(text.to_owned()),
            Err(_) => {
                event.body = Some(base64::engine::general_purpose::STANDARD.encode(&body));
                event.is_base64_encoded = true;
            }
        }
    }
    let ctx = &mut event.request_context;
    ctx.stage = Some(config.stage.clone());
    ctx.http_method = parts.method.clone();
    ctx.resource_path = Some(blocks::RESOURCE.into());
    ctx.path = Some(format!("/{}{}", config.stage, blocks::RESOURCE));
    ctx.request_id = Some(format!("{:032x}", rand::random::<u128>()));
    ctx.identity.source_ip = peer;
    ctx.authorizer.fields = context
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    event
}

fn proxy_response(resp: aws_lambda_events::apigw::ApiGatewayProxyResponse) -> Response {
    let status = u16::try_from(resp.status_code)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok());
    let Some(status) = status else {
        return gateway_error(
            502,
            r#"{"message": "Internal server error"}"#,
            "InternalServerErrorException",
        );
    };
    let mut headers = HeaderMap::new();
    for (k, v) in resp.multi_value_headers.iter().chain(resp.headers.iter()) {
        headers.insert(k.clone(), v.clone());
    }
    let body = match resp.body {
        None | Some(LambdaBody::Empty) => Bytes::new(),
        Some(LambdaBody::Text(t)) if resp.is_base64_encoded => {
            match base64::engine::general_purpose::STANDARD.decode(t) {
                Ok(b) => b.into(),
                Err(_) => {
                    return gateway_error(
                        502,
                        r#"{"message": "Internal server error"}"#,
                        "InternalServerErrorException",
                    )
                }
            }
        }
        Some(LambdaBody::Text(t)) => t.into(),
        Some(LambdaBody::Binary(b)) => b.into(),
        Some(_) => Bytes::new(),
    };
    let mut out = Response::new(Body::from(body));
    *out.status_mut() = status;
    headers
        .entry("content-type")
        .or_insert(HeaderValue::from_static("application/json"));
    *out.headers_mut() = headers;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_event_carries_stage_query_body_and_authorizer_context() {
        let request = http::Request::builder()
            .method("PUT")
            .uri("/prod/cubewalkblocks?world=w1&chunks=0,0,0%3B1,2,3&chunks=9,9,9")
            .header("token", "secret-token")
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        let grant = parse_grant(serde_json::json!({
            "principalId": "client-0",
            "policyDocument": {"Version": "2012-10-17", "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "*"}]},
            "context": {"tokenSlot": 0, "principal": "client-0"}
        }))
        .unwrap();
        let event = proxy_event(
            &GatewayConfig::default(),
            &parts,
            Bytes::from_static(b"{\"edits\":[]}"),
            &grant.context,
            Some("127.0.0.1".into()),
        );
        let v = serde_json::to_value(&event).unwrap();
        assert_eq!(v["resource"], "/cubewalkblocks");
        assert_eq!(v["path"], "/cubewalkblocks");
        assert_eq!(v["httpMethod"], "PUT");
        assert_eq!(v["queryStringParameters"]["world"], "w1");
        // A repeated parameter: the single-value map holds the last one, the multi-value map all.
        assert_eq!(v["queryStringParameters"]["chunks"], "9,9,9");
        assert_eq!(
            v["multiValueQueryStringParameters"]["chunks"][0],
            "0,0,0;1,2,3"
        );
        assert_eq!(v["body"], "{\"edits\":[]}");
        assert_eq!(v["isBase64Encoded"], false);
        let ctx = &v["requestContext"];
        assert_eq!(ctx["stage"], "prod");
        assert_eq!(ctx["path"], "/prod/cubewalkblocks");
        assert_eq!(ctx["resourcePath"], "/cubewalkblocks");
        assert_eq!(ctx["identity"]["sourceIp"], "127.0.0.1");
        assert_eq!(ctx["authorizer"]["principalId"], "client-0");
        assert_eq!(ctx["authorizer"]["tokenSlot"], 0);
        // The event round-trips through the Lambda event type the blocks Lambda reads.
        let back: ApiGatewayProxyRequest = serde_json::from_value(v).unwrap();
        assert_eq!(back.query_string_parameters.first("world"), Some("w1"));
    }
}
