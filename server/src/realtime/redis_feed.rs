//! Realtime in the deployed stack: puts append their changes to the Redis change feed
//! ([`RedisSink`]), and publisher runs ([`run_feed_publisher`], the publisher Lambda), one per
//! [`FeedGroup`] of the feed's shards and each shard under its own lease, read their shards
//! every tick, coalesce them per region and publish to AWS IoT Core.

use super::coalesce::Coalescer;
use super::notify::ChangeSink;
use super::publish::{publish_all, Publish, PublishStats};
use crate::store::{FeedGroup, RedisStore, StoreError};
use async_trait::async_trait;
use cubewalk_protocol::realtime::{Change, TICK_MS};
use cubewalk_protocol::WorldId;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Puts' changes into the Redis feed: one more round trip after the store's atomic step,
/// whatever the number of followers.
pub struct RedisSink(pub Arc<RedisStore>);

#[async_trait]
impl ChangeSink for RedisSink {
    async fn send(&self, world: &WorldId, changes: Vec<Change>) {
        if let Err(e) = self.0.append_changes(world, &changes).await {
            // The put is applied and answered all the same; followers see the gap in the
            // chunk's write sequence (or reconcile) and refetch.
            let lost = changes.len() as u64;
            crate::metrics::add(crate::metrics::Metric::ChangesDropped, lost);
            tracing::warn!(error = %e, changes = changes.len(), "changes not queued for realtime");
        }
    }
}

/// How long a shard's lease lasts without renewal: a publisher that died is replaced within
/// this.
pub const LEASE_TTL: Duration = Duration::from_secs(10);
/// How often the leases are renewed while one tick's messages are still being published: a
/// backlog (after a run died, say) can take longer than [`LEASE_TTL`] to post, and a lease
/// that ran out meanwhile would let the next run publish the same entries again.
const RENEW_WHILE_PUBLISHING: Duration = Duration::from_millis(2_500);

/// What one publisher run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FeedReport {
    /// Whether it held any of its group's shards (and so published) at all.
    pub held: bool,
    /// Ticks run holding at least one shard.
    pub ticks: u64,
    /// Shard leases taken (a shard lost and taken again counts twice).
    pub taken: u64,
    /// Shard leases lost before the end of the run (each ran out; another run may hold it now).
    pub lost: u64,
    /// Changes read from the feed.
    pub changes: u64,
    /// Messages published.
    pub published: u64,
    /// Messages that failed.
    pub failed: u64,
}

/// Publishes `group`'s shards of the feed until `until`. Every `tick` (default
/// [`TICK_MS`]) it renews the leases it holds (a shard whose lease it lost is dropped, never
/// read again under the old lease), takes the lease of each of its shards nobody holds (so a
/// run started while the group's previous one still publishes takes over each shard the
/// moment that one lets go, and a dead run's shards once their leases run out), reads what is
/// new in the shards it holds, publishes one message per changed region through `out` and
/// records its place per shard, so the next run goes on from there. At the end it releases
/// every lease it holds, whether it ended on time or on a store error.
pub async fn run_feed_publisher(
    store: &RedisStore,
    out: Arc<dyn Publish>,
    holder: &str,
    group: FeedGroup,
    until: Instant,
    tick: Option<Duration>,
) -> Result<FeedReport, StoreError> {
    let tick = tick.unwrap_or(Duration::from_millis(TICK_MS));
    let mut run = Run {
        store,
        holder,
        out,
        stats: PublishStats::default(),
        held: Vec::new(),
        report: FeedReport::default(),
    };
    let result = run.publish(group, until, tick).await;
    // Released even after an error, so the group's next run need not wait out the leases.
    let _ = store.release_feed_leases(holder, &run.held_shards()).await;
    run.report.published = run.stats.published.load(Ordering::Relaxed);
    run.report.failed = run.stats.failed.load(Ordering::Relaxed);
    result.map(|()| run.report)
}

/// One publisher run's state.
struct Run<'a> {
    store: &'a RedisStore,
    holder: &'a str,
    out: Arc<dyn Publish>,
    stats: PublishStats,
    /// `(shard, position)` for each shard whose lease this run holds, in shard order.
    held: Vec<(usize, String)>,
    report: FeedReport,
}

