//! Change notifications: after a put, every connection following a chunk it changed is told
//! the chunk's previous and new version and, when few cubes changed, the cube edits.
//!
//! Delivery is best effort and bounded: posts run concurrently (at most
//! [`NotifyLimits::concurrency`] at once) and all of them together within
//! [`NotifyLimits::deadline`]; a failed or late delivery never fails the put. A subscriber that
//! misses a message is never silently wrong: the next change it sees names a previous version
//! it does not hold, and it refetches (see [`cubewalk_protocol::realtime`]).

use super::index::Subscriptions;
use crate::store::Applied;
use async_trait::async_trait;
use cubewalk_protocol::messages::ChunkEdits;
use cubewalk_protocol::realtime::{Change, MAX_EDITS_IN_CHANGE};
use cubewalk_protocol::WorldId;
use futures_util::stream::{self, StreamExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Why a message could not be posted to a connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The connection no longer exists (API Gateway answered 410 Gone).
    #[error("connection gone")]
    Gone,
    /// Anything else (throttled, timed out, unreachable); the connection may still exist.
    #[error("delivery failed: {0}")]
    Failed(String),
}

/// Posts messages to WebSocket connections: the API Gateway Management API in AWS and behind
/// the local gateway (see `ManagementApi`), or an in-process fake in tests.
#[async_trait]
pub trait Delivery: Send + Sync {
    /// Sends `data` as one text message to `connection`.
    async fn post(&self, connection: &str, data: &str) -> Result<(), DeliveryError>;
    /// Closes `connection` (a ban); a connection already gone is not an error.
    async fn close(&self, connection: &str) -> Result<(), DeliveryError>;
}

/// Bounds on the work one put spends notifying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyLimits {
    /// Everything (index lookup and posts) must finish within this; what has not is dropped.
    pub deadline: Duration,
    /// Most posts in flight at once.
    pub concurrency: usize,
}

impl Default for NotifyLimits {
    /// 2 s and 64 posts at once: a put waits at most 2 s longer, well inside API Gateway's
    /// 29 s, and a Lambda never works on after it answered (it may be frozen then).
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(2),
            concurrency: 64,
        }
    }
}

/// Where a put's changes go: the subscription index and the delivery, with their limits.
#[derive(Clone)]
pub struct Notifier {
    /// Who follows what.
    pub index: Arc<dyn Subscriptions>,
    /// How messages reach connections.
    pub delivery: Arc<dyn Delivery>,
    /// Time and concurrency bounds.
    pub limits: NotifyLimits,
}

/// What one notification round did (logged; tests and benchmarks read it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Notified {
    /// Messages posted successfully.
    pub delivered: usize,
    /// Connections found gone (and removed from the index).
    pub gone: usize,
    /// Posts that failed otherwise, or did not finish before the deadline.
    pub failed: usize,
}

/// The change messages of a put: one per chunk the put changed, carrying the put's own edits
/// to that chunk (last value per cube), which applied to the previous content give exactly the
/// new content because the store applied them inside its check-and-set.
pub fn changes(grouped: &[ChunkEdits], applied: &[Applied]) -> Vec<Change> {
    grouped
        .iter()
        .zip(applied)
        .filter_map(|((chunk, cubes), a)| {
            let previous = a.changed_from?;
            let last: BTreeMap<u16, i32> = cubes.iter().map(|c| (c.index, c.value)).collect();
            Some(Change {
                chunk: *chunk,
                previous,
                version: a.revision,
                seq: a.seq,
                edits: (last.len() <= MAX_EDITS_IN_CHANGE).then(|| last.into_iter().collect()),
            })
        })
        .collect()
}

impl Notifier {
    /// Tells every follower of each changed chunk; never fails, always within the deadline.
    pub async fn notify(&self, world: &WorldId, changes: &[Change]) -> Notified {
        if changes.is_empty() {
            return Notified::default();
        }
        let (mut report, mut posts) = (Notified::default(), 0);
        let finished = tokio::time::timeout(
            self.limits.deadline,
            self.deliver(world, changes, &mut report, &mut posts),
        )
        .await;
        // Whatever was neither delivered nor found gone failed, or was cut off by the deadline.
        report.failed = posts - report.delivered - report.gone;
        if finished.is_err() {
            tracing::warn!(?report, "notification deadline reached");
        }
        report
    }

    /// Posts every change to its followers, counting the posts in `posts` and their outcomes
    /// in `report` as they finish.
    async fn deliver(
        &self,
        world: &WorldId,
        changes: &[Change],
        report: &mut Notified,
        posts: &mut usize,
    ) {
        let chunks: Vec<_> = changes.iter().map(|c| c.chunk).collect();
        let followers = match self.index.followers(world, &chunks).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "subscription index unavailable: nothing notified");
                return;
            }
        };
        let messages: Vec<(String, String)> = changes
            .iter()
            .zip(followers)
            .flat_map(|(change, conns)| {
                let text = change.to_text();
                conns.into_iter().map(move |c| (c, text.clone()))
            })
            .collect();
        *posts = messages.len();
        let mut results = stream::iter(messages)
            .map(|(conn, text)| async move {
                let r = self.delivery.post(&conn, &text).await;
                (conn, r)
            })
            .buffer_unordered(self.limits.concurrency.max(1));
        while let Some((conn, result)) = results.next().await {
            match result {
                Ok(()) => report.delivered += 1,
                Err(DeliveryError::Gone) => {
                    report.gone += 1;
                    if let Err(e) = self.index.disconnect(&conn).await {
                        tracing::warn!(error = %e, "could not forget a gone connection");
                    }
                }
                Err(DeliveryError::Failed(e)) => tracing::warn!(error = %e, "delivery failed"),
            }
        }
    }
}
