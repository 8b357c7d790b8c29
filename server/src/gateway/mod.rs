//! A local API Gateway (REST API, Lambda proxy integration, TOKEN authorizer) that runs the
//! authorizer and blocks handlers in one process with API Gateway's observable behaviour:
//!
//! | situation | answer |
//! |---|---|
//! | path other than `/<stage>/cubewalkblocks` (or `/<stage>/cubewalklogin` when the guest login is on) | 403 `{"message":"Missing Authentication Token"}` |
//! | `/<stage>/cubewalklogin` | the login handler, without any token or authorizer (`Auth: NONE`) |
//! | `OPTIONS` (a browser's CORS preflight) | 200 with the CORS headers, no token needed |
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
//! Realtime goes through [`mqtt`]: MQTT over WebSocket at `/mqtt`, in front of an MQTT broker,
//! as AWS IoT Core's endpoint is in front of its broker.
//!
//! Authorizer answers are cached per token for the configured TTL (0 disables the cache) and
//! reused for every method, as API Gateway does. Answers above `minimumCompressionSize` (1024
//! bytes, as in the SAM template) are gzipped for clients that send `Accept-Encoding: gzip`.

mod cache;
pub mod fanout;
mod iot_policy;
pub mod listen;
pub mod mqtt;
pub mod policy;

pub use iot_policy::IotPolicy;
pub use listen::{serve, ConnectionLimits};
pub use mqtt::MqttGate;

use crate::handlers::authorizer::authorize;
use crate::handlers::{blocks, login};
use crate::realtime::Notifier;
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
use policy::{parse_grant, Decision, Grant};
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
/// Methods a browser may use (the template's `Cors.AllowMethods`).
pub const CORS_ALLOW_METHODS: &str = "GET,PUT,POST,OPTIONS";
/// Headers a browser may send (the template's `Cors.AllowHeaders`).
pub const CORS_ALLOW_HEADERS: &str = "content-type,token";
/// Default identity validation expression: what a generated token looks like (also in the
/// SAM template, so both refuse the same malformed tokens without invoking the authorizer).
pub const DEFAULT_TOKEN_REGEX: &str = "^[A-Za-z0-9._~+/=-]{8,4096}$";

/// A TOKEN authorizer as the gateway invokes it: raw JSON answer (as a Lambda returns it), or
/// the Lambda's error message (`Unauthorized` means 401; anything else 500).
#[async_trait]
pub trait Authorizer: Send + Sync + 'static {
    /// Runs the authorizer on one TOKEN event.
    async fn invoke(&self, event: ApiGatewayCustomAuthorizerRequest) -> Result<Value, String>;
}

/// The project's token authorizer ([`authorize`]) behind the [`Authorizer`] interface.
pub struct TokenAuthorizer(pub crate::identity::Verifier);

#[async_trait]
impl Authorizer for TokenAuthorizer {
    async fn invoke(&self, event: ApiGatewayCustomAuthorizerRequest) -> Result<Value, String> {
        let response = authorize(&event, &self.0)
            .await
            .map_err(|e| e.to_string())?;
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
    /// Each player's limits and the worlds (the blocks function's `CUBEWALK_LIMIT_*` and
    /// `CUBEWALK_WORLDS` settings).
    pub rules: crate::handlers::blocks::Rules,
    /// The guest login (`/<stage>/cubewalklogin`) and the key it signs with; `None`: no such
    /// route, as in a stack without the login function.
    pub login: Option<Arc<login::LoginConfig>>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            stage: "prod".into(),
            auth_cache_ttl: Duration::from_secs(60),
            token_regex: Some(Regex::new(DEFAULT_TOKEN_REGEX).expect("static regex")),
            authorizer_timeout: Duration::from_secs(10),
            integration_timeout: Duration::from_secs(29),
            arn_prefix: "arn:aws:execute-api:local:000000000000:cubewalk-local".into(),
            minimum_compression_size: Some(1024),
            body_timeout: Duration::from_secs(30),
            connections: ConnectionLimits::default(),
            rules: crate::handlers::blocks::Rules::any_world(),
            login: None,
        }
    }
}

struct Gateway {
    config: GatewayConfig,
    authorizer: Arc<dyn Authorizer>,
    store: Arc<dyn ChunkStore>,
    notifier: Option<Notifier>,
    gate: Option<Arc<MqttGate>>,
    cache: AuthCache,
}

