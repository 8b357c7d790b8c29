//! The realtime (WebSocket) messages: what a client sends to follow chunks of a world, and
//! what the server pushes when one of them changes. Only the format lives here; the WebSocket
//! API, its handlers and the SDK's subscription client build on it.
//!
//! A connection follows one world at a time (`subscribe` names it), so a change message need not
//! repeat it; a change is a positional JSON array and versions travel as 11 characters of
//! unpadded base64url (the 8 bytes of the revision, little-endian) rather than up to 20 digits,
//! which keeps a single-cube edit well under 64 bytes.
//!
//! A change carries the version before (`p`) and after (`v`) the edit. A subscriber holding `p`
//! applies the cube edits `e` (when present) and now holds `v`; a subscriber holding anything
//! else, or a message without `e` (too many cubes changed to be worth sending), refetches the
//! chunk. Missed messages therefore never leave a client silently wrong: the next message it
//! sees names a `p` it does not hold.
//!
//! Versions name contents, so a chunk edited A → B → A holds the same version before and after;
//! two changes posted at once may also arrive in either order. Each change therefore carries
//! the chunk's write sequence `n` (it grows with every write the store applies to the chunk):
//! a receiver that sees a change whose `n` is not above the last one it saw for that chunk
//! must not apply its edits (it refetches instead), or an old change could be applied to a
//! content that merely looks like its `p`.

use crate::chunk::{ChunkKey, CHUNK_CUBES};
use crate::world::WorldId;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// Most chunks one connection may follow at once (a 9x9x9 neighbourhood is 729).
pub const MAX_SUBSCRIBED_CHUNKS: usize = 1024;
/// Most cube edits a change message carries; a bigger change is sent without them (refetch).
pub const MAX_EDITS_IN_CHANGE: usize = 64;

/// A message from a client: API Gateway routes on `action`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClientMessage {
    /// Follow `chunks` of `world` (replacing any earlier subscription of this connection).
    Subscribe {
        /// The world.
        world: WorldId,
        /// The chunks, at most [`MAX_SUBSCRIBED_CHUNKS`].
        chunks: Vec<ChunkKey>,
    },
    /// Stop following these chunks.
    Unsubscribe {
        /// The chunks.
        chunks: Vec<ChunkKey>,
    },
}

impl ClientMessage {
    /// Parses and checks a client message (chunk count within [`MAX_SUBSCRIBED_CHUNKS`]).
    pub fn parse(text: &str) -> Result<Self, String> {
        let message: Self = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let n = match &message {
            Self::Subscribe { chunks, .. } | Self::Unsubscribe { chunks } => chunks.len(),
        };
        if n > MAX_SUBSCRIBED_CHUNKS {
            return Err(format!(
                "at most {MAX_SUBSCRIBED_CHUNKS} chunks per subscription, got {n}"
            ));
        }
        Ok(message)
    }
}

/// A chunk changed: pushed to every connection following it. On the wire it is a JSON array,
/// positional to stay small: `[[x,y,z],"<previous>","<version>",seq,index,value,...]`,
/// ending with `null` when more cubes changed than a message carries (refetch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The chunk.
    pub chunk: ChunkKey,
    /// Its version before the edit.
    pub previous: u64,
    /// Its version after the edit.
    pub version: u64,
    /// The chunk's write sequence after the edit: grows with each write applied to the chunk
    /// (it starts again if the store loses the chunk). Orders changes; see the module docs.
    pub seq: u64,
    /// The cube edits that turn `previous` into `version`, as (index, value), when at most
    /// [`MAX_EDITS_IN_CHANGE`] cubes changed; `None` otherwise (refetch).
    pub edits: Option<Vec<(u16, i32)>>,
}

impl Change {
    /// The change from `before` to `after` of `chunk` (write sequence `seq`), carrying the
    /// changed cubes when few.
    pub fn between(
        chunk: ChunkKey,
        previous: u64,
        before: &[i32; CHUNK_CUBES],
        version: u64,
        after: &[i32; CHUNK_CUBES],
        seq: u64,
    ) -> Self {
        let mut edits = Vec::new();
        for (i, (b, a)) in before.iter().zip(after.iter()).enumerate() {
            if b != a {
                if edits.len() == MAX_EDITS_IN_CHANGE {
                    return Self {
                        chunk,
                        previous,
                        version,
                        seq,
                        edits: None,
                    };
                }
                edits.push((i as u16, *a));
            }
        }
        Self {
            chunk,
            previous,
            version,
            seq,
            edits: Some(edits),
        }
    }

