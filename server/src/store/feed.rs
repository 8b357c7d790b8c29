//! The change feed in Redis: where the deployed stack's puts leave their changes for the
//! publisher (a Lambda cannot hand them to a process of its own). One stream per shard
//! (`cw:rt:{<n>}`, [`FEED_SHARDS`] of them); a region's changes always go to the same shard,
//! so each chunk's changes stay in order. The publisher keeps its place per shard in
//! `cw:rt:{<n>}:at` (same hash slot) and holds a lease (`cw:rt:lease`) so only one runs.

use super::redis::{unavailable, RedisStore};
use super::StoreError;
use cubewalk_protocol::realtime::{Change, Region};
use cubewalk_protocol::WorldId;
use std::hash::{Hash, Hasher};
use std::time::Duration;

/// Streams the feed is spread over (each in its own hash slot, so the feed spreads over a
/// cluster's shards).
pub const FEED_SHARDS: usize = 16;
/// Entries each stream keeps (approximately) before the oldest are trimmed: 160,000 changes
/// in all (about 30 MB at most), nearly an hour of 50 puts a second. A publisher further
/// behind than this loses the oldest, and followers see the gaps in the write sequences and
/// refetch.
pub const FEED_MAX_LEN: usize = 10_000;
/// Most entries read from one stream per tick.
const READ_COUNT: usize = 2_000;

/// Renews the lease only while this holder has it. KEYS[1]: the lease; ARGV[1]: the holder;
/// ARGV[2]: the lease time in milliseconds. Answers 1 when renewed.
const RENEW_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
";
/// Releases the lease only if this holder has it.
const RELEASE_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

fn stream_key(shard: usize) -> String {
    format!("cw:rt:{{{shard}}}")
}

fn cursor_key(shard: usize) -> String {
    format!("cw:rt:{{{shard}}}:at")
}

const LEASE_KEY: &str = "cw:rt:lease";

/// The shard a region's changes go to.
pub fn feed_shard(world: &WorldId, region: Region) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (world.as_str(), region.x, region.y, region.z).hash(&mut h);
    (h.finish() % FEED_SHARDS as u64) as usize
}

/// What one read of the feed gave: the changes, oldest first per shard, and where each shard
/// now stands.
#[derive(Debug, Default)]
pub struct FeedRead {
    /// The changes read.
    pub changes: Vec<(WorldId, Change)>,
    /// Per shard, the id of the last entry read (unchanged shards absent).
    pub positions: Vec<(usize, String)>,
    /// Entries that could not be read back (skipped).
    pub unreadable: usize,
}

impl RedisStore {
    /// Appends `changes` of `world` to the feed: one command per shard touched, in one round
    /// trip.
    pub async fn append_changes(
        &self,
        world: &WorldId,
        changes: &[Change],
    ) -> Result<(), StoreError> {
        let mut cmds = Vec::new();
        for change in changes {
            let mut c = redis::cmd("XADD");
            c.arg(stream_key(feed_shard(world, Region::of(change.chunk))))
                .arg("MAXLEN")
                .arg("~")
                .arg(FEED_MAX_LEN)
                .arg("*")
                .arg("w")
                .arg(world.as_str())
                .arg("c")
                .arg(change.to_text());
            cmds.push(c);
        }
        if cmds.is_empty() {
            return Ok(());
        }
        let _: Vec<redis::Value> = self.run_all(cmds).await.map_err(|e| unavailable(&e))?;
        Ok(())
    }

