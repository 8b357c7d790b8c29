//! The C ABI's plain data types (all blittable, `#[repr(C)]`).

/// "No version held": put in `versions[i]` before a fetch when the caller holds nothing for
/// that chunk, so its data always comes back.
pub const CW_NO_VERSION: u64 = u64::MAX;

/// Position of a chunk in its world, in chunk units.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CwChunkKey {
    /// Chunk x.
    pub x: i32,
    /// Chunk y (up).
    pub y: i32,
    /// Chunk z.
    pub z: i32,
}

/// One cube edit: set cube `index` (game order `x * 256 + z * 16 + y`, 0..4096) of `chunk`
/// to `value`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CwEdit {
    /// The chunk.
    pub chunk: CwChunkKey,
    /// Cube index inside the chunk.
    pub index: u32,
    /// New value (opaque to the network layer).
    pub value: i32,
}

/// A chunk and its version after a put.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CwChunkVersion {
    /// The chunk.
    pub key: CwChunkKey,
    /// Always 0; keeps `version` 8-byte aligned on every platform.
    pub reserved: u32,
    /// The chunk's version after the put.
    pub version: u64,
}

/// Settings for `cw_init_with_options`. Fill it with `cw_options_default` first, then change
/// what you need; `struct_size` must stay `sizeof(CwOptions)`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct CwOptions {
    /// `sizeof(CwOptions)`, so a future larger struct can be told apart.
    pub struct_size: u32,
    /// Longest one call may take, all retries included (ms, 1..=600000; default 10000).
    pub timeout_ms: u32,
    /// Longest wait for a connection (ms, 1..=60000; default 5000).
    pub connect_timeout_ms: u32,
    /// Retries of transient failures (connect errors, 429, 502, 503, 504) per request
    /// (0..=100; default 3).
    pub max_retries: u32,
    /// Backoff base delay (ms, ..=60000; default 100): retry n waits a random time up to
    /// `base * 2^(n-1)`, or the whole `Retry-After` when the server asks for longer (a wait
    /// that would end past the call's timeout is not started: the call fails instead).
    pub retry_base_delay_ms: u32,
    /// Largest backoff wait between retries (ms, ..=60000; default 2000); a longer
    /// `Retry-After` is still honoured.
    pub retry_max_delay_ms: u32,
    /// Most HTTP requests in flight at once (1..=1024; default 16).
    pub max_in_flight: u32,
    /// Non-zero allows plain `http://` to a non-loopback host (the token then travels in
    /// clear). Default 0.
    pub allow_insecure_http: u8,
    /// Always 0.
    pub reserved: [u8; 3],
    /// Optional extra trusted root certificates, PEM bytes (not NUL-terminated); may be null.
    /// Copied during the call.
    pub ca_pem: *const u8,
    /// Length of `ca_pem` in bytes.
    pub ca_pem_len: usize,
}

/// `CwChange.kind`: the chunk changed and the change carries its cube edits: when the caller
/// holds `previous`, applying `edits[first_edit .. first_edit + edit_count]` (each `index`
/// and `value` within `chunk`) gives `version`; when it holds `version`, nothing to do;
/// otherwise it refetches the chunk.
pub const CW_CHANGE_EDITS: u32 = 0;
/// `CwChange.kind`: the chunk changed by too many cubes to carry them: refetch it (unless
/// the caller already holds `version`).
pub const CW_CHANGE_REFETCH: u32 = 1;
/// `CwChange.kind`: the server acknowledged the subscription: fetch every followed chunk now
/// (with the versions held, so unchanged chunks cost nothing); changes are reported from here
/// on. `chunk`, versions and edits are zero.
pub const CW_CHANGE_SUBSCRIBED: u32 = 2;
/// `CwChange.kind`: changes may have been missed (the connection was lost and restored, or
/// events overflowed because nobody polled): refetch every followed chunk.
pub const CW_CHANGE_GAP: u32 = 3;

/// One realtime event, as `cw_realtime_poll` writes it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CwChange {
    /// The chunk (zero for `CW_CHANGE_SUBSCRIBED` and `CW_CHANGE_GAP`).
    pub chunk: CwChunkKey,
    /// One of `CW_CHANGE_*`.
    pub kind: u32,
    /// The chunk's version before the change.
    pub previous: u64,
    /// The chunk's version after the change.
    pub version: u64,
    /// Where this change's edits start in the `edits` array of the same poll.
    pub first_edit: u32,
    /// How many edits it has (0 unless `CW_CHANGE_EDITS`).
    pub edit_count: u32,
}

/// `cw_realtime_state`: not started, or stopped.
pub const CW_REALTIME_OFF: i32 = 0;
/// `cw_realtime_state`: connecting, or waiting to reconnect after a failure.
pub const CW_REALTIME_CONNECTING: i32 = 1;
/// `cw_realtime_state`: connected.
pub const CW_REALTIME_CONNECTED: i32 = 2;
/// `cw_realtime_state`: the server refused the token at connect (a 401 to a token that never
/// worked, or a 403); no more attempts until `cw_set_token` gives a new token
/// (`cw_last_error` after `cw_realtime_state` says why).
pub const CW_REALTIME_REFUSED: i32 = 3;
/// `cw_realtime_state`: the server answered 401 at connect to a token that had worked or has
/// expired: get a new token (log in again) and call `cw_set_token`; attempts resume with it.
pub const CW_REALTIME_TOKEN_REFUSED: i32 = 4;

/// Longest player id `cw_login_guest` writes, in bytes.
pub const CW_MAX_PLAYER_LEN: usize = 128;

/// What `cw_login_guest` answers besides the token.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct CwGuestSession {
    /// When the token expires, in seconds since the Unix epoch (by the server's clock).
    pub expires_at: u64,
    /// How long the token is valid from the answer, in seconds: schedule the next login from
    /// this (it does not depend on the device's clock).
    pub expires_in: u32,
    /// Bytes of `player` in use.
    pub player_len: u32,
    /// The guest's player id (`guest-...`), UTF-8, `player_len` bytes, NUL-padded
    /// (`CW_MAX_PLAYER_LEN` bytes; spelled as a number for the C# bindings' generator).
    pub player: [u8; 128],
}
const _: () = assert!(CW_MAX_PLAYER_LEN == 128);
