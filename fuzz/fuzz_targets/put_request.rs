//! PUT body parsing and validation on arbitrary bytes: never panics; every refusal is a 4xx.
#![no_main]
use cubewalk_protocol::PutRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match PutRequest::parse(data) {
        Ok(req) => {
            if let Err(e) = req.group() {
                assert!((400..500).contains(&e.status()));
            }
        }
        Err(e) => assert!((400..500).contains(&e.status())),
    }
});
