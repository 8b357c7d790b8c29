//! The library's global state: one tokio runtime, the current client, and the table of
//! non-blocking requests. Results wait in the table until the caller's thread collects them
//! with `cw_poll`, so no library thread ever touches caller memory or calls into the caller.

use super::types::{CwChunkKey, CwChunkVersion};
use crate::client::{Client, FetchedBlob, FetchedChunk};
use crate::error::{Error, Result, Status};
use crate::realtime::{Realtime, RealtimeState};
use cubewalk_protocol::{VersionEntry, CHUNK_CUBES};
use futures_util::FutureExt;
use once_cell::sync::Lazy;
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::{oneshot, watch};
use tokio::task::AbortHandle;

struct Global {
    runtime: Option<Runtime>,
    client: Option<Client>,
    /// Set to true by `cw_shutdown` so blocking calls return `Cancelled` before the runtime
    /// they poll stops.
    cancel: Option<watch::Sender<bool>>,
    /// The realtime connection, when started (`cw_realtime_start`).
    realtime: Option<Realtime>,
}

static GLOBAL: Lazy<Mutex<Global>> = Lazy::new(|| {
    Mutex::new(Global {
        runtime: None,
        client: None,
        cancel: None,
        realtime: None,
    })
});

/// Blocking calls currently inside the runtime; `shutdown` waits (briefly) for them to leave.
static BLOCKING: AtomicUsize = AtomicUsize::new(0);
/// Longest `cw_shutdown` waits for cancelled blocking calls to return.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

static REQUESTS: Lazy<Mutex<HashMap<u64, Pending>>> = Lazy::new(|| Mutex::new(HashMap::new()));
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Signalled whenever a `cw_poll` has finished writing a result (paired with `REQUESTS`).
static WRITTEN: Condvar = Condvar::new();
/// Ids below this were issued before the last `cw_shutdown`: unknown ones poll `Cancelled`.
static CANCELLED_BELOW: AtomicU64 = AtomicU64::new(0);

/// Locks ignoring poison: every critical section leaves the maps consistent, and a panic
/// elsewhere must not make the library unusable for the rest of the game session.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Installs `client` as the current client, starting the runtime if needed. Requests already
/// in flight finish with the client they started with.
pub(crate) fn init(client: Client) -> Result<()> {
    let mut g = lock(&GLOBAL);
    if g.runtime.is_none() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cubewalk-io")
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start runtime: {e}")))?;
        g.runtime = Some(rt);
        g.cancel = Some(watch::channel(false).0);
    }
    g.client = Some(client);
    // Its token and settings were the old client's.
    g.realtime = None;
    Ok(())
}

/// Replaces the current client's token (see [`Client::set_token`]); the realtime connection
/// shares it.
pub(crate) fn set_token(token: &str) -> Result<()> {
    let g = lock(&GLOBAL);
    match &g.client {
        Some(client) => client.set_token(token),
        None => Err(Error::NotInitialized),
    }
}

/// Starts (or restarts) the realtime connection with the current client's settings.
pub(crate) fn start_realtime(endpoint: &str) -> Result<()> {
    let mut g = lock(&GLOBAL);
    let (Some(rt), Some(client)) = (&g.runtime, &g.client) else {
        return Err(Error::NotInitialized);
    };
    let _entered = rt.enter();
    let realtime = Realtime::start(client, endpoint)?;
    g.realtime = Some(realtime);
    Ok(())
}

/// Runs `f` on the realtime connection; `NotInitialized` when none was started.
pub(crate) fn with_realtime<T>(f: impl FnOnce(&Realtime) -> Result<T>) -> Result<T> {
    let g = lock(&GLOBAL);
    match &g.realtime {
        Some(r) => f(r),
        None => Err(Error::InvalidArgument(
            "the realtime connection is not started: call cw_realtime_start first".into(),
        )),
    }
}

/// Where the realtime connection stands, and what keeps changes from arriving: its last
/// problem when it is not connected, or the broker's refusal of the subscription.
pub(crate) fn realtime_state() -> (RealtimeState, Option<String>) {
    let g = lock(&GLOBAL);
    match &g.realtime {
        Some(r) => (r.state(), r.problem()),
        None => (RealtimeState::Off, None),
    }
}

/// Stops the realtime connection, if any.
pub(crate) fn stop_realtime() {
    let realtime = lock(&GLOBAL).realtime.take();
    drop(realtime);
}

