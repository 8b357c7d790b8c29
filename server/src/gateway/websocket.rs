//! The local gateway's WebSocket API, emulating API Gateway's:
//!
//! | situation | answer |
//! |---|---|
//! | `GET /<stage>` without a `token` header | 401 before the upgrade, authorizer not called |
//! | `$connect` authorizer refuses the token | 401; its policy denies: 403 |
//! | `$connect` route answers other than 2xx | that status, no connection |
//! | more open connections than [`WebSocketLimits::max_connections`] | 429, no connection |
//! | a message over 128 KB | connection closed (1009, message too big) |
//! | no frame from the client for the idle timeout (10 min) | connection closed (1001) |
//! | connection older than its lifetime (2 h) | connection closed (1001) |
//! | `POST /<stage>/@connections/{id}` unsigned, or signed with another key | 403 |
//! | ... to a connection that is gone | 410 `GoneException` |
//!
//! Messages are routed on their `action` field (`$request.body.action`): `subscribe`,
//! `unsubscribe`, anything else (or no JSON at all) to `$default`; the route's answer, if it
//! has a body, is sent back on the connection (the routes are two-way). When a connection ends,
//! for whatever reason, `$disconnect` runs. Every route runs the project's
//! [`crate::realtime::handler`], exactly as the realtime Lambda does.

use super::{Gateway, Refusal, TOKEN_HEADER};
use crate::realtime::handler;
use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayProxyResponse,
    ApiGatewayWebsocketProxyRequest,
};
use aws_lambda_events::encodings::Body as LambdaBody;
use axum::body::{Body, Bytes};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequest, Request};
use axum::response::Response;
use base64::Engine;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// API Gateway's WebSocket limits.
#[derive(Debug, Clone)]
pub struct WebSocketLimits {
    /// Largest message (and frame) a client may send: 128 KB.
    pub max_message_bytes: usize,
    /// A connection with no frame from its client for this long is closed: 10 minutes.
    pub idle_timeout: Duration,
    /// Every connection is closed after this long: 2 hours.
    pub max_lifetime: Duration,
    /// Messages queued for one connection before a post answers 429 (a client that does not
    /// read).
    pub max_queued: usize,
    /// Open WebSocket connections at once (upgraded connections leave the HTTP connection
    /// cap, so they have their own); more are refused with 429.
    pub max_connections: usize,
}

impl Default for WebSocketLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: 128 * 1024,
            idle_timeout: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(7200),
            max_queued: 1024,
            max_connections: 1024,
        }
    }
}

/// Open connections, by id: what the `@connections` endpoint posts to.
#[derive(Default)]
pub(super) struct Connections {
    open: Mutex<HashMap<String, Open>>,
}

struct Open {
    outbox: mpsc::Sender<Outgoing>,
    connected_at: SystemTime,
    source_ip: Option<String>,
}

