//! The realtime messages: the MQTT topics changes are published on and the message a region
//! topic carries. Only the format lives here; the broker, the publisher and the SDK's follower
//! build on it.
//!
//! The world is cut into regions of [`REGION_CHUNKS`]³ chunks, one topic per region
//! (`cw/<world>/<rx>/<ry>/<rz>`, see [`region_topic`]). A follower subscribes to the regions
//! covering the chunks it follows (a 9x9x9 neighbourhood touches exactly 27) and drops changes
//! to chunks it does not follow. The publisher coalesces per region per tick: one message holds
//! the latest change of every chunk of the region that changed during the tick, so a follower
//! receives at most one message per region per tick however many players edit.
//!
//! A change is a positional JSON array; versions travel as 11 characters of unpadded base64url
//! (the 8 bytes of the revision, little-endian) rather than up to 20 digits. A change carries
//! the version before (`p`) and after (`v`) and the chunk's write sequence before (`f`) and
//! after (`n`). The write sequence grows with every write the store applies to the chunk
//! (by one, or to the store's clock in microseconds when that is higher, so it never repeats
//! after the store loses data), and fetch answers carry it too, so a follower always knows
//! where it stands:
//! - `n` at or below the sequence it holds: old news (delivered late, or older than a fetch):
//!   ignored;
//! - `f` equal to the sequence it holds (and `p` the version it holds): the edits `e` turn its
//!   copy into `v`;
//! - anything else (`f` above what it holds: messages were missed; or no edits because too
//!   many cubes changed): it refetches the chunk.
//!
//! Versions name contents, so a chunk edited A → B → A holds the same version before and after;
//! the sequence is what orders changes, never the versions.

use crate::chunk::{ChunkKey, CHUNK_CUBES};
use crate::world::WorldId;
use base64::Engine;

/// Most chunks one follower may follow at once (a 9x9x9 neighbourhood is 729).
pub const MAX_SUBSCRIBED_CHUNKS: usize = 1024;
/// Most cube edits a change carries; a bigger change is sent without them (refetch).
pub const MAX_EDITS_IN_CHANGE: usize = 64;
/// Chunks along each edge of a region (one topic per region). 4: a follower of 9 chunks per
/// axis (a radius-4 neighbourhood) always spans 3 regions per axis, 27 in all: within AWS IoT
/// Core's 50 subscriptions per connection ([`MAX_FOLLOWED_REGIONS`]), in 4 SUBSCRIBEs of at most
/// 8 filters each (IoT Core's limit per SUBSCRIBE). It receives the changes of 27 x 64 = 1,728
/// chunks to follow 729 (2.37 times; with 8x8x8 regions it was 8 x 512 = 4,096, 5.62 times),
/// and IoT Core bills every delivery.
///
/// The price: at one message per region per tick a follower may receive up to 27 x 10 = 270
/// messages a second, past IoT Core's 100 publishes a second per connection (not adjustable;
/// with 8 regions the bound was 80). That takes more than about 100 region-changes a second
/// around one player; the design crowd (1,000 players at the spawn, 50 of them editing once a
/// second) stays at most about 50. When IoT Core throttles, the follower misses messages, sees
/// the jump in the chunk's write sequence and refetches: never silently wrong, but it costs
/// REST fetches.
pub const REGION_CHUNKS: i32 = 4;
/// Most regions one follower may subscribe to: AWS IoT Core's default subscriptions per
/// connection.
pub const MAX_FOLLOWED_REGIONS: usize = 50;
/// How often the publisher sends what changed: at most one message per region per tick.
pub const TICK_MS: u64 = 100;
/// Largest region message the publisher sends, in bytes: under AWS IoT Core's 128 KB message
/// limit (a bigger message would be dropped whole). Past it, the changes with the most edits
/// are sent without them (their followers refetch). A region's 64 chunks take about 6 KB
/// without edits and under 80 KB with the most edits each (the widest values): the limit is a
/// safeguard that a region of 4x4x4 chunks never reaches (one of 8x8x8 did).
pub const MAX_MESSAGE_BYTES: usize = 100_000;
/// The first level of every change topic.
pub const TOPIC_ROOT: &str = "cw";

/// A region: [`REGION_CHUNKS`]³ chunks, the unit of publishing and subscribing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region {
    /// Region x (chunk x divided by [`REGION_CHUNKS`], rounded down).
    pub x: i32,
    /// Region y.
    pub y: i32,
    /// Region z.
    pub z: i32,
}

