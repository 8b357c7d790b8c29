//! The broker's authorizer: an AWS IoT Core custom authorizer (and, locally, what the gate in
//! front of the embedded broker runs). It verifies the same player tokens as the REST API's
//! authorizer and answers an IoT policy that lets the player connect, subscribe to and receive
//! the change topics of the worlds its token names, and never publish: only the server
//! publishes changes.
//!
//! The token is read where each protocol can carry it: the `token` header or query parameter
//! of the WebSocket upgrade (a browser can only use the query string), else the MQTT CONNECT
//! password.

use crate::identity::{Player, Verifier, Worlds};
use crate::store::ChunkStore;
use aws_lambda_events::event::iot::IoTCoreCustomAuthorizerRequest;
use cubewalk_protocol::realtime::TOPIC_ROOT;
use serde::Serialize;

/// Longest a connection lives before the broker closes it (IoT Core's maximum is 24 h); the
/// client reconnects and is authorized again.
pub const DISCONNECT_AFTER_SECS: u32 = 86_400;
/// How often the broker re-runs the authorizer on an open connection (IoT Core's minimum is
/// 300 s): a banned player's or an expired token's connection ends within this.
pub const REFRESH_AFTER_SECS: u32 = 300;
/// The header and query parameter the token travels in.
pub const TOKEN_KEY: &str = "token";

/// The authorizer's answer, as IoT Core reads it (policy documents are JSON text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerAuthorization {
    /// Whether the token was accepted.
    pub is_authenticated: bool,
    /// The player id (IoT Core logs it).
    pub principal_id: String,
    /// See [`DISCONNECT_AFTER_SECS`].
    pub disconnect_after_in_seconds: u32,
    /// See [`REFRESH_AFTER_SECS`].
    pub refresh_after_in_seconds: u32,
    /// The policies, each a JSON document as text.
    pub policy_documents: Vec<String>,
}

impl BrokerAuthorization {
    /// The answer for an authorized `player`.
    pub fn allow(player: &Player, arn_prefix: &str) -> Self {
        Self {
            is_authenticated: true,
            principal_id: principal(player),
            disconnect_after_in_seconds: DISCONNECT_AFTER_SECS,
            refresh_after_in_seconds: REFRESH_AFTER_SECS,
            policy_documents: vec![policy(player, arn_prefix).to_string()],
        }
    }

    /// The answer to a refused connection.
    pub fn refused() -> Self {
        Self {
            is_authenticated: false,
            principal_id: "refused".into(),
            disconnect_after_in_seconds: 0,
            refresh_after_in_seconds: 0,
            policy_documents: Vec::new(),
        }
    }
}

/// The token the event carries: the `token` header, else the `token` query parameter, else
/// the MQTT password.
pub fn token_of(event: &IoTCoreCustomAuthorizerRequest) -> Option<String> {
    let data = event.protocol_data.as_ref()?;
    let from_http = data.http.as_ref().and_then(|http| {
        http.headers
            .get(TOKEN_KEY)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| {
                let query = http.query_string.as_deref()?;
                form_query(query, TOKEN_KEY)
            })
    });
    from_http
        .or_else(|| {
            let mqtt = data.mqtt.as_ref()?;
            String::from_utf8(mqtt.password.0.clone()).ok()
        })
        .filter(|t| !t.is_empty())
}