enum Outgoing {
    Text(String),
    Close,
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Open>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `GET /<stage>`: authorize `$connect`, run its route, then upgrade.
pub(super) async fn connect(gw: Arc<Gateway>, request: Request, peer: Option<String>) -> Response {
    // The identity source (`route.request.header.token`) must be present, or API Gateway
    // answers 401 without calling the authorizer.
    let has_token = request
        .headers()
        .get(TOKEN_HEADER)
        .is_some_and(|v| !v.as_bytes().is_empty());
    if !has_token {
        return Refusal::Unauthorized("no token header").response();
    }
    let route_arn = format!("{}/{}/$connect", gw.config.arn_prefix, gw.config.stage);
    let mut auth = ApiGatewayCustomAuthorizerRequestTypeRequest::default();
    auth.type_ = Some("REQUEST".into());
    auth.method_arn = Some(route_arn.clone());
    auth.headers = request.headers().clone();
    auth.multi_value_headers = request.headers().clone();
    let grant = match super::authorize_request(&gw, auth).await {
        Ok(grant) => grant,
        Err(refusal) => return refusal.response(),
    };
    match grant.decide(&route_arn) {
        super::policy::Decision::Allow => {}
        super::policy::Decision::ExplicitDeny => return Refusal::ExplicitDeny.response(),
        super::policy::Decision::NoAllow => return Refusal::NoAllow.response(),
    }
    if gw.connections.lock().len() >= gw.config.websocket.max_connections {
        tracing::warn!("websocket connection refused: too many open");
        return error(429, "LimitExceededException", "Limit Exceeded");
    }
    let caller = Caller {
        id: connection_id(),
        headers: request.headers().clone(),
        source_ip: peer,
        connected_at: SystemTime::now(),
        authorizer: grant.context.clone(),
    };
    let connect = event(&gw, &caller, "$connect", "CONNECT", None);
    let answer = run_route(&gw, &connect).await;
    if !(200..300).contains(&answer.status_code) {
        let status = u16::try_from(answer.status_code).unwrap_or(500);
        return Response::builder()
            .status(status)
            .body(Body::empty())
            .expect("static response");
    }
    let upgrade = match WebSocketUpgrade::from_request(request, &()).await {
        Ok(u) => u,
        Err(rejection) => {
            // Not a WebSocket handshake: nothing was registered, but $connect ran.
            let disconnect = event(&gw, &caller, "$disconnect", "DISCONNECT", None);
            let _ = run_route(&gw, &disconnect).await;
            return axum::response::IntoResponse::into_response(rejection);
        }
    };
    let limits = gw.config.websocket.clone();
    let (outbox, inbox) = mpsc::channel(limits.max_queued.max(1));
    gw.connections.lock().insert(
        caller.id.clone(),
        Open {
            outbox,
            connected_at: caller.connected_at,
            source_ip: caller.source_ip.clone(),
        },
    );
    upgrade
        .max_message_size(limits.max_message_bytes)
        .max_frame_size(limits.max_message_bytes)
        .on_upgrade(move |socket| async move {
            run(&gw, &caller, socket, inbox).await;
            gw.connections.lock().remove(&caller.id);
            let disconnect = event(&gw, &caller, "$disconnect", "DISCONNECT", None);
            let _ = run_route(&gw, &disconnect).await;
        })
}

/// Runs one WebSocket event through the realtime handler, as the realtime Lambda does.
async fn run_route(
    gw: &Gateway,
    event: &ApiGatewayWebsocketProxyRequest,
) -> aws_lambda_events::apigw::ApiGatewayProxyResponse {
    handler::handle(
        event,
        gw.index.as_ref(),
        gw.store.as_ref(),
        &gw.config.limits,
    )
    .await
}

/// One connection's life: client messages to their routes, posted messages to the client,
/// closed at the idle timeout or the lifetime.
async fn run(
    gw: &Gateway,
    caller: &Caller,
    mut socket: WebSocket,
    mut inbox: mpsc::Receiver<Outgoing>,
) {
    let limits = &gw.config.websocket;
    let end_of_life = tokio::time::Instant::now() + limits.max_lifetime;
    let mut last_heard = Instant::now();
    loop {
        let idle_left = limits.idle_timeout.saturating_sub(last_heard.elapsed());
        tokio::select! {
            _ = tokio::time::sleep_until(end_of_life) => {
                close(&mut socket, "Going away: connection lifetime reached").await;
                return;
            }
            _ = tokio::time::sleep(idle_left) => {
                close(&mut socket, "Going away: idle timeout").await;
                return;
            }
            out = inbox.recv() => match out {
                Some(Outgoing::Text(text)) => {
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                Some(Outgoing::Close) | None => {
                    close(&mut socket, "Going away").await;
                    return;
                }
            },
            frame = socket.recv() => {
                let message = match frame {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => {
                        // Too big a message ends here too: API Gateway closes with 1009.
                        tracing::info!(connection = %caller.id, error = %e, "websocket closed on error");
                        return;
                    }
                    None => return,
                };
                last_heard = Instant::now();
                let (body, binary) = match message {
                    Message::Text(t) => (t.as_str().to_owned(), false),
                    Message::Binary(b) => {
                        (base64::engine::general_purpose::STANDARD.encode(&b), true)
                    }
                    Message::Close(_) => return,
                    Message::Ping(_) | Message::Pong(_) => continue,
                };
                let route = route_of(&body, binary);
                let mut event = event(gw, caller, route, "MESSAGE", Some(body));
                event.is_base64_encoded = binary;
                let answer = run_route(gw, &event).await;
                if let Some(text) = answer_text(answer) {
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// `$request.body.action`, when it names one of the API's message routes; else `$default`.
fn route_of(body: &str, binary: bool) -> &'static str {
    let action = (!binary)
        .then(|| serde_json::from_str::<serde_json::Value>(body).ok())
        .flatten()
        .and_then(|v| v.get("action")?.as_str().map(str::to_owned));
    handler::ROUTES
        .iter()
        .find(|r| !r.starts_with('$') && action.as_deref() == Some(**r))
        .copied()
        .unwrap_or("$default")
}

fn answer_text(answer: ApiGatewayProxyResponse) -> Option<String> {
    match answer.body? {
        LambdaBody::Text(t) => Some(t),
        LambdaBody::Binary(b) => String::from_utf8(b).ok(),
        _ => None,
    }
}

async fn close(socket: &mut WebSocket, reason: &'static str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: 1001,
            reason: reason.into(),
        })))
        .await;
}

/// An id shaped like API Gateway's (12 random bytes, base64: 16 characters).
fn connection_id() -> String {
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 12]>())
}

/// What every event of one connection says about it, fixed at `$connect`.
struct Caller {
    id: String,
    /// The handshake's headers (only `$connect` events carry them, as in API Gateway).
    headers: http::HeaderMap,
    source_ip: Option<String>,
    connected_at: SystemTime,
    /// The `$connect` authorizer's context, which API Gateway adds to every event of the
    /// connection.
    authorizer: serde_json::Map<String, serde_json::Value>,
}

