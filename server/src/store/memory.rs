//! The embedded in-memory store: zero setup, same semantics as Redis, gone when the process ends.

use super::{edit_blob, Applied, ChunkStore, StoreError, StoredChunk, IDEMPOTENCY_WINDOW};
use async_trait::async_trait;
use cubewalk_protocol::messages::ChunkEdits;
use cubewalk_protocol::{ChunkKey, IdempotencyKey, WorldId};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Shards spread lock contention between chunks; a chunk always lives in one shard, so holding
/// its shard's lock while editing makes the edit atomic.
const SHARDS: usize = 64;

/// Expired idempotency records of a shard are swept once it holds this many.
const SWEEP_AT: usize = 4096;

/// The chunks of one shard and the idempotency keys they applied, with the revision answered
/// and when the record expires.
#[derive(Default)]
struct Shard {
    chunks: HashMap<(WorldId, ChunkKey), StoredChunk>,
    applied: HashMap<(WorldId, ChunkKey, IdempotencyKey), (u64, Instant)>,
    sweep_at: usize,
}

impl Shard {
    fn remember(&mut self, id: (WorldId, ChunkKey, IdempotencyKey), revision: u64) {
        let now = Instant::now();
        if self.applied.len() >= self.sweep_at.max(SWEEP_AT) {
            self.applied.retain(|_, (_, expires)| *expires > now);
            // Sweep again only after the live set has doubled: amortised O(1) per put.
            self.sweep_at = self.applied.len() * 2;
        }
        self.applied
            .insert(id, (revision, now + IDEMPOTENCY_WINDOW));
    }

    fn recall(&self, id: &(WorldId, ChunkKey, IdempotencyKey)) -> Option<u64> {
        self.applied
            .get(id)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(r, _)| *r)
    }
}

/// Chunks held in process memory.
pub struct MemoryStore {
    shards: Vec<Mutex<Shard>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn shard(&self, key: ChunkKey) -> &Mutex<Shard> {
        let h = (key.x as u32)
            .wrapping_mul(73_856_093)
            .wrapping_add((key.y as u32).wrapping_mul(19_349_663))
            .wrapping_add((key.z as u32).wrapping_mul(83_492_791));
        &self.shards[h as usize % SHARDS]
    }

    fn lock(&self, key: ChunkKey) -> std::sync::MutexGuard<'_, Shard> {
        // A panic while holding the lock cannot leave a chunk half-written (the map entry is
        // replaced in one assignment), so a poisoned lock is safe to keep using.
        self.shard(key).lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ChunkStore for MemoryStore {
    async fn fetch(
        &self,
        world: &WorldId,
        keys: &[ChunkKey],
    ) -> Result<Vec<StoredChunk>, StoreError> {
        Ok(keys
            .iter()
            .map(|&k| {
                self.lock(k)
                    .chunks
                    .get(&(world.clone(), k))
                    .cloned()
                    .unwrap_or_default()
            })
            .collect())
    }

    async fn apply_edits(
        &self,
        world: &WorldId,
        edits: &[ChunkEdits],
        key: Option<&IdempotencyKey>,
    ) -> Result<Vec<Applied>, StoreError> {
        let mut revisions = Vec::with_capacity(edits.len());
        for (chunk, cubes) in edits {
            let mut shard = self.lock(*chunk);
            let record = key.map(|k| (world.clone(), *chunk, k.clone()));
            if let Some(done) = record.as_ref().and_then(|r| shard.recall(r)) {
                revisions.push(Applied::unchanged(done));
                continue;
            }
            let id = (world.clone(), *chunk);
            let current = shard.chunks.get(&id);
            let blob = current.map(|c| c.blob.as_slice()).unwrap_or(&[]);
            let version = current.map_or(0, |c| c.version);
            let edited = edit_blob(world, *chunk, blob, cubes)?;
            let answer = edited.applied(version);
            if let Some(blob) = edited.blob {
                shard.chunks.insert(
                    id,
                    StoredChunk {
                        version: version + 1,
                        blob,
                    },
                );
            }
            if let Some(record) = record {
                shard.remember(record, answer.revision);
            }
            revisions.push(answer);
        }
        Ok(revisions)
    }
}
