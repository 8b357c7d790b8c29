//! Client settings, their defaults and their limits: the one place both the Rust API and the C
//! ABI (`cw_options_default`, `cw_init_with_options`) take them from.

use crate::error::{Error, Result};
use crate::retry::RetryPolicy;
use cubewalk_protocol::limits::IDEMPOTENCY_WINDOW_SECS;
use std::time::Duration;

/// Longest accepted endpoint URL, in bytes.
pub const MAX_ENDPOINT_LEN: usize = 2048;
/// Longest accepted token, in bytes.
pub const MAX_TOKEN_LEN: usize = 4096;
/// Longest `timeout` a client accepts, in milliseconds. A put is retried only within its
/// call's timeout, and the server remembers a put's idempotency key for longer than this, so
/// every retry is recognised.
pub const MAX_TIMEOUT_MS: u32 = 600_000;
const _: () = assert!((MAX_TIMEOUT_MS as u64) / 1000 < IDEMPOTENCY_WINDOW_SECS);
/// Longest `connect_timeout`, in milliseconds.
pub const MAX_CONNECT_TIMEOUT_MS: u32 = 60_000;
/// Most retries after the first attempt.
pub const MAX_RETRIES: u32 = 100;
/// Longest backoff delay (base or cap), in milliseconds.
pub const MAX_RETRY_DELAY_MS: u32 = 60_000;
/// Most HTTP requests in flight at once.
pub const MAX_IN_FLIGHT: usize = 1024;
/// Largest extra root certificate bundle, in bytes.
pub const MAX_CA_PEM_BYTES: usize = 1 << 20;

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Longest one call (fetch or put, all its requests and retries) may take.
    pub timeout: Duration,
    /// Longest wait for a TCP/TLS connection.
    pub connect_timeout: Duration,
    /// Retry policy for transient failures.
    pub retry: RetryPolicy,
    /// Most HTTP requests in flight at once across the client.
    pub max_in_flight: usize,
    /// Allow plain `http://` to a non-loopback host (sends the token in clear).
    pub allow_insecure_http: bool,
    /// Extra trusted root certificates (PEM), for a private CA or a test server.
    pub extra_root_ca_pem: Option<Vec<u8>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            max_in_flight: 16,
            allow_insecure_http: false,
            extra_root_ca_pem: None,
        }
    }
}

impl ClientOptions {
    /// Refuses settings outside the limits above, naming the setting.
    pub fn validate(&self) -> Result<()> {
        let ms = |d: Duration| d.as_millis();
        let bad = |m: String| Err(Error::InvalidArgument(format!("options: {m}")));
        if self.timeout.is_zero() || ms(self.timeout) > u128::from(MAX_TIMEOUT_MS) {
            return bad(format!("timeout must be 1 to {MAX_TIMEOUT_MS} ms"));
        }
        if self.connect_timeout.is_zero()
            || ms(self.connect_timeout) > u128::from(MAX_CONNECT_TIMEOUT_MS)
        {
            return bad(format!(
                "connect timeout must be 1 to {MAX_CONNECT_TIMEOUT_MS} ms"
            ));
        }
        if self.retry.max_retries > MAX_RETRIES {
            return bad(format!("max retries must be at most {MAX_RETRIES}"));
        }
        if ms(self.retry.base_delay) > u128::from(MAX_RETRY_DELAY_MS)
            || ms(self.retry.max_delay) > u128::from(MAX_RETRY_DELAY_MS)
        {
            return bad(format!(
                "retry delays must be at most {MAX_RETRY_DELAY_MS} ms"
            ));
        }
        if !(1..=MAX_IN_FLIGHT).contains(&self.max_in_flight) {
            return bad(format!("max_in_flight must be 1 to {MAX_IN_FLIGHT}"));
        }
        if self
            .extra_root_ca_pem
            .as_ref()
            .is_some_and(|p| p.len() > MAX_CA_PEM_BYTES)
        {
            return bad(format!(
                "extra root CA must be at most {MAX_CA_PEM_BYTES} bytes"
            ));
        }
        Ok(())
    }
}
