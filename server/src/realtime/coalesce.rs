//! Per-region, per-tick coalescing: the changes queued during a tick become one message per
//! region, holding the latest change of each chunk (merged across the tick's writes).

use cubewalk_protocol::realtime::{
    region_message, region_topic, Change, Region, MAX_MESSAGE_BYTES,
};
use cubewalk_protocol::{ChunkKey, WorldId};
use std::collections::BTreeMap;

/// The changes of the current tick, by world, region and chunk.
#[derive(Debug, Default)]
pub struct Coalescer {
    pending: BTreeMap<(WorldId, Region), BTreeMap<ChunkKey, Change>>,
    changes: usize,
}

impl Coalescer {
    /// An empty tick.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one change of `world`: merged into the chunk's pending change when there is one.
    /// Two puts of one chunk can queue their changes in the other order than the store applied
    /// them (each queues after its own atomic step); a change that ends exactly where the
    /// pending one starts is joined in front of it, so the tick still sends one unbroken span.
    pub fn add(&mut self, world: &WorldId, change: Change) {
        self.changes += 1;
        let region = self
            .pending
            .entry((world.clone(), Region::of(change.chunk)))
            .or_default();
        match region.get_mut(&change.chunk) {
            Some(pending) if change.seq > pending.seq => pending.merge(&change),
            Some(pending)
                if change.seq == pending.from_seq && change.version == pending.previous =>
            {
                let mut joined = change;
                joined.merge(pending);
                *pending = joined;
            }
            // An older change not next to the pending one, or a repeated one (a replay): what
            // is pending is newer already, and followers that missed the older one see the gap
            // in the sequence and refetch.
            Some(_) => {}
            None => {
                region.insert(change.chunk, change);
            }
        }
    }

    /// How many changes were added since the last [`Coalescer::take`].
    pub fn added(&self) -> usize {
        self.changes
    }

    /// The tick's messages, one per region that changed: `(topic, payload)`; starts the next
    /// tick.
    pub fn take(&mut self) -> Vec<(String, String)> {
        self.changes = 0;
        std::mem::take(&mut self.pending)
            .into_iter()
            .map(|((world, region), chunks)| {
                let changes: Vec<Change> = chunks.into_values().collect();
                (region_topic(&world, region), within_budget(changes))
            })
            .collect()
    }
}

