//! The C ABI (`include/cubewalk.h`), a thin layer over [`crate::Client`].
//!
//! Rules every function keeps:
//! - it returns a [`Status`] (`CwStatus`) and never unwinds a panic into the caller;
//! - every pointer is checked for null and alignment, every length for its range, every string
//!   for UTF-8 (strings are passed as bytes plus length; no NUL terminator needed);
//! - on failure, `cw_last_error` on the same thread tells why (the message never contains the
//!   token);
//! - the library never calls back into the caller and writes caller memory only inside the
//!   call that was given it (blocking calls) or inside `cw_poll` (non-blocking calls).

mod guard;
pub mod realtime;
mod session;
pub mod types;

pub use session::pending_requests;

#[doc(hidden)]
pub mod test_hooks;

use crate::client::Client;
use crate::error::{Error, Status};
use crate::options::{ClientOptions, MAX_CA_PEM_BYTES, MAX_ENDPOINT_LEN, MAX_TOKEN_LEN};
use crate::retry::RetryPolicy;
use cubewalk_protocol::{ChunkEdit, ChunkKey, CHUNK_CUBES};
use guard::{check_count, check_ptr, guard, slice, utf8};
use session::{Outcome, Outputs};
use std::collections::HashSet;
use std::time::Duration;
pub use types::{
    CwChange, CwChunkKey, CwChunkVersion, CwEdit, CwGuestSession, CwOptions, CW_MAX_PLAYER_LEN,
    CW_NO_VERSION,
};

/// Most chunks one fetch call may ask for (the library splits them into requests).
pub const CW_MAX_FETCH_CHUNKS: usize = 16_384;
/// Most edits one put call may carry (the library splits them into requests by chunk).
pub const CW_MAX_PUT_EDITS: usize = 1 << 20;
/// Longest world id in bytes.
pub const CW_MAX_WORLD_LEN: usize = 64;
// Spelled out in types.rs for the header; the login module is the source.
const _: () = assert!(CW_MAX_PLAYER_LEN == crate::login::MAX_PLAYER_LEN);

/// The library version as `major << 16 | minor << 8 | patch`.
#[no_mangle]
pub extern "C" fn cw_version() -> u32 {
    let part = |s: &str| s.parse::<u32>().unwrap_or(0);
    (part(env!("CARGO_PKG_VERSION_MAJOR")) << 16)
        | (part(env!("CARGO_PKG_VERSION_MINOR")) << 8)
        | part(env!("CARGO_PKG_VERSION_PATCH"))
}

/// A static, NUL-terminated name for a status code (`"CW_STATUS_OK"`, ...). Never free it.
#[no_mangle]
pub extern "C" fn cw_status_str(status: i32) -> *const std::ffi::c_char {
    match Status::from_i32(status) {
        Some(s) => s.c_name().as_ptr(),
        None => c"CW_UNKNOWN_STATUS".as_ptr(),
    }
}

/// Fills `*out` with the default options (10 s timeout, 5 s connect, 3 retries from 100 ms up
/// to 2 s, 16 requests in flight, plain HTTP only to loopback, no extra CA).
///
/// # Safety
/// `out` must point to writable memory for one `CwOptions`.
#[no_mangle]
pub unsafe extern "C" fn cw_options_default(out: *mut CwOptions) -> Status {
    guard(|| {
        check_ptr(out, "out")?;
        let d = ClientOptions::default();
        let opts = CwOptions {
            struct_size: std::mem::size_of::<CwOptions>() as u32,
            timeout_ms: d.timeout.as_millis() as u32,
            connect_timeout_ms: d.connect_timeout.as_millis() as u32,
            max_retries: d.retry.max_retries,
            retry_base_delay_ms: d.retry.base_delay.as_millis() as u32,
            retry_max_delay_ms: d.retry.max_delay.as_millis() as u32,
            max_in_flight: d.max_in_flight as u32,
            allow_insecure_http: 0,
            reserved: [0; 3],
            ca_pem: std::ptr::null(),
            ca_pem_len: 0,
        };
        // SAFETY: checked non-null and aligned; caller provides the memory.
        unsafe { out.write(opts) };
        Ok(Status::Ok)
    })
}