impl Region {
    /// The region holding `chunk`.
    pub fn of(chunk: ChunkKey) -> Self {
        Self {
            x: chunk.x.div_euclid(REGION_CHUNKS),
            y: chunk.y.div_euclid(REGION_CHUNKS),
            z: chunk.z.div_euclid(REGION_CHUNKS),
        }
    }
}

/// The topic `region` of `world` is published on: `cw/<world>/<x>/<y>/<z>` (world ids never
/// hold `/`, `+` or `#`).
pub fn region_topic(world: &WorldId, region: Region) -> String {
    format!(
        "{TOPIC_ROOT}/{}/{}/{}/{}",
        world.as_str(),
        region.x,
        region.y,
        region.z
    )
}

/// The world and region a change topic names, if it is one.
pub fn parse_region_topic(topic: &str) -> Option<(WorldId, Region)> {
    let mut parts = topic.split('/');
    if parts.next()? != TOPIC_ROOT {
        return None;
    }
    let world = WorldId::new(parts.next()?).ok()?;
    let mut axis = || parts.next()?.parse::<i32>().ok();
    let region = Region {
        x: axis()?,
        y: axis()?,
        z: axis()?,
    };
    // Only the canonical spelling (no `+1`, `01`, `-0`): one region, one topic.
    (parts.next().is_none() && region_topic(&world, region) == topic).then_some((world, region))
}

/// The regions covering `chunks`, sorted, without repeats.
pub fn regions_covering(chunks: &[ChunkKey]) -> Vec<Region> {
    let mut regions: Vec<Region> = chunks.iter().map(|c| Region::of(*c)).collect();
    regions.sort_unstable();
    regions.dedup();
    regions
}

/// A chunk changed. On the wire it is a JSON array, positional to stay small:
/// `[[x,y,z],"<previous>","<version>",from_seq,seq,index,value,...]`, ending with `null` when
/// more cubes changed than a change carries (refetch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The chunk.
    pub chunk: ChunkKey,
    /// Its version before the edit.
    pub previous: u64,
    /// Its version after the edit.
    pub version: u64,
    /// The chunk's write sequence before the change (the one the write grew from; lower when
    /// the publisher coalesced several writes into this change).
    pub from_seq: u64,
    /// The chunk's write sequence after the change: grows with each write applied to the
    /// chunk, and never repeats even when the store loses the chunk. Orders changes; see the
    /// module docs.
    pub seq: u64,
    /// The cube edits that turn `previous` into `version`, as (index, value), when at most
    /// [`MAX_EDITS_IN_CHANGE`] cubes changed; `None` otherwise (refetch).
    pub edits: Option<Vec<(u16, i32)>>,
}

impl Change {
    /// The change of one write from `before` to `after` of `chunk` (write sequence `seq`
    /// after it), carrying the changed cubes when few.
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
                        from_seq: seq.saturating_sub(1),
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
            from_seq: seq.saturating_sub(1),
            seq,
            edits: Some(edits),
        }
    }

    /// This change followed by `next` (the same chunk's next change) as one: from this one's
    /// previous version and sequence to `next`'s, with the latest value of every cube either
    /// changed. Without edits (refetch) when either has none, when the two do not join (`next`
    /// does not start where this one ends) or when together they change too many cubes.
    pub fn merge(&mut self, next: &Change) {
        let joined = next.from_seq == self.seq && next.previous == self.version;
        self.edits = match (self.edits.take(), &next.edits) {
            (Some(mut edits), Some(more)) if joined => {
                for &(index, value) in more {
                    match edits.iter_mut().find(|(i, _)| *i == index) {
                        Some(slot) => slot.1 = value,
                        None => edits.push((index, value)),
                    }
                }
                (edits.len() <= MAX_EDITS_IN_CHANGE).then_some(edits)
            }
            _ => None,
        };
        self.version = next.version;
        self.seq = next.seq;
    }

    /// The change as JSON text.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write_text(&mut out);
        out
    }

    /// Appends the change as JSON text to `out`.
    pub fn write_text(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = write!(
            out,
            "[[{},{},{}],\"{}\",\"{}\",{},{}",
            self.chunk.x,
            self.chunk.y,
            self.chunk.z,
            compact(self.previous),
            compact(self.version),
            self.from_seq,
            self.seq
        );
        match &self.edits {
            Some(edits) => {
                for (i, v) in edits {
                    let _ = write!(out, ",{i},{v}");
                }
            }
            None => out.push_str(",null"),
        }
        out.push(']');
    }

    /// Parses one change's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let items: Vec<serde_json::Value> =
            serde_json::from_str(text).map_err(|e| e.to_string())?;
        Self::from_items(&items)
    }

    fn from_items(items: &[serde_json::Value]) -> Result<Self, String> {
        let bad = || "not a change".to_string();
        if items.len() < 5 {
            return Err(bad());
        }
        let chunk: ChunkKey =
            serde_json::from_value(items[0].clone()).map_err(|e| e.to_string())?;
        let version_at = |i: usize| items[i].as_str().ok_or_else(bad).and_then(uncompact);
        let (previous, version) = (version_at(1)?, version_at(2)?);
        let from_seq = items[3].as_u64().ok_or_else(bad)?;
        let seq = items[4].as_u64().ok_or_else(bad)?;
        if from_seq >= seq {
            return Err(bad());
        }
        let rest = &items[5..];
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
            from_seq,
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

/// The message a region topic carries: the changes of one tick, a JSON array of changes.
pub fn region_message(changes: &[Change]) -> String {
    let mut out = String::from("[");
    for (i, change) in changes.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        change.write_text(&mut out);
    }
    out.push(']');
    out
}