/// The value of `key` in a URL query string (`a=1&token=...`), percent-decoded.
fn form_query(query: &str, key: &str) -> Option<String> {
    query.trim_start_matches('?').split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// Authorizes one connection: the token's player, not banned (when `store` is given), gets
/// [`policy`]; anything else is refused. `Err` when the ban flag cannot be read (the caller
/// fails the invocation: the client retries later, rather than being told its token is bad).
pub async fn authorize_broker(
    event: &IoTCoreCustomAuthorizerRequest,
    verifier: &Verifier,
    store: Option<&dyn ChunkStore>,
    arn_prefix: &str,
) -> Result<BrokerAuthorization, String> {
    Ok(match broker_player(event, verifier, store).await? {
        Some(player) => BrokerAuthorization::allow(&player, arn_prefix),
        None => BrokerAuthorization::refused(),
    })
}

/// The player a connection is authorized as: the token's, when it verifies and (with `store`)
/// the player is not banned; `None` otherwise (the reason is logged, never answered); `Err`
/// when the ban flag cannot be read.
pub async fn broker_player(
    event: &IoTCoreCustomAuthorizerRequest,
    verifier: &Verifier,
    store: Option<&dyn ChunkStore>,
) -> Result<Option<Player>, String> {
    let Some(token) = token_of(event) else {
        tracing::info!("broker connection without a token");
        return Ok(None);
    };
    let player = match verifier.verify_fresh(&token).await {
        Ok(p) => p,
        Err(why) => {
            tracing::info!(reason = %why, "broker token refused");
            return Ok(None);
        }
    };
    if let Some(store) = store {
        match store.is_banned(&player.id).await {
            Ok(false) => {}
            Ok(true) => {
                tracing::info!(player = %player.id, "banned player refused by the broker");
                return Ok(None);
            }
            Err(e) => {
                tracing::warn!(error = %e, "ban check failed: broker connection not authorized");
                return Err(format!("store unavailable: {e}"));
            }
        }
    }
    Ok(Some(player))
}

/// IoT Core's principal ids are 1 to 128 letters and digits: the player id's own when it is
/// one, else a hash of it.
fn principal(player: &Player) -> String {
    if player.id.len() <= 128 && player.id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        player.id.clone()
    } else {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(player.id.as_bytes());
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The prefix of the client ids players connect with (the SDKs make `cw-` and 128 random
/// bits): IoT Core ends an older connection when another connects with its client id, so the
/// policy lets players use only these, never a device's or a service's of the same account.
pub const CLIENT_ID_PREFIX: &str = "cw-";

/// The policy of `player`: connect with a [`CLIENT_ID_PREFIX`] client id, subscribe to and
/// receive the change topics of its worlds (`cw/<world>/*`, or `cw/*` for a token naming every
/// world), one region topic per filter (MQTT wildcards denied); publish denied everywhere. `arn_prefix` is `arn:aws:iot:<region>:<account>`.
pub fn policy(player: &Player, arn_prefix: &str) -> serde_json::Value {
    let worlds: Vec<String> = match &player.worlds {
        Worlds::All => vec![format!("{TOPIC_ROOT}/*")],
        Worlds::Only(list) => list
            .iter()
            .map(|w| format!("{TOPIC_ROOT}/{}/*", w.as_str()))
            .collect(),
    };
    let resources = |kind: &str| -> Vec<String> {
        worlds
            .iter()
            .map(|w| format!("{arn_prefix}:{kind}/{w}"))
            .collect()
    };
    let mut statements = vec![serde_json::json!({
        "Effect": "Allow",
        "Action": "iot:Connect",
        "Resource": format!("{arn_prefix}:client/{CLIENT_ID_PREFIX}*"),
    })];
    if !worlds.is_empty() {
        statements.push(serde_json::json!({
            "Effect": "Allow",
            "Action": "iot:Subscribe",
            "Resource": resources("topicfilter"),
        }));
        statements.push(serde_json::json!({
            "Effect": "Allow",
            "Action": "iot:Receive",
            "Resource": resources("topic"),
        }));
    }
    statements.push(serde_json::json!({
        "Effect": "Deny",
        "Action": "iot:Publish",
        "Resource": "*",
    }));
    // Region topics only: a filter with MQTT's wildcards (`cw/<world>/#`, `cw/<world>/+/...`)
    // would deliver a whole world's changes to one connection, past the 50 regions a follower
    // may hold, each delivery billed. To a policy `#` and `+` are plain characters.
    statements.push(serde_json::json!({
        "Effect": "Deny",
        "Action": "iot:Subscribe",
        "Resource": [
            format!("{arn_prefix}:topicfilter/*#*"),
            format!("{arn_prefix}:topicfilter/*+*"),
        ],
    }));
    serde_json::json!({ "Version": "2012-10-17", "Statement": statements })
}