/// Cancels everything in flight and stops the runtime without waiting for its threads. When
/// it returns, every request begun before it is forgotten (its memory freed), will poll
/// `Cancelled`, and will never write caller memory again: a `cw_poll` that was writing a
/// result when shutdown began has finished writing.
pub(crate) fn shutdown() {
    let (runtime, cancel) = {
        let mut g = lock(&GLOBAL);
        g.client = None;
        g.realtime = None;
        (g.runtime.take(), g.cancel.take())
    };
    {
        let mut table = lock(&REQUESTS);
        CANCELLED_BELOW.fetch_max(NEXT_ID.load(Ordering::Acquire), Ordering::AcqRel);
        // A cw_poll on another thread may be copying a result out: let it finish, so nothing
        // is written after we return.
        while table.values().any(|p| p.writing) {
            table = wait_written(table);
        }
        for (_, p) in table.drain() {
            p.abort.abort();
        }
    }
    if let Some(cancel) = cancel {
        let _ = cancel.send(true);
    }
    // Blocking calls poll their futures on their own threads; let them see the cancellation
    // and leave before the runtime's timers and sockets go away under them.
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while BLOCKING.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    if let Some(rt) = runtime {
        rt.shutdown_background();
    }
}

fn current() -> Result<(Handle, Client, watch::Receiver<bool>)> {
    let g = lock(&GLOBAL);
    match (&g.runtime, &g.client, &g.cancel) {
        (Some(rt), Some(c), Some(cancel)) => {
            Ok((rt.handle().clone(), c.clone(), cancel.subscribe()))
        }
        _ => Err(Error::NotInitialized),
    }
}

/// Counts a blocking call in `BLOCKING` for as long as it lives.
struct BlockingCall;

impl BlockingCall {
    fn enter() -> Self {
        BLOCKING.fetch_add(1, Ordering::AcqRel);
        Self
    }
}

impl Drop for BlockingCall {
    fn drop(&mut self) {
        BLOCKING.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs `make(client)` to completion on the calling thread (its I/O driven by the runtime),
/// or until `cw_shutdown` cancels it. Polling here rather than on a worker saves two thread
/// hand-offs per call, which is most of the SDK's overhead on a fast network.
pub(crate) fn block_on<T, F, Fut>(make: F) -> Result<T>
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let _call = BlockingCall::enter();
    let (handle, client, mut cancel) = current()?;
    let fut = make(client);
    handle.block_on(async move {
        tokio::select! {
            biased;
            _ = cancel.wait_for(|c| *c) => Err(Error::Cancelled),
            r = fut => r,
        }
    })
}

/// Where a finished request's results go: caller memory given at `*_begin`, written only
/// inside `cw_poll` on the caller's thread.
pub(crate) enum Outputs {
    /// A fetch.
    Fetch {
        /// `count` versions (read at begin, written at completion).
        versions: *mut u64,
        /// `count` buffers of 4096 cubes (the pointer array was copied at begin).
        buffers: Vec<*mut i32>,
        /// Optional `count` flags.
        changed: *mut u8,
    },
    /// A put.
    Put {
        /// `capacity` entries.
        out_versions: *mut CwChunkVersion,
        /// Written with the number of entries.
        out_count: *mut usize,
    },
}

// SAFETY: the pointers are only dereferenced by `cw_poll` / the blocking calls on the caller's
// own thread; the runtime threads never see them.
unsafe impl Send for Outputs {}

/// A finished request's value.
pub(crate) enum Outcome {
    /// Fetch result.
    Fetch(Result<Vec<FetchedChunk>>),
    /// Put result.
    Put(Result<Vec<VersionEntry>>),
    /// The request's task panicked (caught): reported as `Internal`.
    Panicked(String),
}

struct Pending {
    rx: oneshot::Receiver<Outcome>,
    abort: AbortHandle,
    /// Taken by the `cw_poll` that writes the result.
    outputs: Option<Outputs>,
    /// Set by that `cw_poll` while it writes (the entry leaves the table when it is done);
    /// `cw_cancel` and `cw_shutdown` wait on [`WRITTEN`] meanwhile, so that nothing is
    /// written after they return.
    writing: bool,
}

/// Starts `make(client)` and registers it; returns its request id. `make` runs now, on the
/// caller's thread (a put takes its place in line there); the future it returns runs on the
/// runtime.
pub(crate) fn begin<F, Fut>(make: F, outputs: Outputs) -> Result<u64>
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let (handle, client, _) = current()?;
    let (tx, rx) = oneshot::channel();
    let fut = make(client);
    let task = handle.spawn(async move {
        let outcome = AssertUnwindSafe(fut)
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Outcome::Panicked(super::guard::panic_message(&*panic)));
        let _ = tx.send(outcome);
    });
    let id = NEXT_ID.fetch_add(1, Ordering::AcqRel);
    lock(&REQUESTS).insert(
        id,
        Pending {
            rx,
            abort: task.abort_handle(),
            outputs: Some(outputs),
            writing: false,
        },
    );
    Ok(id)
}

