//! The embedded in-memory store: zero setup, same semantics as Redis, gone when the process ends.

use super::log::{LogRecord, LOG_RETENTION_SECS};
use super::players::{gcra, Limit};
use super::{
    edit_blob, next_seq, now_ms, size_delta, Applied, ChunkStore, Edits, ExpectedEdit, Put, Record,
    StoreError, StoredChunk, IDEMPOTENCY_WINDOW,
};
use async_trait::async_trait;
use cubewalk_protocol::messages::ChunkEdits;
use cubewalk_protocol::{ChunkKey, IdempotencyKey, WorldId};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Shards spread lock contention between chunks; a chunk always lives in one shard, so holding
/// its shard's lock while editing makes the edit atomic.
const SHARDS: usize = 64;

/// Expired idempotency records of a shard are swept once it holds this many.
const SWEEP_AT: usize = 4096;

/// An idempotency record's id: the chunk, the player and their key.
type RecordId = (WorldId, ChunkKey, String, IdempotencyKey);

/// The chunks of one shard, their logs and what they remember of idempotency keys, with when
/// each record expires.
#[derive(Default)]
struct Shard {
    chunks: HashMap<(WorldId, ChunkKey), StoredChunk>,
    logs: HashMap<(WorldId, ChunkKey), Vec<LogRecord>>,
    records: HashMap<RecordId, (Record, Instant)>,
    sweep_at: usize,
}

impl Shard {
    fn remember(&mut self, id: RecordId, record: Record) {
        let now = Instant::now();
        if self.records.len() >= self.sweep_at.max(SWEEP_AT) {
            self.records.retain(|_, (_, expires)| *expires > now);
            // Sweep again only after the live set has doubled: amortised O(1) per put.
            self.sweep_at = self.records.len() * 2;
        }
        self.records.insert(id, (record, now + IDEMPOTENCY_WINDOW));
    }

    fn recall(&self, id: &RecordId) -> Option<Record> {
        self.records
            .get(id)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(r, _)| *r)
    }
}

/// What the store keeps per player: bans, limit state, and which chunks they wrote when.
#[derive(Default)]
struct Players {
    banned: HashSet<String>,
    tat: HashMap<(String, Limit), u64>,
    chunks: HashMap<String, HashMap<(WorldId, ChunkKey), u64>>,
}

/// The system clock in microseconds since the Unix epoch: the clock [`next_seq`] reads.
fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Chunks held in process memory.
pub struct MemoryStore {
    shards: Vec<Mutex<Shard>>,
    players: Mutex<Players>,
    /// Each world rule's size in bytes (see [`crate::worlds`]).
    sizes: Mutex<HashMap<String, i64>>,
    log_seq: AtomicU64,
    started: Instant,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            players: Mutex::default(),
            sizes: Mutex::default(),
            log_seq: AtomicU64::new(0),
            started: Instant::now(),
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

    fn players(&self) -> std::sync::MutexGuard<'_, Players> {
        self.players.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refuses a banned player or a put past a limit (with limits), charging nothing then;
    /// otherwise charges the put and records which chunks the player writes.
    fn admit(
        &self,
        world: &WorldId,
        edits: &[ChunkEdits],
        put: &Put<'_>,
    ) -> Result<(), StoreError> {
        let mut players = if let Some(limits) = put.limits {
            self.charge(world, edits, put.player, limits)?
        } else {
            self.players()
        };
        let at = now_ms();
        let cutoff = at.saturating_sub(LOG_RETENTION_SECS * 1000);
        let written = players.chunks.entry(put.player.to_owned()).or_default();
        written.retain(|_, t| *t >= cutoff);
        for (k, _) in edits {
            written.insert((world.clone(), *k), at);
        }
        Ok(())
    }

