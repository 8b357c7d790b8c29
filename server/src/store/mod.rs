//! Chunk storage: the [`ChunkStore`] abstraction, shared edit logic, and its two
//! implementations ([`MemoryStore`] for zero-setup local runs, [`RedisStore`] for production).
//!
//! Both keep each chunk as its encoded blob (see [`cubewalk_protocol::codec`]) plus a counter
//! that grows by one with every batch of edits that changes the chunk, so a fetch sends stored
//! bytes without re-encoding them. The counter serves the store's own check-and-set; what a
//! client holds is the chunk's revision ([`cubewalk_protocol::revision`]), derived from the
//! blob, so no loss or restore of stored data can make one revision name two contents.
//!
//! A put may carry an idempotency key: each chunk remembers, inside the same atomic step that
//! applies the edits, which keys it applied for which player and request (a hash of the body)
//! and the revision it answered, for [`IDEMPOTENCY_WINDOW_SECS`]. A retry under a remembered
//! key changes nothing; the same player's key with another body is refused; another player's
//! use of the key is their own, separate put.
//!
//! Every change is logged in the same atomic step as the chunk write (see [`LogRecord`]), and
//! each player's puts pass their limits and ban flag ([`PlayerLimits`]) before anything is
//! written.

mod feed;
pub mod log;
mod players;

mod memory;
pub(crate) mod redis;

pub use self::feed::{feed_shard, FeedRead, FEED_MAX_LEN, FEED_SHARDS};
pub(crate) use self::log::now_ms;
pub use self::log::{CubeChange, LogRecord, LOG_RETENTION_SECS};
pub use self::memory::MemoryStore;
pub use self::players::{Limit, PlayerLimits};
pub use self::redis::{chunk_key as redis_chunk_key, RedisStore, RedisStoreConfig};

use async_trait::async_trait;
use cubewalk_protocol::codec::{decode_chunk_into, encode_chunk};
use cubewalk_protocol::limits::IDEMPOTENCY_WINDOW_SECS;
use cubewalk_protocol::messages::ChunkEdits;
use cubewalk_protocol::{ChunkKey, CubeRef, IdempotencyKey, WireError, WorldId, CHUNK_CUBES};

/// A chunk as stored: its write counter (0 for a chunk never written) and its encoded blob.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredChunk {
    /// Grows by one with each applied batch that changed the chunk; starts again from 0 when
    /// the store loses the chunk. Internal to the store: clients are given
    /// [`StoredChunk::revision`].
    pub version: u64,
    /// The encoded chunk; empty means all air.
    pub blob: Vec<u8>,
}

impl StoredChunk {
    /// The revision a client holds for this content.
    pub fn revision(&self) -> u64 {
        cubewalk_protocol::revision(&self.blob)
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backing service cannot be reached or did not answer in time (HTTP 503).
    #[error("{0}")]
    Unavailable(String),
    /// The player is banned (HTTP 403 `banned`).
    #[error("player is banned")]
    Banned,
    /// The player went past a limit (HTTP 429 `rate_limited`).
    #[error("{limit} limit reached")]
    RateLimited {
        /// Which limit.
        limit: Limit,
        /// When a retry can pass it.
        retry_after: std::time::Duration,
    },
    /// The player's idempotency key was already used for another request (HTTP 422).
    #[error("idempotency key reused for a different request")]
    IdempotencyKeyReused,
    /// Stored bytes could not be decoded (HTTP 500).
    #[error("corrupt chunk {key} in world {world}: {reason}")]
    Corrupt {
        /// World of the chunk.
        world: String,
        /// The chunk.
        key: ChunkKey,
        /// What the decoder said.
        reason: String,
    },
}

impl From<StoreError> for WireError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => WireError::Unavailable(m),
            StoreError::Banned => WireError::Banned,
            StoreError::IdempotencyKeyReused => WireError::IdempotencyKeyReused,
            StoreError::RateLimited { limit, retry_after } => WireError::RateLimited {
                message: format!("{limit} limit reached"),
                // Whole seconds, rounded up: a retry at the announced time passes.
                retry_after_secs: u32::try_from(retry_after.as_millis().div_ceil(1000))
                    .unwrap_or(u32::MAX)
                    .max(1),
            },
            e @ StoreError::Corrupt { .. } => WireError::Internal(e.to_string()),
        }
    }
}