    /// The message text.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "[[{},{},{}],\"{}\",\"{}\",{}",
            self.chunk.x,
            self.chunk.y,
            self.chunk.z,
            compact(self.previous),
            compact(self.version),
            self.seq
        );
        match &self.edits {
            Some(edits) => {
                for (i, v) in edits {
                    out.push_str(&format!(",{i},{v}"));
                }
            }
            None => out.push_str(",null"),
        }
        out.push(']');
        out
    }

    /// Parses a message text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let items: Vec<serde_json::Value> =
            serde_json::from_str(text).map_err(|e| e.to_string())?;
        let bad = || "not a change message".to_string();
        if items.len() < 4 {
            return Err(bad());
        }
        let chunk: ChunkKey =
            serde_json::from_value(items[0].clone()).map_err(|e| e.to_string())?;
        let version_at = |i: usize| items[i].as_str().ok_or_else(bad).and_then(uncompact);
        let (previous, version) = (version_at(1)?, version_at(2)?);
        let seq = items[3].as_u64().ok_or_else(bad)?;
        let rest = &items[4..];
        let edits = if rest.last().is_some_and(|v| v.is_null()) {
            if rest.len() != 1 {
                return Err(bad());
            }
            None
        } else {
            if !rest.len().is_multiple_of(2) || rest.len() / 2 > MAX_EDITS_IN_CHANGE {
                return Err(bad());
            }
            let mut edits = Vec::with_capacity(rest.len() / 2);
            for pair in rest.chunks(2) {
                let index = pair[0]
                    .as_u64()
                    .filter(|&i| (i as usize) < CHUNK_CUBES)
                    .ok_or_else(bad)?;
                let value = pair[1]
                    .as_i64()
                    .and_then(|v| i32::try_from(v).ok())
                    .ok_or_else(bad)?;
                edits.push((index as u16, value));
            }
            Some(edits)
        };
        Ok(Self {
            chunk,
            previous,
            version,
            seq,
            edits,
        })
    }

    /// Applies the change to a subscriber's copy: `Ok(true)` when `held` was `previous` and the
    /// edits were applied (the copy is now at `version`), `Ok(false)` when the change says
    /// nothing new (`held` is already `version`), `Err(())` when the subscriber must refetch.
    #[allow(clippy::result_unit_err)]
    pub fn apply(&self, held: u64, cubes: &mut [i32; CHUNK_CUBES]) -> Result<bool, ()> {
        if held == self.version {
            return Ok(false);
        }
        match &self.edits {
            Some(edits) if held == self.previous => {
                for &(i, v) in edits {
                    *cubes.get_mut(usize::from(i)).ok_or(())? = v;
                }
                Ok(true)
            }
            _ => Err(()),
        }
    }
}

/// A version as 11 characters of unpadded base64url of its 8 little-endian bytes.
fn compact(v: u64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_le_bytes())
}

fn uncompact(text: &str) -> Result<u64, String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.as_bytes())
        .map_err(|e| e.to_string())?;
    let bytes: [u8; 8] = bytes
        .try_into()
        .map_err(|_| "a version is 8 bytes".to_string())?;
    Ok(u64::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::fixtures;

    #[test]
    fn a_single_cube_edit_fits_in_64_bytes() {
        let before = fixtures::terrain();
        let mut after = before.clone();
        after[1234] = 42;
        // Worst-case versions (all 8 bytes used) and a chunk a few hundred chunks from the origin.
        // A write sequence of ten digits: ten billion writes to one chunk.
        let change = Change::between(
            ChunkKey::new(-312, 4, 977),
            u64::MAX - 1,
            &before,
            u64::MAX / 3,
            &after,
            9_999_999_999,
        );
        let text = change.to_text();
        assert!(text.len() <= 64, "{} bytes: {text}", text.len());
        assert_eq!(change.edits.as_deref(), Some(&[(1234, 42)][..]));
        assert_eq!(Change::parse(&text).unwrap(), change);
    }

    #[test]
    fn subscribers_apply_small_changes_and_refetch_on_a_gap() {
        let before = fixtures::terrain();
        let mut after = before.clone();
        after[7] = -1;
        after[4095] = 9;
        let change = Change::between(ChunkKey::new(0, 0, 0), 11, &before, 22, &after, 5);
        let mut copy = before.clone();
        assert_eq!(change.apply(11, &mut copy), Ok(true));
        assert_eq!(copy, after);
        assert_eq!(change.apply(22, &mut copy), Ok(false), "already current");
        assert_eq!(change.apply(33, &mut copy), Err(()), "a gap: refetch");
        // A big change carries no edits: everyone refetches.
        let big = Change::between(
            ChunkKey::new(0, 0, 0),
            22,
            &after,
            44,
            &fixtures::random(1),
            6,
        );
        assert_eq!(big.edits, None);
        assert_eq!(big.apply(22, &mut copy), Err(()));
        assert!(big.to_text().ends_with(",null]"));
        assert_eq!(Change::parse(&big.to_text()).unwrap(), big);
        assert!(Change::parse(r#"[[0,0,0],"AAAAAAAAAAA","AAAAAAAAAAA",1,4096,1]"#).is_err());
        assert!(Change::parse(r#"[[0,0,0],"AAAAAAAAAAA"]"#).is_err());
        assert!(
            Change::parse(r#"[[0,0,0],"AAAAAAAAAAA","AAAAAAAAAAA"]"#).is_err(),
            "no seq"
        );
        assert!(Change::parse(r#"[[0,0,0],"AAAAAAAAAAA","AAAAAAAAAAA",-1,null]"#).is_err());
        assert!(Change::parse(r#"[[0,0,0],"AAAAAAAAAAA","AAAAAAAAAAA",1,1]"#).is_err());
    }

    #[test]
    fn client_messages_parse_and_are_bounded() {
        let sub = ClientMessage::parse(
            r#"{"action":"subscribe","world":"default","chunks":[[0,0,0],[-1,2,3]]}"#,
        )
        .unwrap();
        assert_eq!(
            sub,
            ClientMessage::Subscribe {
                world: WorldId::default(),
                chunks: vec![ChunkKey::new(0, 0, 0), ChunkKey::new(-1, 2, 3)]
            }
        );
        assert!(ClientMessage::parse(r#"{"action":"unsubscribe","chunks":[]}"#).is_ok());
        assert!(ClientMessage::parse(r#"{"action":"explode"}"#).is_err());
        assert!(
            ClientMessage::parse(r#"{"action":"subscribe","world":"bad id","chunks":[]}"#).is_err()
        );
        let many: Vec<String> = (0..=MAX_SUBSCRIBED_CHUNKS)
            .map(|i| format!("[{i},0,0]"))
            .collect();
        let text = format!(
            r#"{{"action":"subscribe","world":"w","chunks":[{}]}}"#,
            many.join(",")
        );
        assert!(ClientMessage::parse(&text).unwrap_err().contains("at most"));
    }
}
