//! GET query parsing on arbitrary text (world before the first NUL, chunks after): never
//! panics; every refusal is a 4xx; what parses round-trips through the query string.
#![no_main]
use cubewalk_protocol::FetchQuery;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (world, chunks) = text.split_once('\0').unwrap_or(("default", &text));
    match FetchQuery::parse(Some(world), Some(chunks)) {
        Ok(q) => {
            let qs = q.to_query_string();
            let back = FetchQuery::parse(Some(q.world.as_str()), qs.split("chunks=").nth(1)).unwrap();
            assert_eq!(back, q);
        }
        Err(e) => assert!((400..500).contains(&e.status())),
    }
});
