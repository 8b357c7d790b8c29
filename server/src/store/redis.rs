//! The Redis store: each chunk is one hash `cw:{<world>:<x>,<y>,<z>}` with fields `v` (write
//! sequence), `r` (revision) and `d` (blob; absent when all air). A chunk never written stores
//! nothing.
//!
//! Works against a single server (or ElastiCache cluster mode disabled) and against Redis
//! Cluster (ElastiCache cluster mode enabled): every key of a chunk shares one hash slot, and in
//! cluster mode the commands of a fetch are issued together on the cluster connection, which
//! multiplexes them onto one connection per node, so a fetch costs one round trip per node
//! touched, in parallel. `rediss://` URLs use TLS (rustls); `user:password@` in the URL
//! authenticates (ACL/RBAC).
//!
//! A put's idempotency key is remembered per chunk as `cw:{<world>:<x>,<y>,<z>}:put:<key>`
//! (same hash slot) with the revision answered, set by the same script that writes the chunk
//! and expiring after the idempotency window; a cancelled put's record holds `X`. With `WAIT`
//! configured, `cw:{<world>:<x>,<y>,<z>}:sync` lives a second after a put that answered from
//! what it found written (see `RedisStore::confirm_replicated`).
//!
//! Edits are an optimistic check-and-set: read the revision, sequence and blob, apply the
//! edits here, then a Lua script writes the new blob only if the revision and sequence are
//! still the ones read. A writer that
//! loses the race reads again and retries, so no acknowledged edit is ever overwritten by a
//! stale copy. Reads and writes of many chunks are pipelined: a fetch is one round trip, an
//! uncontended put two.

use super::fullness::Fullness;
use super::log::{decode_changes, encode_changes, id_ms, LogRecord, LOG_RETENTION_SECS};
use super::players::{Limit, PlayerLimits};
use super::{
    edit_blob, size_delta, Applied, ChunkStore, Edits, ExpectedEdit, Put, Record, StoreError,
    StoredChunk, IDEMPOTENCY_WINDOW,
};
use async_trait::async_trait;
use cubewalk_protocol::messages::ChunkEdits;
use cubewalk_protocol::{ChunkKey, IdempotencyKey, WorldId};
use futures_util::future::join_all;
use rand::Rng;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, IntoConnectionInfo, Pipeline, RedisResult};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The check-and-set of one chunk, with its log record and idempotency record in the same
/// atomic step.
///
/// KEYS[1]: the chunk's hash; KEYS[2]: the chunk's log (a Stream); KEYS[3] (optional): the
/// put's idempotency record. ARGV[1]: the write sequence read; ARGV[2]: the new blob (`''` for
/// all air); ARGV[3]: the new revision, as decimal text (Lua numbers would round a 64-bit
/// value); ARGV[4]: how long the record lives, in seconds; ARGV[5]: the player; ARGV[6]: the
/// changed cubes (`index:before:after,...`); ARGV[7]: the request hash (hex); ARGV[8]: how
/// long log records are kept, in milliseconds; ARGV[9]: the revision read, as stored (`''`
/// when none is). Only edits that change the chunk are sent (see `cas_cmd`).
///
/// The check compares the revision read, drawn at random by the writer that stored it, so a
/// promoted replica that lost writes cannot match it with other content; the sequence is
/// compared too (chunks written before random revisions have none). The new sequence is
/// computed here from the server clock (`TIME`, which also gives the log's ids): see
/// `next_seq`.
///
/// Answers `<revision> <seq>` when it wrote, `=` and the remembered revision when this player's key was already applied to the same request
/// (so the caller knows this call changed nothing), `H` when it was applied to another
/// request, `X` when the put was cancelled, or nil when another writer changed the chunk
/// since it was read.
const CAS_SCRIPT: &str = r"
if KEYS[3] then
  local done = redis.call('GET', KEYS[3])
  if done == 'X' then return 'X' end
  if done then
    local h, r = string.match(done, '^(%x+) (%d+)$')
    if h ~= ARGV[7] then return 'H' end
    return '=' .. r
  end
end
local cur = redis.call('HMGET', KEYS[1], 'v', 'r')
local v = tonumber(cur[1] or '0')
if v ~= tonumber(ARGV[1]) or (cur[2] or '') ~= ARGV[9] then return false end
local t = redis.call('TIME')
local us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local seq = string.format('%.0f', math.max(v + 1, us))
if ARGV[2] == '' then redis.call('HDEL', KEYS[1], 'd') else redis.call('HSET', KEYS[1], 'd', ARGV[2]) end
redis.call('HSET', KEYS[1], 'v', seq, 'r', ARGV[3])
local ms = math.floor(us / 1000)
redis.call('XADD', KEYS[2], 'MINID', '~', string.format('%.0f', ms - tonumber(ARGV[8])), '*', 'p', ARGV[5], 'c', ARGV[6])
if KEYS[3] then redis.call('SET', KEYS[3], ARGV[7] .. ' ' .. ARGV[3], 'EX', ARGV[4]) end
return ARGV[3] .. ' ' .. seq
";

/// The fence of one chunk against a put its sender gave up on.
///
/// KEYS[1]: the put's idempotency record on the chunk. ARGV[1]: how long the record lives, in
/// seconds. Answers the record as it was when the put already applied (`<hash> <revision>`),
/// else records the put as cancelled and answers `X`.
const CANCEL_SCRIPT: &str = r"
local done = redis.call('GET', KEYS[1])
if done then return done end
redis.call('SET', KEYS[1], 'X', 'EX', ARGV[1])
return 'X'
";

