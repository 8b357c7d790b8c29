//! The JSON messages of `GET` and `PUT /cubewalkblocks` and the error body.

use crate::chunk::{cube_index, ChunkKey, CHUNK_CUBES};
use crate::limits::{
    IDEMPOTENCY_KEY_LEN, MAX_CHUNKS_PARAM_LEN, MAX_CHUNKS_PER_FETCH, MAX_CHUNKS_PER_PUT,
    MAX_EDITS_PER_PUT,
};
use crate::world::{WorldId, DEFAULT_WORLD};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt::Write as _;

/// A request problem or server failure with its HTTP status and stable error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The body is not JSON of the expected shape (400 `malformed_json`).
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// A query parameter cannot be parsed (400 `bad_query`).
    #[error("bad query: {0}")]
    BadQuery(String),
    /// A value is well-formed but not acceptable (422 `invalid_request`).
    #[error("{0}")]
    Invalid(String),
    /// Too many chunks or edits, or a body or parameter too long (413 `too_large`).
    #[error("{0}")]
    TooLarge(String),
    /// The caller's token does not allow this (403 `forbidden`): a viewer's put, or a world
    /// the token does not name.
    #[error("{0}")]
    Forbidden(String),
    /// The player is banned from this deployment (403 `banned`).
    #[error("this player is banned")]
    Banned,
    /// The player went past one of their limits (429 `rate_limited`); the answer carries
    /// `Retry-After` with `retry_after_secs`.
    #[error("{message}; retry after {retry_after_secs} s")]
    RateLimited {
        /// Which limit, for a person.
        message: String,
        /// Whole seconds until a retry can succeed (at least 1).
        retry_after_secs: u32,
    },
    /// The idempotency key was already used by this player for a different request
    /// (422 `idempotency_key_reused`).
    #[error("idempotency_key was already used for a different request")]
    IdempotencyKeyReused,
    /// The put was cancelled by its sender, who gave up waiting for it (409 `cancelled`):
    /// it was not applied, and never will be, wherever this answer was given.
    #[error("this put was cancelled by its sender")]
    Cancelled,
    /// The world's share of the store is full (507 `store_full`): the put changed nothing.
    /// Reads keep working; edits that do not grow the world may still pass.
    #[error("{0}")]
    StoreFull(String),
    /// No such resource (404 `not_found`).
    #[error("no such resource: {0}")]
    NotFound(String),
    /// Method not supported on the resource (405 `method_not_allowed`).
    #[error("method {0} not allowed here (the Allow header lists the methods)")]
    MethodNotAllowed(String),
    /// The store cannot be reached or did not answer in time (503 `store_unavailable`).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data is corrupt or an invariant broke (500 `internal`).
    #[error("internal error: {0}")]
    Internal(String),
}

impl WireError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Self::MalformedJson(_) | Self::BadQuery(_) => 400,
            Self::Forbidden(_) | Self::Banned => 403,
            Self::NotFound(_) => 404,
            Self::Cancelled => 409,
            Self::MethodNotAllowed(_) => 405,
            Self::TooLarge(_) => 413,
            Self::Invalid(_) | Self::IdempotencyKeyReused => 422,
            Self::RateLimited { .. } => 429,
            Self::Internal(_) => 500,
            Self::Unavailable(_) => 503,
            Self::StoreFull(_) => 507,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson(_) => "malformed_json",
            Self::BadQuery(_) => "bad_query",
            Self::Invalid(_) => "invalid_request",
            Self::TooLarge(_) => "too_large",
            Self::Forbidden(_) => "forbidden",
            Self::Banned => "banned",
            Self::RateLimited { .. } => "rate_limited",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::Unavailable(_) => "store_unavailable",
            Self::Cancelled => "cancelled",
            Self::StoreFull(_) => "store_full",
            Self::Internal(_) => "internal",
        }
    }

    /// The message a caller sees. Server failures say only what happened, never the store's
    /// own words (addresses, user names, Redis messages): those go to the log, under the
    /// request id the body carries.
    pub fn public_message(&self) -> String {
        match self {
            Self::Unavailable(_) => "the store is unavailable; retry later".into(),
            Self::Internal(_) => "internal error".into(),
            other => other.to_string(),
        }
    }

    /// Seconds a caller should wait before retrying, for the `Retry-After` header.
    pub fn retry_after_secs(&self) -> Option<u32> {
        match self {
            Self::RateLimited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            Self::Unavailable(_) => Some(1),
            _ => None,
        }
    }

    /// The JSON error body for this error, naming the request (`request_id`) so a player's
    /// report finds the server's log line.
    pub fn body(&self, request_id: Option<&str>) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message: self.public_message(),
                request_id: request_id.map(str::to_owned),
            },
        }
    }
}

