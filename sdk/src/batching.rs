//! How one logical fetch or put becomes requests: fetches split by the per-request chunk and
//! URL limits, puts grouped by chunk (one chunk's edits never split) and packed within the
//! per-request limits, and the batches sent concurrently.

use crate::error::{Error, Result};
use crate::transport::Transport;
use cubewalk_protocol::limits::{MAX_CHUNKS_PER_FETCH, MAX_CHUNKS_PER_PUT, MAX_EDITS_PER_PUT};
use cubewalk_protocol::messages::{group_by_chunk, ChunkEdits, CubeRef};
use cubewalk_protocol::{
    ChunkEdit, ChunkKey, FetchQuery, IdempotencyKey, PutRequest, VersionEntry, WorldId, CHUNK_CUBES,
};
use futures_util::future::join_all;
use rand::Rng;
use std::sync::Arc;
use tokio::time::Instant;

/// Longest `chunks` parameter the client puts in one URL; the server accepts 8192, and API
/// Gateway's URL limit is about 10 KB, so this leaves room for the rest of the URL.
const FETCH_PARAM_BUDGET: usize = 6000;

/// Splits a fetch into queries within the per-request chunk and URL limits.
pub(crate) fn fetch_batches(
    world: &WorldId,
    chunks: &[(ChunkKey, Option<u64>)],
) -> Vec<FetchQuery> {
    let mut batches = Vec::new();
    let mut current = FetchQuery {
        world: world.clone(),
        chunks: Vec::new(),
    };
    let mut param_len = 0;
    for &(key, held) in chunks {
        // Upper bound of one entry: three i32, two commas, '@', a u64 and ';'.
        let entry_len = key.to_string().len() + held.map_or(0, |v| 1 + v.to_string().len()) + 1;
        if current.chunks.len() == MAX_CHUNKS_PER_FETCH
            || (param_len + entry_len > FETCH_PARAM_BUDGET && !current.chunks.is_empty())
        {
            batches.push(std::mem::replace(
                &mut current,
                FetchQuery {
                    world: world.clone(),
                    chunks: Vec::new(),
                },
            ));
            param_len = 0;
        }
        current.chunks.push((key, held));
        param_len += entry_len;
    }
    if !current.chunks.is_empty() {
        batches.push(current);
    }
    batches
}

/// Validates edits and groups them per chunk (chunks in first-appearance order, as the server
/// does), keeping only the last edit of each cube so no chunk carries more than 4096 edits.
pub(crate) fn group_edits(edits: &[ChunkEdit]) -> Result<Vec<ChunkEdits>> {
    let mut grouped = group_by_chunk(edits)
        .map_err(|(i, err)| Error::InvalidArgument(format!("edit {i}: {err}")))?;
    for (_, cubes) in &mut grouped {
        let mut seen = [false; CHUNK_CUBES];
        let mut kept: Vec<CubeRef> = cubes
            .iter()
            .rev()
            .filter(|c| !std::mem::replace(&mut seen[usize::from(c.index)], true))
            .copied()
            .collect();
        kept.reverse();
        *cubes = kept;
    }
    Ok(grouped)
}

/// Packs grouped edits into requests within the per-request edit and chunk limits, never
/// splitting one chunk's edits across requests.
pub(crate) fn put_batches(world: &WorldId, grouped: Vec<ChunkEdits>) -> Vec<PutRequest> {
    let request = |edits| PutRequest {
        world: world.clone(),
        idempotency_key: Some(new_idempotency_key()),
        edits,
    };
    let mut batches = Vec::new();
    let mut current: Vec<ChunkEdit> = Vec::new();
    let mut chunks = 0;
    for (key, cubes) in grouped {
        if chunks == MAX_CHUNKS_PER_PUT || current.len() + cubes.len() > MAX_EDITS_PER_PUT {
            batches.push(request(std::mem::take(&mut current)));
            chunks = 0;
        }
        current.extend(
            cubes
                .into_iter()
                .map(|c| ChunkEdit::at_index(key, c.index, c.value)),
        );
        chunks += 1;
    }
    if !current.is_empty() {
        batches.push(request(current));
    }
    batches
}

/// 128 random bits: a fresh key for each request of each logical put.
fn new_idempotency_key() -> IdempotencyKey {
    let bits: u128 = rand::rng().random();
    IdempotencyKey::new(&format!("{bits:032x}")).expect("32 hex digits make a valid key")
}

