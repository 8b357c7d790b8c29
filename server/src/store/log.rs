//! The edit log: every change a put (or a rollback) makes to a chunk is appended, in the same
//! atomic step as the chunk write, to that chunk's log (in Redis a Stream beside the chunk, in
//! the same hash slot, trimmed by age). A chunk's log is its history; a player's history is
//! the logs of the chunks they wrote, which the store indexes per player.

/// How long log records are kept: 7 days.
pub const LOG_RETENTION_SECS: u64 = 7 * 24 * 3600;

/// Milliseconds since the Unix epoch on this machine's clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One cube's change within a logged write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CubeChange {
    /// Cube index in the chunk (0..4096).
    pub index: u16,
    /// Value before the write.
    pub before: i32,
    /// Value after the write.
    pub after: i32,
}

/// One logged write of one chunk.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogRecord {
    /// The record's id, ordered like the writes (`<unix ms>-<seq>`, a Redis Stream id).
    pub id: String,
    /// When the store applied the write, in Unix milliseconds.
    pub at_ms: u64,
    /// Who wrote it.
    pub player: String,
    /// Each changed cube, by index.
    pub changes: Vec<CubeChange>,
}

/// The stored form of `changes`: `index:before:after` joined by `,` (compact, and readable in
/// `redis-cli`).
pub(crate) fn encode_changes(changes: &[CubeChange]) -> String {
    let mut out = String::with_capacity(changes.len() * 12);
    for (n, c) in changes.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(&format!("{}:{}:{}", c.index, c.before, c.after));
    }
    out
}

/// Reads [`encode_changes`]'s form back; `None` when it is not that form.
pub(crate) fn decode_changes(text: &str) -> Option<Vec<CubeChange>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',')
        .map(|item| {
            let mut parts = item.split(':');
            let index: u16 = parts.next()?.parse().ok()?;
            let before = parts.next()?.parse().ok()?;
            let after = parts.next()?.parse().ok()?;
            (parts.next().is_none() && usize::from(index) < cubewalk_protocol::CHUNK_CUBES)
                .then_some(CubeChange {
                    index,
                    before,
                    after,
                })
        })
        .collect()
}

/// The Unix milliseconds of a Stream id `<ms>-<seq>`.
pub(crate) fn id_ms(id: &str) -> u64 {
    id.split('-')
        .next()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip_and_refuse_garbage() {
        let changes = vec![
            CubeChange {
                index: 0,
                before: 0,
                after: -7,
            },
            CubeChange {
                index: 4095,
                before: i32::MIN,
                after: i32::MAX,
            },
        ];
        assert_eq!(decode_changes(&encode_changes(&changes)), Some(changes));
        assert_eq!(decode_changes(""), Some(vec![]));
        for bad in ["1:2", "4096:0:1", "1:2:3:4", "a:b:c", "1:2:3,"] {
            assert_eq!(decode_changes(bad), None, "{bad}");
        }
        assert_eq!(id_ms("1700000000123-4"), 1_700_000_000_123);
    }
}