impl Run<'_> {
    fn held_shards(&self) -> Vec<usize> {
        self.held.iter().map(|(n, _)| *n).collect()
    }

    /// Drops the held shards not in `kept`, counting and logging them as lost.
    fn keep_only(&mut self, kept: &[usize]) {
        let before = self.held.len();
        self.held.retain(|(n, _)| kept.contains(n));
        let lost = before - self.held.len();
        if lost > 0 {
            self.report.lost += lost as u64;
            tracing::warn!(
                shards = lost,
                "feed shard leases lost: another publisher may hold them now"
            );
        }
    }

    async fn publish(
        &mut self,
        group: FeedGroup,
        until: Instant,
        tick: Duration,
    ) -> Result<(), StoreError> {
        let mine: Vec<usize> = group.shards().collect();
        let mut coalescer = Coalescer::new();
        let mut next = Instant::now();
        while next < until {
            tokio::time::sleep_until(next).await;
            next += tick;
            // Renewed before anything is read: a shard whose lease ran out (and which another
            // run may hold now) is dropped first, so no entry is published by two runs.
            if !self.held.is_empty() {
                let kept = self
                    .store
                    .renew_feed_leases(self.holder, &self.held_shards(), LEASE_TTL)
                    .await?;
                self.keep_only(&kept);
            }
            if self.held.len() < mine.len() {
                self.take_free_shards(&mine).await?;
            }
            if self.held.is_empty() {
                continue;
            }
            self.report.held = true;
            self.report.ticks += 1;
            let read = self.store.read_feed(&mut self.held).await?;
            if read.unreadable > 0 {
                tracing::warn!(entries = read.unreadable, "unreadable feed entries skipped");
            }
            self.report.changes += read.changes.len() as u64;
            for (world, change) in read.changes {
                coalescer.add(&world, change);
            }
            let kept = self.publish_keeping_leases(coalescer.take()).await;
            self.keep_only(&kept);
            let lost = self
                .store
                .save_feed_positions(self.holder, &read.positions)
                .await?;
            let kept: Vec<usize> = self
                .held_shards()
                .into_iter()
                .filter(|n| !lost.contains(n))
                .collect();
            self.keep_only(&kept);
        }
        Ok(())
    }

    /// Takes the lease of each shard of `mine` this run lacks and nobody holds, loading (and
    /// at once recording) where each stands.
    async fn take_free_shards(&mut self, mine: &[usize]) -> Result<(), StoreError> {
        let missing: Vec<usize> = mine
            .iter()
            .copied()
            .filter(|n| !self.held.iter().any(|(h, _)| h == n))
            .collect();
        let taken = self
            .store
            .take_feed_leases(self.holder, &missing, LEASE_TTL)
            .await?;
        if taken.is_empty() {
            return Ok(());
        }
        self.report.taken += taken.len() as u64;
        let positions = self.store.feed_positions(&taken).await?;
        // Recorded at once: for a shard no run read yet, what is appended from now on is this
        // run's or the next one's to publish, even if this one ends before its next tick.
        let lost = self
            .store
            .save_feed_positions(self.holder, &positions)
            .await?;
        self.held
            .extend(positions.into_iter().filter(|(n, _)| !lost.contains(n)));
        self.held.sort_unstable();
        Ok(())
    }

    /// Publishes a tick's messages, renewing the held leases every
    /// [`RENEW_WHILE_PUBLISHING`] until done; answers the shards still held. A renewal that
    /// fails (Redis unreachable) is logged and publishing goes on: the next tick's renewal
    /// decides.
    async fn publish_keeping_leases(&self, messages: Vec<(String, String)>) -> Vec<usize> {
        let mut shards = self.held_shards();
        let publish = publish_all(messages, &self.out, &self.stats);
        tokio::pin!(publish);
        let mut renew_at = Instant::now() + RENEW_WHILE_PUBLISHING;
        loop {
            tokio::select! {
                () = &mut publish => return shards,
                () = tokio::time::sleep_until(renew_at) => {
                    renew_at += RENEW_WHILE_PUBLISHING;
                    match self.store.renew_feed_leases(self.holder, &shards, LEASE_TTL).await {
                        Ok(kept) => shards = kept,
                        Err(e) => {
                            tracing::warn!(error = %e, "feed leases not renewed while publishing");
                        }
                    }
                }
            }
        }
    }
}