/// Realtime behind the gateway: where puts send their changes, and the gate in front of the
/// broker that followers connect to.
#[derive(Clone)]
pub struct RealtimeRoutes {
    /// Where puts (and admin rollbacks) send their changes; bans close sessions through it.
    pub notifier: Notifier,
    /// The MQTT gate at `/mqtt`; `None`: no such route.
    pub gate: Option<Arc<MqttGate>>,
}

/// Builds the gateway's router: every path and method goes through the API Gateway emulation
/// (the REST API at `/<stage>/cubewalkblocks`), and with `realtime`, puts publish their
/// changes and `/mqtt` is the gate to the broker.
pub fn router(
    config: GatewayConfig,
    authorizer: Arc<dyn Authorizer>,
    store: Arc<dyn ChunkStore>,
    realtime: Option<RealtimeRoutes>,
) -> axum::Router {
    let compression = config.minimum_compression_size;
    let (notifier, gate) = match realtime {
        Some(r) => (Some(r.notifier), r.gate),
        None => (None, None),
    };
    let state = Arc::new(Gateway {
        cache: AuthCache::new(config.auth_cache_ttl),
        config,
        authorizer,
        store,
        notifier,
        gate,
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

/// Every answer the gateway gives on its own (not the integration's), with API Gateway's exact
/// status, body and `x-amzn-errortype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// A path other than the stage's `/cubewalkblocks`.
    MissingAuthenticationToken,
    /// No token, a token failing the validation expression, or the authorizer said so.
    Unauthorized(&'static str),
    /// The policy denies explicitly.
    ExplicitDeny,
    /// The policy has no matching Allow.
    NoAllow,
    /// The authorizer crashed, timed out or answered a malformed policy.
    AuthorizerFailure,
    /// The body is over API Gateway's limit.
    TooLong,
    /// The body did not arrive within the body timeout.
    BodyTimeout,
    /// The integration crashed or answered something API Gateway cannot map.
    BadIntegration,
    /// The integration ran past its timeout.
    IntegrationTimeout,
}

impl Refusal {
    fn response(self) -> Response {
        let (status, body, error_type) = match self {
            Self::MissingAuthenticationToken => (
                403,
                r#"{"message":"Missing Authentication Token"}"#,
                "MissingAuthenticationTokenException",
            ),
            Self::Unauthorized(why) => {
                // Say why for the operator, never with the token itself.
                tracing::info!(status = 401, reason = why, "request refused");
                (
                    401,
                    r#"{"message":"Unauthorized"}"#,
                    "UnauthorizedException",
                )
            }
            Self::ExplicitDeny => (
                403,
                r#"{"message":"User is not authorized to access this resource with an explicit deny"}"#,
                "AccessDeniedException",
            ),
            Self::NoAllow => (
                403,
                r#"{"message":"User is not authorized to access this resource"}"#,
                "AccessDeniedException",
            ),
            Self::AuthorizerFailure => (
                500,
                r#"{"message": null}"#,
                "AuthorizerConfigurationException",
            ),
            Self::TooLong => (
                413,
                r#"{"message":"Request Too Long"}"#,
                "RequestTooLongException",
            ),
            Self::BodyTimeout => {
                tracing::info!(status = 408, "request body too slow");
                (
                    408,
                    r#"{"message":"Request Timeout"}"#,
                    "RequestTimeoutException",
                )
            }
            Self::BadIntegration => (
                502,
                r#"{"message": "Internal server error"}"#,
                "InternalServerErrorException",
            ),
            Self::IntegrationTimeout => (
                504,
                r#"{"message": "Endpoint request timed out"}"#,
                "IntegrationTimeoutException",
            ),
        };
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("x-amzn-errortype", error_type)
            // The template's gateway responses carry it too, so a browser can read the error.
            .header("access-control-allow-origin", blocks::ALLOW_ORIGIN)
            .body(Body::from(body))
            .expect("static response")
    }
}

/// API Gateway's answer to a CORS preflight, as the template configures it.
fn preflight() -> Response {
    Response::builder()
        .status(200)
        .header("access-control-allow-origin", blocks::ALLOW_ORIGIN)
        .header("access-control-allow-methods", CORS_ALLOW_METHODS)
        .header("access-control-allow-headers", CORS_ALLOW_HEADERS)
        .header("access-control-max-age", "600")
        .body(Body::empty())
        .expect("static response")
}

async fn gateway(State(gw): State<Arc<Gateway>>, request: Request) -> Response {
    match handle(&gw, request).await {
        Ok(response) | Err(response) => response,
    }
}

/// API Gateway's order: the path, then the token (header, validation expression, authorizer
/// and policy), and only then the body, so an unauthorized client cannot make the gateway read
/// (or drain) megabytes; then the integration.
async fn handle(gw: &Arc<Gateway>, request: Request) -> Result<Response, Response> {
    let refuse = |r: Refusal| r.response();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let stage_path = format!("/{}", gw.config.stage);
    if let Some(gate) = gw
        .gate
        .clone()
        .filter(|_| request.uri().path() == mqtt::PATH)
    {
        return Ok(mqtt::upgrade(gate, request).await);
    }
    let (parts, body) = request.into_parts();

    // The guest login has no authorizer (the template's `Auth: NONE` on that method).
    if let Some(config) = gw.config.login.clone() {
        if parts.uri.path().trim_end_matches('/') == format!("{stage_path}{}", login::RESOURCE) {
            return guest_login(gw, parts, body, config, peer).await;
        }
    }
    // The REST API's other resources, all integrated with the blocks function.
    let requested = parts.uri.path().trim_end_matches('/');
    let Some(resource) = [blocks::RESOURCE, crate::handlers::admin::RESOURCE]
        .into_iter()
        .find(|r| requested.strip_prefix(&stage_path) == Some(*r))
    else {
        return Err(refuse(Refusal::MissingAuthenticationToken));
    };
    // A browser's CORS preflight carries no token: answered without the authorizer, as the
    // template's CORS settings make API Gateway do.
    if parts.method == http::Method::OPTIONS {
        return Ok(preflight());
    }
    let token = parts
        .headers
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|t| !t.is_empty())
        .ok_or(Refusal::Unauthorized("no token header"))
        .map_err(refuse)?;
    if gw
        .config
        .token_regex
        .as_ref()
        .is_some_and(|re| !re.is_match(token))
    {
        return Err(refuse(Refusal::Unauthorized(
            "token fails the validation expression",
        )));
    }
    let method_arn = format!(
        "{}/{}/{}{}",
        gw.config.arn_prefix, gw.config.stage, parts.method, resource
    );
    let grant = grant_for(gw, token, &method_arn).await.map_err(refuse)?;
    match grant.decide(&method_arn) {
        Decision::Allow => {}
        Decision::ExplicitDeny => return Err(refuse(Refusal::ExplicitDeny)),
        Decision::NoAllow => return Err(refuse(Refusal::NoAllow)),
    }

    let body = match tokio::time::timeout(gw.config.body_timeout, read_body(&parts, body)).await {
        Ok(Some(body)) => body,
        Ok(None) => return Err(refuse(Refusal::TooLong)),
        Err(_) => return Err(refuse(Refusal::BodyTimeout)),
    };
    let event = proxy_event(&gw.config, resource, &parts, body, &grant.context, peer);
    let work = {
        let gw = gw.clone();
        async move {
            blocks::handle_notifying(
                &event,
                gw.store.as_ref(),
                gw.notifier.as_ref(),
                &gw.config.rules,
            )
            .await
        }
    };
    if parts.method == http::Method::GET {
        // A read may stop with its caller.
        integrate(gw, work).await
    } else {
        integrate(gw, run_to_completion(work)).await
    }
}

/// Runs a write in its own task, so it goes on when the caller disconnects or the
/// integration times out, as a Lambda invocation does: API Gateway never stops a function it
/// started. (A write stopped half way would hide a put that may still land on AWS.) A panic
/// is passed on to [`integrate`].
async fn run_to_completion<F>(work: F) -> F::Output
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    match tokio::spawn(work).await {
        Ok(out) => out,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("integration task ended: {e}"),
    }
}

/// The guest login route: no token and no authorizer (the template's `Auth: NONE` on that
/// method), so the body is read at once, within API Gateway's limit and the body timeout.
async fn guest_login(
    gw: &Arc<Gateway>,
    parts: http::request::Parts,
    body: Body,
    config: Arc<login::LoginConfig>,
    peer: Option<String>,
) -> Result<Response, Response> {
    if parts.method == http::Method::OPTIONS {
        return Ok(preflight());
    }
    let body = match tokio::time::timeout(gw.config.body_timeout, read_body(&parts, body)).await {
        Ok(Some(body)) => body,
        Ok(None) => return Err(Refusal::TooLong.response()),
        Err(_) => return Err(Refusal::BodyTimeout.response()),
    };
    let empty = serde_json::Map::new();
    let event = proxy_event(&gw.config, login::RESOURCE, &parts, body, &empty, peer);
    integrate(gw, async move { login::handle(&event, &config) }).await
}

/// Runs an integration in this task (no hop to another worker on the hot path), turning a
/// panic into API Gateway's 502, as a crashed Lambda would give, and a run past the
/// integration timeout into its 504.
async fn integrate<F>(gw: &Gateway, run: F) -> Result<Response, Response>
where
    F: std::future::Future<Output = aws_lambda_events::apigw::ApiGatewayProxyResponse>,
{
    let run = std::panic::AssertUnwindSafe(run).catch_unwind();
    match tokio::time::timeout(gw.config.integration_timeout, run).await {
        Ok(Ok(resp)) => proxy_response(resp).ok_or_else(|| Refusal::BadIntegration.response()),
        Ok(Err(_)) => {
            tracing::error!("integration crashed");
            Err(Refusal::BadIntegration.response())
        }
        Err(_) => Err(Refusal::IntegrationTimeout.response()),
    }
}

/// The token's grant: from the cache, or from the authorizer (then cached), as API Gateway
/// runs a TOKEN authorizer.
async fn grant_for(gw: &Gateway, token: &str, method_arn: &str) -> Result<Arc<Grant>, Refusal> {
    if let Some(grant) = gw.cache.get(token) {
        return Ok(grant);
    }
    let mut event = ApiGatewayCustomAuthorizerRequest::default();
    event.type_ = Some("TOKEN".into());
    event.authorization_token = Some(token.to_owned());
    event.method_arn = Some(method_arn.to_owned());
    let authorizer = gw.authorizer.clone();
    let grant = run_authorizer(gw, async move { authorizer.invoke(event).await }).await?;
    gw.cache.put(token, grant.clone());
    Ok(grant)
}

/// Runs an authorizer as API Gateway does: in its own task, bounded in time; a crash, a
/// timeout or an answer that is not a policy is a 500, `Unauthorized` a 401.
async fn run_authorizer<F>(gw: &Gateway, invoke: F) -> Result<Arc<Grant>, Refusal>
where
    F: std::future::Future<Output = Result<Value, String>> + Send + 'static,
{
    let run = tokio::spawn(invoke);
    match tokio::time::timeout(gw.config.authorizer_timeout, run).await {
        Ok(Ok(Ok(raw))) => match parse_grant(raw) {
            Ok(grant) => Ok(Arc::new(grant)),
            Err(why) => {
                tracing::error!(error = %why, "authorizer answer refused");
                Err(Refusal::AuthorizerFailure)
            }
        },
        Ok(Ok(Err(message))) if message == "Unauthorized" => {
            Err(Refusal::Unauthorized("authorizer refused the token"))
        }
        Ok(Ok(Err(message))) => {
            tracing::error!(error = %message, "authorizer failed");
            Err(Refusal::AuthorizerFailure)
        }
        Ok(Err(join)) => {
            tracing::error!(error = %join, "authorizer crashed");
            Err(Refusal::AuthorizerFailure)
        }
        Err(_) => {
            tracing::error!("authorizer timed out");
            Err(Refusal::AuthorizerFailure)
        }
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

/// The Lambda proxy event API Gateway would send for this request to `resource`.
fn proxy_event(
    config: &GatewayConfig,
    resource: &str,
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
    event.resource = Some(resource.into());
    event.path = Some(resource.into());
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
    ctx.resource_path = Some(resource.into());
    ctx.path = Some(format!("/{}{resource}", config.stage));
    ctx.request_id = Some(format!("{:032x}", rand::random::<u128>()));
    ctx.identity.source_ip = peer;
    ctx.authorizer.fields = context
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    event
}

/// The HTTP answer for a Lambda proxy response; `None` when API Gateway could not map it
/// (a bad status code or undecodable base64 body: a 502).
fn proxy_response(resp: aws_lambda_events::apigw::ApiGatewayProxyResponse) -> Option<Response> {
    let status = u16::try_from(resp.status_code)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())?;
    let mut headers = HeaderMap::new();
    for (k, v) in resp.multi_value_headers.iter().chain(resp.headers.iter()) {
        headers.insert(k.clone(), v.clone());
    }
    let body = match resp.body {
        None | Some(LambdaBody::Empty) => Bytes::new(),
        Some(LambdaBody::Text(t)) if resp.is_base64_encoded => {
            base64::engine::general_purpose::STANDARD
                .decode(t)
                .ok()?
                .into()
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
    Some(out)
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
            blocks::RESOURCE,
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
