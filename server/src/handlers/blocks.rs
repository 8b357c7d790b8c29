//! The blocks handler: `GET` and `PUT /cubewalkblocks` as a function of (proxy event, store),
//! optionally telling the realtime API's subscribers what a put changed.

use crate::identity::{Action, Player};
use crate::realtime::{changes, Notifier};
use crate::store::{ChunkStore, PlayerLimits, Put};
use crate::worlds::Worlds;
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine;
use cubewalk_protocol::codec::blob_to_base64;
use cubewalk_protocol::limits::MAX_PUT_BODY_BYTES;
use cubewalk_protocol::{
    CancelRequest, CancelResponse, FetchEntry, FetchQuery, FetchResponse, PutRequest, PutResponse,
    VersionEntry, WireError,
};
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use http::Method;

/// The resource path this handler serves.
pub const RESOURCE: &str = "/cubewalkblocks";

/// What the deployment allows: each player's limits and the worlds.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Each player's limits (`CUBEWALK_LIMIT_*`).
    pub limits: PlayerLimits,
    /// The worlds, their bounds and budgets (`CUBEWALK_WORLDS`).
    pub worlds: Worlds,
}

impl Rules {
    /// The default limits and any world name (default bounds and budget): for tests and tools.
    pub fn any_world() -> Self {
        Self {
            limits: PlayerLimits::default(),
            worlds: Worlds::any(),
        }
    }

    /// Reads `CUBEWALK_LIMIT_*` and `CUBEWALK_WORLDS`.
    pub fn from_env() -> Result<Self, String> {
        Ok(Self {
            limits: PlayerLimits::from_env()?,
            worlds: Worlds::from_env()?,
        })
    }
}

/// Handles one API Gateway proxy event under [`Rules::any_world`]. Never panics on any input
/// and never fails: every problem becomes a JSON error response
/// (`{"error":{"code","message"}}`).
pub async fn handle(
    req: &ApiGatewayProxyRequest,
    store: &dyn ChunkStore,
) -> ApiGatewayProxyResponse {
    handle_notifying(req, store, None, &Rules::any_world()).await
}

/// [`handle`] under `rules`, and after a put changed chunks, tells their followers through
/// `notifier` (queued for the publisher, never waited on).
pub async fn handle_notifying(
    req: &ApiGatewayProxyRequest,
    store: &dyn ChunkStore,
    notifier: Option<&Notifier>,
    rules: &Rules,
) -> ApiGatewayProxyResponse {
    let result = route(req, store, notifier, rules).await;
    count_answer(&result);
    let request_id = req.request_context.request_id.as_deref().unwrap_or("");
    let method = &req.http_method;
    match &result {
        Ok(_) => tracing::info!(%method, status = 200, request_id, "blocks"),
        Err(e) if e.status() >= 500 => {
            tracing::error!(%method, status = e.status(), request_id, error = %e, "blocks")
        }
        Err(e) => {
            tracing::info!(%method, status = e.status(), request_id, error = %e, "blocks")
        }
    }
    match result {
        // The body moves into the response: a fetch answer can be megabytes.
        Ok(body) => json_response(200, body),
        Err(e) => error_response(&e, Some(request_id).filter(|id| !id.is_empty())),
    }
}

/// Counts an answer in the operators' metrics: every request, the 5xx and the 429s.
fn count_answer(result: &Result<String, WireError>) {
    use crate::metrics::{add, Metric};
    add(Metric::Requests, 1);
    match result.as_ref().map_err(WireError::status) {
        Err(status) if status >= 500 => add(Metric::Errors5xx, 1),
        Err(429) => add(Metric::RateLimited, 1),
        _ => {}
    }
}

/// Runs one store call, recording its latency and, when the store failed (not when it
/// refused the request: a limit, a ban), a store error; a refusal for want of room counts as
/// store-full.
async fn store_call<T>(
    call: impl std::future::Future<Output = Result<T, crate::store::StoreError>>,
) -> Result<T, crate::store::StoreError> {
    use crate::metrics::{add, time_ms, Metric};
    use crate::store::StoreError;
    let result = time_ms(Metric::StoreLatency, call).await;
    match result {
        Err(StoreError::Unavailable(_) | StoreError::Corrupt { .. }) => add(Metric::StoreErrors, 1),
        Err(StoreError::Full(_)) => add(Metric::StoreFull, 1),
        _ => {}
    }
    result
}

