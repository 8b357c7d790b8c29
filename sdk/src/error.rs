//! Errors of the SDK and the one status code set shared with the C ABI.

/// Outcome of every C ABI function (`CwStatus` in C). Values are part of the ABI: never reorder.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// The non-blocking request has not finished yet.
    Pending = 1,
    /// A pointer, length or string argument is invalid (null, misaligned, zero, too long, not UTF-8).
    InvalidArgument = 2,
    /// `cw_init` has not been called, or `cw_shutdown` was.
    NotInitialized = 3,
    /// The API answered 401 to a token that never worked: it is missing or wrong. (A token
    /// that had worked, or has expired, is `TokenRefused`.)
    Unauthorized = 4,
    /// The API answered 403: the token's role or worlds do not allow this.
    Forbidden = 5,
    /// The API answered another 4xx: the request is invalid (not retried).
    BadRequest = 6,
    /// The API answered 5xx (or a 429 that is not the player's own limit) and retries did
    /// not help.
    ServerError = 7,
    /// The server could not be reached, or the connection broke.
    Network = 8,
    /// The call did not finish within its timeout.
    Timeout = 9,
    /// The request was cancelled (`cw_cancel`, `cw_shutdown`).
    Cancelled = 10,
    /// A caller buffer is too small; nothing was sent.
    BufferTooSmall = 11,
    /// The server's answer was not what the protocol says (malformed, truncated, mismatched).
    Protocol = 12,
    /// An internal failure, such as a caught panic. The library stays usable.
    Internal = 13,
    /// The API answered 429 `rate_limited` (the player went past their own limits) and the
    /// retries that fit in the call's timeout, each after the `Retry-After` asked, did not get
    /// through. Try again later; nothing was applied.
    RateLimited = 14,
    /// The API answered 401 to a token that had worked before, or to a JWT whose `exp` has
    /// passed: the token expired or was revoked. Get a new one (log in again) and call
    /// `cw_set_token`; nothing else needs to restart.
    TokenRefused = 15,
    /// The API answered 403 `banned`: this player is banned. Retrying will not help.
    Banned = 16,
}

impl Status {
    /// The highest status value: the values are exactly `0..=LAST` (part of the ABI, checked
    /// against the C header by a test).
    ///
    /// cbindgen:ignore
    pub const LAST: i32 = Status::Banned as i32;

    /// The status with this value, if any.
    pub fn from_i32(value: i32) -> Option<Status> {
        // SAFETY: `Status` is `repr(i32)` and its discriminants are exactly 0..=LAST (see above),
        // so every value in that range is a valid `Status`.
        (0..=Self::LAST)
            .contains(&value)
            .then(|| unsafe { std::mem::transmute::<i32, Status>(value) })
    }

    /// The C name (`CW_STATUS_INVALID_ARGUMENT`), derived from the variant's own name, as
    /// cbindgen derives the header's enum: one list, the enum above.
    pub fn c_name(self) -> &'static std::ffi::CStr {
        static NAMES: once_cell::sync::Lazy<Vec<std::ffi::CString>> =
            once_cell::sync::Lazy::new(|| {
                (0..=Status::LAST)
                    .filter_map(Status::from_i32)
                    .map(|s| {
                        let mut name = String::from("CW_STATUS");
                        for c in format!("{s:?}").chars() {
                            if c.is_ascii_uppercase() {
                                name.push('_');
                            }
                            name.push(c.to_ascii_uppercase());
                        }
                        std::ffi::CString::new(name).expect("no NUL in a variant name")
                    })
                    .collect()
            });
        &NAMES[self as usize]
    }
}

/// An SDK error. Messages never contain the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Invalid argument.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Not initialized.
    #[error("not initialized: call cw_init first")]
    NotInitialized,
    /// HTTP 401 to a token that never worked.
    #[error("unauthorized (401): {0}")]
    Unauthorized(String),
    /// HTTP 401 to a token that had worked, or has expired.
    #[error("token refused (401) after it had worked or expired; get a new token and set it: {0}")]
    TokenRefused(String),
    /// HTTP 403 `banned`.
    #[error("banned (403): {0}")]
    Banned(String),
    /// HTTP 429 `rate_limited` after the retries that fit in the deadline.
    #[error("rate limited (429) after {attempts} attempt(s): {message}")]
    RateLimited {
        /// The server's message.
        message: String,
        /// How many attempts were made.
        attempts: u32,
    },
    /// HTTP 403.
    #[error("forbidden (403): {0}")]
    Forbidden(String),
    /// Another HTTP 4xx.
    #[error("bad request ({status}): {message}")]
    BadRequest {
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// HTTP 5xx or 429 after retries.
    #[error("server error ({status}) after {attempts} attempt(s): {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
        /// How many attempts were made.
        attempts: u32,
    },
    /// Connection failure after retries.
    #[error("network error after {attempts} attempt(s): {message}")]
    Network {
        /// What failed.
        message: String,
        /// How many attempts were made.
        attempts: u32,
    },
    /// The deadline passed.
    #[error("timed out after {0} ms")]
    Timeout(u64),
    /// Cancelled.
    #[error("cancelled")]
    Cancelled,
    /// A caller buffer is too small.
    #[error("buffer too small: {needed} entries needed")]
    BufferTooSmall {
        /// Entries needed.
        needed: usize,
    },
    /// Unexpected answer.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Internal failure.
    #[error("internal error: {0}")]
    Internal(String),
    /// A put split over several requests failed part way: the chunks in `applied` were
    /// confirmed applied (with their revisions); the others failed with `cause` and may or may
    /// not have been applied (refetch them to know).
    #[error("{cause} ({} of {total} chunks confirmed applied)", applied.len())]
    PartialPut {
        /// Chunks confirmed applied, in the put's order of first appearance.
        applied: Vec<cubewalk_protocol::VersionEntry>,
        /// Distinct chunks the put touched.
        total: usize,
        /// Why the rest failed.
        cause: Box<Error>,
    },
}

impl Error {
    /// The status code for this error.
    pub fn status(&self) -> Status {
        match self {
            Self::InvalidArgument(_) => Status::InvalidArgument,
            Self::NotInitialized => Status::NotInitialized,
            Self::Unauthorized(_) => Status::Unauthorized,
            Self::TokenRefused(_) => Status::TokenRefused,
            Self::Banned(_) => Status::Banned,
            Self::RateLimited { .. } => Status::RateLimited,
            Self::Forbidden(_) => Status::Forbidden,
            Self::BadRequest { .. } => Status::BadRequest,
            Self::Server { .. } => Status::ServerError,
            Self::Network { .. } => Status::Network,
            Self::Timeout(_) => Status::Timeout,
            Self::Cancelled => Status::Cancelled,
            Self::BufferTooSmall { .. } => Status::BufferTooSmall,
            Self::Protocol(_) => Status::Protocol,
            Self::Internal(_) => Status::Internal,
            Self::PartialPut { cause, .. } => cause.status(),
        }
    }
}

/// Result of SDK operations.
pub type Result<T> = std::result::Result<T, Error>;