/// The chunks a put request touches, in order (its edits are grouped by chunk).
pub(crate) fn chunks_of(request: &PutRequest) -> Vec<ChunkKey> {
    let mut chunks: Vec<ChunkKey> = Vec::new();
    for e in &request.edits {
        if chunks.last() != Some(&e.chunk) {
            chunks.push(e.chunk);
        }
    }
    chunks
}

/// How long after its last possible send a put request can still apply on the server: API
/// Gateway gives up on a request after 29 s, so the function starts within that, and the store
/// stops retrying a put 10 s after the function started it. A put whose fence could not be
/// recorded holds its chunks' place in line this long, so no later put of them can be
/// overtaken by it.
pub(crate) const FENCE_HORIZON: std::time::Duration = std::time::Duration::from_secs(45);

/// Whether a put that failed with `e` may have applied on the server anyway: its request was
/// sent and then the answer did not come (timeout, broken connection), or came as a server
/// failure that may have struck after some chunks were written. Refusals (4xx) are answered
/// before anything is written.
pub(crate) fn may_have_applied(e: &Error) -> bool {
    match e {
        Error::Timeout(_) | Error::Network { .. } | Error::Protocol(_) | Error::Cancelled => true,
        Error::Server { status, .. } => *status >= 500,
        _ => false,
    }
}

/// The outcome of a put's requests after fencing: the chunks confirmed applied and, if some
/// were not, why, and whether their fate is known.
pub(crate) struct PutOutcome {
    /// The answer for the caller.
    pub(crate) result: Result<Vec<VersionEntry>>,
    /// True when some request may still apply (its fence could not be recorded): its
    /// chunks' later puts must wait out [`FENCE_HORIZON`].
    pub(crate) unsettled: bool,
}

/// Sends a put's requests (concurrently when several) and waits for all of them, so that a
/// failure can say which chunks were applied. A request whose answer never came is fenced
/// (see [`Transport::cancel_put`]) within `fence_budget`, so that when this returns it either
/// applied (and its chunks are listed) or never will, unless the fence itself could not
/// reach the server (then [`PutOutcome::unsettled`]).
pub(crate) async fn run_put_batches(
    transport: &Transport,
    batches: &[PutRequest],
    deadline: Instant,
    fence_budget: std::time::Duration,
) -> PutOutcome {
    let total: usize = batches.iter().map(|b| chunks_of(b).len()).sum();
    let single = batches.len() == 1;
    // Concurrent within this task: each waits on the network, and every one is awaited (none
    // dropped half way) so the answer can say which were applied.
    let parts = join_all(batches.iter().map(|batch| async move {
        let result = transport.put_batch(batch, deadline).await;
        match result {
            Err(e) if may_have_applied(&e) => fence(transport, batch, e, fence_budget).await,
            other => (other, false),
        }
    }))
    .await;
    let mut applied = Vec::new();
    let mut cause = None;
    let mut unsettled = false;
    for (part, open) in parts {
        unsettled |= open;
        match part {
            Ok(entries) => applied.extend(entries),
            Err(Error::PartialPut {
                applied: some,
                cause: why,
                ..
            }) => {
                applied.extend(some);
                cause.get_or_insert(*why);
            }
            Err(e) => {
                cause.get_or_insert(e);
            }
        }
    }
    let result = match cause {
        None => Ok(applied),
        Some(cause) if single && applied.is_empty() => Err(cause),
        Some(cause) => Err(Error::PartialPut {
            applied,
            total,
            cause: Box::new(cause),
        }),
    };
    PutOutcome { result, unsettled }
}

/// Fences one request that failed with `cause` after it may have reached the server: answers
/// what it did (all applied: its entries; some: a partial put; none: `cause`, and it never
/// will) and whether it stays unsettled (the fence failed too).
async fn fence(
    transport: &Transport,
    batch: &PutRequest,
    cause: Error,
    budget: std::time::Duration,
) -> (Result<Vec<VersionEntry>>, bool) {
    match transport.cancel_put(batch, Instant::now() + budget).await {
        Ok(resp) if resp.cancelled.is_empty() => {
            // It had applied everywhere: the put succeeded after all. Entries in the
            // request's order, as a put answers.
            let order = chunks_of(batch);
            let mut entries = resp.applied;
            entries.sort_by_key(|e| order.iter().position(|k| *k == e.key));
            (Ok(entries), false)
        }
        Ok(resp) if resp.applied.is_empty() => (Err(cause), false),
        Ok(resp) => {
            let total = resp.applied.len() + resp.cancelled.len();
            (
                Err(Error::PartialPut {
                    applied: resp.applied,
                    total,
                    cause: Box::new(cause),
                }),
                false,
            )
        }
        Err(_) => (Err(cause), true),
    }
}

