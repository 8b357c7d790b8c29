//! Realtime messages on arbitrary bytes: a region message and a topic (what the SDK's follower
//! parses from the broker) never panic; every change that parses survives a round trip,
//! merges with the next one and applies (or asks for a refetch) without indexing out of bounds.
#![no_main]
use cubewalk_protocol::realtime::{
    parse_region_message, parse_region_topic, region_message, region_topic,
};
use cubewalk_protocol::CHUNK_CUBES;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(changes) = parse_region_message(data) {
        assert_eq!(
            parse_region_message(region_message(&changes).as_bytes()).as_ref(),
            Ok(&changes)
        );
        let mut cubes = [0i32; CHUNK_CUBES];
        for pair in changes.windows(2) {
            let _ = pair[0].apply(pair[0].previous, &mut cubes);
            let mut merged = pair[0].clone();
            merged.merge(&pair[1]);
            let _ = merged.apply(merged.previous, &mut cubes);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some((world, region)) = parse_region_topic(text) {
            assert_eq!(region_topic(&world, region), text);
        }
    }
});
