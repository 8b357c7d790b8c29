//! Realtime in the deployed stack: puts append their changes to the Redis change feed
//! ([`RedisSink`]), and one publisher at a time ([`run_feed_publisher`], the publisher Lambda)
//! reads the feed every tick, coalesces it per region and publishes to AWS IoT Core.

use super::coalesce::Coalescer;
use super::notify::ChangeSink;
use super::publish::{publish_all, Publish, PublishStats};
use crate::store::RedisStore;
use async_trait::async_trait;
use cubewalk_protocol::realtime::{Change, TICK_MS};
use cubewalk_protocol::WorldId;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

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

/// How long the lease lasts without renewal: a publisher that died is replaced within this.
pub const LEASE_TTL: Duration = Duration::from_secs(10);

/// What one publisher run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FeedReport {
    /// Whether it held the lease (and so published) at all.
    pub held: bool,
    /// Ticks run.
    pub ticks: u64,
    /// Changes read from the feed.
    pub changes: u64,
    /// Messages published.
    pub published: u64,
    /// Messages that failed.
    pub failed: u64,
}

/// Publishes the feed until `until`: waits (up to then) for the lease, so a run started
/// while another holds it takes over the moment that one lets go; then every `tick` reads what
/// is new, publishes one message per changed region through `out`, and records its place, so
/// the next run goes on from there.
pub async fn run_feed_publisher(
    store: &RedisStore,
    out: Arc<dyn Publish>,
    holder: &str,
    until: tokio::time::Instant,
    tick: Option<Duration>,
) -> Result<FeedReport, crate::store::StoreError> {
    let tick = tick.unwrap_or(Duration::from_millis(TICK_MS));
    let mut report = FeedReport::default();
    while !store.take_publisher_lease(holder, LEASE_TTL).await? {
        if tokio::time::Instant::now() + tick >= until {
            return Ok(report);
        }
        tokio::time::sleep(tick / 2).await;
    }
    report.held = true;
    let stats = Arc::new(PublishStats::default());
    let result = publish_while_held(store, &out, holder, until, tick, &stats, &mut report).await;
    let _ = store.release_publisher_lease(holder).await;
    report.published = stats.published.load(Ordering::Relaxed);
    report.failed = stats.failed.load(Ordering::Relaxed);
    result.map(|()| report)
}

async fn publish_while_held(
    store: &RedisStore,
    out: &Arc<dyn Publish>,
    holder: &str,
    until: tokio::time::Instant,
    tick: Duration,
    stats: &Arc<PublishStats>,
    report: &mut FeedReport,
) -> Result<(), crate::store::StoreError> {
    let mut positions = store.feed_positions().await?;
    // Recorded at once: what is appended from now on is the next run's to publish, even if
    // this one ends before its first tick.
    let all: Vec<(usize, String)> = positions.iter().cloned().enumerate().collect();
    store.save_feed_positions(&all).await?;
    let mut coalescer = Coalescer::new();
    let mut next = tokio::time::Instant::now();
    while next < until {
        tokio::time::sleep_until(next).await;
        next += tick;
        report.ticks += 1;
        if !store.renew_publisher_lease(holder, LEASE_TTL).await? {
            tracing::warn!("publisher lease lost: another publisher took over");
            return Ok(());
        }
        let read = store.read_feed(&mut positions).await?;
        if read.unreadable > 0 {
            tracing::warn!(entries = read.unreadable, "unreadable feed entries skipped");
        }
        report.changes += read.changes.len() as u64;
        for (world, change) in read.changes {
            coalescer.add(&world, change);
        }
        publish_all(coalescer.take(), out, stats).await;
        store.save_feed_positions(&read.positions).await?;
    }
    Ok(())
}