/// The event API Gateway would send the route `route` for `caller`.
fn event(
    gw: &Gateway,
    caller: &Caller,
    route: &str,
    kind: &str,
    body: Option<String>,
) -> ApiGatewayWebsocketProxyRequest {
    let mut event = ApiGatewayWebsocketProxyRequest::default();
    if kind == "CONNECT" {
        event.headers = caller.headers.clone();
        event.multi_value_headers = caller.headers.clone();
    }
    event.body = body;
    let millis = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    };
    let ctx = &mut event.request_context;
    ctx.route_key = Some(route.into());
    ctx.event_type = Some(kind.into());
    ctx.connection_id = Some(caller.id.clone());
    ctx.stage = Some(gw.config.stage.clone());
    ctx.message_direction = Some("IN".into());
    ctx.request_id = Some(format!("{:032x}", rand::random::<u128>()));
    ctx.request_time_epoch = millis(SystemTime::now());
    ctx.connected_at = millis(caller.connected_at);
    ctx.identity.source_ip = caller.source_ip.clone();
    ctx.authorizer.fields = caller
        .authorizer
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    event
}

/// An access key id for the gateway's own notifier, made fresh per gateway: 20 characters
/// like AWS's, 100 random bits, known only inside this process.
pub(super) fn management_key() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut rng = rand::rng();
    let tail: String = (0..16)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    format!("LCWG{tail}")
}

/// `/<stage>/@connections/{id}`: `POST` sends the body as one message, `GET` describes the
/// connection, `DELETE` closes it. Requests must be SigV4-signed with the gateway's own
/// access key id: without IAM the signature itself is not verified, but no one outside this
/// process knows the key id, so nobody else can push messages (fake changes) to clients.
pub(super) async fn management(gw: Arc<Gateway>, request: Request, id: &str) -> Response {
    let authorization = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !authorization.starts_with("AWS4-HMAC-SHA256 ") {
        return Refusal::MissingAuthenticationToken.response();
    }
    let credential = format!("Credential={}/", gw.management_key);
    if !authorization.contains(&credential) {
        tracing::warn!("@connections request signed with an unknown key refused");
        return error(
            403,
            "ForbiddenException",
            "The security token included in the request is invalid.",
        );
    }
    let method = request.method().clone();
    let max = gw.config.websocket.max_message_bytes;
    match method {
        http::Method::POST => {
            let body = match axum::body::to_bytes(request.into_body(), max).await {
                Ok(b) => b,
                Err(_) => {
                    return error(413, "PayloadTooLargeException", "Message too long");
                }
            };
            post(&gw, id, body)
        }
        http::Method::GET => {
            let open = gw.connections.lock();
            match open.get(id) {
                Some(o) => {
                    let at =
                        |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                    let body = serde_json::json!({
                        "connectedAt": at(o.connected_at),
                        "identity": { "sourceIp": o.source_ip },
                    });
                    Response::builder()
                        .status(200)
                        .header("content-type", "application/json")
                        .body(Body::from(body.to_string()))
                        .expect("static response")
                }
                None => gone(),
            }
        }
        http::Method::DELETE => {
            let outbox = gw.connections.lock().get(id).map(|o| o.outbox.clone());
            match outbox {
                Some(outbox) => {
                    let _ = outbox.try_send(Outgoing::Close);
                    Response::builder()
                        .status(204)
                        .body(Body::empty())
                        .expect("static response")
                }
                None => gone(),
            }
        }
        _ => Refusal::MissingAuthenticationToken.response(),
    }
}

fn post(gw: &Gateway, id: &str, body: Bytes) -> Response {
    let Ok(text) = String::from_utf8(body.to_vec()) else {
        return error(
            400,
            "BadRequestException",
            "only text messages are emulated",
        );
    };
    let outbox = gw.connections.lock().get(id).map(|o| o.outbox.clone());
    match outbox.map(|o| o.try_send(Outgoing::Text(text))) {
        None | Some(Err(mpsc::error::TrySendError::Closed(_))) => gone(),
        Some(Err(mpsc::error::TrySendError::Full(_))) => {
            error(429, "LimitExceededException", "client side buffer is full")
        }
        Some(Ok(())) => Response::builder()
            .status(200)
            .body(Body::empty())
            .expect("static response"),
    }
}

fn gone() -> Response {
    error(410, "GoneException", "connection gone")
}

fn error(status: u16, kind: &str, message: &str) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-amzn-errortype", kind)
        .body(Body::from(
            serde_json::json!({ "message": message }).to_string(),
        ))
        .expect("static response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_route_on_their_action() {
        assert_eq!(route_of(r#"{"action":"subscribe"}"#, false), "subscribe");
        assert_eq!(
            route_of(r#"{"action":"unsubscribe"}"#, false),
            "unsubscribe"
        );
        assert_eq!(route_of(r#"{"action":"dance"}"#, false), "$default");
        assert_eq!(route_of(r#"{"action":7}"#, false), "$default");
        assert_eq!(route_of("not json", false), "$default");
        assert_eq!(route_of(r#"{"action":"subscribe"}"#, true), "$default");
        assert_eq!(connection_id().len(), 16);
    }
}
