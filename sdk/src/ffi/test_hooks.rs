//! The C ABI called with Rust values, exactly as C calls it: shared by the library's own tests
//! and the end-to-end tests, so each C call is spelled once. Not part of the C ABI (nothing
//! here is exported from the shared library).

use super::*;

/// `cw_init` with Rust strings.
pub fn init(endpoint: &str, token: &str) -> Status {
    // SAFETY: valid slices for the call.
    unsafe {
        cw_init(
            endpoint.as_ptr(),
            endpoint.len(),
            token.as_ptr(),
            token.len(),
        )
    }
}

/// `cw_init_with_options` with the defaults changed by `configure`.
pub fn init_with(endpoint: &str, token: &str, configure: impl FnOnce(&mut CwOptions)) -> Status {
    // SAFETY: CwOptions is plain data; cw_options_default fills every field.
    let mut options = unsafe { std::mem::zeroed::<CwOptions>() };
    // SAFETY: a valid, writable CwOptions.
    assert_eq!(unsafe { cw_options_default(&mut options) }, Status::Ok);
    configure(&mut options);
    // SAFETY: valid slices and options for the call.
    unsafe {
        cw_init_with_options(
            endpoint.as_ptr(),
            endpoint.len(),
            token.as_ptr(),
            token.len(),
            &options,
        )
    }
}

/// `cw_set_token` with a Rust string.
pub fn set_token(token: &str) -> Status {
    // SAFETY: a valid slice for the call.
    unsafe { cw_set_token(token.as_ptr(), token.len()) }
}

/// `cw_login_guest` with Rust strings and default options (plain HTTP to loopback only):
/// the status, and on success the token and session.
pub fn login_guest(endpoint: &str, secret: &str) -> (Status, Option<(String, CwGuestSession)>) {
    let mut token = vec![0u8; crate::options::MAX_TOKEN_LEN];
    let mut len = 0usize;
    // SAFETY: CwGuestSession is plain data.
    let mut session = unsafe { std::mem::zeroed::<CwGuestSession>() };
    // SAFETY: valid slices and outputs for the call.
    let s = unsafe {
        cw_login_guest(
            endpoint.as_ptr(),
            endpoint.len(),
            secret.as_ptr(),
            secret.len(),
            std::ptr::null(),
            token.as_mut_ptr(),
            token.len(),
            &mut len,
            &mut session,
        )
    };
    if s != Status::Ok {
        return (s, None);
    }
    token.truncate(len);
    (
        s,
        Some((String::from_utf8(token).expect("a token is ASCII"), session)),
    )
}

/// This thread's `cw_last_error` as a string.
pub fn last_error() -> String {
    let mut buf = vec![0u8; 4096];
    let mut len = 0usize;
    // SAFETY: valid buffer.
    unsafe { cw_last_error(buf.as_mut_ptr(), buf.len(), &mut len) };
    String::from_utf8_lossy(&buf[..len.min(4095)]).into_owned()
}

/// A key from coordinates.
pub fn key(x: i32, y: i32, z: i32) -> CwChunkKey {
    CwChunkKey { x, y, z }
}

/// Blocking fetch of `keys` into `buffers`.
pub fn fetch(
    world: &str,
    keys: &[CwChunkKey],
    versions: &mut [u64],
    buffers: &mut [Box<[i32; 4096]>],
    changed: &mut [u8],
) -> Status {
    let ptrs: Vec<*mut i32> = buffers.iter_mut().map(|b| b.as_mut_ptr()).collect();
    fetch_into(world, keys, versions, &ptrs, changed)
}

/// Blocking fetch into caller buffers given as raw pointers.
pub fn fetch_into(
    world: &str,
    keys: &[CwChunkKey],
    versions: &mut [u64],
    buffers: &[*mut i32],
    changed: &mut [u8],
) -> Status {
    assert!(
        versions.len() >= keys.len() && buffers.len() >= keys.len() && changed.len() >= keys.len()
    );
    // SAFETY: every array holds keys.len() elements; each buffer pointer is the caller's 4096 cubes.
    unsafe {
        cw_fetch_blocks(
            world.as_ptr(),
            world.len(),
            keys.as_ptr(),
            keys.len(),
            versions.as_mut_ptr(),
            buffers.as_ptr(),
            changed.as_mut_ptr(),
        )
    }
}

/// Begins a fetch of chunk (0,0,0) of world `default` into `buffer`, `version` and `changed`
/// (which may be null).
///
/// # Safety
/// As `cw_fetch_blocks_begin`: the memory must stay valid until the request is polled to its
/// end or cancelled.
pub unsafe fn begin_fetch_origin(
    buffer: *mut i32,
    version: *mut u64,
    changed: *mut u8,
) -> (Status, u64) {
    let key = key(0, 0, 0);
    let ptrs = [buffer];
    let mut id = 0;
    // SAFETY: one key and one buffer pointer; the caller keeps the outputs valid.
    let s = unsafe {
        cw_fetch_blocks_begin(
            b"default".as_ptr(),
            7,
            &key,
            1,
            version,
            ptrs.as_ptr(),
            changed,
            &mut id,
        )
    };
    (s, id)
}

/// Blocking put of `edits`, returning the status and the chunk versions.
pub fn put(world: &str, edits: &[CwEdit]) -> (Status, Vec<CwChunkVersion>) {
    let mut out = vec![CwChunkVersion::default(); edits.len()];
    let mut n = 0usize;
    // SAFETY: valid arrays for the call.
    let s = unsafe {
        cw_put_blocks(
            world.as_ptr(),
            world.len(),
            edits.as_ptr(),
            edits.len(),
            out.as_mut_ptr(),
            out.len(),
            &mut n,
        )
    };
    out.truncate(if s == Status::Ok { n } else { 0 });
    (s, out)
}

pub use super::session::begin_panicking_request;