/// Ids start at 1; those below the mark were handed out before the last shutdown.
fn issued_before_shutdown(id: u64) -> bool {
    id != 0 && id < CANCELLED_BELOW.load(Ordering::Acquire)
}

/// How many non-blocking requests the library holds (running, or finished and not yet
/// polled). 0 after `cw_shutdown`: nothing is kept for requests no one will poll.
pub fn pending_requests() -> usize {
    lock(&REQUESTS).len()
}

/// Begins a request whose task panics, to check that the panic is reported as `Internal`.
#[doc(hidden)]
pub fn begin_panicking_request(changed: *mut u8) -> Result<u64> {
    begin(
        |_| async {
            panic!("deliberate panic inside a request");
        },
        Outputs::Fetch {
            versions: std::ptr::null_mut(),
            buffers: Vec::new(),
            changed,
        },
    )
}

fn unknown(id: u64) -> Error {
    Error::InvalidArgument(format!(
        "request id {id} is unknown (never issued, already completed or cancelled)"
    ))
}

/// `Pending` while running; otherwise writes the outputs and returns the final status (the id
/// is then forgotten).
pub(crate) fn poll(id: u64) -> Result<Status> {
    let (outcome, outputs) = {
        let mut table = lock(&REQUESTS);
        let Some(p) = table.get_mut(&id) else {
            if issued_before_shutdown(id) {
                return Ok(Status::Cancelled);
            }
            return Err(unknown(id));
        };
        if p.writing {
            return Err(Error::InvalidArgument(format!(
                "request id {id} is being completed by a cw_poll on another thread"
            )));
        }
        match p.rx.try_recv() {
            Err(oneshot::error::TryRecvError::Empty) => return Ok(Status::Pending),
            Err(oneshot::error::TryRecvError::Closed) => {
                table.remove(&id);
                return Err(Error::Cancelled);
            }
            Ok(outcome) => {
                // Stays in the table, marked, until written: a cw_cancel or cw_shutdown that
                // comes now waits for the write instead of returning while it happens.
                p.writing = true;
                (outcome, p.outputs.take().expect("outputs taken only here"))
            }
        }
    };
    let _done = Written(id);
    // SAFETY: the caller promised (cw_*_begin docs) that these stay valid until a final
    // status or a cw_cancel, and any cw_cancel now waits until the entry leaves the table.
    unsafe { write_outcome(outcome, &outputs) }.map(|()| Status::Ok)
}

/// Takes a written request out of the table and wakes its waiters when dropped, so that even
/// a panic while writing cannot leave `cw_cancel` or `cw_shutdown` waiting forever.
struct Written(u64);

impl Drop for Written {
    fn drop(&mut self) {
        lock(&REQUESTS).remove(&self.0);
        WRITTEN.notify_all();
    }
}

/// Cancels a request; its outputs are never written once this returns.
pub(crate) fn cancel(id: u64) -> Result<Status> {
    let mut table = lock(&REQUESTS);
    let mut waited = false;
    loop {
        match table.get(&id) {
            None if waited => {
                return Err(Error::InvalidArgument(format!(
                    "request id {id} completed (cw_poll wrote its outputs) before it could be cancelled"
                )))
            }
            None if issued_before_shutdown(id) => return Ok(Status::Ok),
            None => return Err(unknown(id)),
            // A cw_poll on another thread is writing the result: wait until it is done.
            Some(p) if p.writing => {
                table = wait_written(table);
                waited = true;
            }
            Some(_) => {
                let p = table.remove(&id).expect("present");
                p.abort.abort();
                return Ok(Status::Ok);
            }
        }
    }
}

