//! Chunk storage: the [`ChunkStore`] abstraction, shared edit logic, and its two
//! implementations ([`MemoryStore`] for zero-setup local runs, [`RedisStore`] for production).
//!
//! Both keep each chunk as its encoded blob (see [`cubewalk_protocol::codec`]) plus a version
//! that grows by one with every batch of edits that changes the chunk, so a fetch sends stored
//! bytes without re-encoding them.

mod memory;
mod redis;

pub use self::memory::MemoryStore;
pub use self::redis::{RedisStore, RedisStoreConfig};

use async_trait::async_trait;
use cubewalk_protocol::codec::{decode_chunk_into, encode_chunk};
use cubewalk_protocol::messages::ChunkEdits;
use cubewalk_protocol::{ChunkKey, CubeRef, WireError, WorldId, CHUNK_CUBES};

/// A chunk as stored: its version (0 for a chunk never written) and its encoded blob.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredChunk {
    /// Grows by one with each applied batch that changed the chunk.
    pub version: u64,
    /// The encoded chunk; empty means all air.
    pub blob: Vec<u8>,
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
/// all edits to one chunk in one [`ChunkStore::apply`] call land atomically, and concurrent
/// callers never lose an acknowledged edit.
#[async_trait]
pub trait ChunkStore: Send + Sync {
    /// Reads `keys` (one round trip for a remote store), in order.
    async fn fetch(
        &self,
        world: &WorldId,
        keys: &[ChunkKey],
    ) -> Result<Vec<StoredChunk>, StoreError>;

    /// Applies each chunk's edits atomically and returns each chunk's version afterwards, in
    /// order. A batch that changes nothing leaves the version as it was.
    async fn apply(&self, world: &WorldId, edits: &[ChunkEdits]) -> Result<Vec<u64>, StoreError>;
}

/// Applies `edits` to the chunk held in `current`, returning the new blob, or `None` when no
/// cube changed value.
pub(crate) fn edit_blob(
    world: &WorldId,
    key: ChunkKey,
    current: &[u8],
    edits: &[CubeRef],
) -> Result<Option<Vec<u8>>, StoreError> {
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
    Ok(changed.then(|| encode_chunk(&cubes)))
}