    /// Charges `player` for the put, or refuses it (banned, or past a limit: nothing charged).
    fn charge(
        &self,
        world: &WorldId,
        edits: &[ChunkEdits],
        player: &str,
        limits: &super::PlayerLimits,
    ) -> Result<std::sync::MutexGuard<'_, Players>, StoreError> {
        let new_chunks = edits
            .iter()
            .filter(|(k, _)| !self.lock(*k).chunks.contains_key(&(world.clone(), *k)))
            .count() as u64;
        let cubes = edits.iter().map(|(_, e)| e.len() as u64).sum::<u64>();
        self.charge_costs(player, limits, [cubes, new_chunks, edits.len() as u64])
    }

    /// Charges `player` `costs` (cubes, new chunks, chunk writes, as in [`Limit::ALL`]), or
    /// refuses (banned, or past a limit: nothing charged).
    fn charge_costs(
        &self,
        player: &str,
        limits: &super::PlayerLimits,
        costs: [u64; 3],
    ) -> Result<std::sync::MutexGuard<'_, Players>, StoreError> {
        // Microseconds on a monotonic clock: the arithmetic is the Redis script's.
        let now = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX) + 1;
        let mut players = self.players();
        if players.banned.contains(player) {
            return Err(StoreError::Banned);
        }
        let mut charged = Vec::new();
        for (limit, cost) in Limit::ALL.into_iter().zip(costs) {
            if cost == 0 {
                continue;
            }
            let (interval, burst) = limits.cell(limit);
            let tat = players
                .tat
                .get(&(player.to_owned(), limit))
                .copied()
                .unwrap_or(0);
            let new_tat = gcra(tat, now, cost, interval, burst)
                .map_err(|retry_after| StoreError::RateLimited { limit, retry_after })?;
            charged.push((limit, new_tat));
        }
        for (limit, tat) in charged {
            players.tat.insert((player.to_owned(), limit), tat);
        }
        Ok(players)
    }

    /// Applies `edits` to one chunk under its shard's lock, logging the change as
    /// `put.player`'s, within the world's budget when the put has one.
    fn edit_locked(
        &self,
        shard: &mut Shard,
        world: &WorldId,
        chunk: ChunkKey,
        edits: Edits<'_>,
        put: &Put<'_>,
    ) -> Result<(Applied, Vec<u16>), StoreError> {
        let player = put.player;
        let id = (world.clone(), chunk);
        let current = shard.chunks.get(&id).cloned().unwrap_or_default();
        let edited = edit_blob(world, chunk, &current, edits)?;
        let seq = next_seq(current.seq, now_us());
        let answer = edited.applied(current.seq, seq);
        if let (Some(blob), Some(budget)) = (&edited.blob, put.budget) {
            let delta = size_delta(&current, blob);
            let mut sizes = self.sizes.lock().unwrap_or_else(|p| p.into_inner());
            let size = sizes.entry(budget.account.to_owned()).or_default();
            if delta > 0 && *size + delta > i64::try_from(budget.bytes).unwrap_or(i64::MAX) {
                return Err(super::redis::world_full(world, &budget));
            }
            *size += delta;
        }
        if let Some(blob) = edited.blob {
            shard.chunks.insert(
                id.clone(),
                StoredChunk {
                    seq,
                    revision: edited.revision,
                    blob,
                },
            );
            let at_ms = now_ms();
            let seq = self.log_seq.fetch_add(1, Ordering::Relaxed);
            let log = shard.logs.entry(id).or_default();
            let cutoff = at_ms.saturating_sub(LOG_RETENTION_SECS * 1000);
            log.retain(|r| r.at_ms >= cutoff);
            log.push(LogRecord {
                id: format!("{at_ms}-{seq}"),
                at_ms,
                player: player.to_owned(),
                changes: edited.changes,
            });
        }
        Ok((answer, edited.mismatched))
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
        put: &Put<'_>,
    ) -> Result<Vec<Applied>, StoreError> {
        if edits.is_empty() {
            return Ok(Vec::new());
        }
        let record = |chunk: ChunkKey| {
            put.key
                .map(|k| (world.clone(), chunk, put.player.to_owned(), k.clone()))
        };
        // A key this player used for another request, or cancelled, refuses the whole put
        // before any write.
        for (chunk, _) in edits {
            if let Some(r) = record(*chunk) {
                if let Some(done) = self.lock(*chunk).recall(&r) {
                    done.replay(put.request_hash)?;
                }
            }
        }
        self.admit(world, edits, put)?;
        let mut revisions = Vec::with_capacity(edits.len());
        for (chunk, cubes) in edits {
            let mut shard = self.lock(*chunk);
            let record = record(*chunk);
            if let Some(done) = record.as_ref().and_then(|r| shard.recall(r)) {
                revisions.push(Applied::unchanged(done.replay(put.request_hash)?));
                continue;
            }
            let (answer, _) =
                self.edit_locked(&mut shard, world, *chunk, Edits::Plain(cubes), put)?;
            if let Some(id) = record.filter(|_| answer.changed_from.is_some()) {
                let done = Record::Applied {
                    hash: put.request_hash,
                    revision: answer.revision,
                };
                shard.remember(id, done);
            }
            revisions.push(answer);
        }
        Ok(revisions)
    }

    async fn apply_expected(
        &self,
        world: &WorldId,
        chunk: ChunkKey,
        edits: &[ExpectedEdit],
        player: &str,
    ) -> Result<(Applied, Vec<u16>), StoreError> {
        let mut shard = self.lock(chunk);
        let put = Put {
            player,
            ..Put::system()
        };
        self.edit_locked(&mut shard, world, chunk, Edits::Expected(edits), &put)
    }

    async fn cancel(
        &self,
        world: &WorldId,
        chunks: &[ChunkKey],
        player: &str,
        key: &IdempotencyKey,
        limits: Option<&super::PlayerLimits>,
    ) -> Result<Vec<Option<u64>>, StoreError> {
        if let Some(limits) = limits {
            // Charged as a write per chunk (see ChunkStore::cancel).
            drop(self.charge_costs(player, limits, [0, 0, chunks.len() as u64])?);
        }
        Ok(chunks
            .iter()
            .map(|&chunk| {
                let id = (world.clone(), chunk, player.to_owned(), key.clone());
                let mut shard = self.lock(chunk);
                match shard.recall(&id) {
                    Some(Record::Applied { revision, .. }) => Some(revision),
                    Some(Record::Cancelled) => None,
                    None => {
                        shard.remember(id, Record::Cancelled);
                        None
                    }
                }
            })
            .collect())
    }

    async fn chunk_log(
        &self,
        world: &WorldId,
        chunk: ChunkKey,
        since_ms: u64,
    ) -> Result<Vec<LogRecord>, StoreError> {
        Ok(self
            .lock(chunk)
            .logs
            .get(&(world.clone(), chunk))
            .map(|log| {
                log.iter()
                    .filter(|r| r.at_ms >= since_ms)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn player_chunks(
        &self,
        world: &WorldId,
        player: &str,
        since_ms: u64,
    ) -> Result<Vec<ChunkKey>, StoreError> {
        let players = self.players();
        let mut chunks: Vec<ChunkKey> = players
            .chunks
            .get(player)
            .into_iter()
            .flatten()
            .filter(|((w, _), at)| w == world && **at >= since_ms)
            .map(|((_, k), _)| *k)
            .collect();
        chunks.sort_by_key(|k| (k.x, k.y, k.z));
        Ok(chunks)
    }

    async fn set_banned(&self, player: &str, banned: bool) -> Result<(), StoreError> {
        let mut players = self.players();
        if banned {
            players.banned.insert(player.to_owned());
        } else {
            players.banned.remove(player);
        }
        Ok(())
    }

    async fn is_banned(&self, player: &str) -> Result<bool, StoreError> {
        Ok(self.players().banned.contains(player))
    }
}