/// Storage of chunks, keyed by world and chunk key.
///
/// Guarantees every implementation keeps (checked by the shared suite in `tests/store_suite`):
/// all edits to one chunk in one [`ChunkStore::apply`] call land atomically, concurrent
/// callers never lose an acknowledged edit, and a second apply under the same idempotency key
/// within the window changes nothing and answers the first one's revision.
#[async_trait]
pub trait ChunkStore: Send + Sync {
    /// Reads `keys` (one round trip for a remote store), in order.
    async fn fetch(
        &self,
        world: &WorldId,
        keys: &[ChunkKey],
    ) -> Result<Vec<StoredChunk>, StoreError>;

    /// Applies each chunk's edits atomically for `put.player` and tells, per chunk in order,
    /// its revision afterwards and whether this call changed it (and from which revision). A
    /// batch that changes nothing leaves the chunk as it was. With an idempotency key, a chunk
    /// that already applied this player's put under the key (within
    /// [`IDEMPOTENCY_WINDOW_SECS`]) is left alone and answers the revision it answered then,
    /// as unchanged; under the same key with another request hash, the put is refused
    /// ([`StoreError::IdempotencyKeyReused`]). Each change is appended to the chunk's log in
    /// the same atomic step. With limits, a banned player or one past a limit is refused
    /// before anything is written. No edits: no work, an empty answer.
    async fn apply_edits(
        &self,
        world: &WorldId,
        edits: &[ChunkEdits],
        put: &Put<'_>,
    ) -> Result<Vec<Applied>, StoreError>;

    /// [`ChunkStore::apply_edits`] as the `system` player without limits, answering only each
    /// chunk's revision afterwards (for tools and tests).
    async fn apply(
        &self,
        world: &WorldId,
        edits: &[ChunkEdits],
        key: Option<&IdempotencyKey>,
    ) -> Result<Vec<u64>, StoreError> {
        let put = Put {
            key,
            ..Put::system()
        };
        let applied = self.apply_edits(world, edits, &put).await?;
        Ok(applied.iter().map(|a| a.revision).collect())
    }

    /// Sets each listed cube of `chunk` to its new value only where it still holds the
    /// expected one, atomically, logged as `player`'s edit; answers what changed and the
    /// indices whose cube held something else (left alone).
    async fn apply_expected(
        &self,
        world: &WorldId,
        chunk: ChunkKey,
        edits: &[ExpectedEdit],
        player: &str,
    ) -> Result<(Applied, Vec<u16>), StoreError>;

    /// The log of `chunk` from `since_ms` (Unix milliseconds) on, oldest first.
    async fn chunk_log(
        &self,
        world: &WorldId,
        chunk: ChunkKey,
        since_ms: u64,
    ) -> Result<Vec<LogRecord>, StoreError>;

    /// The chunks of `world` that `player` wrote (or tried to) from about `since_ms` on: a
    /// superset of the chunks whose log holds their edits since then.
    async fn player_chunks(
        &self,
        world: &WorldId,
        player: &str,
        since_ms: u64,
    ) -> Result<Vec<ChunkKey>, StoreError>;

    /// Bans (`true`) or unbans `player`: a banned player's puts and follows are refused.
    async fn set_banned(&self, player: &str, banned: bool) -> Result<(), StoreError>;

    /// Whether `player` is banned.
    async fn is_banned(&self, player: &str) -> Result<bool, StoreError>;
}

/// Who makes a put and under which conditions.
#[derive(Debug, Clone, Copy)]
pub struct Put<'a> {
    /// The player the log records.
    pub player: &'a str,
    /// The put's idempotency key, if any.
    pub key: Option<&'a IdempotencyKey>,
    /// A hash of the whole request, bound to the idempotency key.
    pub request_hash: u64,
    /// The player's limits; `None` for trusted callers (admin tools), who are never banned or
    /// limited.
    pub limits: Option<&'a PlayerLimits>,
}

impl Put<'_> {
    /// A trusted put by the `system` player: no key, no limits.
    pub fn system() -> Put<'static> {
        Put {
            player: SYSTEM_PLAYER,
            key: None,
            request_hash: 0,
            limits: None,
        }
    }
}

/// The player id recorded for puts made by tools and tests.
pub const SYSTEM_PLAYER: &str = "system";