/// Every error answer: `{"error":{"code":"...","message":"..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Code and human-readable message of an error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable machine-readable code, such as `invalid_request`.
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
    /// The request's id, also on the server's log line for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// The selection of a `GET`: query parameters `world` (default `default`) and `chunks`, a
/// `;`-separated list of `x,y,z` keys, each optionally followed by `@version` when the caller
/// already holds that version.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FetchQuery {
    /// The world to read.
    pub world: WorldId,
    /// The chunks, in the order the answer lists them, with the revision the caller holds.
    pub chunks: Vec<(ChunkKey, Option<u64>)>,
}

impl FetchQuery {
    /// Parses the (already percent-decoded) `world` and `chunks` parameters.
    pub fn parse(world: Option<&str>, chunks: Option<&str>) -> Result<Self, WireError> {
        let world = WorldId::new(world.unwrap_or(DEFAULT_WORLD))
            .map_err(|e| WireError::Invalid(e.to_string()))?;
        let text = chunks.unwrap_or("");
        if text.len() > MAX_CHUNKS_PARAM_LEN {
            return Err(WireError::TooLarge(format!(
                "chunks parameter longer than {MAX_CHUNKS_PARAM_LEN} bytes"
            )));
        }
        let mut out = Vec::new();
        let mut seen = HashMap::new();
        for item in text.split(';').filter(|s| !s.is_empty()) {
            if out.len() == MAX_CHUNKS_PER_FETCH {
                return Err(WireError::TooLarge(format!(
                    "more than {MAX_CHUNKS_PER_FETCH} chunks in one fetch"
                )));
            }
            let (key_text, version) = match item.split_once('@') {
                Some((k, v)) => (
                    k,
                    Some(v.parse::<u64>().map_err(|_| {
                        WireError::BadQuery(format!("bad version in chunk '{item}'"))
                    })?),
                ),
                None => (item, None),
            };
            let key: ChunkKey = key_text.parse().map_err(|_| {
                WireError::BadQuery(format!(
                    "chunk '{item}' is not x,y,z[@version] with 32-bit integers"
                ))
            })?;
            if seen.insert(key, ()).is_some() {
                return Err(WireError::Invalid(format!("chunk {key} selected twice")));
            }
            out.push((key, version));
        }
        Ok(Self { world, chunks: out })
    }

    /// The query string (without `?`) that [`FetchQuery::parse`] reads back. Only characters
    /// that need no percent-encoding are used, so it can be appended to a URL as is.
    pub fn to_query_string(&self) -> String {
        let mut s = format!("world={}&chunks=", self.world);
        for (i, (k, v)) in self.chunks.iter().enumerate() {
            if i > 0 {
                s.push(';');
            }
            let _ = write!(s, "{},{},{}", k.x, k.y, k.z);
            if let Some(v) = v {
                let _ = write!(s, "@{v}");
            }
        }
        s
    }
}

/// The answer to a `GET`: one entry per selected chunk, in the order selected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchResponse {
    /// The world read.
    pub world: WorldId,
    /// One entry per selected chunk.
    pub chunks: Vec<FetchEntry>,
}