/// Sends every batch with `send` and concatenates the answers in batch order. A single batch
/// (the common case) runs in place, with no extra task and no hop to another worker thread;
/// several run concurrently.
pub(crate) async fn run_batches<S, B, T, F, Fut>(
    ctx: &Arc<S>,
    mut batches: Vec<B>,
    send: F,
) -> Result<Vec<T>>
where
    B: Send + 'static,
    T: Send + 'static,
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, B) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>>> + Send + 'static,
{
    if batches.len() == 1 {
        let only = batches.pop().expect("one batch");
        return send(ctx.clone(), only).await;
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (n, batch) in batches.into_iter().enumerate() {
        let run = send(ctx.clone(), batch);
        tasks.spawn(async move { (n, run.await) });
    }
    let mut parts: Vec<Option<Vec<T>>> = (0..tasks.len()).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (n, result) = joined.map_err(|e| Error::Internal(e.to_string()))?;
        parts[n] = Some(result?);
    }
    Ok(parts.into_iter().flatten().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_splits_by_count_and_url_length() {
        let w = WorldId::default();
        let small: Vec<_> = (0..729)
            .map(|i| (ChunkKey::new(i % 9, i / 81, (i / 9) % 9), None))
            .collect();
        let b = fetch_batches(&w, &small);
        assert_eq!(
            b.iter().map(|q| q.chunks.len()).collect::<Vec<_>>(),
            vec![256, 256, 217]
        );
        let wide: Vec<_> = (0..256)
            .map(|i| {
                (
                    ChunkKey::new(i32::MIN + i, i32::MIN, i32::MIN),
                    Some(u64::MAX),
                )
            })
            .collect();
        let b = fetch_batches(&w, &wide);
        assert!(b.len() > 1);
        for q in &b {
            let qs = q.to_query_string();
            let param = qs.split("chunks=").nth(1).unwrap();
            assert!(param.len() <= FETCH_PARAM_BUDGET, "{}", param.len());
        }
        assert_eq!(b.iter().map(|q| q.chunks.len()).sum::<usize>(), 256);
    }

    #[test]
    fn put_groups_dedupes_and_splits_by_chunk() {
        let k = ChunkKey::new(0, 0, 0);
        let mut edits: Vec<ChunkEdit> = (0..20_000)
            .map(|i| ChunkEdit::at_index(k, (i % 4096) as u16, i))
            .collect();
        edits.push(ChunkEdit::at_index(ChunkKey::new(1, 0, 0), 0, 1));
        let g = group_edits(&edits).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].1.len(), 4096);
        // The last edit of cube 0 wins: 16384 + ... the largest i with i % 4096 == 0 below 20000.
        assert!(g[0].1.contains(&CubeRef {
            index: 0,
            value: 16384
        }));
        let many: Vec<ChunkEdit> = (0..600)
            .flat_map(|c| (0..40).map(move |i| ChunkEdit::at_index(ChunkKey::new(c, 0, 0), i, 1)))
            .collect();
        let batches = put_batches(&WorldId::default(), group_edits(&many).unwrap());
        for b in &batches {
            assert!(b.edits.len() <= MAX_EDITS_PER_PUT);
            let mut keys: Vec<_> = b.edits.iter().map(|e| e.chunk).collect();
            keys.dedup();
            assert!(keys.len() <= MAX_CHUNKS_PER_PUT);
        }
        assert_eq!(batches.iter().map(|b| b.edits.len()).sum::<usize>(), 24_000);
        let bad = [ChunkEdit {
            chunk: k,
            index: Some(4096),
            local: None,
            value: 1,
        }];
        assert!(matches!(group_edits(&bad), Err(Error::InvalidArgument(_))));
    }
}
