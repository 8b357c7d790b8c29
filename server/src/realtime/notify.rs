//! The put path's side of realtime: a put's changes, handed to a sink without waiting.

use crate::store::Applied;
use async_trait::async_trait;
use cubewalk_protocol::messages::ChunkEdits;
use cubewalk_protocol::realtime::{Change, MAX_EDITS_IN_CHANGE};
use cubewalk_protocol::WorldId;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Where a put's changes go once the store applied them. Never waits for a follower: a
/// local queue, or one store command in AWS.
#[async_trait]
pub trait ChangeSink: Send + Sync {
    /// Queues `changes` of `world` for publishing. A change that cannot be queued is dropped
    /// (and counted): followers see the gap in the chunk's write sequence and refetch.
    async fn send(&self, world: &WorldId, changes: Vec<Change>);
}

/// The players' open realtime sessions (the local gate's; IoT Core re-runs its authorizer
/// instead, which refuses a banned player).
#[async_trait]
pub trait Sessions: Send + Sync {
    /// Closes every session of `player`; answers how many.
    async fn close_player(&self, player: &str) -> usize;
}

/// What the put path holds: where changes go and whose sessions a ban closes.
#[derive(Clone)]
pub struct Notifier {
    /// Where changes go.
    pub sink: Arc<dyn ChangeSink>,
    /// The open sessions, when this process knows them.
    pub sessions: Option<Arc<dyn Sessions>>,
}

impl Notifier {
    /// Queues `changes` (nothing when empty).
    pub async fn notify(&self, world: &WorldId, changes: Vec<Change>) {
        if !changes.is_empty() {
            self.sink.send(world, changes).await;
        }
    }
}

/// Most changes queued in-process before new ones are dropped (a publisher far behind).
pub const CHANNEL_CAPACITY: usize = 65_536;

/// The in-process sink: a bounded queue read by [`crate::realtime::run_publisher`].
pub struct ChannelSink {
    tx: mpsc::Sender<(WorldId, Change)>,
    dropped: AtomicU64,
}

impl ChannelSink {
    /// Changes dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// A sink and the receiving end its publisher reads.
pub fn channel() -> (Arc<ChannelSink>, mpsc::Receiver<(WorldId, Change)>) {
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let sink = ChannelSink {
        tx,
        dropped: AtomicU64::new(0),
    };
    (Arc::new(sink), rx)
}

#[async_trait]
impl ChangeSink for ChannelSink {
    async fn send(&self, world: &WorldId, changes: Vec<Change>) {
        for change in changes {
            if self.tx.try_send((world.clone(), change)).is_err() {
                crate::metrics::add(crate::metrics::Metric::ChangesDropped, 1);
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(dropped = n, "realtime queue full: changes dropped");
                }
            }
        }
    }
}

/// The changes of a put: one per chunk the put changed, carrying the put's own edits to that
/// chunk (last value per cube), which applied to the previous content give exactly the new
/// content because the store applied them inside its check-and-set.
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
                from_seq: a.from_seq,
                seq: a.seq,
                edits: (last.len() <= MAX_EDITS_IN_CHANGE).then(|| last.into_iter().collect()),
            })
        })
        .collect()
}
