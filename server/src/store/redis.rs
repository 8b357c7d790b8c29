//! The Redis store: each chunk is one hash `cw:{<world>:<x>,<y>,<z>}` with fields `v` (version)
//! and `d` (blob; absent when all air). A chunk never written stores nothing.
//!
//! Edits are an optimistic check-and-set: read version and blob, apply the edits here, then a
//! Lua script writes the new blob only if the version is still the one read. A writer that
//! loses the race reads again and retries, so no acknowledged edit is ever overwritten by a
//! stale copy. Reads and writes of many chunks are pipelined: a fetch is one round trip, an
//! uncontended put two.

use super::{edit_blob, ChunkStore, StoreError, StoredChunk};
use async_trait::async_trait;
use cubewalk_protocol::messages::ChunkEdits;
use cubewalk_protocol::{ChunkKey, WorldId};
use rand::Rng;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

/// Writes the new blob only if the stored version still equals ARGV[1]; returns the new
/// version, or -1 when another writer got there first.
const CAS_SCRIPT: &str = r"
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v ~= tonumber(ARGV[1]) then return -1 end
if ARGV[2] == '' then redis.call('HDEL', KEYS[1], 'd') else redis.call('HSET', KEYS[1], 'd', ARGV[2]) end
redis.call('HSET', KEYS[1], 'v', v + 1)
return v + 1
";

/// How many times a put re-reads a chunk that another writer changed under it before giving up
/// with 503 (nothing of the failed chunk is acknowledged then, so nothing is lost).
const MAX_CAS_ATTEMPTS: u32 = 200;

/// Connection settings for [`RedisStore`].
#[derive(Debug, Clone)]
pub struct RedisStoreConfig {
    /// `redis://[user:password@]host:port[/db]` or `rediss://` for TLS.
    pub url: String,
    /// Longest wait for one command's answer.
    pub response_timeout: Duration,
    /// Longest wait for a new connection.
    pub connection_timeout: Duration,
    /// Longest a whole store operation (including CAS retries) may take; kept well under API
    /// Gateway's 29 s integration timeout so a stuck Redis gives 503, not a gateway timeout.
    pub operation_timeout: Duration,
}

impl RedisStoreConfig {
    /// Defaults for `url`: 2 s per command, 2 s to connect, 10 s per operation.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            response_timeout: Duration::from_secs(2),
            connection_timeout: Duration::from_secs(2),
            operation_timeout: Duration::from_secs(10),
        }
    }
}

/// Chunks in a single Redis server (or ElastiCache primary).
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    operation_timeout: Duration,
}

