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
//! applies the edits, which keys it applied and the revision it answered, for
//! [`IDEMPOTENCY_WINDOW_SECS`]. A retry under a remembered key changes nothing.

mod memory;
pub(crate) mod redis;

pub use self::memory::MemoryStore;
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

    /// Applies each chunk's edits atomically and tells, per chunk in order, its revision
    /// afterwards and whether this call changed it (and from which revision). A batch that
    /// changes nothing leaves the chunk as it was. With `key`, a chunk that already applied a
    /// put under `key` (within [`IDEMPOTENCY_WINDOW_SECS`]) is left alone and answers the
    /// revision it answered then, as unchanged. No edits: no work, an empty answer.
    async fn apply_edits(
        &self,
        world: &WorldId,
        edits: &[ChunkEdits],
        key: Option<&IdempotencyKey>,
    ) -> Result<Vec<Applied>, StoreError>;

    /// [`ChunkStore::apply_edits`], answering only each chunk's revision afterwards.
    async fn apply(
        &self,
        world: &WorldId,
        edits: &[ChunkEdits],
        key: Option<&IdempotencyKey>,
    ) -> Result<Vec<u64>, StoreError> {
        let applied = self.apply_edits(world, edits, key).await?;
        Ok(applied.iter().map(|a| a.revision).collect())
    }
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

/// Applies `edits` to the chunk held in `current`.
pub(crate) fn edit_blob(
    world: &WorldId,
    key: ChunkKey,
    current: &[u8],
    edits: &[CubeRef],
) -> Result<Edited, StoreError> {
    let mut cubes = [0i32; CHUNK_CUBES];
    decode_chunk_into(current, &mut cubes).map_err(|e| StoreError::Corrupt {
        world: world.to_string(),
        key,
        reason: e.to_string(),
    })?;
    let mut changed = false;
    for e in edits {
        let slot = &mut cubes[usize::from(e.index)];
        changed |= *slot != e.value;
        *slot = e.value;
    }
    let previous = cubewalk_protocol::revision(current);
    Ok(if changed {
        let blob = encode_chunk(&cubes);
        Edited {
            revision: cubewalk_protocol::revision(&blob),
            blob: Some(blob),
            previous,
        }
    } else {
        Edited {
            blob: None,
            revision: previous,
            previous,
        }
    })
}

/// How long a chunk remembers an idempotency key.
pub(crate) const IDEMPOTENCY_WINDOW: std::time::Duration =
    std::time::Duration::from_secs(IDEMPOTENCY_WINDOW_SECS);
