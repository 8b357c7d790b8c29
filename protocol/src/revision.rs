//! Chunk revisions: the 64-bit tag a client holds for a chunk and sends back to ask "has it
//! changed?".
//!
//! A revision is derived from the chunk's stored bytes alone (the first 8 bytes of the SHA-256
//! of its blob), never from a counter kept beside them. So whatever the store loses or
//! restores (a flush, a restart without persistence, a failover to a replica that missed the
//! last write, a snapshot restore), two different contents never share a revision, and the
//! server never answers "not modified" for content the client does not hold. A counter
//! would start again after such a loss and name new content with an old number.
//!
//! Revisions are not ordered: comparing them with `<` means nothing. A chunk that returns to
//! an earlier content returns to that content's revision, which is correct: the client holding
//! it holds the same cubes.

use sha2::{Digest, Sha256};

/// The revision of an all-air chunk (its blob is empty), and so of a chunk never written.
pub const EMPTY_REVISION: u64 = 0;

/// Reserved for "no revision held" (the C ABI's `CW_NO_VERSION`); never a chunk's revision.
pub const NO_REVISION: u64 = u64::MAX;

/// The revision of a chunk stored as `blob` (see [`crate::codec`]).
pub fn revision(blob: &[u8]) -> u64 {
    if blob.is_empty() {
        return EMPTY_REVISION;
    }
    let digest = Sha256::digest(blob);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    match u64::from_le_bytes(first) {
        // The two reserved values are moved aside; one content in 2^63 shares revision 1.
        EMPTY_REVISION | NO_REVISION => 1,
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{encode_chunk, fixtures};

    #[test]
    fn empty_is_zero_and_contents_differ() {
        assert_eq!(revision(&encode_chunk(&fixtures::empty())), EMPTY_REVISION);
        let a = revision(&encode_chunk(&fixtures::terrain()));
        let b = revision(&encode_chunk(&fixtures::solid()));
        assert_ne!(a, b);
        assert_ne!(a, EMPTY_REVISION);
        assert_ne!(a, NO_REVISION);
        // Stable across builds and platforms: clients keep revisions between sessions.
        assert_eq!(revision(&[1, 2, 3]), 0x49cb_c0f2_c658_9003);
    }
}
