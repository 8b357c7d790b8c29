//! The publishing loop: every tick, what the sink queued since the last one goes out as one
//! message per region.

use super::coalesce::Coalescer;
use crate::metrics::{self, Metric};
use async_trait::async_trait;
use cubewalk_protocol::realtime::{Change, TICK_MS};
use cubewalk_protocol::WorldId;
use futures_util::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Sends one message to a topic (QoS 0: a follower that misses one sees the gap in the
/// chunk's write sequence and refetches).
#[async_trait]
pub trait Publish: Send + Sync {
    /// Publishes `payload` on `topic`.
    async fn publish(&self, topic: &str, payload: String) -> Result<(), String>;
}

/// What the publisher did so far (benchmarks and tests read it; the operators' metrics,
/// `ChangesPublished` and `ChangesDropped`, count the same outcomes process-wide).
#[derive(Debug, Default)]
pub struct PublishStats {
    /// Changes taken from the queue.
    pub changes: AtomicU64,
    /// Messages published.
    pub published: AtomicU64,
    /// Messages the broker refused or that failed to send.
    pub failed: AtomicU64,
}

/// Reads changes from `queue` and publishes them through `out`, one message per region per
/// `tick` (at most), until the queue's senders are all gone.
pub async fn run_publisher(
    mut queue: mpsc::Receiver<(WorldId, Change)>,
    out: Arc<dyn Publish>,
    tick: Option<Duration>,
    stats: Arc<PublishStats>,
) {
    let tick = tick.unwrap_or(Duration::from_millis(TICK_MS));
    let mut coalescer = Coalescer::new();
    let mut buffer = Vec::with_capacity(1024);
    loop {
        // Wait for the first change of a tick, then collect for one tick.
        if queue.recv_many(&mut buffer, 1024).await == 0 {
            return;
        }
        let deadline = tokio::time::Instant::now() + tick;
        loop {
            for (world, change) in buffer.drain(..) {
                coalescer.add(&world, change);
            }
            tokio::select! {
                n = queue.recv_many(&mut buffer, 1024) => if n == 0 { break },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        for (world, change) in buffer.drain(..) {
            coalescer.add(&world, change);
        }
        stats
            .changes
            .fetch_add(coalescer.added() as u64, Ordering::Relaxed);
        publish_all(coalescer.take(), &out, &stats).await;
    }
}

/// Most messages being published at once: with IoT Core answering a post in about 20 ms,
/// about 1,500 messages a second per publisher (the benchmark's `publisher` measures it).
pub const PUBLISH_CONCURRENCY: usize = 32;

/// Publishes a tick's messages, several at once, counting each outcome in `stats`.
pub(crate) async fn publish_all(
    messages: Vec<(String, String)>,
    out: &Arc<dyn Publish>,
    stats: &PublishStats,
) {
    futures_util::stream::iter(messages)
        .for_each_concurrent(PUBLISH_CONCURRENCY, |(topic, payload)| async move {
            match out.publish(&topic, payload).await {
                Ok(()) => {
                    metrics::add(Metric::ChangesPublished, 1);
                    stats.published.fetch_add(1, Ordering::Relaxed)
                }
                Err(e) => {
                    tracing::warn!(%topic, error = %e, "publish failed");
                    metrics::add(Metric::ChangesDropped, 1);
                    stats.failed.fetch_add(1, Ordering::Relaxed)
                }
            };
        })
        .await;
}
