//! Whether the Redis store's memory is nearly full, read from `INFO memory` on every primary
//! now and then (not per put: one look serves every put for a few seconds).
//!
//! Redis runs with `noeviction`: at `maxmemory` it refuses every write, for every world and
//! player. Refusing growth a little before that (507 `store_full`) keeps edits that do not
//! grow a world, rollbacks and reads working while the operator reacts to the alarm.

use super::redis::RedisStore;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The fullness check of one store.
pub(crate) struct Fullness {
    /// The share of `maxmemory` (on the fullest primary) past which growth is refused.
    full_at: f64,
    /// How long one look stays good.
    every: Duration,
    /// When the last look was taken and what it said.
    last: Mutex<Option<(Instant, bool)>>,
}

impl Fullness {
    /// Refuses growth past `full_at` of `maxmemory`, looking at most once per `every`.
    pub(crate) fn new(full_at: f64, every: Duration) -> Self {
        Self {
            full_at,
            every,
            last: Mutex::new(None),
        }
    }

    /// Whether the fullest primary is past the threshold. A store without `maxmemory`, or
    /// one that will not answer `INFO`, counts as not full (the refusal is a courtesy before
    /// the store's own; failing it must not stop writes).
    pub(crate) async fn nearly_full(&self, store: &RedisStore) -> bool {
        if let Some((at, full)) = *self.lock() {
            if at.elapsed() < self.every {
                return full;
            }
        }
        let mut c = redis::cmd("INFO");
        c.arg("memory");
        let full = match store.query::<redis::Value>(&c).await {
            Ok(answer) => {
                let mut texts = Vec::new();
                collect_texts(&answer, &mut texts);
                texts
                    .iter()
                    .filter_map(|t| used_share(t))
                    .any(|share| share >= self.full_at)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the store's memory use (INFO memory)");
                false
            }
        };
        *self.lock() = Some((Instant::now(), full));
        full
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Instant, bool)>> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Every text in an answer: one `INFO` answer per primary in a cluster (a map of node to text).
fn collect_texts(v: &redis::Value, out: &mut Vec<String>) {
    match v {
        redis::Value::BulkString(b) => out.push(String::from_utf8_lossy(b).into_owned()),
        redis::Value::VerbatimString { text, .. } => out.push(text.clone()),
        redis::Value::SimpleString(s) => out.push(s.clone()),
        redis::Value::Array(items) | redis::Value::Set(items) => {
            items.iter().for_each(|i| collect_texts(i, out))
        }
        redis::Value::Map(pairs) => pairs.iter().for_each(|(_, v)| collect_texts(v, out)),
        _ => {}
    }
}

/// `used_memory / maxmemory` from one `INFO memory` text; `None` without a `maxmemory`.
fn used_share(info: &str) -> Option<f64> {
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let max = field("maxmemory").filter(|m| *m > 0)?;
    Some(field("used_memory")? as f64 / max as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_of_maxmemory() {
        let info = "# Memory\r\nused_memory:900\r\nused_memory_human:900B\r\nmaxmemory:1000\r\n";
        assert_eq!(used_share(info), Some(0.9));
        assert_eq!(used_share("used_memory:5\r\nmaxmemory:0\r\n"), None);
    }
}
