//! The compact chunk encoding, used both on the wire (base64 in JSON) and at rest in the store.
//!
//! A chunk is 4096 opaque `i32` in the game's order. Its encoded form ("blob") is:
//!
//! | blob | meaning |
//! |---|---|
//! | 0 bytes | every cube is `0` (air) |
//! | `0x01` + raw DEFLATE | run-length stream, then DEFLATE: pairs of LEB128 `run length` and zigzag LEB128 `value`, runs summing to exactly 4096 |
//! | `0x02` + 16384 bytes | the 4096 values, little-endian, uncompressed |
//!
//! The encoder picks the smaller of the two non-empty forms, so a blob is never larger than
//! [`MAX_BLOB_LEN`] (16385 bytes; 21848 characters of base64): random chunks cost at most that,
//! while typical terrain (runs along each column) costs a few hundred bytes. Because the same
//! bytes are stored and sent, a fetch never re-encodes a chunk.

use crate::chunk::CHUNK_CUBES;
use base64::Engine;
use miniz_oxide::inflate::core::{self as inflate_core, inflate_flags, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;

/// A chunk's decoded contents in the game's order (`x * 256 + z * 16 + y`).
pub type ChunkData = [i32; CHUNK_CUBES];

/// Tag of the run-length + DEFLATE form.
const TAG_RLE_DEFLATE: u8 = 1;
/// Tag of the uncompressed little-endian form.
const TAG_RAW: u8 = 2;
/// Size of the raw form's payload.
const RAW_LEN: usize = CHUNK_CUBES * 4;
/// Largest blob the encoder produces (the raw form).
pub const MAX_BLOB_LEN: usize = 1 + RAW_LEN;
/// Largest base64 text of one blob (standard alphabet, padded).
pub const MAX_BLOB_BASE64_LEN: usize = MAX_BLOB_LEN.div_ceil(3) * 4;
/// Largest run-length stream: 4096 runs of one cube, each a 2-byte length and a 5-byte value.
const MAX_RLE_LEN: usize = CHUNK_CUBES * 7;
/// DEFLATE level: 6 is miniz's default; measured on the terrain fixture it is within a few
/// bytes of 9 at a fraction of the time.
const DEFLATE_LEVEL: u8 = 6;

/// Why a blob could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The first byte names no known form.
    #[error("unknown chunk encoding tag {0}")]
    UnknownTag(u8),
    /// The raw form does not hold exactly 16384 bytes.
    #[error("raw chunk must hold {RAW_LEN} bytes, found {0}")]
    RawLength(usize),
    /// The DEFLATE stream is corrupt or expands past the largest valid run-length stream.
    #[error("corrupt compressed chunk")]
    Deflate,
    /// The run-length stream is truncated, has a zero run, or does not cover exactly 4096 cubes.
    #[error("corrupt run-length chunk: {0}")]
    Runs(&'static str),
    /// The base64 text is not valid.
    #[error("chunk data is not valid base64")]
    Base64,
    /// The base64 text is longer than any valid blob.
    #[error("chunk data longer than {MAX_BLOB_BASE64_LEN} characters")]
    TooLong,
}

/// Encodes a chunk into its compact blob (empty for an all-air chunk).
pub fn encode_chunk(data: &ChunkData) -> Vec<u8> {
    if data.iter().all(|&v| v == 0) {
        return Vec::new();
    }
    let mut rle = Vec::with_capacity(256);
    let mut i = 0;
    while i < CHUNK_CUBES {
        let value = data[i];
        let mut run = 1;
        while i + run < CHUNK_CUBES && data[i + run] == value {
            run += 1;
        }
        put_varint(&mut rle, run as u64);
        put_varint(&mut rle, zigzag(value));
        i += run;
    }
    let packed = miniz_oxide::deflate::compress_to_vec(&rle, DEFLATE_LEVEL);
    if packed.len() < RAW_LEN {
        let mut out = Vec::with_capacity(1 + packed.len());
        out.push(TAG_RLE_DEFLATE);
        out.extend_from_slice(&packed);
        out
    } else {
        let mut out = Vec::with_capacity(MAX_BLOB_LEN);
        out.push(TAG_RAW);
        for v in data {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }
}

thread_local! {
    /// The inflater of [`decode_chunk_into`] and its output buffer, sized to the largest valid
    /// run-length stream.
    static INFLATE: std::cell::RefCell<(Box<DecompressorOxide>, Vec<u8>)> =
        std::cell::RefCell::new((Box::default(), vec![0; MAX_RLE_LEN]));
}

/// Decodes a blob into `out`, the caller's 4096-cube buffer. On error `out` may hold a partial
/// result and must not be used.
pub fn decode_chunk_into(blob: &[u8], out: &mut ChunkData) -> Result<(), DecodeError> {
    let Some((&tag, payload)) = blob.split_first() else {
        out.fill(0);
        return Ok(());
    };
    match tag {
        TAG_RAW => {
            if payload.len() != RAW_LEN {
                return Err(DecodeError::RawLength(payload.len()));
            }
            for (dst, src) in out.iter_mut().zip(payload.chunks_exact(4)) {
                *dst = i32::from_le_bytes([src[0], src[1], src[2], src[3]]);
            }
            Ok(())
        }
        TAG_RLE_DEFLATE => INFLATE.with(|state| {
            // One decompressor and one bounded output buffer per thread: no per-chunk
            // allocation or zeroing, and a stream that expands past the bound is refused.
            let mut state = state.borrow_mut();
            let (decompressor, scratch) = &mut *state;
            decompressor.init();
            let flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF
                | inflate_flags::TINFL_FLAG_IGNORE_ADLER32;
            let (status, _, written) =
                inflate_core::decompress(decompressor, payload, &mut scratch[..], 0, flags);
            if status != TINFLStatus::Done {
                return Err(DecodeError::Deflate);
            }
            let rle = &scratch[..written];
            let mut pos = 0;
            let mut filled = 0;
            while pos < rle.len() {
                let run = get_varint(rle, &mut pos).ok_or(DecodeError::Runs("truncated run"))?;
                let value =
                    get_varint(rle, &mut pos).ok_or(DecodeError::Runs("truncated value"))?;
                let value = unzigzag(value).ok_or(DecodeError::Runs("value out of range"))?;
                if run == 0 || run > (CHUNK_CUBES - filled) as u64 {
                    return Err(DecodeError::Runs("run length out of range"));
                }
                let run = run as usize;
                let dst = &mut out[filled..filled + run];
                if run <= 16 {
                    // Terrain runs are short: a plain loop beats a memset call per run.
                    for cube in dst {
                        *cube = value;
                    }
                } else {
                    dst.fill(value);
                }
                filled += run;
            }
            if filled != CHUNK_CUBES {
                return Err(DecodeError::Runs("runs do not cover the chunk"));
            }
            Ok(())
        }),
        other => Err(DecodeError::UnknownTag(other)),
    }
}

/// Decodes a blob into a new boxed chunk.
pub fn decode_chunk(blob: &[u8]) -> Result<Box<ChunkData>, DecodeError> {
    let mut out = Box::new([0; CHUNK_CUBES]);
    decode_chunk_into(blob, &mut out)?;
    Ok(out)
}

/// The base64 text of a blob, as carried in JSON.
pub fn blob_to_base64(blob: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(blob)
}

/// A blob from its base64 text, refusing text longer than any valid blob before decoding it.
pub fn blob_from_base64(text: &str) -> Result<Vec<u8>, DecodeError> {
    if text.len() > MAX_BLOB_BASE64_LEN {
        return Err(DecodeError::TooLong);
    }
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| DecodeError::Base64)
}

fn zigzag(v: i32) -> u64 {
    ((v << 1) ^ (v >> 31)) as u32 as u64
}

fn unzigzag(v: u64) -> Option<i32> {
    let v = u32::try_from(v).ok()?;
    Some(((v >> 1) as i32) ^ -((v & 1) as i32))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..35).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The measurement fixtures defined in `protocol/README.md`, shared by tests and benchmarks.
pub mod fixtures {
    use super::ChunkData;
    use crate::chunk::{cube_index, CHUNK_CUBES};

    /// All 4096 cubes air.
    pub fn empty() -> Box<ChunkData> {
        Box::new([0; CHUNK_CUBES])
    }

    /// All 4096 cubes stone (`1`).
    pub fn solid() -> Box<ChunkData> {
        Box::new([1; CHUNK_CUBES])
    }

    /// Typical terrain: ground height `6 + (x*7 + z*13) % 5`, stone, then two dirt, one grass.
    pub fn terrain() -> Box<ChunkData> {
        let mut c = Box::new([0; CHUNK_CUBES]);
        for x in 0..16u32 {
            for z in 0..16u32 {
                let h = 6 + (x * 7 + z * 13) % 5;
                for y in 0..16u32 {
                    let v = if y + 3 < h {
                        1
                    } else if y + 1 < h {
                        2
                    } else if y + 1 == h {
                        3
                    } else {
                        0
                    };
                    c[cube_index(x, y, z).unwrap() as usize] = v;
                }
            }
        }
        c
    }

    /// Every cube an independent random `i32` from a seeded xorshift generator.
    pub fn random(seed: u64) -> Box<ChunkData> {
        let mut s = seed | 1;
        let mut c = Box::new([0; CHUNK_CUBES]);
        for v in c.iter_mut() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            *v = (s >> 16) as i32;
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fixtures_round_trip_and_sizes() {
        assert!(encode_chunk(&fixtures::empty()).is_empty());
        let terrain = encode_chunk(&fixtures::terrain());
        assert!(terrain.len() < 512, "terrain blob {} bytes", terrain.len());
        assert!(blob_to_base64(&terrain).len() < 1024);
        let random = encode_chunk(&fixtures::random(7));
        assert_eq!(random.len(), MAX_BLOB_LEN);
        assert_eq!(blob_to_base64(&random).len(), MAX_BLOB_BASE64_LEN);
        for c in [
            fixtures::empty(),
            fixtures::solid(),
            fixtures::terrain(),
            fixtures::random(1),
        ] {
            assert_eq!(*decode_chunk(&encode_chunk(&c)).unwrap(), *c);
        }
    }

    #[test]
    fn zigzag_covers_extremes() {
        for v in [0, 1, -1, i32::MAX, i32::MIN] {
            assert_eq!(unzigzag(zigzag(v)), Some(v));
        }
        assert_eq!(unzigzag(u64::from(u32::MAX) + 1), None);
    }

    #[test]
    fn corrupt_blobs_are_refused() {
        assert_eq!(decode_chunk(&[9]).unwrap_err(), DecodeError::UnknownTag(9));
        assert_eq!(
            decode_chunk(&[2, 0]).unwrap_err(),
            DecodeError::RawLength(1)
        );
        assert_eq!(decode_chunk(&[1, 0xff]).unwrap_err(), DecodeError::Deflate);
        // A valid DEFLATE stream whose runs cover only 10 cubes.
        let short = miniz_oxide::deflate::compress_to_vec(&[10, 2], 6);
        let mut blob = vec![1];
        blob.extend(short);
        assert!(matches!(decode_chunk(&blob), Err(DecodeError::Runs(_))));
        // A zero-length run.
        let zero = miniz_oxide::deflate::compress_to_vec(&[0, 2], 6);
        let mut blob = vec![1];
        blob.extend(zero);
        assert!(matches!(decode_chunk(&blob), Err(DecodeError::Runs(_))));
        assert_eq!(blob_from_base64("!!").unwrap_err(), DecodeError::Base64);
        let long = "A".repeat(MAX_BLOB_BASE64_LEN + 4);
        assert_eq!(blob_from_base64(&long).unwrap_err(), DecodeError::TooLong);
    }

    proptest! {
        #[test]
        fn any_chunk_round_trips(values in proptest::collection::vec(-3i32..3, CHUNK_CUBES), wild in any::<i32>()) {
            let mut c = [0i32; CHUNK_CUBES];
            c.copy_from_slice(&values);
            c[(wild.unsigned_abs() as usize) % CHUNK_CUBES] = wild;
            let blob = encode_chunk(&c);
            prop_assert!(blob.len() <= MAX_BLOB_LEN);
            prop_assert_eq!(*decode_chunk(&blob).unwrap(), c);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), tag in 0u8..4) {
            let mut blob = vec![tag];
            blob.extend(bytes);
            let _ = decode_chunk(&blob);
        }
    }
}
