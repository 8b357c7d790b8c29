//! The realtime part of the C ABI: follow chunks over the WebSocket API and drain what other
//! players changed with `cw_realtime_poll`, like `cw_poll`: no callbacks, caller arrays only,
//! written on the calling thread.

use super::guard::{check_ptr, guard, slice, utf8};
use super::session;
use super::types::{
    CwChange, CwChunkKey, CwEdit, CW_CHANGE_EDITS, CW_CHANGE_GAP, CW_CHANGE_REFETCH,
    CW_CHANGE_SUBSCRIBED,
};
use super::CW_MAX_WORLD_LEN;
use crate::error::{Error, Status};
use crate::options::MAX_ENDPOINT_LEN;
use crate::realtime::RealtimeEvent;
use cubewalk_protocol::realtime::{MAX_EDITS_IN_CHANGE, MAX_SUBSCRIBED_CHUNKS};
use cubewalk_protocol::{ChunkKey, WorldId};

/// Most chunks `cw_realtime_follow` takes.
pub const CW_MAX_FOLLOWED_CHUNKS: usize = 1024;
/// Most edits one change carries; `cw_realtime_poll` needs room for at least this many.
pub const CW_MAX_CHANGE_EDITS: usize = 64;
// Spelled out above for the header; the protocol is the source.
const _: () = assert!(CW_MAX_FOLLOWED_CHUNKS == MAX_SUBSCRIBED_CHUNKS);
const _: () = assert!(CW_MAX_CHANGE_EDITS == MAX_EDITS_IN_CHANGE);

/// Opens the realtime connection to `endpoint` (the WebSocket API's URL, `wss://...`; `ws://`
/// only to a loopback host unless `allow_insecure_http`), with the token and TLS settings of
/// `cw_init`. Returns at once: the connection is made, kept, re-made after failures (with
/// backoff) and re-subscribed in the background. Calling it again replaces the connection.
/// `cw_init` and `cw_shutdown` stop it.
///
/// # Safety
/// `endpoint` must point to `endpoint_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn cw_realtime_start(endpoint: *const u8, endpoint_len: usize) -> Status {
    guard(|| {
        // SAFETY: caller contract.
        let endpoint = unsafe { utf8(endpoint, endpoint_len, MAX_ENDPOINT_LEN, "endpoint") }?;
        session::start_realtime(endpoint)?;
        Ok(Status::Ok)
    })
}

/// Follows exactly `chunks` of `world` from now on (replacing what was followed; `count` 0
/// follows nothing, and `chunks` may then be null). Events about them arrive through
/// `cw_realtime_poll`, starting with `CW_CHANGE_SUBSCRIBED` once the server acknowledged.
///
/// # Safety
/// `world` must point to `world_len` readable bytes and `chunks` to `count` `CwChunkKey`.
#[no_mangle]
pub unsafe extern "C" fn cw_realtime_follow(
    world: *const u8,
    world_len: usize,
    chunks: *const CwChunkKey,
    count: usize,
) -> Status {
    guard(|| {
        // SAFETY: caller contract.
        let world = unsafe { utf8(world, world_len, CW_MAX_WORLD_LEN, "world") }?;
        let world = WorldId::new(world).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let keys: Vec<ChunkKey> = if count == 0 {
            Vec::new()
        } else {
            // SAFETY: caller contract.
            unsafe { slice(chunks, count, CW_MAX_FOLLOWED_CHUNKS, "chunks") }?
                .iter()
                .map(|k| ChunkKey::new(k.x, k.y, k.z))
                .collect()
        };
        session::with_realtime(|r| r.follow(&world, &keys))?;
        Ok(Status::Ok)
    })
}

