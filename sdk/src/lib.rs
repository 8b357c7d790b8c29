//! CubeWalk Net SDK.
//!
//! Two faces over one implementation:
//! - [`Client`]: a plain async Rust client (fetch and put chunks, with retries, splitting of
//!   large fetches, connection reuse and timeouts), and [`realtime::Realtime`], the WebSocket
//!   connection that follows chunks and queues other players' changes;
//! - [`ffi`]: the C ABI (`cw_*` functions, header `include/cubewalk.h`) that the Unity game
//!   calls over P/Invoke: a thin layer that validates arguments, catches panics, owns the one
//!   tokio runtime, and hands results back only inside calls made by the caller's thread.

mod batching;
pub mod client;
pub mod endpoint;
pub mod error;
pub mod ffi;
pub mod login;
pub mod options;
pub mod realtime;
pub mod retry;
mod token;
mod transport;

pub use client::{Client, ClientOptions, FetchedBlob, FetchedChunk, FENCE_HORIZON_SECS};
pub use cubewalk_protocol::{ChunkEdit, ChunkKey, VersionEntry, CHUNK_CUBES};
pub use error::{Error, Status};
pub use login::{login_guest, GuestSession};
