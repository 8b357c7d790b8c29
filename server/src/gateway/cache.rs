//! The authorizer result cache: validated answers per token, for a TTL.

use super::policy::Grant;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most tokens cached at once; past it, expired entries are dropped, then everything.
const MAX_ENTRIES: usize = 10_000;

/// A cached grant and when it expires, keyed by the token's digest.
type Entries = HashMap<[u8; 32], (Instant, Arc<Grant>)>;

/// Cached grants keyed by the SHA-256 of the token, so the cache holds no token in clear.
pub(super) struct AuthCache {
    ttl: Duration,
    entries: Mutex<Entries>,
}

impl AuthCache {
    pub(super) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn get(&self, token: &str) -> Option<Arc<Grant>> {
        if self.ttl.is_zero() {
            return None;
        }
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(&key)
            .filter(|(expires, _)| Instant::now() < *expires)
            .map(|(_, g)| g.clone())
    }

    pub(super) fn put(&self, token: &str, grant: Arc<Grant>) {
        if self.ttl.is_zero() {
            return;
        }
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (expires, _)| now < *expires);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (now + self.ttl, grant));
    }
}
