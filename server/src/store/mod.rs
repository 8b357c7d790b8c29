//! Chunk storage: the [`ChunkStore`] abstraction, shared edit logic, and its two
//! implementations ([`MemoryStore`] for zero-setup local runs, [`RedisStore`] for production).
//!
//! Both keep each chunk as its encoded blob (see [`cubewalk_protocol::codec`]) beside its
//! revision and its write sequence, so a fetch sends stored bytes without re-encoding them:
//!
//! - the **revision** is drawn at random for every write that changes the chunk (see
//!   [`cubewalk_protocol::revision`]) and stored in the same record as the blob, so no loss or
//!   restore of stored data can make one revision name two contents, and no one can make two
//!   contents share one by searching offline;
//! - the **write sequence** ([`next_seq`]) orders the chunk's changes for realtime followers:
//!   it grows with every write and jumps to the store's clock in microseconds, so after a
//!   failover that lost the last writes, or a flush, the next write still gets a sequence
//!   above every one handed out before (a counter would start again and name new content
//!   with an old number).
//!
//! The store's check-and-set compares the revision read (and the sequence), never a counter
//! alone: a promoted replica cannot reach a random revision again with other content.
//!
//! A put may carry an idempotency key: each chunk it changed remembers, inside the same atomic
//! step that applies the edits, which keys it applied for which player and request (a hash of
//! the body) and the revision it answered, for [`IDEMPOTENCY_WINDOW_SECS`]. A retry under a
//! remembered key changes nothing; the same player's key with another body is refused; another
//! player's use of the key is their own, separate put. A put that changed nothing leaves no
//! record (its retry changes nothing either, or does what a late arrival would).
//!
//! A put the SDK gave up on is **fenced**: the SDK asks [`ChunkStore::cancel`] to record its key
//! as cancelled on each chunk, atomically with the chunk, and learns for each chunk whether the
//! put applied first; once recorded, the store refuses to apply that put there, however late
//! its request arrives or however long the function keeps retrying it.
//!
//! Every change is logged in the same atomic step as the chunk write (see [`LogRecord`]), and
//! each player's puts pass their limits and ban flag ([`PlayerLimits`]) before anything is
//! written.

pub mod backup;
mod feed;
mod fullness;
pub mod log;
mod players;

mod memory;
pub(crate) mod redis;

pub use self::feed::{feed_shard, FeedGroup, FeedRead, FEED_MAX_LEN, FEED_SHARDS};
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

/// A chunk as stored: its write sequence and revision (both 0 for a chunk never written) and
/// its encoded blob.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredChunk {
    /// The chunk's write sequence: grows with each applied write that changed the chunk (see
    /// [`next_seq`]). Orders realtime changes; 0 for a chunk never written.
    pub seq: u64,
    /// The revision a client holds for this content: random per write (see
    /// [`cubewalk_protocol::revision`]); [`cubewalk_protocol::EMPTY_REVISION`] for all air.
    pub revision: u64,
    /// The encoded chunk; empty means all air.
    pub blob: Vec<u8>,
}

/// The write sequence a write gets over `previous`, at `now_us` (the store's clock, in
/// microseconds since the Unix epoch): one more than before, or the clock when that is
/// higher. After a failover or a flush the clock has moved on past every sequence handed out
/// before (unless some chunk took a million writes a second), so a sequence never names two
/// contents. The Redis script computes the same in Lua, where numbers are doubles: exact up to
/// 2^53 microseconds, the year 2255.
pub fn next_seq(previous: u64, now_us: u64) -> u64 {
    (previous + 1).max(now_us)
}

/// A fresh revision for new non-empty content; [`cubewalk_protocol::EMPTY_REVISION`] for all
/// air.
pub(crate) fn fresh_revision(blob: &[u8]) -> u64 {
    if blob.is_empty() {
        cubewalk_protocol::EMPTY_REVISION
    } else {
        cubewalk_protocol::revision::from_random_bits(rand::random())
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
    /// The world's share of the store, or the store itself, is full (HTTP 507 `store_full`):
    /// the put would have grown it, and changed nothing.
    #[error("{0}")]
    Full(String),
    /// The put was cancelled by its sender (HTTP 409 `cancelled`): it gave up waiting and
    /// fenced it off, so it must never apply.
    #[error("the put was cancelled by its sender")]
    Cancelled,
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
            StoreError::Cancelled => WireError::Cancelled,
            StoreError::Full(m) => WireError::StoreFull(m),
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

    /// Fences off `player`'s put named `key` on each of `chunks`: answers, per chunk in order,
    /// `Some(revision)` when the put already applied there (the revision it answered) and
    /// `None` when it did not, in which case it never will: the key is recorded as cancelled
    /// (for [`IDEMPOTENCY_WINDOW_SECS`]) atomically with the chunk, and a put under a
    /// cancelled key is refused ([`StoreError::Cancelled`]). A put that changed nothing there
    /// answers `None` too (the same effect as not applying). With limits, the cancel is
    /// charged one chunk write per chunk (its records take memory as a put's do) and refused
    /// for a banned player or one past the limit.
    async fn cancel(
        &self,
        world: &WorldId,
        chunks: &[ChunkKey],
        player: &str,
        key: &IdempotencyKey,
        limits: Option<&PlayerLimits>,
    ) -> Result<Vec<Option<u64>>, StoreError>;

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
    /// The world's share of the store; `None` for trusted callers (tools, rollbacks), whose
    /// writes are neither refused nor counted. A put that would grow the world's rule past
    /// its budget, or change anything while the store is nearly full, is refused
    /// ([`StoreError::Full`]).
    pub budget: Option<WorldBudget<'a>>,
}

/// How much chunk data the worlds of one rule may hold together (see [`crate::worlds`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorldBudget<'a> {
    /// Most bytes of chunk data: blobs plus [`crate::worlds::CHUNK_OVERHEAD_BYTES`] per chunk.
    pub bytes: u64,
    /// What the bytes are counted under: the rule (`default`, or `event-*` for every world a
    /// prefix rule matches, so making up new worlds makes no new room).
    pub account: &'a str,
}

