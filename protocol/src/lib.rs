//! The CubeWalk Net wire format, shared by the SDK (client) and the server so the two can never
//! disagree: chunk geometry, world ids, the compact chunk encoding, the JSON messages of
//! `GET`/`PUT /cubewalkblocks`, and the per-request limits.
//!
//! The HTTP contract itself is documented in `protocol/README.md`; its examples are checked
//! against this crate by `tests/contract.rs`.

pub mod chunk;
pub mod codec;
pub mod limits;
pub mod messages;
pub mod realtime;
pub mod revision;
pub mod world;

pub use chunk::{cube_index, ChunkKey, ChunkKeyParseError, CHUNK_CUBES, CHUNK_SIDE};
pub use codec::{decode_chunk, encode_chunk, ChunkData, DecodeError};
pub use messages::{
    CancelRequest, CancelResponse, ChunkEdit, CubeRef, ErrorBody, ErrorDetail, FetchEntry,
    FetchQuery, FetchResponse, IdempotencyKey, PutRequest, PutResponse, VersionEntry, WireError,
};
pub use revision::{content_revision, EMPTY_REVISION, NO_REVISION};
pub use world::{WorldId, DEFAULT_WORLD};