/// One fetched chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchEntry {
    /// The chunk.
    pub key: ChunkKey,
    /// Its current revision ([`crate::revision`]: drawn at random by the write that made this
    /// content, 0 for all air). The field keeps the name `version` that the C ABI uses;
    /// revisions are not ordered.
    pub version: u64,
    /// Its write sequence ([`crate::realtime`]): grows with every write the store applies to
    /// the chunk, so a follower orders this answer against the change messages
    /// around it. 0 (and left out) for a chunk never written.
    #[serde(rename = "n", default, skip_serializing_if = "is_zero")]
    pub seq: u64,
    /// Base64 of the encoded chunk (see [`crate::codec`]; `""` is all air). Absent when the
    /// caller already holds `version` ("not modified").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The body of a `PUT`: a batch of cube edits in one world.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutRequest {
    /// The world to edit (default `default`).
    #[serde(default)]
    pub world: WorldId,
    /// Names this logical put so that a retry of it is recognised: for
    /// [`crate::limits::IDEMPOTENCY_WINDOW_SECS`] after a chunk applied a put with this key,
    /// the same key on that chunk changes nothing and answers the revision it answered then.
    /// Without it, a retried put whose first answer was lost would write its (older) values
    /// over a newer edit made in between.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<IdempotencyKey>,
    /// The edits, applied in order (a later edit of the same cube wins).
    pub edits: Vec<ChunkEdit>,
}

/// A put's idempotency key: 16 to 64 characters of `A-Z a-z 0-9 _ -`, unique per logical put
/// (the SDK draws 128 random bits for each).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Checks `s` and wraps it.
    pub fn new(s: &str) -> Result<Self, WireError> {
        let ok = IDEMPOTENCY_KEY_LEN.contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(WireError::Invalid(format!(
                "idempotency_key must be {} to {} characters of A-Z a-z 0-9 _ -",
                IDEMPOTENCY_KEY_LEN.start(),
                IDEMPOTENCY_KEY_LEN.end()
            )))
        }
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = WireError;
    fn try_from(s: String) -> Result<Self, WireError> {
        Self::new(&s)
    }
}

impl From<IdempotencyKey> for String {
    fn from(k: IdempotencyKey) -> String {
        k.0
    }
}