/// One conditional cube edit: set `index` to `value` if it holds `expect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedEdit {
    /// Cube index in the chunk.
    pub index: u16,
    /// The value it must still hold.
    pub expect: i32,
    /// The value to set.
    pub value: i32,
}

/// What one chunk's edits did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The chunk's revision after the put (what the put answers).
    pub revision: u64,
    /// `Some(revision before)` when this very call changed the chunk: the put's edits applied
    /// to that content give exactly `revision`'s content, because the store applied them
    /// inside its check-and-set. `None` when nothing changed (edits equal to the content, or
    /// a replay under an idempotency key already applied).
    pub changed_from: Option<u64>,
    /// When this call changed the chunk, its write counter afterwards (grows by one with
    /// every write the store applies to the chunk): orders the chunk's change messages even
    /// when a content (and so a revision) comes back. 0 when nothing changed.
    pub seq: u64,
}

impl Applied {
    /// A chunk this call left as it was.
    pub(crate) fn unchanged(revision: u64) -> Self {
        Self {
            revision,
            changed_from: None,
            seq: 0,
        }
    }
}

/// A chunk after edits: the blob to store (`None` when no cube changed value) and the
/// revision of the resulting content, which is what the put answers either way.
pub(crate) struct Edited {
    pub(crate) blob: Option<Vec<u8>>,
    pub(crate) revision: u64,
    /// The revision of the content the edits were applied to.
    pub(crate) previous: u64,
    /// Each cube whose value changed (once per cube, first value before, last value after).
    pub(crate) changes: Vec<CubeChange>,
    /// Indices of conditional edits whose cube did not hold the expected value.
    pub(crate) mismatched: Vec<u16>,
}

impl Edited {
    /// What applying this edit means for the caller once it is stored over write counter
    /// `counter` (the stored one becomes `counter + 1` when the edit changed the chunk).
    pub(crate) fn applied(&self, counter: u64) -> Applied {
        let changed = self.blob.is_some();
        Applied {
            revision: self.revision,
            changed_from: changed.then_some(self.previous),
            seq: if changed { counter + 1 } else { 0 },
        }
    }
}

/// Edits of one chunk: plain ones (a put's) or conditional ones (a rollback's).
#[derive(Clone, Copy)]
pub(crate) enum Edits<'a> {
    Plain(&'a [CubeRef]),
    Expected(&'a [ExpectedEdit]),
}

/// Applies `edits` to the chunk held in `current`.
pub(crate) fn edit_blob(
    world: &WorldId,
    key: ChunkKey,
    current: &[u8],
    edits: Edits<'_>,
) -> Result<Edited, StoreError> {
    let mut cubes = [0i32; CHUNK_CUBES];
    decode_chunk_into(current, &mut cubes).map_err(|e| StoreError::Corrupt {
        world: world.to_string(),
        key,
        reason: e.to_string(),
    })?;
    let before = cubes;
    let mut touched = Vec::new();
    let mut mismatched = Vec::new();
    let mut set = |index: u16, value: i32| {
        cubes[usize::from(index)] = value;
        touched.push(index);
    };
    match edits {
        Edits::Plain(edits) => edits.iter().for_each(|e| set(e.index, e.value)),
        Edits::Expected(edits) => {
            for e in edits {
                if before[usize::from(e.index)] == e.expect {
                    set(e.index, e.value);
                } else {
                    mismatched.push(e.index);
                }
            }
        }
    }
    touched.sort_unstable();
    touched.dedup();
    let changes: Vec<CubeChange> = touched
        .into_iter()
        .map(|index| CubeChange {
            index,
            before: before[usize::from(index)],
            after: cubes[usize::from(index)],
        })
        .filter(|c| c.before != c.after)
        .collect();
    let previous = cubewalk_protocol::revision(current);
    Ok(if changes.is_empty() {
        Edited {
            blob: None,
            revision: previous,
            previous,
            changes,
            mismatched,
        }
    } else {
        let blob = encode_chunk(&cubes);
        Edited {
            revision: cubewalk_protocol::revision(&blob),
            blob: Some(blob),
            previous,
            changes,
            mismatched,
        }
    })
}

/// How long a chunk remembers an idempotency key.
pub(crate) const IDEMPOTENCY_WINDOW: std::time::Duration =
    std::time::Duration::from_secs(IDEMPOTENCY_WINDOW_SECS);