/// Initializes (or re-initializes) the library with default options. See
/// [`cw_init_with_options`].
///
/// # Safety
/// `endpoint` and `token` must point to `endpoint_len` and `token_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn cw_init(
    endpoint: *const u8,
    endpoint_len: usize,
    token: *const u8,
    token_len: usize,
) -> Status {
    // SAFETY: forwarded contract; null options means defaults.
    unsafe { cw_init_with_options(endpoint, endpoint_len, token, token_len, std::ptr::null()) }
}

/// Initializes the library: `endpoint` is the URL of the `/cubewalkblocks` resource with its
/// stage (`https://<api>.execute-api.<region>.amazonaws.com/prod/cubewalkblocks`, or the local
/// gateway's `http://127.0.0.1:3000/prod/cubewalkblocks`), `token` the secret sent in the
/// `token` header. `options` may be null for defaults.
///
/// May be called again at any time (the Unity Editor keeps the library loaded between Play
/// sessions): the new settings apply to requests begun afterwards; requests in flight finish
/// with the settings they started with. Nothing is sent during this call. Thread-safe.
///
/// # Safety
/// String pointers must point to their lengths of readable bytes; `options`, if not null, to
/// a `CwOptions` (and its `ca_pem` to `ca_pem_len` bytes).
#[no_mangle]
pub unsafe extern "C" fn cw_init_with_options(
    endpoint: *const u8,
    endpoint_len: usize,
    token: *const u8,
    token_len: usize,
    options: *const CwOptions,
) -> Status {
    guard(|| {
        // SAFETY: caller contract.
        let endpoint = unsafe { utf8(endpoint, endpoint_len, MAX_ENDPOINT_LEN, "endpoint") }?;
        // SAFETY: caller contract.
        let token = unsafe { utf8(token, token_len, MAX_TOKEN_LEN, "token") }?;
        let options = if options.is_null() {
            ClientOptions::default()
        } else {
            check_ptr(options, "options")?;
            // SAFETY: checked non-null and aligned; caller contract.
            convert_options(unsafe { &*options })?
        };
        let client = Client::new(endpoint, token, options)?;
        session::init(client)?;
        Ok(Status::Ok)
    })
}

/// Replaces the token sent from now on, without re-initializing: every HTTP attempt that
/// starts after this returns sends `token` (retries of requests already running included; a
/// request that meets a 401 because it went out with the old token is sent again at once with
/// the new one), and so does the next realtime connect or reconnect. A realtime connection
/// stopped on a refused token (`CW_REALTIME_REFUSED`, `CW_REALTIME_TOKEN_REFUSED`) tries again
/// with it. The token is checked as `cw_init` checks it (1 to `CW_MAX_TOKEN_LEN` bytes of
/// visible ASCII); on error the old token stays. `CW_STATUS_NOT_INITIALIZED` before `cw_init`.
/// Thread-safe: may race with any other call.
///
/// # Safety
/// `token` must point to `token_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn cw_set_token(token: *const u8, token_len: usize) -> Status {
    guard(|| {
        // SAFETY: caller contract.
        let token = unsafe { utf8(token, token_len, MAX_TOKEN_LEN, "token") }?;
        session::set_token(token)?;
        Ok(Status::Ok)
    })
}