/// The message of `changes`, at most [`MAX_MESSAGE_BYTES`]: the changes carrying the most
/// edits lose them (their followers refetch) until it fits.
fn within_budget(mut changes: Vec<Change>) -> String {
    let message = region_message(&changes);
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    let mut over = message.len() - MAX_MESSAGE_BYTES;
    let mut by_size: Vec<usize> = (0..changes.len()).collect();
    by_size.sort_by_key(|&i| std::cmp::Reverse(changes[i].edits.as_ref().map_or(0, Vec::len)));
    for i in by_size {
        if changes[i].edits.is_none() {
            break;
        }
        let before = changes[i].to_text().len();
        changes[i].edits = None;
        over = over.saturating_sub(before.saturating_sub(changes[i].to_text().len()));
        if over == 0 {
            break;
        }
    }
    region_message(&changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cubewalk_protocol::realtime::{parse_region_message, REGION_CHUNKS};

    fn change(chunk: ChunkKey, seq: u64, previous: u64, version: u64, index: u16) -> Change {
        Change {
            chunk,
            previous,
            version,
            from_seq: seq - 1,
            seq,
            edits: Some(vec![(index, seq as i32)]),
        }
    }

    #[test]
    fn a_tick_sends_one_message_per_region_with_each_chunk_merged() {
        let w = WorldId::new("w").unwrap();
        let r = REGION_CHUNKS;
        let (a, b, far) = (
            ChunkKey::new(0, 0, 0),
            ChunkKey::new(r - 1, r - 1, r - 1),
            ChunkKey::new(r, 0, 0),
        );
        let mut c = Coalescer::new();
        // A hot chunk edited 100 times in one tick, a neighbour once, a chunk of the next region.
        for seq in 1..=100 {
            c.add(&w, change(a, seq, seq, seq + 1, (seq % 3) as u16));
        }
        c.add(&w, change(b, 5, 50, 51, 9));
        c.add(&w, change(far, 1, 0, 1, 1));
        assert_eq!(c.added(), 102);
        let messages = c.take();
        assert_eq!(messages.len(), 2, "two regions changed");
        assert_eq!(messages[0].0, "cw/w/0/0/0");
        assert_eq!(messages[1].0, "cw/w/1/0/0");
        let first = parse_region_message(messages[0].1.as_bytes()).unwrap();
        assert_eq!(first.len(), 2);
        assert_eq!((first[0].from_seq, first[0].seq), (0, 100));
        assert_eq!((first[0].previous, first[0].version), (1, 101));
        // The last value of each of the three cubes the hot chunk's writes touched.
        assert_eq!(first[0].edits, Some(vec![(1, 100), (2, 98), (0, 99)]));
        assert!(c.take().is_empty(), "the next tick starts empty");
    }

    /// A change of `chunk` with 64 edits of wide values.
    #[test]
    fn two_changes_queued_out_of_order_still_make_one_unbroken_span() {
        let w = WorldId::new("w").unwrap();
        let chunk = ChunkKey::new(-1, 2, -3);
        // The store applied 10 -> 11 (version 7 -> 8) and then 11 -> 12 (8 -> 9), but the
        // second put queued its change first.
        let first = change(chunk, 11, 7, 8, 4);
        let second = change(chunk, 12, 8, 9, 5);
        let mut c = Coalescer::new();
        c.add(&w, second.clone());
        c.add(&w, first.clone());
        let sent = parse_region_message(c.take()[0].1.as_bytes()).unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!((sent[0].from_seq, sent[0].seq), (10, 12));
        assert_eq!((sent[0].previous, sent[0].version), (7, 9));
        assert_eq!(sent[0].edits, Some(vec![(4, 11), (5, 12)]));

        // The same cube in both: the later write's value wins.
        let mut c = Coalescer::new();
        let mut second_same = second;
        second_same.edits = Some(vec![(4, 99)]);
        c.add(&w, second_same);
        c.add(&w, first.clone());
        let sent = parse_region_message(c.take()[0].1.as_bytes()).unwrap();
        assert_eq!(sent[0].edits, Some(vec![(4, 99)]));

        // Not next to each other (a write between is missing): the pending one is kept as it
        // is, and its start shows followers the gap.
        let mut c = Coalescer::new();
        c.add(&w, change(chunk, 13, 9, 10, 6));
        c.add(&w, first);
        let sent = parse_region_message(c.take()[0].1.as_bytes()).unwrap();
        assert_eq!((sent[0].from_seq, sent[0].seq), (12, 13));
    }

    fn wide(chunk: ChunkKey) -> Change {
        Change {
            chunk,
            previous: u64::MAX,
            version: u64::MAX - 1,
            from_seq: 9_999,
            seq: 10_000,
            edits: Some((0..64).map(|i| (4000 + i, i32::MIN + 1)).collect()),
        }
    }

    #[test]
    fn a_whole_region_with_the_most_edits_is_sent_whole() {
        let w = WorldId::new("w").unwrap();
        let mut c = Coalescer::new();
        let r = REGION_CHUNKS;
        for x in 0..r {
            for y in 0..r {
                for z in 0..r {
                    c.add(&w, wide(ChunkKey::new(x, y, z)));
                }
            }
        }
        let messages = c.take();
        assert_eq!(messages.len(), 1);
        let (_, text) = &messages[0];
        assert!(text.len() <= MAX_MESSAGE_BYTES, "{} bytes", text.len());
        let sent = parse_region_message(text.as_bytes()).unwrap();
        assert_eq!(sent.len(), r.pow(3) as usize, "every chunk told");
        assert!(
            sent.iter().all(|c| c.edits.is_some()),
            "none lost its edits"
        );
    }

    #[test]
    fn a_message_never_exceeds_the_budget() {
        // More changes than a region of 4x4x4 chunks holds (512, as one of 8x8x8 did): about
        // 700 KB with all edits. The budget holds should regions grow again.
        let changes: Vec<Change> = (0..512)
            .map(|i| wide(ChunkKey::new(i % 8, (i / 8) % 8, i / 64)))
            .collect();
        let text = within_budget(changes);
        assert!(text.len() <= MAX_MESSAGE_BYTES, "{} bytes", text.len());
        let sent = parse_region_message(text.as_bytes()).unwrap();
        assert_eq!(sent.len(), 512, "every chunk still told");
        let with_edits = sent.iter().filter(|c| c.edits.is_some()).count();
        assert!(
            with_edits > 0 && with_edits < 512,
            "{with_edits} kept their edits"
        );
    }

    #[test]
    fn a_late_or_repeated_change_never_moves_a_chunk_back() {
        let w = WorldId::new("w").unwrap();
        let a = ChunkKey::new(0, 0, 0);
        let mut c = Coalescer::new();
        c.add(&w, change(a, 5, 1, 2, 0));
        c.add(&w, change(a, 3, 7, 8, 0));
        c.add(&w, change(a, 5, 1, 2, 0));
        let sent = parse_region_message(c.take()[0].1.as_bytes()).unwrap();
        assert_eq!((sent[0].from_seq, sent[0].seq, sent[0].version), (4, 5, 2));
    }
}
