//! The chunk decoder on arbitrary bytes: never panics, never allocates past its bound, and
//! whatever it accepts re-encodes to a blob that decodes to the same cubes.
#![no_main]
use cubewalk_protocol::codec::{decode_chunk, encode_chunk, MAX_BLOB_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cubes) = decode_chunk(data) {
        let again = encode_chunk(&cubes);
        assert!(again.len() <= MAX_BLOB_LEN);
        assert_eq!(*decode_chunk(&again).unwrap(), *cubes);
    }
});