/// Logs in as the guest that `device_secret` stands for (`POST /<stage>/cubewalklogin`),
/// blocking until done; callable before `cw_init`, so a game can log in, then initialize with
/// the token. `endpoint` is the `/cubewalkblocks` URL given to `cw_init` (its sibling
/// `cubewalklogin` is used) or the `/cubewalklogin` URL. `device_secret` is 22 to 128
/// characters of `A-Z a-z 0-9 _ -` (for example 32 random bytes in base64url), generated once
/// and kept by the game: the same secret is always the same player. `options` may be null for
/// defaults (its timeout bounds the call, retries included; its CA and plain-HTTP settings
/// apply as for `cw_init`).
///
/// On success the token is written to `token_out[0..*out_token_len]` (not NUL-terminated;
/// `CW_MAX_TOKEN_LEN` bytes always suffice) and `*out_session` says who and until when. When
/// `token_cap` is too small, `*out_token_len` is set to the length needed and the call returns
/// `CW_STATUS_BUFFER_TOO_SMALL` (the token is lost; log in again with a larger buffer). A
/// secret the server refuses is `CW_STATUS_BAD_REQUEST`, a login limit `CW_STATUS_RATE_LIMITED`.
/// Errors never contain the secret or the token. Not cancelled by `cw_shutdown`. Thread-safe;
/// never call it from the game's main thread in a frame loop.
///
/// # Safety
/// `endpoint` and `device_secret` must point to their lengths of readable bytes, `options`
/// null or to a `CwOptions`, `token_out` to `token_cap` writable bytes, `out_token_len` and
/// `out_session` to writable memory.
#[no_mangle]
pub unsafe extern "C" fn cw_login_guest(
    endpoint: *const u8,
    endpoint_len: usize,
    device_secret: *const u8,
    secret_len: usize,
    options: *const CwOptions,
    token_out: *mut u8,
    token_cap: usize,
    out_token_len: *mut usize,
    out_session: *mut CwGuestSession,
) -> Status {
    guard(|| {
        // SAFETY: caller contract.
        let endpoint = unsafe { utf8(endpoint, endpoint_len, MAX_ENDPOINT_LEN, "endpoint") }?;
        // SAFETY: caller contract. The limit is the protocol's; its alphabet is checked below.
        let secret = unsafe {
            utf8(
                device_secret,
                secret_len,
                crate::login::MAX_DEVICE_SECRET_LEN,
                "device_secret",
            )
        }?;
        check_ptr(token_out.cast_const(), "token_out")?;
        check_count(token_cap, usize::MAX, "token_cap")?;
        check_ptr(out_token_len.cast_const(), "out_token_len")?;
        check_ptr(out_session.cast_const(), "out_session")?;
        let options = if options.is_null() {
            ClientOptions::default()
        } else {
            check_ptr(options, "options")?;
            // SAFETY: checked non-null and aligned; caller contract.
            convert_options(unsafe { &*options })?
        };
        // A runtime of its own: the call may come before cw_init, and it must not depend on
        // (or be stopped with) the session's.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start runtime: {e}")))?;
        let session = runtime.block_on(crate::login::login_guest(endpoint, secret, &options))?;
        // SAFETY: checked above.
        unsafe { out_token_len.write(session.token.len()) };
        if session.token.len() > token_cap {
            return Err(Error::BufferTooSmall {
                needed: session.token.len(),
            });
        }
        let mut out = CwGuestSession {
            expires_at: session.expires_at,
            expires_in: u32::try_from(session.expires_in).unwrap_or(u32::MAX),
            player_len: session.player.len() as u32,
            player: [0; CW_MAX_PLAYER_LEN],
        };
        // login_guest checked the player id fits.
        out.player[..session.player.len()].copy_from_slice(session.player.as_bytes());
        // SAFETY: checked above; token_cap >= the token's length.
        unsafe {
            std::ptr::copy_nonoverlapping(session.token.as_ptr(), token_out, session.token.len());
            out_session.write(out);
        }
        Ok(Status::Ok)
    })
}