/// A player's admission: refuses a banned player, else charges the put against the player's
/// limits (GCRA, server clock) or refuses it, charging nothing.
///
/// KEYS[1]: the player's ban flag; KEYS[2]: the player's limit state (a hash). ARGV, for each
/// limit in turn (field, cost, emission interval in microseconds, burst): `c` for cubes, `n`
/// for new chunks, `w` for chunk writes. Answers `{0, 0}` when admitted, `{-1, 0}` when
/// banned, or `{limit, wait}` (the limit's place in `Limit::ALL`, from 1; wait in
/// microseconds) when refused.
const ADMIT_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return {-1, 0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local set = {}
local longest = 0
for i = 0, (#ARGV / 4) - 1 do
  local field = ARGV[1 + 4 * i]
  local cost = tonumber(ARGV[2 + 4 * i])
  if cost > 0 then
    local interval = tonumber(ARGV[3 + 4 * i])
    local burst = tonumber(ARGV[4 + 4 * i])
    local tat = tonumber(redis.call('HGET', KEYS[2], field) or '0')
    if tat < now then tat = now end
    local new_tat = tat + cost * interval
    local allow_at = new_tat - burst * interval
    if allow_at > now then return {i + 1, allow_at - now} end
    set[#set + 1] = field
    set[#set + 1] = string.format('%.0f', new_tat)
    if new_tat - now > longest then longest = new_tat - now end
  end
end
if #set > 0 then
  redis.call('HSET', KEYS[2], unpack(set))
  redis.call('PEXPIRE', KEYS[2], math.ceil(longest / 1000) + 1000)
end
return {0, 0}
";

/// How many times a put re-reads a chunk that another writer changed under it before giving up
/// with 503 (nothing of the failed chunk is acknowledged then, so nothing is lost).
const MAX_CAS_ATTEMPTS: u32 = 200;

/// Connection settings for [`RedisStore`].
#[derive(Clone)]
pub struct RedisStoreConfig {
    /// `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS. In cluster mode, any
    /// node (the configuration endpoint); the others are discovered.
    pub url: String,
    /// Redis Cluster (ElastiCache cluster mode enabled) instead of a single primary.
    pub cluster: bool,
    /// Extra trusted root certificate (PEM) for `rediss://`, for a private CA; the system's
    /// trusted roots (Amazon's, which sign ElastiCache's certificates, among them; Lambda's
    /// `provided.al2023` carries them) are trusted already.
    pub ca_pem: Option<Vec<u8>>,
    /// Longest wait for one command's answer.
    pub response_timeout: Duration,
    /// Longest wait for a new connection.
    pub connection_timeout: Duration,
    /// Longest a whole store operation (including CAS retries) may take; kept well under API
    /// Gateway's 29 s integration timeout so a stuck Redis gives 503, not a gateway timeout.
    pub operation_timeout: Duration,
    /// The password, when it is kept out of `url` (a deployed function reads it from Secrets
    /// Manager at start); it replaces any password the URL holds.
    pub password: Option<String>,
    /// Replicas that must hold a write before a put answers (`WAIT`); 0 answers once the
    /// primary applied it. With 1, a failover to that replica keeps every acknowledged edit
    /// (ElastiCache's replication is asynchronous); MemoryDB's transaction log keeps them
    /// without it.
    pub wait_replicas: u32,
    /// Longest wait for those replicas; past it the put answers 503 (it applied on the
    /// primary, and its retry under the same key answers once a replica confirms).
    pub wait_timeout: Duration,
    /// The share of `maxmemory` past which puts that grow a world are refused (507), so the
    /// store never reaches the point where it refuses every write.
    pub full_at: f64,
    /// How often the store's memory use is looked at (`INFO memory`): once a second per
    /// function instance by default, so a fast writer overshoots the threshold by at most a
    /// second of its writes.
    pub fullness_every: Duration,
}

impl std::fmt::Debug for RedisStoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: never print it.
        f.debug_struct("RedisStoreConfig")
            .field("cluster", &self.cluster)
            .field("tls", &self.url.starts_with("rediss://"))
            .field("response_timeout", &self.response_timeout)
            .field("password_apart", &self.password.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisStoreConfig {
    /// Defaults for `url`: single server, 2 s per command, 2 s to connect, 10 s per operation.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            cluster: false,
            ca_pem: None,
            response_timeout: Duration::from_secs(2),
            connection_timeout: Duration::from_secs(2),
            operation_timeout: Duration::from_secs(10),
            password: None,
            wait_replicas: 0,
            wait_timeout: Duration::from_secs(1),
            full_at: 0.9,
            fullness_every: Duration::from_secs(1),
        }
    }

    /// The URL's connection settings with [`Self::password`] applied.
    fn connection_info(&self) -> Result<redis::ConnectionInfo, StoreError> {
        let info =
            self.url.as_str().into_connection_info().map_err(|e| {
                StoreError::Unavailable(format!("invalid Redis URL: {:?}", e.kind()))
            })?;
        Ok(match &self.password {
            Some(password) => {
                let settings = info.redis_settings().clone().set_password(password);
                info.set_redis_settings(settings)
            }
            None => info,
        })
    }

    /// Reads `CUBEWALK_REDIS_URL` (required), `CUBEWALK_REDIS_CLUSTER` (`1`/`true`),
    /// `CUBEWALK_REDIS_CA_FILE` (PEM path), `CUBEWALK_REDIS_TIMEOUT_MS` (per command) and
    /// `CUBEWALK_REDIS_WAIT_REPLICAS` (replicas a write must reach before a put answers).
    pub fn from_env() -> Result<Self, String> {
        let url = std::env::var("CUBEWALK_REDIS_URL")
            .map_err(|_| "CUBEWALK_REDIS_URL is not set".to_string())?;
        let mut config = Self::new(url);
        config.cluster = std::env::var("CUBEWALK_REDIS_CLUSTER")
            .is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes"));
        if let Ok(path) = std::env::var("CUBEWALK_REDIS_CA_FILE") {
            config.ca_pem = Some(
                std::fs::read(&path)
                    .map_err(|e| format!("cannot read CUBEWALK_REDIS_CA_FILE {path}: {e}"))?,
            );
        }
        if let Ok(ms) = std::env::var("CUBEWALK_REDIS_TIMEOUT_MS") {
            let ms: u64 = ms
                .parse()
                .map_err(|_| "CUBEWALK_REDIS_TIMEOUT_MS must be a number".to_string())?;
            config.response_timeout = Duration::from_millis(ms);
        }
        if let Ok(n) = std::env::var("CUBEWALK_REDIS_WAIT_REPLICAS") {
            config.wait_replicas = n
                .parse()
                .map_err(|_| "CUBEWALK_REDIS_WAIT_REPLICAS must be a number".to_string())?;
        }
        Ok(config)
    }

    fn tls_certs(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: None,
            root_cert: self.ca_pem.clone(),
        }
    }
}

/// The connection: one multiplexed, self-reconnecting connection to a primary, or a cluster
/// connection that routes each key to its node and follows slot moves.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// Chunks in Redis.
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    operation_timeout: Duration,
    wait_replicas: u32,
    wait_timeout: Duration,
    memory: Arc<Fullness>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.conn {
            Conn::Single(_) => "single",
            Conn::Cluster(_) => "cluster",
        };
        write!(f, "RedisStore({mode})")
    }
}