    /// Where the publisher stands in each shard: where the last one left off, or, for a shard
    /// no publisher read yet, its current end (a first publisher does not replay history).
    pub async fn feed_positions(&self) -> Result<Vec<String>, StoreError> {
        let cmds = (0..FEED_SHARDS)
            .map(|n| {
                let mut c = redis::cmd("GET");
                c.arg(cursor_key(n));
                c
            })
            .collect();
        let at: Vec<Option<String>> = self.run_all(cmds).await.map_err(|e| unavailable(&e))?;
        let ends = (0..FEED_SHARDS)
            .map(|n| {
                let mut c = redis::cmd("XREVRANGE");
                c.arg(stream_key(n)).arg("+").arg("-").arg("COUNT").arg(1);
                c
            })
            .collect();
        type Last = Vec<(String, Vec<(String, String)>)>;
        let ends: Vec<Last> = self.run_all(ends).await.map_err(|e| unavailable(&e))?;
        Ok(at
            .into_iter()
            .zip(ends)
            .map(|(at, end)| {
                at.or_else(|| end.into_iter().next().map(|(id, _)| id))
                    .unwrap_or_else(|| "0-0".into())
            })
            .collect())
    }

    /// Reads what is new after `positions` (one entry per shard), without waiting.
    pub async fn read_feed(&self, positions: &mut [String]) -> Result<FeedRead, StoreError> {
        let cmds = (0..FEED_SHARDS)
            .map(|n| {
                let mut c = redis::cmd("XREAD");
                c.arg("COUNT")
                    .arg(READ_COUNT)
                    .arg("STREAMS")
                    .arg(stream_key(n))
                    .arg(&positions[n]);
                c
            })
            .collect();
        type Entries = Vec<(String, Vec<(String, Vec<(String, String)>)>)>;
        let replies: Vec<Option<Entries>> =
            self.run_all(cmds).await.map_err(|e| unavailable(&e))?;
        let mut read = FeedRead::default();
        for (n, reply) in replies.into_iter().enumerate() {
            let entries = reply.into_iter().flatten().flat_map(|(_, e)| e);
            let mut last = None;
            for (id, fields) in entries {
                last = Some(id);
                let field = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v);
                match (
                    field("w").and_then(|w| WorldId::new(w).ok()),
                    field("c").and_then(|c| Change::parse(c).ok()),
                ) {
                    (Some(w), Some(c)) => read.changes.push((w, c)),
                    _ => read.unreadable += 1,
                }
            }
            if let Some(id) = last {
                positions[n] = id.clone();
                read.positions.push((n, id));
            }
        }
        Ok(read)
    }

    /// Remembers where the publisher stands (for the next publisher).
    pub async fn save_feed_positions(
        &self,
        positions: &[(usize, String)],
    ) -> Result<(), StoreError> {
        let cmds: Vec<redis::Cmd> = positions
            .iter()
            .map(|(n, id)| {
                let mut c = redis::cmd("SET");
                c.arg(cursor_key(*n)).arg(id);
                c
            })
            .collect();
        if cmds.is_empty() {
            return Ok(());
        }
        let _: Vec<redis::Value> = self.run_all(cmds).await.map_err(|e| unavailable(&e))?;
        Ok(())
    }

    /// Takes the publisher's lease for `ttl` if nobody holds it; answers whether it did.
    pub async fn take_publisher_lease(
        &self,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut c = redis::cmd("SET");
        c.arg(LEASE_KEY)
            .arg(holder)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64);
        let answer: Option<String> = self.query(&c).await.map_err(|e| unavailable(&e))?;
        Ok(answer.is_some())
    }

    /// Extends the lease while `holder` has it; answers whether it still does.
    pub async fn renew_publisher_lease(
        &self,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut c = redis::cmd("EVAL");
        c.arg(RENEW_SCRIPT)
            .arg(1)
            .arg(LEASE_KEY)
            .arg(holder)
            .arg(ttl.as_millis() as u64);
        let renewed: i64 = self.query(&c).await.map_err(|e| unavailable(&e))?;
        Ok(renewed == 1)
    }

    /// Gives the lease up (if `holder` still has it), so the next publisher starts at once.
    pub async fn release_publisher_lease(&self, holder: &str) -> Result<(), StoreError> {
        let mut c = redis::cmd("EVAL");
        c.arg(RELEASE_SCRIPT).arg(1).arg(LEASE_KEY).arg(holder);
        let _: i64 = self.query(&c).await.map_err(|e| unavailable(&e))?;
        Ok(())
    }
}