/// The C struct as Rust options; ranges are checked once, by `Client::new`.
fn convert_options(o: &CwOptions) -> Result<ClientOptions, Error> {
    let bad = |m: &str| Err(Error::InvalidArgument(format!("options: {m}")));
    if o.struct_size as usize != std::mem::size_of::<CwOptions>() {
        return bad("struct_size must be sizeof(CwOptions); fill it with cw_options_default");
    }
    let extra_root_ca_pem = if o.ca_pem.is_null() {
        None
    } else {
        // SAFETY: caller contract for ca_pem.
        Some(unsafe { slice(o.ca_pem, o.ca_pem_len, MAX_CA_PEM_BYTES, "options.ca_pem") }?.to_vec())
    };
    Ok(ClientOptions {
        timeout: Duration::from_millis(u64::from(o.timeout_ms)),
        connect_timeout: Duration::from_millis(u64::from(o.connect_timeout_ms)),
        retry: RetryPolicy {
            max_retries: o.max_retries,
            base_delay: Duration::from_millis(u64::from(o.retry_base_delay_ms)),
            max_delay: Duration::from_millis(u64::from(o.retry_max_delay_ms)),
        },
        max_in_flight: o.max_in_flight as usize,
        allow_insecure_http: o.allow_insecure_http != 0,
        extra_root_ca_pem,
    })
}

/// Cancels every request in flight (blocking calls return `CW_STATUS_CANCELLED`, non-blocking ones
/// report it from `cw_poll`) and stops the library's threads without waiting for them. Returns
/// at once (it waits only for a `cw_poll` that is copying a result out at that moment). Once
/// it returns, every request id begun before it polls `CW_STATUS_CANCELLED`, no caller memory
/// given to those requests is written again, and their memory is freed. `cw_init` afterwards
/// starts afresh. Safe to call when not initialized.
#[no_mangle]
pub extern "C" fn cw_shutdown() -> Status {
    guard(|| {
        session::shutdown();
        Ok(Status::Ok)
    })
}

struct FetchArgs {
    world: String,
    chunks: Vec<(ChunkKey, Option<u64>)>,
    outputs: Outputs,
}

/// Validates a fetch call's arguments and copies what must not be read later.
///
/// # Safety
/// See `cw_fetch_blocks`.
unsafe fn fetch_args(
    world: *const u8,
    world_len: usize,
    keys: *const CwChunkKey,
    count: usize,
    versions: *mut u64,
    buffers: *const *mut i32,
    changed: *mut u8,
) -> Result<FetchArgs, Error> {
    // SAFETY: caller contract for each array.
    let world = unsafe { utf8(world, world_len, CW_MAX_WORLD_LEN, "world") }?.to_owned();
    // SAFETY: as above.
    let keys = unsafe { slice(keys, count, CW_MAX_FETCH_CHUNKS, "keys") }?;
    // SAFETY: as above.
    let held = unsafe {
        slice(
            versions.cast_const(),
            count,
            CW_MAX_FETCH_CHUNKS,
            "versions",
        )
    }?;
    // SAFETY: as above.
    let buffer_ptrs = unsafe { slice(buffers, count, CW_MAX_FETCH_CHUNKS, "buffers") }?;
    for (i, &b) in buffer_ptrs.iter().enumerate() {
        check_ptr(b.cast_const(), &format!("buffers[{i}]"))?;
    }
    check_disjoint(buffer_ptrs)?;
    if !changed.is_null() {
        check_count(count, CW_MAX_FETCH_CHUNKS, "changed")?;
    }
    let chunks = keys
        .iter()
        .zip(held)
        .map(|(k, &v)| {
            (
                ChunkKey::new(k.x, k.y, k.z),
                (v != CW_NO_VERSION).then_some(v),
            )
        })
        .collect();
    Ok(FetchArgs {
        world,
        chunks,
        outputs: Outputs::Fetch {
            versions,
            buffers: buffer_ptrs.to_vec(),
            changed,
        },
    })
}

/// Refuses chunk buffers that overlap (the same buffer given twice, or two closer than 4096
/// cubes): two chunks would be decoded into one place and the versions recorded for both,
/// a divergence that no later fetch would notice.
fn check_disjoint(buffers: &[*mut i32]) -> Result<(), Error> {
    let mut by_address: Vec<(usize, usize)> = buffers
        .iter()
        .enumerate()
        .map(|(i, &b)| (b as usize, i))
        .collect();
    by_address.sort_unstable();
    for pair in by_address.windows(2) {
        let ((a, i), (b, j)) = (pair[0], pair[1]);
        if b - a < CHUNK_BYTES {
            let (i, j) = (i.min(j), i.max(j));
            return Err(Error::InvalidArgument(format!(
                "buffers[{i}] and buffers[{j}] overlap: each chunk needs its own 4096 cubes"
            )));
        }
    }
    Ok(())
}

