//! Realtime messages on arbitrary text: a client's subscribe/unsubscribe (what the WebSocket
//! handler parses) and a change (what the SDK parses) never panic; a change that parses
//! survives a round trip and applies (or asks for a refetch) without indexing out of bounds.
#![no_main]
use cubewalk_protocol::realtime::{Change, ClientMessage, MAX_SUBSCRIBED_CHUNKS};
use cubewalk_protocol::CHUNK_CUBES;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ClientMessage::Subscribe { chunks, .. } | ClientMessage::Unsubscribe { chunks }) =
        ClientMessage::parse(text)
    {
        assert!(chunks.len() <= MAX_SUBSCRIBED_CHUNKS);
    }
    if let Ok(change) = Change::parse(text) {
        assert_eq!(Change::parse(&change.to_text()).as_ref(), Ok(&change));
        let mut cubes = [0i32; CHUNK_CUBES];
        let _ = change.apply(change.previous, &mut cubes);
    }
});
