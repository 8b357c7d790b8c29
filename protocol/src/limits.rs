//! Per-request limits, chosen so that no response can exceed Lambda's 6 MB payload limit and no
//! request can make the server do unbounded work. Client and server both read them from here.

use crate::codec::MAX_BLOB_BASE64_LEN;

/// Most chunks one `GET` may select. 256 worst-case (random) chunks make a body of about
/// 5.6 MB, under Lambda's 6 MB response limit with room for the proxy envelope; a test checks it.
pub const MAX_CHUNKS_PER_FETCH: usize = 256;
/// Longest `chunks` query parameter the server parses, in bytes. API Gateway limits the whole
/// URL to about 10 KB; 256 keys of small coordinates need about 3 KB.
pub const MAX_CHUNKS_PARAM_LEN: usize = 8192;
/// Most cube edits one `PUT` may carry.
pub const MAX_EDITS_PER_PUT: usize = 16_384;
/// Most distinct chunks one `PUT` may touch.
pub const MAX_CHUNKS_PER_PUT: usize = 256;
/// Largest `PUT` body the blocks handler parses (16 384 edits of the longest form fit).
pub const MAX_PUT_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Lambda's synchronous response payload limit, counted conservatively in decimal megabytes.
pub const LAMBDA_PAYLOAD_LIMIT: usize = 6_000_000;
/// Upper bound on one fetched chunk's JSON entry: the longest key, version and write sequence
/// plus the largest base64 blob.
pub const MAX_FETCH_ENTRY_JSON_LEN: usize = MAX_BLOB_BASE64_LEN + 128;
/// How long the server remembers a put's idempotency key (and the answer it gave), in seconds.
/// A client may retry a put under the same key only within this window; the SDK's longest
/// call (`timeout_ms` at most 600 000) stays inside it.
pub const IDEMPOTENCY_WINDOW_SECS: u64 = 900;
/// Shortest and longest idempotency key, in characters of `A-Z a-z 0-9 _ -`.
pub const IDEMPOTENCY_KEY_LEN: std::ops::RangeInclusive<usize> = 16..=64;
/// Shortest and longest guest login `device_secret`, in characters of `A-Z a-z 0-9 _ -`: 22
/// characters carry the 128 random bits a game generates once and keeps.
pub const DEVICE_SECRET_LEN: std::ops::RangeInclusive<usize> = 22..=128;
/// Largest guest login body the login handler parses (a secret of the longest form needs
/// about 150 bytes).
pub const MAX_LOGIN_BODY_BYTES: usize = 4096;
