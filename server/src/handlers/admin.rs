//! The admin API, `/cubewalkadmin`, served by the blocks function (it holds the store and the
//! notifier); every operation needs an `admin` token, and world operations a token naming the
//! world (bans, which span every world, need a token for all worlds).
//!
//! | request | answer |
//! |---|---|
//! | `GET ?op=chunk&world=W&chunk=x,y,z[&since=MS]` | `{"records":[{"id","at_ms","player","changes":[{"index","before","after"}]}]}` |
//! | `GET ?op=player&world=W&player=P[&since=MS]` | `{"records":[{"chunk":[x,y,z],"id",...}]}` |
//! | `POST {"op":"rollback","world":W,"player":P,"since":MS}` | `{"restored":n,"chunks":[[[x,y,z],rev]],"conflicts":[{"chunk","index","current"}]}` |
//! | `POST {"op":"ban"\|"unban","player":P}` | `{"player":P,"banned":bool,"closed":n}` |
//!
//! `since` is Unix milliseconds (default: everything the log still holds).

use crate::admin;
use crate::identity::{valid_player_id, Action, Player, Worlds};
use crate::realtime::Notifier;
use crate::store::ChunkStore;
use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use cubewalk_protocol::{ChunkKey, WireError, WorldId};
use http::Method;
use serde::Deserialize;

/// The resource path this handler serves.
pub const RESOURCE: &str = "/cubewalkadmin";

/// Largest admin request body.
const MAX_BODY: usize = 4096;

/// Answers one admin request for `player` (already known to be authorized by the authorizer).
pub async fn route(
    req: &ApiGatewayProxyRequest,
    store: &dyn ChunkStore,
    notifier: Option<&Notifier>,
    player: &Player,
) -> Result<String, WireError> {
    player.check_role(Action::Administer)?;
    match req.http_method {
        Method::GET => history(req, store, player).await,
        Method::POST => operate(req, store, notifier, player).await,
        ref other => Err(WireError::MethodNotAllowed(other.to_string())),
    }
}

fn world(text: Option<&str>) -> Result<WorldId, WireError> {
    WorldId::new(text.unwrap_or(cubewalk_protocol::world::DEFAULT_WORLD))
        .map_err(|e| WireError::Invalid(e.to_string()))
}

fn player_id(text: &str) -> Result<String, WireError> {
    valid_player_id(text)
        .then(|| text.to_owned())
        .ok_or_else(|| {
            WireError::Invalid(format!(
                "'{}' is not a player id",
                text.chars().take(64).collect::<String>()
            ))
        })
}

fn since(text: Option<&str>) -> Result<u64, WireError> {
    text.map_or(Ok(0), |t| {
        t.parse()
            .map_err(|_| WireError::BadQuery("since must be Unix milliseconds".into()))
    })
}

fn chunk(text: Option<&str>) -> Result<ChunkKey, WireError> {
    text.unwrap_or("")
        .parse()
        .map_err(|_| WireError::BadQuery("chunk must be x,y,z".into()))
}

fn json(value: &impl serde::Serialize) -> Result<String, WireError> {
    serde_json::to_string(value).map_err(|e| WireError::Internal(e.to_string()))
}

async fn history(
    req: &ApiGatewayProxyRequest,
    store: &dyn ChunkStore,
    player: &Player,
) -> Result<String, WireError> {
    let q = &req.query_string_parameters;
    let world = world(q.first("world"))?;
    player.check(Action::Administer, &world)?;
    let since = since(q.first("since"))?;
    match q.first("op") {
        Some("chunk") => {
            let records =
                admin::chunk_history(store, &world, chunk(q.first("chunk"))?, since).await?;
            json(&serde_json::json!({ "records": records }))
        }
        Some("player") => {
            let who = player_id(q.first("player").unwrap_or(""))?;
            let records = admin::player_history(store, &world, &who, since).await?;
            json(&serde_json::json!({ "records": records }))
        }
        _ => Err(WireError::BadQuery("op must be chunk or player".into())),
    }
}

/// The body of a `POST`.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Operation {
    Rollback {
        world: Option<String>,
        player: String,
        since: u64,
    },
    Ban {
        player: String,
    },
    Unban {
        player: String,
    },
}

async fn operate(
    req: &ApiGatewayProxyRequest,
    store: &dyn ChunkStore,
    notifier: Option<&Notifier>,
    admin_player: &Player,
) -> Result<String, WireError> {
    let body = req.body.as_deref().unwrap_or("");
    if body.len() > MAX_BODY {
        return Err(WireError::TooLarge(format!(
            "body larger than {MAX_BODY} bytes"
        )));
    }
    let op: Operation = serde_json::from_str(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => WireError::Invalid(e.to_string()),
        _ => WireError::MalformedJson(e.to_string()),
    })?;
    match op {
        Operation::Rollback {
            world: w,
            player,
            since,
        } => {
            let world = world(w.as_deref())?;
            admin_player.check(Action::Administer, &world)?;
            let who = player_id(&player)?;
            let actor = format!("admin:{}", admin_player.id);
            let report = admin::rollback(store, notifier, &world, &who, since, &actor).await?;
            tracing::warn!(admin = %admin_player.id, player = %who, since, restored = report.restored, conflicts = report.conflicts.len(), "rollback");
            json(&report)
        }
        Operation::Ban { player } => ban(store, notifier, admin_player, &player, true).await,
        Operation::Unban { player } => ban(store, notifier, admin_player, &player, false).await,
    }
}

async fn ban(
    store: &dyn ChunkStore,
    notifier: Option<&Notifier>,
    admin_player: &Player,
    player: &str,
    banned: bool,
) -> Result<String, WireError> {
    if admin_player.worlds != Worlds::All {
        return Err(WireError::Forbidden(
            "a ban spans every world: it needs an admin token for all worlds".into(),
        ));
    }
    let who = player_id(player)?;
    let closed = admin::set_banned(store, notifier, &who, banned).await?;
    tracing::warn!(admin = %admin_player.id, player = %who, banned, closed, "ban");
    json(&serde_json::json!({ "player": who, "banned": banned, "closed": closed }))
}
