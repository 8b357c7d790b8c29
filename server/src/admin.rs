//! Admin operations as plain functions over the store (and, where connections are involved,
//! the realtime notifier): the REST admin API (`handlers::admin`) and the `cubewalk-server
//! admin` commands are thin shells around them.
//!
//! - History: a chunk's log, a player's edits in a world.
//! - Rollback: puts back each cube a player changed since a time to its value before their
//!   first change, where no one else changed it since and it still holds the player's value;
//!   cubes others changed since are reported, never overwritten. The rollback is itself a
//!   logged edit (by the admin) and its changes reach followers like any put's.
//! - Ban and unban: a banned player's puts and new realtime connections are refused; banning
//!   also closes the sessions they hold where this process knows them (`serve`'s gate; in AWS,
//!   IoT Core's next authorizer refresh ends them).

use crate::realtime::{changes, Notifier};
use crate::store::{Applied, ChunkStore, ExpectedEdit, LogRecord, StoreError};
use cubewalk_protocol::{ChunkKey, CubeRef, WorldId};
use serde::Serialize;
use std::collections::BTreeMap;

/// Player index entries are written with the function's clock, log ids with the store's: look
/// this much further back in the index so a clock a little ahead cannot hide an edit.
const CLOCK_MARGIN_MS: u64 = 60_000;

/// One of a player's logged writes, with its chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlayerEdit {
    /// The chunk written.
    pub chunk: ChunkKey,
    /// The log record.
    #[serde(flatten)]
    pub record: LogRecord,
}

/// A cube a rollback left alone because someone else changed it after the player did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// Its chunk.
    pub chunk: ChunkKey,
    /// Its index in the chunk.
    pub index: u16,
    /// The value it holds now.
    pub current: i32,
}

/// What a rollback did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Rollback {
    /// Cubes put back.
    pub restored: usize,
    /// Chunks changed, with their revision afterwards.
    pub chunks: Vec<(ChunkKey, u64)>,
    /// Cubes changed by others since, left as they are.
    pub conflicts: Vec<Conflict>,
}

/// The log of `chunk` since `since_ms`.
pub async fn chunk_history(
    store: &dyn ChunkStore,
    world: &WorldId,
    chunk: ChunkKey,
    since_ms: u64,
) -> Result<Vec<LogRecord>, StoreError> {
    store.chunk_log(world, chunk, since_ms).await
}

/// `player`'s logged writes in `world` since `since_ms`, oldest first.
pub async fn player_history(
    store: &dyn ChunkStore,
    world: &WorldId,
    player: &str,
    since_ms: u64,
) -> Result<Vec<PlayerEdit>, StoreError> {
    let mut out = Vec::new();
    for chunk in store
        .player_chunks(world, player, since_ms.saturating_sub(CLOCK_MARGIN_MS))
        .await?
    {
        for record in store.chunk_log(world, chunk, since_ms).await? {
            if record.player == player {
                out.push(PlayerEdit { chunk, record });
            }
        }
    }
    out.sort_by(|a, b| (a.record.at_ms, &a.record.id).cmp(&(b.record.at_ms, &b.record.id)));
    Ok(out)
}

/// What the log says about one cube since the rollback's start.
struct CubeStory {
    /// The value before the player's first change.
    before: i32,
    /// The value after the player's last change.
    last: i32,
    /// Whether anyone else changed it after the player's first change.
    touched_by_others: bool,
}

/// The cubes of one chunk's log that `player` changed, and what happened to each since.
fn stories(log: &[LogRecord], player: &str) -> BTreeMap<u16, CubeStory> {
    let mut out: BTreeMap<u16, CubeStory> = BTreeMap::new();
    for record in log {
        for c in &record.changes {
            match (out.get_mut(&c.index), record.player == player) {
                (Some(story), true) => story.last = c.after,
                (Some(story), false) => story.touched_by_others = true,
                (None, true) => {
                    out.insert(
                        c.index,
                        CubeStory {
                            before: c.before,
                            last: c.after,
                            touched_by_others: false,
                        },
                    );
                }
                (None, false) => {}
            }
        }
    }
    out
}

/// Rolls back `player`'s edits in `world` since `since_ms`, as `actor` (see the module
/// documentation), telling followers through `notifier`.
pub async fn rollback(
    store: &dyn ChunkStore,
    notifier: Option<&Notifier>,
    world: &WorldId,
    player: &str,
    since_ms: u64,
    actor: &str,
) -> Result<Rollback, StoreError> {
    let mut report = Rollback::default();
    let chunks = store
        .player_chunks(world, player, since_ms.saturating_sub(CLOCK_MARGIN_MS))
        .await?;
    for chunk in chunks {
        let log = store.chunk_log(world, chunk, since_ms).await?;
        let stories = stories(&log, player);
        if stories.is_empty() {
            continue;
        }
        let current = store.fetch(world, &[chunk]).await?;
        let cubes = cubewalk_protocol::codec::decode_chunk(
            current.first().map(|c| c.blob.as_slice()).unwrap_or(&[]),
        )
        .map_err(|e| StoreError::Corrupt {
            world: world.to_string(),
            key: chunk,
            reason: e.to_string(),
        })?;
        let mut edits = Vec::new();
        for (&index, story) in &stories {
            let now = cubes[usize::from(index)];
            if now == story.before {
                continue; // already back (an earlier rollback, or someone put it back)
            }
            if story.touched_by_others || now != story.last {
                report.conflicts.push(Conflict {
                    chunk,
                    index,
                    current: now,
                });
                continue;
            }
            edits.push(ExpectedEdit {
                index,
                expect: story.last,
                value: story.before,
            });
        }
        if edits.is_empty() {
            continue;
        }
        // Conditional: a cube someone changed between our read and this write is left alone
        // and reported.
        let (applied, mismatched) = store.apply_expected(world, chunk, &edits, actor).await?;
        for index in &mismatched {
            report.conflicts.push(Conflict {
                chunk,
                index: *index,
                current: cubes[usize::from(*index)],
            });
        }
        let done: Vec<CubeRef> = edits
            .iter()
            .filter(|e| !mismatched.contains(&e.index))
            .map(|e| CubeRef {
                index: e.index,
                value: e.value,
            })
            .collect();
        report.restored += done.len();
        if applied.changed_from.is_some() {
            report.chunks.push((chunk, applied.revision));
            notify(notifier, world, chunk, done, applied).await;
        }
    }
    Ok(report)
}

async fn notify(
    notifier: Option<&Notifier>,
    world: &WorldId,
    chunk: ChunkKey,
    edits: Vec<CubeRef>,
    applied: Applied,
) {
    if let Some(notifier) = notifier {
        notifier
            .notify(world, changes(&[(chunk, edits)], &[applied]))
            .await;
    }
}

/// Bans or unbans `player`; a ban also closes the realtime sessions they hold where this
/// process knows them (the local gate's) and answers how many were closed. (IoT Core re-runs
/// the broker authorizer, which refuses a banned player, within its refresh interval.)
pub async fn set_banned(
    store: &dyn ChunkStore,
    notifier: Option<&Notifier>,
    player: &str,
    banned: bool,
) -> Result<usize, StoreError> {
    store.set_banned(player, banned).await?;
    match notifier
        .and_then(|n| n.sessions.as_ref())
        .filter(|_| banned)
    {
        Some(sessions) => Ok(sessions.close_player(player).await),
        None => Ok(0),
    }
}
