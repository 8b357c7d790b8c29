//! The WebSocket API's routes as a plain function of (event, index): the realtime Lambda and
//! the local gateway are thin shells around [`handle`].
//!
//! API Gateway has authorized `$connect` already (the REQUEST authorizer on the `token`
//! header), so `$connect` only refuses banned players and players over their connection
//! limit, and records whose connection it is; every later event carries that authorizer's context,
//! and a subscription to a world the player's token does not name is refused (`forbidden`). Client messages are routed on their `action`
//! (`subscribe`, `unsubscribe`, anything else to `$default`); the answer (the routes are
//! two-way) is `{"subscribed":n}` / `{"unsubscribed":n}` or the REST API's error body
//! `{"error":{"code","message"}}`, so a client can tell answers (objects) from change messages
//! (arrays).

use super::index::Subscriptions;
use crate::identity::{Action, Player};
use crate::store::{ChunkStore, PlayerLimits, StoreError};
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use cubewalk_protocol::realtime::ClientMessage;
use cubewalk_protocol::WireError;

/// The route keys of the WebSocket API, as deployed.
pub const ROUTES: [&str; 5] = [
    "$connect",
    "$disconnect",
    "subscribe",
    "unsubscribe",
    "$default",
];

/// Handles one WebSocket event, with `bans` telling banned players and `limits` bounding each
/// player's connections. Never panics on any input and never fails: problems are answered as
/// JSON errors.
pub async fn handle(
    event: &ApiGatewayWebsocketProxyRequest,
    index: &dyn Subscriptions,
    bans: &dyn ChunkStore,
    limits: &PlayerLimits,
) -> ApiGatewayProxyResponse {
    let ctx = &event.request_context;
    let route = ctx.route_key.as_deref().unwrap_or("");
    let Some(connection) = ctx.connection_id.as_deref().filter(|c| !c.is_empty()) else {
        return answer(
            Err(WireError::Invalid("event without connectionId".into())),
            None,
        );
    };
    let player = Player::from_context(&ctx.authorizer.fields);
    let result = match (route, player) {
        ("$connect", Some(player)) => connect(connection, &player, index, bans, limits)
            .await
            .map(|()| None),
        ("$disconnect", _) => index
            .disconnect(connection)
            .await
            .map(|()| None)
            .map_err(WireError::from),
        (_, Some(player)) => message(
            connection,
            &player,
            event.body.as_deref().unwrap_or(""),
            index,
            bans,
        )
        .await
        .map(Some),
        (_, None) => Err(WireError::Forbidden(
            "no player identity from the authorizer".into(),
        )),
    };
    let request_id = ctx.request_id.as_deref().filter(|id| !id.is_empty());
    match &result {
        Err(e) if e.status() >= 500 => tracing::error!(route, request_id, error = %e, "realtime"),
        Err(e) => tracing::info!(route, request_id, error = %e, "realtime"),
        Ok(_) => tracing::debug!(route, "realtime"),
    }
    answer(result, request_id)
}

/// `$connect`: refuses a banned player and one already holding their limit of connections,
/// else records whose connection this is (so a ban can close it). While the store is
/// unavailable the connection is accepted unrecorded: it can do nothing before its first
/// subscribe, which checks the ban again and records it.
async fn connect(
    connection: &str,
    player: &Player,
    index: &dyn Subscriptions,
    bans: &dyn ChunkStore,
    limits: &PlayerLimits,
) -> Result<(), WireError> {
    let admitted = async {
        if bans.is_banned(&player.id).await? {
            return Ok(Err(WireError::Banned));
        }
        let held = index.register(connection, &player.id).await?;
        if held > usize::try_from(limits.connections).unwrap_or(usize::MAX) {
            index.disconnect(connection).await?;
            return Ok(Err(WireError::RateLimited {
                message: format!(
                    "at most {} realtime connections per player",
                    limits.connections
                ),
                retry_after_secs: 60,
            }));
        }
        Ok::<_, StoreError>(Ok(()))
    };
    match admitted.await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::warn!(error = %e, "connect accepted without the store");
            Ok(())
        }
    }
}

async fn message(
    connection: &str,
    player: &Player,
    text: &str,
    index: &dyn Subscriptions,
    bans: &dyn ChunkStore,
) -> Result<String, WireError> {
    match ClientMessage::parse(text).map_err(WireError::Invalid)? {
        ClientMessage::Subscribe { world, chunks } => {
            player.check(Action::Read, &world)?;
            if bans.is_banned(&player.id).await? {
                return Err(WireError::Banned);
            }
            // Recorded again (idempotent): a connection accepted while the store was down is
            // known to a later ban.
            index.register(connection, &player.id).await?;
            index.subscribe(connection, &world, &chunks).await?;
            Ok(format!("{{\"subscribed\":{}}}", chunks.len()))
        }
        ClientMessage::Unsubscribe { chunks } => {
            index.unsubscribe(connection, &chunks).await?;
            Ok(format!("{{\"unsubscribed\":{}}}", chunks.len()))
        }
    }
}

fn answer(
    result: Result<Option<String>, WireError>,
    request_id: Option<&str>,
) -> ApiGatewayProxyResponse {
    let mut r = ApiGatewayProxyResponse::default();
    match result {
        Ok(body) => {
            r.status_code = 200;
            r.body = body.map(Body::Text);
        }
        Err(e) => {
            r.status_code = i64::from(e.status());
            r.body = Some(Body::Text(
                serde_json::to_string(&e.body(request_id)).unwrap_or_default(),
            ));
        }
    }
    r
}