impl std::fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One cube edit: set the cube at `index` (or `local` x, y, z) of `chunk` to `value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkEdit {
    /// The chunk.
    pub chunk: ChunkKey,
    /// Index in the game's order, 0..4096 (give this or `local`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// Local `[x, y, z]`, each 0..16 (give this or `index`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<[u32; 3]>,
    /// The cube's new 32-bit value (opaque to the network layer).
    pub value: i32,
}

/// Where a validated edit lands inside its chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CubeRef {
    /// Index in the game's order.
    pub index: u16,
    /// The new value.
    pub value: i32,
}

impl ChunkEdit {
    /// An edit by cube index.
    pub fn at_index(chunk: ChunkKey, index: u16, value: i32) -> Self {
        Self {
            chunk,
            index: Some(u32::from(index)),
            local: None,
            value,
        }
    }

    /// The edit's cube index, checking that exactly one of `index` and `local` is given and in
    /// range.
    pub fn resolve(&self) -> Result<CubeRef, WireError> {
        let index = match (self.index, self.local) {
            (Some(i), None) if (i as usize) < CHUNK_CUBES => i as u16,
            (Some(i), None) => {
                return Err(WireError::Invalid(format!(
                    "cube index {i} out of range 0..{CHUNK_CUBES}"
                )))
            }
            (None, Some([x, y, z])) => cube_index(x, y, z).ok_or_else(|| {
                WireError::Invalid(format!("local cube [{x},{y},{z}] out of range 0..16"))
            })?,
            _ => {
                return Err(WireError::Invalid(
                    "each edit needs exactly one of 'index' and 'local'".into(),
                ))
            }
        };
        Ok(CubeRef {
            index,
            value: self.value,
        })
    }
}

/// The edits of one chunk, in request order.
pub type ChunkEdits = (ChunkKey, Vec<CubeRef>);

impl PutRequest {
    /// Parses and validates a body, refusing it before allocation-heavy work when it breaks a
    /// limit.
    pub fn parse(body: &[u8]) -> Result<Self, WireError> {
        let req: Self = serde_json::from_slice(body).map_err(|e| classify_json_error(&e))?;
        if req.edits.len() > MAX_EDITS_PER_PUT {
            return Err(WireError::TooLarge(format!(
                "more than {MAX_EDITS_PER_PUT} edits in one put"
            )));
        }
        Ok(req)
    }

    /// Validates every edit and groups them per chunk, chunks in order of first appearance.
    pub fn group(&self) -> Result<Vec<ChunkEdits>, WireError> {
        let grouped = group_by_chunk(&self.edits).map_err(|(_, e)| e)?;
        if grouped.len() > MAX_CHUNKS_PER_PUT {
            return Err(WireError::TooLarge(format!(
                "more than {MAX_CHUNKS_PER_PUT} chunks in one put"
            )));
        }
        Ok(grouped)
    }
}

/// Validates every edit and groups them per chunk, chunks in order of first appearance and each
/// chunk's edits in request order: the grouping both the server and the SDK's splitting use.
/// A bad edit fails with its position.
pub fn group_by_chunk(edits: &[ChunkEdit]) -> Result<Vec<ChunkEdits>, (usize, WireError)> {
    let mut order: Vec<ChunkEdits> = Vec::new();
    let mut slot: HashMap<ChunkKey, usize> = HashMap::new();
    for (n, edit) in edits.iter().enumerate() {
        let cube = edit.resolve().map_err(|e| (n, e))?;
        let i = *slot.entry(edit.chunk).or_insert_with(|| {
            order.push((edit.chunk, Vec::new()));
            order.len() - 1
        });
        order[i].1.push(cube);
    }
    Ok(order)
}

/// serde_json reports both syntax and type errors; type and value errors (a string where a
/// number belongs, a value out of `i32` range, a bad world id) are 422, broken JSON is 400.
fn classify_json_error(e: &serde_json::Error) -> WireError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => WireError::Invalid(e.to_string()),
        Category::Syntax | Category::Eof | Category::Io => WireError::MalformedJson(e.to_string()),
    }
}

/// The body of a `PUT` that fences off an earlier put its sender gave up on:
/// `{"world":"w","cancel":"<idempotency key>","chunks":[[x,y,z],...]}`. For each chunk, the
/// server either finds the put already applied there or records it as cancelled, so it can
/// never apply afterwards, however late its request arrives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// The world of the put.
    #[serde(default)]
    pub world: WorldId,
    /// The put's idempotency key.
    pub cancel: IdempotencyKey,
    /// The chunks the put touched (at most [`MAX_CHUNKS_PER_PUT`]).
    pub chunks: Vec<ChunkKey>,
}

impl CancelRequest {
    /// Parses and validates a body.
    pub fn parse(body: &[u8]) -> Result<Self, WireError> {
        let req: Self = serde_json::from_slice(body).map_err(|e| classify_json_error(&e))?;
        if req.chunks.len() > MAX_CHUNKS_PER_PUT {
            return Err(WireError::TooLarge(format!(
                "more than {MAX_CHUNKS_PER_PUT} chunks in one cancel"
            )));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(k) = req.chunks.iter().find(|k| !seen.insert(**k)) {
            return Err(WireError::Invalid(format!("chunk {k} named twice")));
        }
        Ok(req)
    }

    /// Whether `body` is meant as a cancel (a JSON object with a `cancel` member), so a
    /// malformed one is told what is wrong with it as a cancel, not as a put.
    pub fn is_meant(body: &[u8]) -> bool {
        #[derive(Deserialize)]
        struct Probe {
            cancel: Option<serde::de::IgnoredAny>,
        }
        serde_json::from_slice::<Probe>(body).is_ok_and(|p| p.cancel.is_some())
    }
}

/// The answer to a [`CancelRequest`]: the chunks where the put had applied (with the revision
/// it answered) and the ones where it had not and now never will.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelResponse {
    /// The world.
    pub world: WorldId,
    /// Chunks the put had changed before the cancel, with the revision it answered.
    pub applied: Vec<VersionEntry>,
    /// Chunks where it had not (or changed nothing): fenced off.
    pub cancelled: Vec<ChunkKey>,
}

/// The answer to a `PUT`: the new version of every touched chunk, in order of first appearance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutResponse {
    /// The world edited.
    pub world: WorldId,
    /// One entry per touched chunk.
    pub chunks: Vec<VersionEntry>,
}

/// A chunk and its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionEntry {
    /// The chunk.
    pub key: ChunkKey,
    /// Its revision after the edits ([`crate::revision`]).
    pub version: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::MAX_BLOB_BASE64_LEN;
    use crate::limits::{LAMBDA_PAYLOAD_LIMIT, MAX_FETCH_ENTRY_JSON_LEN};

    #[test]
    fn cancels_are_recognised_and_checked_as_cancels() {
        let good = br#"{"world":"w","cancel":"0123456789abcdef","chunks":[[1,2,3]]}"#;
        assert!(CancelRequest::parse(good).is_ok() && CancelRequest::is_meant(good));
        let short = br#"{"cancel":"short","chunks":[]}"#;
        assert!(CancelRequest::is_meant(short));
        assert_eq!(CancelRequest::parse(short).unwrap_err().status(), 422);
        let twice = br#"{"cancel":"0123456789abcdef","chunks":[[0,0,0],[0,0,0]]}"#;
        assert_eq!(CancelRequest::parse(twice).unwrap_err().status(), 422);
        let many: Vec<String> = (0..257).map(|i| format!("[{i},0,0]")).collect();
        let many = format!(
            r#"{{"cancel":"0123456789abcdef","chunks":[{}]}}"#,
            many.join(",")
        );
        assert_eq!(
            CancelRequest::parse(many.as_bytes()).unwrap_err().status(),
            413
        );
        assert!(!CancelRequest::is_meant(br#"{"edits":[]}"#));
        assert!(!CancelRequest::is_meant(b"[]"));
    }

    #[test]
    fn fetch_query_round_trips() {
        let q = FetchQuery {
            world: WorldId::new("w1").unwrap(),
            chunks: vec![
                (ChunkKey::new(0, -1, 2), None),
                (ChunkKey::new(i32::MIN, i32::MAX, 0), Some(u64::MAX)),
            ],
        };
        let s = q.to_query_string();
        assert_eq!(
            s,
            "world=w1&chunks=0,-1,2;-2147483648,2147483647,0@18446744073709551615"
        );
        let chunks = s.split("chunks=").nth(1);
        assert_eq!(FetchQuery::parse(Some("w1"), chunks).unwrap(), q);
    }

    #[test]
    fn fetch_query_refuses_bad_input() {
        let bad = |c: &str| FetchQuery::parse(None, Some(c)).unwrap_err();
        assert_eq!(bad("1,2").status(), 400);
        assert_eq!(bad("1,2,3,4").status(), 400);
        assert_eq!(bad("1,2,x").status(), 400);
        assert_eq!(bad("1,2,2147483648").status(), 400);
        assert_eq!(bad("1,2,3@-1").status(), 400);
        assert_eq!(bad("1,2,3;1,2,3").status(), 422);
        let many: Vec<String> = (0..=MAX_CHUNKS_PER_FETCH)
            .map(|i| format!("{i},0,0"))
            .collect();
        assert_eq!(bad(&many.join(";")).status(), 413);
        assert_eq!(bad(&"1".repeat(MAX_CHUNKS_PARAM_LEN + 1)).status(), 413);
        assert_eq!(
            FetchQuery::parse(Some("a:b"), None).unwrap_err().status(),
            422
        );
        assert_eq!(
            FetchQuery::parse(None, None).unwrap(),
            FetchQuery::default()
        );
    }

    #[test]
    fn put_parse_classifies_errors() {
        let st = |b: &str| PutRequest::parse(b.as_bytes()).unwrap_err().status();
        assert_eq!(st("{"), 400);
        assert_eq!(st("[]"), 422);
        assert_eq!(
            st(r#"{"edits":[{"chunk":[0,0,0],"index":1,"value":"x"}]}"#),
            422
        );
        assert_eq!(
            st(r#"{"edits":[{"chunk":[0,0,0],"index":1,"value":2147483648}]}"#),
            422
        );
        assert_eq!(st(r#"{"world":"a b","edits":[]}"#), 422);
        assert_eq!(st(r#"{"edits":[],"extra":1}"#), 422);
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(st(&deep), 400 | 422));
        let group = |b: &str| PutRequest::parse(b.as_bytes()).unwrap().group();
        assert_eq!(
            group(r#"{"edits":[{"chunk":[0,0,0],"index":4096,"value":1}]}"#)
                .unwrap_err()
                .status(),
            422
        );
        assert_eq!(
            group(r#"{"edits":[{"chunk":[0,0,0],"local":[0,16,0],"value":1}]}"#)
                .unwrap_err()
                .status(),
            422
        );
        assert_eq!(
            group(r#"{"edits":[{"chunk":[0,0,0],"index":1,"local":[0,0,0],"value":1}]}"#)
                .unwrap_err()
                .status(),
            422
        );
        let g = group(
            r#"{"edits":[{"chunk":[1,0,0],"local":[1,2,3],"value":5},{"chunk":[0,0,0],"index":7,"value":-1},{"chunk":[1,0,0],"index":0,"value":9}]}"#,
        )
        .unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].0, ChunkKey::new(1, 0, 0));
        assert_eq!(
            g[0].1,
            vec![
                CubeRef {
                    index: 256 + 48 + 2,
                    value: 5
                },
                CubeRef { index: 0, value: 9 }
            ]
        );
        assert_eq!(
            g[1].1,
            vec![CubeRef {
                index: 7,
                value: -1
            }]
        );
    }

    #[test]
    fn worst_case_fetch_fits_lambda_payload() {
        let entry = FetchEntry {
            key: ChunkKey::new(i32::MIN, i32::MIN, i32::MIN),
            version: u64::MAX,
            seq: u64::MAX,
            data: Some("A".repeat(MAX_BLOB_BASE64_LEN)),
        };
        let one = serde_json::to_string(&entry).unwrap().len();
        assert!(one <= MAX_FETCH_ENTRY_JSON_LEN);
        let resp = FetchResponse {
            world: WorldId::new(&"w".repeat(64)).unwrap(),
            chunks: vec![entry; MAX_CHUNKS_PER_FETCH],
        };
        let body = serde_json::to_string(&resp).unwrap();
        // The proxy response carries the body as a JSON string, escaping its quotes.
        let envelope = serde_json::to_string(&serde_json::json!({
            "statusCode": 200,
            "headers": {"content-type": "application/json"},
            "body": body,
        }))
        .unwrap();
        assert!(envelope.len() < LAMBDA_PAYLOAD_LIMIT, "{}", envelope.len());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any query text is parsed or refused with a 4xx, never a panic or a 5xx.
        #[test]
        fn fetch_query_never_panics(world in proptest::option::of(".{0,80}"), chunks in proptest::option::of("[-0-9,;@ a-z]{0,300}")) {
            if let Err(e) = FetchQuery::parse(world.as_deref(), chunks.as_deref()) {
                prop_assert!((400..500).contains(&e.status()));
            }
        }

        /// Well-formed selections round-trip through the query string.
        #[test]
        fn fetch_query_round_trips(keys in proptest::collection::hash_set(any::<(i32, i32, i32)>(), 0..40), held in proptest::collection::vec(proptest::option::of(any::<u64>()), 40)) {
            let q = FetchQuery {
                world: WorldId::default(),
                chunks: keys.into_iter().zip(held).map(|((x, y, z), v)| (ChunkKey::new(x, y, z), v)).collect(),
            };
            let qs = q.to_query_string();
            let chunks = qs.split("chunks=").nth(1);
            prop_assert_eq!(FetchQuery::parse(Some("default"), chunks).unwrap(), q);
        }

        /// Arbitrary bytes as a PUT body: parsed or refused with a 4xx.
        #[test]
        fn put_body_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(r) = PutRequest::parse(&body) {
                if let Err(e) = r.group() {
                    prop_assert!((400..500).contains(&e.status()));
                }
            }
        }

        /// JSON-shaped PUT bodies with hostile values: parsed or refused with a 4xx.
        #[test]
        fn put_body_json_never_panics(edits in proptest::collection::vec((any::<[i32; 3]>(), proptest::option::of(any::<u32>()), proptest::option::of(any::<[u32; 3]>()), any::<i64>()), 0..20), world in ".{0,70}") {
            let body = serde_json::json!({
                "world": world,
                "edits": edits.iter().map(|(c, i, l, v)| serde_json::json!({"chunk": c, "index": i, "local": l, "value": v})).collect::<Vec<_>>(),
            });
            match PutRequest::parse(body.to_string().as_bytes()) {
                Ok(r) => {
                    if let Err(e) = r.group() {
                        prop_assert!((400..500).contains(&e.status()));
                    }
                }
                Err(e) => prop_assert!((400..500).contains(&e.status())),
            }
        }
    }
}