/// The JSON answer for `e`: status, body with code, public message and request id, and the
/// headers the error calls for (`Allow`, `Retry-After`).
pub fn error_response(e: &WireError, request_id: Option<&str>) -> ApiGatewayProxyResponse {
    let mut r = json_response(
        e.status(),
        serde_json::to_string(&e.body(request_id)).unwrap_or_default(),
    );
    if matches!(e, WireError::MethodNotAllowed(_)) {
        r.headers
            .insert(ALLOW, HeaderValue::from_static("GET, PUT"));
    }
    if let Some(secs) = e.retry_after_secs() {
        r.headers
            .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

async fn route(
    req: &ApiGatewayProxyRequest,
    store: &dyn ChunkStore,
    notifier: Option<&Notifier>,
    rules: &Rules,
) -> Result<String, WireError> {
    let resource = req
        .resource
        .as_deref()
        .or(req.path.as_deref())
        .unwrap_or("");
    let resource = resource.trim_end_matches('/');
    if resource != RESOURCE && resource != super::admin::RESOURCE {
        return Err(WireError::NotFound(resource.chars().take(128).collect()));
    }
    // Only a request that passed the authorizer carries a player: anything else is refused,
    // whatever a misconfigured deployment sends.
    let player = Player::from_context(&req.request_context.authorizer.fields)
        .ok_or_else(|| WireError::Forbidden("no player identity from the authorizer".into()))?;
    if resource == super::admin::RESOURCE {
        return super::admin::route(req, store, notifier, &player).await;
    }
    match req.http_method {
        Method::GET => fetch(req, store, &player, &rules.worlds).await,
        Method::PUT => put(req, store, notifier, &player, rules).await,
        ref other => Err(WireError::MethodNotAllowed(other.to_string())),
    }
}

async fn fetch(
    req: &ApiGatewayProxyRequest,
    store: &dyn ChunkStore,
    player: &Player,
    worlds: &Worlds,
) -> Result<String, WireError> {
    let q = &req.query_string_parameters;
    let query = FetchQuery::parse(q.first("world"), q.first("chunks"))?;
    player.check(Action::Read, &query.world)?;
    let keys: Vec<_> = query.chunks.iter().map(|(k, _)| *k).collect();
    worlds.check(&query.world, keys.iter().copied())?;
    let stored = store_call(store.fetch(&query.world, &keys)).await?;
    let chunks = query
        .chunks
        .iter()
        .zip(stored)
        .map(|(&(key, held), s)| {
            // "Not modified" only when the client names this very content (see
            // cubewalk_protocol::revision): a restored or lost store cannot make it lie.
            let version = s.revision;
            FetchEntry {
                key,
                version,
                seq: s.seq,
                data: (held != Some(version)).then(|| blob_to_base64(&s.blob)),
            }
        })
        .collect();
    let resp = FetchResponse {
        world: query.world,
        chunks,
    };
    serde_json::to_string(&resp).map_err(|e| WireError::Internal(e.to_string()))
}

async fn put(
    req: &ApiGatewayProxyRequest,
    store: &dyn ChunkStore,
    notifier: Option<&Notifier>,
    player: &Player,
    rules: &Rules,
) -> Result<String, WireError> {
    // Refused before the body is decoded: a viewer cannot make the function do the work.
    player.check_role(Action::Edit)?;
    let body = request_body(req)?;
    let request = match PutRequest::parse(&body) {
        Ok(request) => request,
        // Not a put: maybe the fence of one (parsed only then, so a broken put is reported
        // as a broken put).
        Err(e) => match CancelRequest::parse(&body) {
            Ok(cancel) => return cancel_put(store, player, rules, cancel).await,
            Err(cancel_error) if CancelRequest::is_meant(&body) => return Err(cancel_error),
            Err(_) => return Err(e),
        },
    };
    player.check(Action::Edit, &request.world)?;
    let grouped = request.group()?;
    let budget = rules
        .worlds
        .check(&request.world, grouped.iter().map(|(k, _)| *k))?;
    let applied = if grouped.is_empty() {
        Vec::new()
    } else {
        let put = Put {
            player: &player.id,
            key: request.idempotency_key.as_ref(),
            request_hash: request_hash(&body),
            limits: Some(&rules.limits),
            budget: Some(budget),
        };
        store_call(store.apply_edits(&request.world, &grouped, &put)).await?
    };
    let changed = applied.iter().filter(|a| a.changed_from.is_some()).count();
    crate::metrics::add(crate::metrics::Metric::PutsApplied, changed as u64);
    if let Some(notifier) = notifier {
        // Queued for the publisher, never waited on: the put answers now.
        notifier
            .notify(&request.world, changes(&grouped, &applied))
            .await;
    }
    let versions = applied.iter().map(|a| a.revision);
    let resp = PutResponse {
        world: request.world,
        chunks: grouped
            .iter()
            .zip(versions)
            .map(|((key, _), version)| VersionEntry { key: *key, version })
            .collect(),
    };
    serde_json::to_string(&resp).map_err(|e| WireError::Internal(e.to_string()))
}

/// Fences off a put its sender gave up on (see [`ChunkStore::cancel`]) and tells, per chunk,
/// whether it had applied.
async fn cancel_put(
    store: &dyn ChunkStore,
    player: &Player,
    rules: &Rules,
    request: CancelRequest,
) -> Result<String, WireError> {
    player.check(Action::Edit, &request.world)?;
    rules
        .worlds
        .check(&request.world, request.chunks.iter().copied())?;
    let outcome = store
        .cancel(
            &request.world,
            &request.chunks,
            &player.id,
            &request.cancel,
            Some(&rules.limits),
        )
        .await?;
    let mut resp = CancelResponse {
        world: request.world,
        applied: Vec::new(),
        cancelled: Vec::new(),
    };
    for (key, applied) in request.chunks.into_iter().zip(outcome) {
        match applied {
            Some(version) => resp.applied.push(VersionEntry { key, version }),
            None => resp.cancelled.push(key),
        }
    }
    serde_json::to_string(&resp).map_err(|e| WireError::Internal(e.to_string()))
}

/// The hash an idempotency key is bound to: the first 8 bytes of the body's SHA-256, so a
/// retry of the same bytes matches on every function instance and version.
fn request_hash(body: &[u8]) -> u64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(body);
    u64::from_be_bytes(digest[..8].try_into().unwrap_or_default())
}

/// The request body as bytes, refused before decoding when over the limit.
fn request_body(req: &ApiGatewayProxyRequest) -> Result<Vec<u8>, WireError> {
    let text = req.body.as_deref().unwrap_or("");
    let too_large = || WireError::TooLarge(format!("body larger than {MAX_PUT_BODY_BYTES} bytes"));
    if req.is_base64_encoded {
        if text.len() > MAX_PUT_BODY_BYTES.div_ceil(3) * 4 {
            return Err(too_large());
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| WireError::MalformedJson("body is not valid base64".into()))?;
        if bytes.len() > MAX_PUT_BODY_BYTES {
            return Err(too_large());
        }
        Ok(bytes)
    } else if text.len() > MAX_PUT_BODY_BYTES {
        Err(too_large())
    } else {
        Ok(text.as_bytes().to_vec())
    }
}

/// Browsers (the game's WebGL build) may call the API from any origin: the token travels in a
/// header, never in a cookie, so `*` grants nothing a script could not do anyway.
pub const ALLOW_ORIGIN: &str = "*";

fn json_response(status: u16, body: String) -> ApiGatewayProxyResponse {
    let mut r = ApiGatewayProxyResponse::default();
    r.status_code = i64::from(status);
    r.headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers.insert(
        http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static(ALLOW_ORIGIN),
    );
    r.body = Some(Body::Text(body));
    r
}