/// Parses a region topic's message into its changes.
pub fn parse_region_message(text: &[u8]) -> Result<Vec<Change>, String> {
    let items: Vec<Vec<serde_json::Value>> =
        serde_json::from_slice(text).map_err(|e| e.to_string())?;
    items.iter().map(|c| Change::from_items(c)).collect()
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
    fn a_single_cube_edit_fits_in_96_bytes() {
        let before = fixtures::terrain();
        let mut after = before.clone();
        after[1234] = 42;
        // Worst-case versions (all 8 bytes used), a chunk a few hundred chunks from the origin
        // and sequences of sixteen digits (the store's clock in microseconds, until 2286).
        let change = Change::between(
            ChunkKey::new(-312, 4, 977),
            u64::MAX - 1,
            &before,
            u64::MAX / 3,
            &after,
            9_999_999_999_999_999,
        );
        let text = change.to_text();
        assert!(text.len() <= 96, "{} bytes: {text}", text.len());
        assert_eq!(change.edits.as_deref(), Some(&[(1234, 42)][..]));
        assert_eq!(change.from_seq, 9_999_999_999_999_998);
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
        let v = "AAAAAAAAAAA";
        for bad in [
            format!(r#"[[0,0,0],"{v}","{v}",0,1,4096,1]"#),
            format!(r#"[[0,0,0],"{v}"]"#),
            format!(r#"[[0,0,0],"{v}","{v}",1]"#),
            format!(r#"[[0,0,0],"{v}","{v}",-1,1,null]"#),
            format!(r#"[[0,0,0],"{v}","{v}",0,1,1]"#),
            format!(r#"[[0,0,0],"{v}","{v}",3,3,null]"#),
        ] {
            assert!(Change::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn merged_changes_keep_the_last_value_of_each_cube_and_span_both_sequences() {
        let k = ChunkKey::new(1, 2, 3);
        let mut first = Change {
            chunk: k,
            previous: 10,
            version: 11,
            from_seq: 4,
            seq: 5,
            edits: Some(vec![(1, 7), (2, 8)]),
        };
        let second = Change {
            chunk: k,
            previous: 11,
            version: 10,
            from_seq: 5,
            seq: 6,
            edits: Some(vec![(2, 0), (3, 9)]),
        };
        first.merge(&second);
        assert_eq!(
            first,
            Change {
                chunk: k,
                previous: 10,
                version: 10,
                from_seq: 4,
                seq: 6,
                edits: Some(vec![(1, 7), (2, 0), (3, 9)]),
            }
        );
        // A change that does not start where the first ends: refetch.
        let mut a = first.clone();
        a.merge(&Change {
            from_seq: 9,
            seq: 10,
            previous: 10,
            ..second.clone()
        });
        assert_eq!((a.edits, a.from_seq, a.seq), (None, 4, 10));
        // Too many cubes between them: refetch.
        let many = |start: u16| Change {
            edits: Some((start..start + 40).map(|i| (i, 1)).collect()),
            ..second.clone()
        };
        let mut b = Change {
            from_seq: 4,
            seq: 5,
            previous: 10,
            version: 11,
            ..many(0)
        };
        b.merge(&many(100));
        assert_eq!(b.edits, None);
    }

    #[test]
    fn region_messages_round_trip_and_topics_name_their_region() {
        let changes = vec![
            Change {
                chunk: ChunkKey::new(-1, 0, 7),
                previous: 1,
                version: 2,
                from_seq: 0,
                seq: 1,
                edits: Some(vec![(0, 5)]),
            },
            Change {
                chunk: ChunkKey::new(0, 0, 0),
                previous: 3,
                version: 4,
                from_seq: 2,
                seq: 9,
                edits: None,
            },
        ];
        let text = region_message(&changes);
        assert_eq!(parse_region_message(text.as_bytes()).unwrap(), changes);
        assert_eq!(parse_region_message(b"[]").unwrap(), vec![]);
        assert!(parse_region_message(b"[[1]]").is_err());
        assert!(parse_region_message(b"{}").is_err());

        let world = WorldId::new("w-1.a").unwrap();
        let r = REGION_CHUNKS;
        let region = Region::of(ChunkKey::new(-1, r, 2 * r - 1));
        assert_eq!(region, Region { x: -1, y: 1, z: 1 });
        // Rounded down, negatives included.
        assert_eq!(
            Region::of(ChunkKey::new(-r, -r - 1, r - 1)),
            Region { x: -1, y: -2, z: 0 }
        );
        let topic = region_topic(&world, region);
        assert_eq!(topic, "cw/w-1.a/-1/1/1");
        assert_eq!(parse_region_topic(&topic), Some((world, region)));
        for bad in [
            "cw/w/1/2",
            "cw/w/1/2/3/4",
            "xx/w/1/2/3",
            "cw/bad id/1/2/3",
            "cw/w/a/2/3",
        ] {
            assert_eq!(parse_region_topic(bad), None, "{bad}");
        }
    }

    /// The 729 chunks of the 9x9x9 neighbourhood centred on `centre`.
    fn neighbourhood(centre: ChunkKey) -> Vec<ChunkKey> {
        (-4..=4)
            .flat_map(|x| (-4..=4).flat_map(move |y| (-4..=4).map(move |z| (x, y, z))))
            .map(|(x, y, z)| ChunkKey::new(centre.x + x, centre.y + y, centre.z + z))
            .collect()
    }

    #[test]
    fn a_radius_4_neighbourhood_touches_exactly_27_regions_at_every_offset() {
        // Every offset of the centre within a region, on each axis, on both sides of zero.
        let span = -2 * REGION_CHUNKS..2 * REGION_CHUNKS;
        for x in span.clone() {
            for y in span.clone() {
                for z in span.clone() {
                    let regions = regions_covering(&neighbourhood(ChunkKey::new(x, y, z)));
                    assert_eq!(regions.len(), 27, "centre {x},{y},{z}");
                    assert!(regions.len() <= MAX_FOLLOWED_REGIONS);
                    // 3 regions per axis, the one holding the centre in the middle.
                    let centre = Region::of(ChunkKey::new(x, y, z));
                    assert_eq!(regions.first().unwrap().x, centre.x - 1);
                    assert_eq!(regions.last().unwrap().x, centre.x + 1);
                }
            }
        }
    }

    #[test]
    fn a_region_message_of_every_chunk_with_the_most_edits_fits_the_limit() {
        // The widest change: coordinates, sequences and values at their longest.
        let changes: Vec<Change> = (0..REGION_CHUNKS.pow(3))
            .map(|i| Change {
                chunk: ChunkKey::new(i32::MIN + i, i32::MIN, i32::MIN),
                previous: u64::MAX,
                version: u64::MAX - 1,
                from_seq: u64::MAX - 1,
                seq: u64::MAX,
                edits: Some(
                    (0..MAX_EDITS_IN_CHANGE as u16)
                        .map(|j| (CHUNK_CUBES as u16 - 1 - j, i32::MIN))
                        .collect(),
                ),
            })
            .collect();
        let text = region_message(&changes);
        assert!(text.len() < 80_000, "{} bytes", text.len());
        assert!(text.len() <= MAX_MESSAGE_BYTES);
    }

    proptest::proptest! {
        #[test]
        fn a_radius_4_neighbourhood_anywhere_fits_the_subscription_limit(
            x in -1_000_000_000i32..1_000_000_000,
            y in -1_000_000_000i32..1_000_000_000,
            z in -1_000_000_000i32..1_000_000_000,
        ) {
            let regions = regions_covering(&neighbourhood(ChunkKey::new(x, y, z)));
            proptest::prop_assert_eq!(regions.len(), 27);
            proptest::prop_assert!(regions.len() <= MAX_FOLLOWED_REGIONS);
        }
    }
}