/// Bytes of one chunk buffer.
const CHUNK_BYTES: usize = CHUNK_CUBES * std::mem::size_of::<i32>();

/// Fetches `count` chunks of `world`, blocking until done.
///
/// - `keys[i]`: the chunks (each at most once).
/// - `versions[i]`: in, the version (revision) of chunk i the caller holds in `buffers[i]`,
///   or `CW_NO_VERSION`; out, the chunk's current version. A version is a 64-bit tag of the
///   chunk's content (0 = all air): equal versions mean equal cubes, whatever the server lost
///   or restored in between; versions are not ordered.
/// - `buffers[i]`: the caller's `int32_t[4096]` for chunk i, in game order; written only when
///   the chunk changed (a chunk held at its current version is left alone). Buffers must not
///   overlap (`CW_STATUS_INVALID_ARGUMENT`).
/// - `changed` (may be null): out, `changed[i]` is 1 when `buffers[i]` was written, else 0.
///
/// Requests are split and sent concurrently when `count` exceeds one request's limit. On error
/// `versions` and `changed` are not written, and no buffer is, except after
/// `CW_STATUS_PROTOCOL` (a corrupt answer), which may leave some buffers overwritten. Thread-safe; never call it from the game's main thread in a frame
/// loop (use `cw_fetch_blocks_begin`).
///
/// # Safety
/// Every array must hold `count` valid elements and each `buffers[i]` 4096 `int32_t`, valid for
/// the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn cw_fetch_blocks(
    world: *const u8,
    world_len: usize,
    keys: *const CwChunkKey,
    count: usize,
    versions: *mut u64,
    buffers: *const *mut i32,
    changed: *mut u8,
) -> Status {
    guard(|| {
        // SAFETY: forwarded contract.
        let args =
            unsafe { fetch_args(world, world_len, keys, count, versions, buffers, changed) }?;
        let FetchArgs {
            world,
            chunks,
            outputs,
        } = args;
        let blobs =
            session::block_on(move |c| async move { c.fetch_blobs(&world, &chunks).await })?;
        // SAFETY: this call's own arguments, still valid.
        unsafe { session::write_fetched_blobs(&blobs, &outputs) }?;
        Ok(Status::Ok)
    })
}

/// Starts a fetch without blocking and stores its id in `*out_request_id`. Arguments as
/// `cw_fetch_blocks`: `keys` and the `buffers` pointer array are copied now, `versions` is read
/// now; `versions`, each `buffers[i]` and `changed` are written later, only inside the
/// `cw_poll` call that returns the final status, so they must stay valid (pinned) until then
/// or until `cw_cancel`.
///
/// # Safety
/// As `cw_fetch_blocks`, with the lifetime above; `out_request_id` writable.
#[no_mangle]
pub unsafe extern "C" fn cw_fetch_blocks_begin(
    world: *const u8,
    world_len: usize,
    keys: *const CwChunkKey,
    count: usize,
    versions: *mut u64,
    buffers: *const *mut i32,
    changed: *mut u8,
    out_request_id: *mut u64,
) -> Status {
    guard(|| {
        check_ptr(out_request_id, "out_request_id")?;
        // SAFETY: forwarded contract.
        let args =
            unsafe { fetch_args(world, world_len, keys, count, versions, buffers, changed) }?;
        let FetchArgs {
            world,
            chunks,
            outputs,
        } = args;
        let id = session::begin(
            move |c| async move { Outcome::Fetch(c.fetch(&world, &chunks).await) },
            outputs,
        )?;
        // SAFETY: checked above.
        unsafe { out_request_id.write(id) };
        Ok(Status::Ok)
    })
}