/// Waits until some `cw_poll` has finished writing a result, ignoring poison like [`lock`].
fn wait_written(
    table: std::sync::MutexGuard<'_, HashMap<u64, Pending>>,
) -> std::sync::MutexGuard<'_, HashMap<u64, Pending>> {
    WRITTEN.wait(table).unwrap_or_else(|p| p.into_inner())
}

/// Writes a finished request's result into caller memory.
///
/// # Safety
/// The pointers in `outputs` must be valid for the counts given at begin.
pub(crate) unsafe fn write_outcome(outcome: Outcome, outputs: &Outputs) -> Result<()> {
    match (outcome, outputs) {
        (
            Outcome::Fetch(result),
            Outputs::Fetch {
                versions,
                buffers,
                changed,
            },
        ) => {
            let chunks = result?;
            for (i, chunk) in chunks.iter().enumerate() {
                if let Some(data) = &chunk.data {
                    // SAFETY: buffers[i] points to 4096 writable cubes; caller contract.
                    unsafe {
                        std::ptr::copy_nonoverlapping(data.as_ptr(), buffers[i], CHUNK_CUBES)
                    };
                }
            }
            // SAFETY: caller contract for `versions` and `changed`.
            unsafe {
                write_versions(
                    *versions,
                    *changed,
                    chunks.iter().map(|c| (c.version, c.data.is_some())),
                )
            };
            Ok(())
        }
        (
            Outcome::Put(result),
            Outputs::Put {
                out_versions,
                out_count,
            },
        ) => {
            // On a failure part way, the chunks confirmed applied; on any other, none.
            let entries: &[VersionEntry] = match &result {
                Ok(entries) => entries,
                Err(Error::PartialPut { applied, .. }) => applied,
                Err(_) => &[],
            };
            for (i, e) in entries.iter().enumerate() {
                // SAFETY: capacity was checked at begin against the distinct chunk count.
                unsafe {
                    out_versions.add(i).write(CwChunkVersion {
                        key: CwChunkKey {
                            x: e.key.x,
                            y: e.key.y,
                            z: e.key.z,
                        },
                        reserved: 0,
                        version: e.version,
                    });
                }
            }
            // SAFETY: caller contract. On failure: how many chunks are confirmed applied.
            unsafe { out_count.write(entries.len()) };
            result.map(|_| ())
        }
        (Outcome::Panicked(what), _) => Err(Error::Internal(format!("caught panic: {what}"))),
        _ => Err(Error::Internal("request kind mismatch".into())),
    }
}

/// Writes a blocking fetch's result, decoding each changed chunk straight into the caller's
/// buffer (no intermediate copy). Versions and flags are written only when every chunk
/// decoded; a corrupt answer (`Protocol`) may leave earlier buffers already overwritten.
///
/// # Safety
/// The pointers in `outputs` must be valid for the counts given at the call.
pub(crate) unsafe fn write_fetched_blobs(blobs: &[FetchedBlob], outputs: &Outputs) -> Result<()> {
    let Outputs::Fetch {
        versions,
        buffers,
        changed,
    } = outputs
    else {
        return Err(Error::Internal("request kind mismatch".into()));
    };
    for (i, b) in blobs.iter().enumerate() {
        // SAFETY: buffers[i] points to 4096 writable, aligned cubes (checked at the call).
        let out = unsafe { &mut *buffers[i].cast::<[i32; CHUNK_CUBES]>() };
        b.decode_into(out)?;
    }
    // SAFETY: caller contract for `versions` and `changed`.
    unsafe {
        write_versions(
            *versions,
            *changed,
            blobs.iter().map(|b| (b.version, b.blob.is_some())),
        )
    };
    Ok(())
}

/// Writes each fetched chunk's version, and whether its buffer was written, in order.
///
/// # Safety
/// `versions` (and `changed` unless null) must hold one writable element per chunk.
unsafe fn write_versions(
    versions: *mut u64,
    changed: *mut u8,
    chunks: impl Iterator<Item = (u64, bool)>,
) {
    for (i, (version, written)) in chunks.enumerate() {
        // SAFETY: i < count; caller contract.
        unsafe {
            versions.add(i).write(version);
            if !changed.is_null() {
                changed.add(i).write(u8::from(written));
            }
        }
    }
}