/// Moves queued realtime events, oldest first, into `changes` (at most `capacity`) and their
/// cube edits into `edits` (at most `edit_capacity`, which must be at least
/// `CW_MAX_CHANGE_EDITS`), and stores how many of each it wrote. Events that do not fit stay
/// queued for the next call. Never blocks; an empty queue writes 0. Events queue up to a bound;
/// past it they are replaced by one `CW_CHANGE_GAP`.
///
/// # Safety
/// `changes` must hold `capacity` writable `CwChange`, `edits` `edit_capacity` writable
/// `CwEdit`; `out_changes` and `out_edits` must be writable.
#[no_mangle]
pub unsafe extern "C" fn cw_realtime_poll(
    changes: *mut CwChange,
    capacity: usize,
    edits: *mut CwEdit,
    edit_capacity: usize,
    out_changes: *mut usize,
    out_edits: *mut usize,
) -> Status {
    guard(|| {
        check_ptr(out_changes, "out_changes")?;
        check_ptr(out_edits, "out_edits")?;
        check_ptr(changes, "changes")?;
        check_ptr(edits, "edits")?;
        if capacity == 0 || capacity > isize::MAX as usize / std::mem::size_of::<CwChange>() {
            return Err(Error::InvalidArgument("capacity must be at least 1".into()));
        }
        if edit_capacity < CW_MAX_CHANGE_EDITS
            || edit_capacity > isize::MAX as usize / std::mem::size_of::<CwEdit>()
        {
            return Err(Error::InvalidArgument(format!(
                "edit_capacity must be at least {CW_MAX_CHANGE_EDITS}"
            )));
        }
        // SAFETY: checked non-null and aligned; the caller promises the lengths.
        let changes = unsafe { std::slice::from_raw_parts_mut(changes, capacity) };
        // SAFETY: as above.
        let edits = unsafe { std::slice::from_raw_parts_mut(edits, edit_capacity) };
        let (mut n, mut e) = (0usize, 0usize);
        session::with_realtime(|r| {
            r.drain(capacity, |event| {
                let (kind, change) = match event {
                    RealtimeEvent::Subscribed => (CW_CHANGE_SUBSCRIBED, None),
                    RealtimeEvent::Gap => (CW_CHANGE_GAP, None),
                    RealtimeEvent::Changed(c) if c.edits.is_some() => (CW_CHANGE_EDITS, Some(c)),
                    RealtimeEvent::Changed(c) => (CW_CHANGE_REFETCH, Some(c)),
                };
                let cube_edits = change.and_then(|c| c.edits.as_deref()).unwrap_or(&[]);
                if e + cube_edits.len() > edits.len() {
                    return false;
                }
                let key = change.map_or(CwChunkKey::default(), |c| CwChunkKey {
                    x: c.chunk.x,
                    y: c.chunk.y,
                    z: c.chunk.z,
                });
                for (slot, &(index, value)) in edits[e..].iter_mut().zip(cube_edits) {
                    *slot = CwEdit {
                        chunk: key,
                        index: u32::from(index),
                        value,
                    };
                }
                changes[n] = CwChange {
                    chunk: key,
                    kind,
                    previous: change.map_or(0, |c| c.previous),
                    version: change.map_or(0, |c| c.version),
                    first_edit: e as u32,
                    edit_count: cube_edits.len() as u32,
                };
                n += 1;
                e += cube_edits.len();
                true
            });
            Ok(())
        })?;
        // SAFETY: checked above.
        unsafe {
            *out_changes = n;
            *out_edits = e;
        }
        Ok(Status::Ok)
    })
}

/// Stores where the realtime connection stands (`CW_REALTIME_*`) in `*out_state`.
/// `cw_last_error` afterwards (same thread) gives what keeps changes from arriving: when it is
/// not connected, the last problem it met (a refused token, an unreachable endpoint); when
/// connected, the broker's refusal of the subscription (a token without the followed world)
/// until it is in place; empty when there is none.
///
/// # Safety
/// `out_state` must be writable.
#[no_mangle]
pub unsafe extern "C" fn cw_realtime_state(out_state: *mut i32) -> Status {
    guard(|| {
        check_ptr(out_state, "out_state")?;
        let (state, problem) = session::realtime_state();
        super::guard::restore_last_error(
            problem
                .map(|p| format!("realtime: {p}"))
                .unwrap_or_default(),
        );
        // SAFETY: checked above.
        unsafe { *out_state = state as i32 };
        Ok(Status::Ok)
    })
}

/// Closes the realtime connection and drops its queued events. Harmless when not started.
#[no_mangle]
pub extern "C" fn cw_realtime_stop() -> Status {
    guard(|| {
        session::stop_realtime();
        Ok(Status::Ok)
    })
}