struct PutArgs {
    world: String,
    edits: Vec<ChunkEdit>,
    outputs: Outputs,
}

/// # Safety
/// See `cw_put_blocks`.
unsafe fn put_args(
    world: *const u8,
    world_len: usize,
    edits: *const CwEdit,
    count: usize,
    out_versions: *mut CwChunkVersion,
    capacity: usize,
    out_count: *mut usize,
) -> Result<PutArgs, Error> {
    // SAFETY: caller contract.
    let world = unsafe { utf8(world, world_len, CW_MAX_WORLD_LEN, "world") }?.to_owned();
    // SAFETY: caller contract.
    let edits = unsafe { slice(edits, count, CW_MAX_PUT_EDITS, "edits") }?;
    check_ptr(out_count, "out_count")?;
    check_ptr(out_versions.cast_const(), "out_versions")?;
    let mut distinct = HashSet::new();
    let mut converted = Vec::with_capacity(edits.len());
    for (i, e) in edits.iter().enumerate() {
        if e.index as usize >= CHUNK_CUBES {
            return Err(Error::InvalidArgument(format!(
                "edits[{i}].index {} outside 0..{CHUNK_CUBES}",
                e.index
            )));
        }
        let key = ChunkKey::new(e.chunk.x, e.chunk.y, e.chunk.z);
        distinct.insert(key);
        converted.push(ChunkEdit::at_index(key, e.index as u16, e.value));
    }
    if capacity < distinct.len() {
        // SAFETY: checked above.
        unsafe { out_count.write(distinct.len()) };
        return Err(Error::BufferTooSmall {
            needed: distinct.len(),
        });
    }
    Ok(PutArgs {
        world,
        edits: converted,
        outputs: Outputs::Put {
            out_versions,
            out_count,
        },
    })
}

/// Applies `count` cube edits in `world`, blocking until done. Edits apply in order (a later
/// edit of the same cube wins); all edits of one chunk apply atomically. Each request carries
/// an idempotency key that its automatic retries reuse, so a retry of a request the server had
/// already applied (its answer lost) changes nothing: it never writes over a newer edit made
/// in between. Puts of the same chunk through this library apply in the order they were
/// begun. `count` 0 is `CW_STATUS_INVALID_ARGUMENT`, like every zero length, and sends
/// nothing.
///
/// On success `out_versions[0..*out_count]` hold each touched chunk's new version, in order of
/// first appearance. `capacity` must be at least the number of distinct chunks touched;
/// otherwise nothing is sent, `*out_count` is set to the number needed and the call returns
/// `CW_STATUS_BUFFER_TOO_SMALL`. On any other failure `out_versions[0..*out_count]` list the
/// chunks confirmed applied (only a put split over several requests, more than 256 chunks or
/// 16384 edits, can have some); the other chunks may or may not have been applied: fetch them
/// to know, rather than putting the same edits again, which could overwrite newer edits.
///
/// # Safety
/// `edits` must hold `count` elements, `out_versions` `capacity`, `out_count` one, all valid
/// for the call.
#[no_mangle]
pub unsafe extern "C" fn cw_put_blocks(
    world: *const u8,
    world_len: usize,
    edits: *const CwEdit,
    count: usize,
    out_versions: *mut CwChunkVersion,
    capacity: usize,
    out_count: *mut usize,
) -> Status {
    guard(|| {
        // SAFETY: forwarded contract.
        let args = unsafe {
            put_args(
                world,
                world_len,
                edits,
                count,
                out_versions,
                capacity,
                out_count,
            )
        }?;
        let PutArgs {
            world,
            edits,
            outputs,
        } = args;
        let result = session::block_on(move |c| c.put(&world, &edits));
        // SAFETY: this call's own arguments, still valid.
        unsafe { session::write_outcome(Outcome::Put(result), &outputs) }?;
        Ok(Status::Ok)
    })
}