impl RedisStore {
    /// Prepares a store without connecting (single-server mode): the connection is made on
    /// first use and made again whenever it breaks, so the process can start (and answer 503)
    /// while Redis is down. Call it inside the Tokio runtime that will use the store. Cluster
    /// mode needs the topology, so use [`RedisStore::connect`] for it.
    pub fn connect_lazy(config: &RedisStoreConfig) -> Result<Self, StoreError> {
        install_crypto_provider();
        if config.cluster {
            return Err(StoreError::Unavailable(
                "cluster mode cannot connect lazily; use RedisStore::connect".into(),
            ));
        }
        let info = config.connection_info()?;
        let client = if config.ca_pem.is_some() {
            redis::Client::build_with_tls(info, config.tls_certs())
        } else {
            redis::Client::open(info)
        }
        .map_err(|e| StoreError::Unavailable(format!("invalid Redis URL: {:?}", e.kind())))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.response_timeout))
            .set_connection_timeout(Some(config.connection_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(|e| unavailable(&e))?;
        Ok(Self {
            conn: Conn::Single(conn),
            operation_timeout: config.operation_timeout,
            wait_replicas: config.wait_replicas,
            wait_timeout: config.wait_timeout,
            memory: Arc::new(Fullness::new(config.full_at, config.fullness_every)),
        })
    }

    /// Opens the store the way a server process should: a single server lazily (a Redis outage
    /// at start gives 503s until it returns, not a crash loop), a cluster at once (it needs the
    /// topology). Call it inside the Tokio runtime that will use the store.
    pub async fn open(config: &RedisStoreConfig) -> Result<Self, StoreError> {
        if config.cluster {
            Self::connect(config).await
        } else {
            Self::connect_lazy(config)
        }
    }

    /// Connects now (and, in cluster mode, reads the topology), failing when Redis cannot be
    /// reached or refuses the credentials.
    pub async fn connect(config: &RedisStoreConfig) -> Result<Self, StoreError> {
        let store = if config.cluster {
            install_crypto_provider();
            let mut builder =
                redis::cluster::ClusterClientBuilder::new(vec![config.connection_info()?])
                    .connection_timeout(config.connection_timeout)
                    .response_timeout(config.response_timeout)
                    // No retries inside redis-rs: with them, a `WAIT` it fanned out to every
                    // primary, pending when one of them died, answered 1 for a write only that
                    // primary held (an acknowledged edit lost on failover, in most runs of
                    // `server/tests/failover.rs`; none since). A failed command answers 503
                    // instead; the client still refreshes its slots on MOVED and reconnects.
                    .retries(0);
            if config.ca_pem.is_some() {
                builder = builder.certs(config.tls_certs());
            }
            let client = builder.build().map_err(|e| unavailable(&e))?;
            let conn =
                tokio::time::timeout(config.operation_timeout, client.get_async_connection())
                    .await
                    .map_err(|_| {
                        StoreError::Unavailable("Redis Cluster did not answer in time".into())
                    })?
                    .map_err(|e| unavailable(&e))?;
            Self {
                conn: Conn::Cluster(conn),
                operation_timeout: config.operation_timeout,
                wait_replicas: config.wait_replicas,
                wait_timeout: config.wait_timeout,
                memory: Arc::new(Fullness::new(config.full_at, config.fullness_every)),
            }
        } else {
            Self::connect_lazy(config)?
        };
        tokio::time::timeout(
            config.operation_timeout,
            store.query::<String>(&redis::cmd("PING")),
        )
        .await
        .map_err(|_| StoreError::Unavailable("Redis did not answer PING in time".into()))?
        .map_err(|e| unavailable(&e))?;
        Ok(store)
    }

    pub(super) async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        match &self.conn {
            Conn::Single(c) => cmd.query_async(&mut c.clone()).await,
            Conn::Cluster(c) => cmd.query_async(&mut c.clone()).await,
        }
    }

    /// The cluster connection, for the backup's SCAN of every primary (SCAN walks one node's
    /// keys only); `None` on a single server.
    pub(super) fn cluster_connection(&self) -> Option<ClusterConnection> {
        match &self.conn {
            Conn::Cluster(c) => Some(c.clone()),
            Conn::Single(_) => None,
        }
    }

    /// Runs commands that each touch one key: as one pipeline on a single server, or issued
    /// together on the cluster connection (which pipelines them per node).
    pub(crate) async fn run_all<T: FromRedisValue>(&self, cmds: Vec<Cmd>) -> RedisResult<Vec<T>> {
        match &self.conn {
            Conn::Single(c) => {
                let mut pipe = Pipeline::with_capacity(cmds.len());
                for cmd in cmds {
                    pipe.add_command(cmd);
                }
                pipe.query_async(&mut c.clone()).await
            }
            Conn::Cluster(c) => join_all(cmds.iter().map(|cmd| {
                let mut c = c.clone();
                async move { cmd.query_async::<T>(&mut c).await }
            }))
            .await
            .into_iter()
            .collect(),
        }
    }

    /// Reads `keys` in one round trip (one pipeline, or one batch per node in a cluster).
    /// With `applied`, the same round trip also reads whether each chunk already applied
    /// this player's put of that idempotency key: the request hash and revision it answered.
    /// `prelude` commands go in the same round trip, first; their answers come back as is.
    async fn read(
        &self,
        world: &WorldId,
        keys: &[ChunkKey],
        applied: Option<(&str, &IdempotencyKey)>,
        prelude: &[Cmd],
    ) -> Result<ReadBack, StoreError> {
        let cmds = || {
            let mut cmds = prelude.to_vec();
            for &k in keys {
                let mut c = redis::cmd("HMGET");
                c.arg(chunk_key(world, k)).arg("v").arg("d").arg("r");
                cmds.push(c);
                if let Some((player, key)) = applied {
                    let mut c = redis::cmd("GET");
                    c.arg(applied_key(world, k, player, key));
                    cmds.push(c);
                }
            }
            cmds
        };
        // A connection that broke while idle (Lambda freezes the process between invocations)
        // fails the first command; reads (and the prelude: an admission that failed charged
        // nothing, a ZADD is idempotent) are safe to send again on the reconnected connection.
        let values: Vec<redis::Value> = match self.run_all(cmds()).await {
            Err(e) if is_broken_connection(&e) => {
                self.run_all(cmds()).await.map_err(|e| unavailable(&e))?
            }
            other => other.map_err(|e| unavailable(&e))?,
        };
        let mut values = values.into_iter();
        let mut next = || {
            values.next().ok_or_else(|| {
                StoreError::Unavailable("Redis answered fewer replies than commands".into())
            })
        };
        let mut back = ReadBack::default();
        for _ in prelude {
            back.prelude.push(next()?);
        }
        for _ in keys {
            let (v, d, r): (Option<u64>, Option<Vec<u8>>, Option<u64>) =
                redis::from_redis_value(next()?).map_err(odd)?;
            let blob = d.unwrap_or_default();
            back.stored.push(StoredChunk {
                seq: v.unwrap_or(0),
                // A chunk written before random revisions carries none: it answers the
                // revision of the earlier scheme until its next write.
                revision: r.unwrap_or_else(|| cubewalk_protocol::content_revision(&blob)),
                blob,
            });
            back.tags.push(r.map(|r| r.to_string()).unwrap_or_default());
            if applied.is_some() {
                let record: Option<String> = redis::from_redis_value(next()?).map_err(odd)?;
                back.done.push(record.as_deref().and_then(Record::parse));
            } else {
                back.done.push(None);
            }
        }
        Ok(back)
    }

    /// The admission (ban, limits) of `put` and the record of which chunks the player writes,
    /// as commands for the first round trip of a put.
    fn prelude(world: &WorldId, edits: &[ChunkEdits], put: &Put<'_>) -> Vec<Cmd> {
        let mut cmds = Vec::new();
        if let Some(limits) = put.limits {
            let cubes: usize = edits.iter().map(|(_, e)| e.len()).sum();
            // New chunks are known only once read: charged in a second step (see apply_edits).
            cmds.push(admit_cmd(put.player, limits, [cubes, 0, edits.len()]));
        }
        // Recorded before the write, so every logged edit of the player is found from here.
        let now = super::now_ms();
        let mut c = redis::cmd("ZADD");
        c.arg(player_key(put.player, "chunks"));
        for (k, _) in edits {
            c.arg(now).arg(player_chunk_member(world, *k));
        }
        cmds.push(c);
        let mut c = redis::cmd("ZREMRANGEBYSCORE");
        c.arg(player_key(put.player, "chunks"))
            .arg("-inf")
            .arg(format!(
                "({}",
                now.saturating_sub(LOG_RETENTION_SECS * 1000)
            ));
        cmds.push(c);
        cmds
    }

    /// Runs the admission script for `cost` new chunks and turns its answer into a result.
    async fn admit_new_chunks(
        &self,
        player: &str,
        limits: &PlayerLimits,
        cost: usize,
    ) -> Result<(), StoreError> {
        let c = admit_cmd(player, limits, [0, cost, 0]);
        let answer = self.query(&c).await.map_err(|e| unavailable(&e))?;
        admission(answer)
    }

    async fn apply_inner(
        &self,
        world: &WorldId,
        edits: &[(ChunkKey, Edits<'_>)],
        put: &Put<'_>,
        mut prelude: Vec<Cmd>,
    ) -> Result<Vec<(Applied, Vec<u16>)>, StoreError> {
        let mut revisions = vec![(Applied::unchanged(0), Vec::new()); edits.len()];
        let mut pending: Vec<usize> = (0..edits.len()).collect();
        let mut reconnects = 0;
        let key = put.key.map(|k| (put.player, k));
        let hash = format!("{:016x}", put.request_hash);
        // Chunks this call answers without having written them (its key found applied, its
        // edits found in place): what the answer reports may be another connection's write,
        // or this put's own earlier attempt whose replicas never confirmed it, so the answer
        // must wait for the replicas too (see `confirm_replicated`).
        let mut unwritten: Vec<String> = Vec::new();
        // The world's size as read first, and what this call's writes added to it.
        let mut world_size = 0i64;
        let mut grown = 0i64;
        let size_at = put.budget.map(|_| prelude.len());
        if let Some(budget) = put.budget {
            let mut c = redis::cmd("GET");
            c.arg(world_size_key(budget.account));
            prelude.push(c);
        }
        for attempt in 0..MAX_CAS_ATTEMPTS {
            if pending.is_empty() {
                break;
            }
            if attempt > 0 {
                // Full jitter keeps colliding writers from retrying in lockstep.
                let cap = 100u64 << attempt.min(6);
                let micros = rand::rng().random_range(0..=cap);
                tokio::time::sleep(Duration::from_micros(micros)).await;
            }
            let chunks: Vec<ChunkKey> = pending.iter().map(|&i| edits[i].0).collect();
            let back = self
                .read(world, &chunks, key, &std::mem::take(&mut prelude))
                .await?;
            if let Some(answer) = back.prelude.first().filter(|_| put.limits.is_some()) {
                admission(answer.clone())?;
            }
            // A record of another request under the key, or of a cancel, refuses the whole
            // put before anything is written.
            for record in back.done.iter().flatten() {
                record.replay(put.request_hash)?;
            }
            if let Some(at) = size_at.filter(|_| attempt == 0) {
                let size: Option<i64> = back
                    .prelude
                    .get(at)
                    .map(|v| redis::from_redis_value(v.clone()))
                    .transpose()
                    .map_err(odd)?
                    .flatten();
                world_size = size.unwrap_or(0);
            }
            if attempt == 0 {
                if let Some(limits) = put.limits {
                    let new = back.stored.iter().filter(|c| c.seq == 0).count();
                    if new > 0 {
                        self.admit_new_chunks(put.player, limits, new).await?;
                    }
                }
            }
            let mut cmds = Vec::new();
            let mut writing = Vec::new();
            for (((&i, stored), done), tag) in pending
                .iter()
                .zip(&back.stored)
                .zip(back.done)
                .zip(&back.tags)
            {
                if let Some(record) = done {
                    unwritten.push(sync_key(world, edits[i].0));
                    revisions[i] = (
                        Applied::unchanged(record.replay(put.request_hash)?),
                        Vec::new(),
                    );
                    continue;
                }
                let (chunk, cubes) = edits[i];
                let edited = edit_blob(world, chunk, stored, cubes)?;
                let mismatched = edited.mismatched.clone();
                if edited.blob.is_none() {
                    // Nothing to change and nothing to remember: a put that changed nothing
                    // leaves no record.
                    unwritten.push(sync_key(world, chunk));
                    revisions[i] = (Applied::unchanged(edited.revision), mismatched);
                    continue;
                }
                cmds.push(cas_cmd(world, chunk, put, stored, tag, &edited, &hash));
                let delta = size_delta(stored, edited.blob.as_deref().unwrap_or_default());
                writing.push((i, edited, stored.seq, delta));
            }
            if writing.is_empty() {
                pending.clear();
                break;
            }
            let growth: i64 = writing.iter().map(|w| w.3).sum();
            self.check_room(world, put, world_size + grown + growth, growth > 0)
                .await?;
            // When the connection breaks mid-write some scripts may have run: the next attempt
            // re-reads, finds those edits already in place (or, with a key, already recorded)
            // and answers without writing again.
            let results: Vec<Option<String>> = match self.run_all(cmds).await {
                Ok(r) => r,
                Err(e) if is_broken_connection(&e) && reconnects < 2 => {
                    reconnects += 1;
                    pending = writing.into_iter().map(|(i, ..)| i).collect();
                    continue;
                }
                Err(e) => return Err(unavailable(&e)),
            };
            pending.clear();
            for ((i, edited, from_seq, delta), r) in writing.into_iter().zip(results) {
                let Some(text) = r else {
                    // Another writer changed the chunk since it was read: read it again.
                    crate::metrics::add(crate::metrics::Metric::CasRetries, 1);
                    pending.push(i);
                    continue;
                };
                let applied = parse_cas_answer(&text, &edited, from_seq)?;
                if applied.changed_from.is_some() {
                    grown += delta;
                } else {
                    // Its key was applied by an earlier call (another connection's write).
                    unwritten.push(sync_key(world, edits[i].0));
                }
                revisions[i] = (applied, edited.mismatched);
            }
        }
        if let Some(budget) = put.budget.filter(|_| grown != 0) {
            // Counted after the writes, outside their atomic step (the rule's counter lives
            // in its own slot): a crash in between leaves it short by this put, and puts in
            // flight at once may each pass the check before any is counted; both only let a
            // world grow a little past its budget.
            let mut c = redis::cmd("INCRBY");
            c.arg(world_size_key(budget.account)).arg(grown);
            self.query::<i64>(&c).await.map_err(|e| unavailable(&e))?;
        }
        if pending.is_empty() {
            self.confirm_replicated(&unwritten).await?;
            return Ok(revisions);
        }
        Err(StoreError::Unavailable(format!(
            "chunk too contended: gave up after {MAX_CAS_ATTEMPTS} attempts"
        )))
    }

    /// Refuses a player's write that would take `world`'s rule to `size` bytes past its
    /// budget (when it `grows`), or any write while the store is nearly full: every write
    /// that changes a chunk also logs it (kept 7 days), so even one that keeps the chunk's
    /// size takes memory.
    async fn check_room(
        &self,
        world: &WorldId,
        put: &Put<'_>,
        size: i64,
        grows: bool,
    ) -> Result<(), StoreError> {
        let Some(budget) = put.budget else {
            return Ok(());
        };
        if grows && size > i64::try_from(budget.bytes).unwrap_or(i64::MAX) {
            return Err(world_full(world, &budget));
        }
        self.refuse_when_nearly_full().await
    }

    /// [`StoreError::Full`] while the store is nearly full.
    async fn refuse_when_nearly_full(&self) -> Result<(), StoreError> {
        if self.memory.nearly_full(self).await {
            return Err(StoreError::Full(
                "the store is nearly full: it takes no more edits until an operator makes room \
                 (reads still answer)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Waits until the configured number of replicas hold every write this connection made
    /// (`WAIT`; in a cluster, on every primary, the least answer counting), or fails with
    /// 503 when they do not within the wait timeout.
    ///
    /// `WAIT` counts only this connection's own writes: a put answered from what another
    /// connection wrote (its key's record, its edits already in place, as when a retry lands
    /// on another process, or on this one after a reconnect) would answer at once, though that
    /// write may never have reached a replica. So first each such chunk's `sync` key (`touch`,
    /// in the chunk's slot, hence on its node) is written, which this connection's `WAIT` then
    /// covers together with everything the node applied before it.
    async fn confirm_replicated(&self, touch: &[String]) -> Result<(), StoreError> {
        if self.wait_replicas == 0 {
            return Ok(());
        }
        if !touch.is_empty() {
            let cmds = touch
                .iter()
                .map(|k| {
                    let mut c = redis::cmd("SET");
                    c.arg(k).arg("1").arg("PX").arg(SYNC_KEY_TTL_MS);
                    c
                })
                .collect();
            self.run_all::<redis::Value>(cmds)
                .await
                .map_err(|e| unavailable(&e))?;
        }
        let mut c = redis::cmd("WAIT");
        c.arg(self.wait_replicas)
            .arg(u64::try_from(self.wait_timeout.as_millis()).unwrap_or(u64::MAX));
        let reached: u64 = self.query(&c).await.map_err(|e| unavailable(&e))?;
        if reached < u64::from(self.wait_replicas) {
            return Err(StoreError::Unavailable(format!(
                "write reached {reached} of {} replicas in time",
                self.wait_replicas
            )));
        }
        Ok(())
    }

    /// Runs one command within the operation timeout.
    async fn query_timed<T: FromRedisValue>(&self, what: &str, cmd: &Cmd) -> Result<T, StoreError> {
        self.timed(what, async {
            self.query(cmd).await.map_err(|e| unavailable(&e))
        })
        .await
    }

    /// Runs `f` within the operation timeout.
    async fn timed<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.operation_timeout, f)
            .await
            .map_err(|_| StoreError::Unavailable(format!("Redis {what} timed out")))?
    }
}

/// What the first round trip of a read brings back.
#[derive(Default)]
struct ReadBack {
    prelude: Vec<redis::Value>,
    stored: Vec<StoredChunk>,
    /// Per chunk: its revision as stored (`""` when it has none), for the check-and-set.
    tags: Vec<String>,
    /// Per chunk: what it remembers of this player's idempotency key.
    done: Vec<Option<Record>>,
}

fn odd(e: redis::ParsingError) -> StoreError {
    StoreError::Unavailable(format!("unexpected Redis answer: {e}"))
}

/// The refusal of a put that would take `world`'s rule past its budget.
pub(crate) fn world_full(world: &WorldId, budget: &super::WorldBudget<'_>) -> StoreError {
    StoreError::Full(format!(
        "world {world} is full ({} MiB of chunk data for {})",
        budget.bytes >> 20,
        budget.account
    ))
}

/// The check-and-set of `edited` (edits that change `chunk`) over `stored` as read (`tag`: its
/// revision as stored, `""` when none), logged as `put`'s player, under its idempotency key
/// (if any) and the request hash `hash` (hex).
fn cas_cmd(
    world: &WorldId,
    chunk: ChunkKey,
    put: &Put<'_>,
    stored: &StoredChunk,
    tag: &str,
    edited: &super::Edited,
    hash: &str,
) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(CAS_SCRIPT)
        .arg(if put.key.is_some() { 3 } else { 2 })
        .arg(chunk_key(world, chunk))
        .arg(log_key(world, chunk));
    if let Some(k) = put.key {
        cmd.arg(applied_key(world, chunk, put.player, k));
    }
    cmd.arg(stored.seq)
        .arg(edited.blob.as_deref().unwrap_or_default())
        .arg(edited.revision.to_string())
        .arg(IDEMPOTENCY_WINDOW.as_secs())
        .arg(put.player)
        .arg(encode_changes(&edited.changes))
        .arg(hash)
        .arg(LOG_RETENTION_SECS * 1000)
        .arg(tag);
    cmd
}

/// The check-and-set script's answer for a write of `edited` over sequence `from_seq`.
fn parse_cas_answer(
    text: &str,
    edited: &super::Edited,
    from_seq: u64,
) -> Result<Applied, StoreError> {
    let not_a_number =
        || StoreError::Unavailable("Redis answered a revision that is not a number".into());
    match text {
        "H" => Err(StoreError::IdempotencyKeyReused),
        "X" => Err(StoreError::Cancelled),
        // The key was applied by an earlier call: this one changed nothing.
        _ if text.starts_with('=') => Ok(Applied::unchanged(
            text[1..].parse().map_err(|_| not_a_number())?,
        )),
        _ => {
            let (_, seq) = text.split_once(' ').ok_or_else(not_a_number)?;
            let seq: u64 = seq.parse().map_err(|_| not_a_number())?;
            Ok(edited.applied(from_seq, seq))
        }
    }
}

/// The admission of `player` for `costs` (cubes, new chunks, chunk writes, as in
/// [`Limit::ALL`]) under `limits` (a cost of 0 charges nothing for that limit).
fn admit_cmd(player: &str, limits: &PlayerLimits, costs: [usize; 3]) -> Cmd {
    let mut c = redis::cmd("EVAL");
    c.arg(ADMIT_SCRIPT)
        .arg(2)
        .arg(player_key(player, "ban"))
        .arg(player_key(player, "limits"));
    for (limit, cost) in Limit::ALL.into_iter().zip(costs) {
        let (interval, burst) = if cost > 0 { limits.cell(limit) } else { (1, 1) };
        c.arg(limit.field()).arg(cost).arg(interval).arg(burst);
    }
    c
}

/// The admission script's answer as a result.
fn admission(answer: redis::Value) -> Result<(), StoreError> {
    let (code, wait): (i64, i64) = redis::from_redis_value(answer).map_err(odd)?;
    let retry_after = Duration::from_micros(u64::try_from(wait).unwrap_or(0));
    match code {
        0 => Ok(()),
        -1 => Err(StoreError::Banned),
        n => Err(StoreError::RateLimited {
            limit: usize::try_from(n - 1)
                .ok()
                .and_then(|i| Limit::ALL.get(i).copied())
                .ok_or_else(|| StoreError::Unavailable(format!("unknown limit {n}")))?,
            retry_after,
        }),
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
        let back = self
            .timed("fetch", self.read(world, keys, None, &[]))
            .await?;
        Ok(back.stored)
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
        let plain: Vec<(ChunkKey, Edits<'_>)> =
            edits.iter().map(|(k, e)| (*k, Edits::Plain(e))).collect();
        let prelude = Self::prelude(world, edits, put);
        let applied = self
            .timed("put", self.apply_inner(world, &plain, put, prelude))
            .await?;
        Ok(applied.into_iter().map(|(a, _)| a).collect())
    }

    async fn apply_expected(
        &self,
        world: &WorldId,
        chunk: ChunkKey,
        edits: &[ExpectedEdit],
        player: &str,
    ) -> Result<(Applied, Vec<u16>), StoreError> {
        let put = Put {
            player,
            ..Put::system()
        };
        let mut applied = self
            .timed(
                "put",
                self.apply_inner(world, &[(chunk, Edits::Expected(edits))], &put, Vec::new()),
            )
            .await?;
        applied
            .pop()
            .ok_or_else(|| StoreError::Unavailable("no answer for the chunk".into()))
    }

    async fn cancel(
        &self,
        world: &WorldId,
        chunks: &[ChunkKey],
        player: &str,
        key: &IdempotencyKey,
        limits: Option<&PlayerLimits>,
    ) -> Result<Vec<Option<u64>>, StoreError> {
        if chunks.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(limits) = limits {
            // A fence record costs memory like a put's: charged as a write per chunk, so a
            // player cannot fill the store with cancels, and refused as a put is when the
            // store is nearly full (the SDK then holds the put's chunks until it cannot land).
            let c = admit_cmd(player, limits, [0, 0, chunks.len()]);
            let answer = self.query_timed("admission", &c).await?;
            admission(answer)?;
            self.refuse_when_nearly_full().await?;
        }
        let cmds: Vec<Cmd> = chunks
            .iter()
            .map(|&chunk| {
                let mut c = redis::cmd("EVAL");
                c.arg(CANCEL_SCRIPT)
                    .arg(1)
                    .arg(applied_key(world, chunk, player, key))
                    .arg(IDEMPOTENCY_WINDOW.as_secs());
                c
            })
            .collect();
        self.timed("cancel", async {
            // Each script either finds the record or writes the fence: sending them again
            // after a broken connection answers the same.
            let answers: Vec<String> = match self.run_all(cmds.clone()).await {
                Err(e) if is_broken_connection(&e) => {
                    self.run_all(cmds).await.map_err(|e| unavailable(&e))?
                }
                other => other.map_err(|e| unavailable(&e))?,
            };
            // The fence must survive a failover as an acknowledged edit does, and so must a
            // record found (a fence or an applied put, perhaps written by another connection)
            // before the SDK is told what it says.
            let touch: Vec<String> = chunks.iter().map(|&c| sync_key(world, c)).collect();
            self.confirm_replicated(&touch).await?;
            answers
                .iter()
                .map(|a| match Record::parse(a) {
                    Some(Record::Applied { revision, .. }) => Ok(Some(revision)),
                    Some(Record::Cancelled) => Ok(None),
                    None => Err(StoreError::Unavailable(
                        "Redis answered a record that cannot be read".into(),
                    )),
                })
                .collect()
        })
        .await
    }

    async fn chunk_log(
        &self,
        world: &WorldId,
        chunk: ChunkKey,
        since_ms: u64,
    ) -> Result<Vec<LogRecord>, StoreError> {
        let mut c = redis::cmd("XRANGE");
        c.arg(log_key(world, chunk)).arg(since_ms).arg("+");
        let entries: Vec<(String, HashMap<String, String>)> =
            self.query_timed("log read", &c).await?;
        entries
            .into_iter()
            .map(|(id, fields)| {
                let changes = fields
                    .get("c")
                    .and_then(|c| decode_changes(c))
                    .ok_or_else(|| StoreError::Corrupt {
                        world: world.to_string(),
                        key: chunk,
                        reason: format!("log record {id} is not a change list"),
                    })?;
                Ok(LogRecord {
                    at_ms: id_ms(&id),
                    id,
                    player: fields.get("p").cloned().unwrap_or_default(),
                    changes,
                })
            })
            .collect()
    }

    async fn player_chunks(
        &self,
        world: &WorldId,
        player: &str,
        since_ms: u64,
    ) -> Result<Vec<ChunkKey>, StoreError> {
        let mut c = redis::cmd("ZRANGEBYSCORE");
        c.arg(player_key(player, "chunks"))
            .arg(since_ms)
            .arg("+inf");
        let members: Vec<String> = self.query_timed("index read", &c).await?;
        let prefix = format!("{world} ");
        let mut chunks: Vec<ChunkKey> = members
            .iter()
            .filter_map(|m| m.strip_prefix(&prefix)?.parse().ok())
            .collect();
        chunks.sort_by_key(|k| (k.x, k.y, k.z));
        Ok(chunks)
    }

    async fn set_banned(&self, player: &str, banned: bool) -> Result<(), StoreError> {
        let mut c = redis::cmd(if banned { "SET" } else { "DEL" });
        c.arg(player_key(player, "ban"));
        if banned {
            c.arg("1");
        }
        self.query_timed::<redis::Value>("ban", &c)
            .await
            .map(|_| ())
    }

    async fn is_banned(&self, player: &str) -> Result<bool, StoreError> {
        let mut c = redis::cmd("EXISTS");
        c.arg(player_key(player, "ban"));
        self.query_timed("ban read", &c).await
    }
}

/// rustls needs one process-wide crypto provider; ring is the one that cross-compiles
/// everywhere (Lambda arm64 included) without a C toolchain for another library.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The Redis key of a chunk. The braces make the whole chunk id the cluster hash tag, so every
/// key a chunk may ever use shares one slot. Public for tools that inspect the store.
pub fn chunk_key(world: &WorldId, k: ChunkKey) -> String {
    format!("cw:{{{world}:{},{},{}}}", k.x, k.y, k.z)
}

/// The record that `chunk` applied `player`'s put named `key`; in the chunk's hash slot, so
/// the check-and-set script can read and write it atomically with the chunk. The key comes
/// first: it holds no `:`, so no player id can make two records share a name.
pub(crate) fn applied_key(
    world: &WorldId,
    chunk: ChunkKey,
    player: &str,
    key: &IdempotencyKey,
) -> String {
    format!("{}:put:{key}:{player}", chunk_key(world, chunk))
}

/// A short-lived key in `chunk`'s slot that a put writes only so that its `WAIT` covers what
/// it found written by others (see `RedisStore::confirm_replicated`).
fn sync_key(world: &WorldId, chunk: ChunkKey) -> String {
    format!("{}:sync", chunk_key(world, chunk))
}

/// How long a `sync` key lives: it carries nothing once its `WAIT` answered.
const SYNC_KEY_TTL_MS: u64 = 1000;

/// The log of `chunk`: a Stream in the chunk's hash slot, so the check-and-set script appends
/// to it atomically with the write.
pub fn log_key(world: &WorldId, chunk: ChunkKey) -> String {
    format!("{}:log", chunk_key(world, chunk))
}

/// The size in bytes of the chunk data of the worlds a rule matches (see [`crate::worlds`];
/// `account` is the rule as written), in its own slot.
pub fn world_size_key(account: &str) -> String {
    format!("cw:{{w:{account}}}:bytes")
}

/// One of a player's keys (`ban`, `limits`, `chunks`), all in the player's hash slot.
pub fn player_key(player: &str, what: &str) -> String {
    format!("cw:{{p:{player}}}:{what}")
}

/// A chunk as a member of a player's `chunks` index: `<world> <x>,<y>,<z>` (world ids hold no
/// space).
fn player_chunk_member(world: &WorldId, k: ChunkKey) -> String {
    format!("{world} {k}")
}

pub(crate) fn is_broken_connection(e: &redis::RedisError) -> bool {
    e.is_connection_dropped() || e.is_io_error()
}

/// Redis errors never carry the URL (and so never the password); the kind and detail say
/// enough for an operator.
pub(crate) fn unavailable(e: &redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("Redis error ({:?}): {e}", e.kind()))
}

#[cfg(test)]
mod failover_tests;