/// What a write changes in its world's size: the blob's growth, plus the chunk's overhead
/// when it is new.
pub(crate) fn size_delta(stored: &StoredChunk, new_blob: &[u8]) -> i64 {
    let overhead = if stored.seq == 0 {
        crate::worlds::CHUNK_OVERHEAD_BYTES as i64
    } else {
        0
    };
    new_blob.len() as i64 - stored.blob.len() as i64 + overhead
}

impl Put<'_> {
    /// A trusted put by the `system` player: no key, no limits.
    pub fn system() -> Put<'static> {
        Put {
            player: SYSTEM_PLAYER,
            key: None,
            request_hash: 0,
            limits: None,
            budget: None,
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
    /// When this call changed the chunk, its write sequence before (0 for a chunk never
    /// written).
    pub from_seq: u64,
    /// When this call changed the chunk, its write sequence afterwards ([`next_seq`]): orders
    /// the chunk's change messages. 0 when nothing changed.
    pub seq: u64,
}

impl Applied {
    /// A chunk this call left as it was.
    pub(crate) fn unchanged(revision: u64) -> Self {
        Self {
            revision,
            changed_from: None,
            from_seq: 0,
            seq: 0,
        }
    }
}

/// A chunk after edits: the blob to store (`None` when no cube changed value) and the
/// revision of the resulting content, which is what the put answers either way.
pub(crate) struct Edited {
    pub(crate) blob: Option<Vec<u8>>,
    /// A fresh revision when the edits changed the chunk, else the one held.
    pub(crate) revision: u64,
    /// The revision of the content the edits were applied to.
    pub(crate) previous: u64,
    /// Each cube whose value changed (once per cube, first value before, last value after).
    pub(crate) changes: Vec<CubeChange>,
    /// Indices of conditional edits whose cube did not hold the expected value.
    pub(crate) mismatched: Vec<u16>,
}

impl Edited {
    /// What applying this edit means for the caller once the store wrote it over sequence
    /// `from_seq`, giving `seq` (ignored when the edit changed nothing).
    pub(crate) fn applied(&self, from_seq: u64, seq: u64) -> Applied {
        if self.blob.is_none() {
            return Applied::unchanged(self.revision);
        }
        Applied {
            revision: self.revision,
            changed_from: Some(self.previous),
            from_seq,
            seq,
        }
    }
}

/// Edits of one chunk: plain ones (a put's) or conditional ones (a rollback's).
#[derive(Clone, Copy)]
pub(crate) enum Edits<'a> {
    Plain(&'a [CubeRef]),
    Expected(&'a [ExpectedEdit]),
}

/// Applies `edits` to the chunk held in `stored`.
pub(crate) fn edit_blob(
    world: &WorldId,
    key: ChunkKey,
    stored: &StoredChunk,
    edits: Edits<'_>,
) -> Result<Edited, StoreError> {
    let current = stored.blob.as_slice();
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
    let previous = stored.revision;
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
            revision: fresh_revision(&blob),
            blob: Some(blob),
            previous,
            changes,
            mismatched,
        }
    })
}

/// What a chunk remembers of one player's idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record {
    /// The put applied here: the hash of its request and the revision it answered.
    Applied { hash: u64, revision: u64 },
    /// Its sender cancelled it before it applied here: it never will.
    Cancelled,
}

impl Record {
    /// Parses a record as the check-and-set script stores it: `<hash hex> <revision>`, or `X`
    /// for a cancelled put.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        if text == "X" {
            return Some(Self::Cancelled);
        }
        let (hash, revision) = text.split_once(' ')?;
        Some(Self::Applied {
            hash: u64::from_str_radix(hash, 16).ok()?,
            revision: revision.parse().ok()?,
        })
    }

    /// For a put with request hash `hash`: the revision it answered when it already applied
    /// here, or the refusal this record means (another request under the key, or cancelled).
    pub(crate) fn replay(self, hash: u64) -> Result<u64, StoreError> {
        match self {
            Self::Applied { hash: h, revision } if h == hash => Ok(revision),
            Self::Applied { .. } => Err(StoreError::IdempotencyKeyReused),
            Self::Cancelled => Err(StoreError::Cancelled),
        }
    }
}

/// How long a chunk remembers an idempotency key.
pub(crate) const IDEMPOTENCY_WINDOW: std::time::Duration =
    std::time::Duration::from_secs(IDEMPOTENCY_WINDOW_SECS);