impl RedisStore {
    /// Prepares a store without connecting: the connection is made on first use and made again
    /// whenever it breaks, so the process can start (and answer 503) while Redis is down.
    /// Call it inside the Tokio runtime that will use the store.
    pub fn connect_lazy(config: &RedisStoreConfig) -> Result<Self, StoreError> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| StoreError::Unavailable(format!("invalid Redis URL: {:?}", e.kind())))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.response_timeout))
            .set_connection_timeout(Some(config.connection_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(|e| unavailable(&e))?;
        Ok(Self {
            conn,
            operation_timeout: config.operation_timeout,
        })
    }

    /// Connects now, failing when Redis cannot be reached or refuses the credentials.
    pub async fn connect(config: &RedisStoreConfig) -> Result<Self, StoreError> {
        let store = Self::connect_lazy(config)?;
        let mut conn = store.conn.clone();
        tokio::time::timeout(
            config.operation_timeout,
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await
        .map_err(|_| StoreError::Unavailable("Redis did not answer PING in time".into()))?
        .map_err(|e| unavailable(&e))?;
        Ok(store)
    }

    async fn read(
        &self,
        world: &WorldId,
        keys: &[ChunkKey],
    ) -> Result<Vec<StoredChunk>, StoreError> {
        let mut pipe = redis::pipe();
        for &k in keys {
            pipe.cmd("HMGET").arg(chunk_key(world, k)).arg("v").arg("d");
        }
        // A connection that broke while idle (Lambda freezes the process between invocations)
        // fails the first command; reads are idempotent, so one more try on the reconnected
        // manager hides it.
        let rows: Vec<(Option<u64>, Option<Vec<u8>>)> =
            match pipe.query_async(&mut self.conn.clone()).await {
                Err(e) if is_broken_connection(&e) => pipe
                    .query_async(&mut self.conn.clone())
                    .await
                    .map_err(|e| unavailable(&e))?,
                other => other.map_err(|e| unavailable(&e))?,
            };
        Ok(rows
            .into_iter()
            .map(|(v, d)| StoredChunk {
                version: v.unwrap_or(0),
                blob: d.unwrap_or_default(),
            })
            .collect())
    }

    async fn apply_inner(
        &self,
        world: &WorldId,
        edits: &[ChunkEdits],
    ) -> Result<Vec<u64>, StoreError> {
        let mut versions = vec![0u64; edits.len()];
        let mut pending: Vec<usize> = (0..edits.len()).collect();
        let mut reconnects = 0;
        for attempt in 0..MAX_CAS_ATTEMPTS {
            if attempt > 0 {
                // Full jitter keeps colliding writers from retrying in lockstep.
                let cap = 100u64 << attempt.min(6);
                let micros = rand::rng().random_range(0..=cap);
                tokio::time::sleep(Duration::from_micros(micros)).await;
            }
            let keys: Vec<ChunkKey> = pending.iter().map(|&i| edits[i].0).collect();
            let current = self.read(world, &keys).await?;
            let mut pipe = redis::pipe();
            let mut writing = Vec::new();
            for (&i, stored) in pending.iter().zip(&current) {
                let (key, cubes) = &edits[i];
                match edit_blob(world, *key, &stored.blob, cubes)? {
                    Some(blob) => {
                        pipe.cmd("EVAL")
                            .arg(CAS_SCRIPT)
                            .arg(1)
                            .arg(chunk_key(world, *key))
                            .arg(stored.version)
                            .arg(blob);
                        writing.push(i);
                    }
                    None => versions[i] = stored.version,
                }
            }
            if writing.is_empty() {
                return Ok(versions);
            }
            // When the connection breaks mid-write some scripts may have run: the next attempt
            // re-reads, finds those edits already in place and reports the version as is.
            let results: Vec<i64> = match pipe.query_async(&mut self.conn.clone()).await {
                Ok(r) => r,
                Err(e) if is_broken_connection(&e) && reconnects < 2 => {
                    reconnects += 1;
                    pending = writing;
                    continue;
                }
                Err(e) => return Err(unavailable(&e)),
            };
            pending.clear();
            for (i, r) in writing.into_iter().zip(results) {
                if r < 0 {
                    pending.push(i);
                } else {
                    versions[i] = r as u64;
                }
            }
            if pending.is_empty() {
                return Ok(versions);
            }
        }
        Err(StoreError::Unavailable(format!(
            "chunk too contended: gave up after {MAX_CAS_ATTEMPTS} attempts"
        )))
    }
}

#[async_trait]
impl ChunkStore for RedisStore {
    async fn fetch(
        &self,
        world: &WorldId,
        keys: &[ChunkKey],
    ) -> Result<Vec<StoredChunk>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        tokio::time::timeout(self.operation_timeout, self.read(world, keys))
            .await
            .map_err(|_| StoreError::Unavailable("Redis fetch timed out".into()))?
    }

    async fn apply(&self, world: &WorldId, edits: &[ChunkEdits]) -> Result<Vec<u64>, StoreError> {
        tokio::time::timeout(self.operation_timeout, self.apply_inner(world, edits))
            .await
            .map_err(|_| StoreError::Unavailable("Redis put timed out".into()))?
    }
}

/// The Redis key of a chunk. The braces make the whole chunk id the cluster hash tag, so every
/// key a chunk may ever use shares one slot.
pub(crate) fn chunk_key(world: &WorldId, k: ChunkKey) -> String {
    format!("cw:{{{world}:{},{},{}}}", k.x, k.y, k.z)
}

fn is_broken_connection(e: &redis::RedisError) -> bool {
    e.is_connection_dropped() || e.is_io_error()
}

/// Redis errors never carry the URL (and so never the password); the kind and detail say
/// enough for an operator.
fn unavailable(e: &redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("Redis error ({:?}): {e}", e.kind()))
}