/// Starts a put without blocking and stores its id in `*out_request_id`. Arguments as
/// `cw_put_blocks`; `edits` is copied now; `out_versions` and `out_count` are written only
/// inside the `cw_poll` call that returns the final status, so they must stay valid until then
/// or until `cw_cancel`. A cancelled put may or may not have reached the server.
///
/// # Safety
/// As `cw_put_blocks`, with the lifetime above; `out_request_id` writable.
#[no_mangle]
pub unsafe extern "C" fn cw_put_blocks_begin(
    world: *const u8,
    world_len: usize,
    edits: *const CwEdit,
    count: usize,
    out_versions: *mut CwChunkVersion,
    capacity: usize,
    out_count: *mut usize,
    out_request_id: *mut u64,
) -> Status {
    guard(|| {
        check_ptr(out_request_id, "out_request_id")?;
        // SAFETY: forwarded contract.
        let args = unsafe {
            put_args(
                world,
                world_len,
                edits,
                count,
                out_versions,
                capacity,
                out_count,
            )
        }?;
        let PutArgs {
            world,
            edits,
            outputs,
        } = args;
        let id = session::begin(
            move |c| {
                // Called now: the put takes its place in line before begin returns.
                let put = c.put(&world, &edits);
                async move { Outcome::Put(put.await) }
            },
            outputs,
        )?;
        // SAFETY: checked above.
        unsafe { out_request_id.write(id) };
        Ok(Status::Ok)
    })
}

/// Reports on a non-blocking request: `CW_STATUS_PENDING` while it runs (never blocks); otherwise
/// writes its results into the memory given at begin and returns its final status, after
/// which the id is forgotten. Call it from the thread that owns the output memory (the game's
/// main thread, once per frame). An id begun before the last `cw_shutdown` polls
/// `CW_STATUS_CANCELLED`; a panic inside the request is `CW_STATUS_INTERNAL`.
#[no_mangle]
pub extern "C" fn cw_poll(request_id: u64) -> Status {
    guard(|| session::poll(request_id))
}

/// Cancels a non-blocking request: its output memory is never touched after this returns,
/// whatever it returns, and the id is forgotten. `CW_STATUS_INVALID_ARGUMENT` for an unknown
/// or finished id (when a `cw_poll` on another thread is writing the result at that moment,
/// this waits until it is written). A cancelled put may or may not have reached the server.
#[no_mangle]
pub extern "C" fn cw_cancel(request_id: u64) -> Status {
    guard(|| session::cancel(request_id))
}

/// Copies the message of this thread's most recent failed call into `buf` (UTF-8,
/// NUL-terminated, truncated on a character boundary to fit) and its full length (without
/// NUL) into `*out_len` when not null. Empty when no call failed. Returns
/// `CW_STATUS_BUFFER_TOO_SMALL` when truncated. Does not change the last error itself.
///
/// # Safety
/// `buf` must point to `len` writable bytes; `out_len` null or writable.
#[no_mangle]
pub unsafe extern "C" fn cw_last_error(buf: *mut u8, len: usize, out_len: *mut usize) -> Status {
    let message = guard::last_error();
    let status = guard(|| {
        if !out_len.is_null() {
            check_ptr(out_len.cast_const(), "out_len")?;
            // SAFETY: checked.
            unsafe { out_len.write(message.len()) };
        }
        check_ptr(buf.cast_const(), "buf")?;
        check_count(len, usize::MAX, "len")?;
        let mut n = message.len().min(len - 1);
        while !message.is_char_boundary(n) {
            n -= 1;
        }
        // SAFETY: n + 1 <= len bytes, caller contract.
        unsafe {
            std::ptr::copy_nonoverlapping(message.as_ptr(), buf, n);
            buf.add(n).write(0);
        }
        Ok(if n < message.len() {
            Status::BufferTooSmall
        } else {
            Status::Ok
        })
    });
    // Reading the last error must not replace it with a complaint about this call.
    if status == Status::InvalidArgument {
        guard::restore_last_error(message);
    }
    status
}
