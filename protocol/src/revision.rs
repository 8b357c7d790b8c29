//! Chunk revisions: the 64-bit tag a client holds for a chunk and sends back to ask "has it
//! changed?".
//!
//! The store draws a fresh random revision for every write that changes a chunk and keeps it
//! in the same record as the chunk's bytes, so a copy, a failover or a snapshot moves both
//! together: whatever the store loses or restores, a revision still names the one content it
//! was drawn for. A revision is not derived from the content, so no offline search can make
//! two contents share one: the only way to get a revision is to write, and a given write
//! lands on a revision a client holds with probability 2^-64 (see the protocol README for the
//! bound). The earlier scheme (the first 8 bytes of the content's SHA-256) let anyone find two
//! contents with one revision in about 2^32 hashes, minutes of work; it survives only as
//! [`content_revision`], the revision of chunks written before random revisions.
//!
//! Two contents get fixed revisions: all air is [`EMPTY_REVISION`] (a chunk never written
//! holds it too), and [`NO_REVISION`] is never used. Revisions are not ordered: comparing
//! them with `<` means nothing; the chunk's write sequence orders its changes.

use sha2::{Digest, Sha256};

/// The revision of an all-air chunk (its blob is empty), and so of a chunk never written.
pub const EMPTY_REVISION: u64 = 0;

/// Reserved for "no revision held" (the C ABI's `CW_NO_VERSION`); never a chunk's revision.
pub const NO_REVISION: u64 = u64::MAX;

/// A revision for a freshly written, non-empty content, from 64 random bits: anything but
/// the two reserved values (those draws become 1, so 1 is twice as likely as any other
/// revision: 2^-63 instead of 2^-64).
pub fn from_random_bits(bits: u64) -> u64 {
    match bits {
        EMPTY_REVISION | NO_REVISION => 1,
        r => r,
    }
}

/// The revision of a chunk stored as `blob` under the earlier scheme (the first 8 bytes of
/// its SHA-256): what a chunk written before random revisions (which carries none) answers
/// until its next write.
pub fn content_revision(blob: &[u8]) -> u64 {
    if blob.is_empty() {
        return EMPTY_REVISION;
    }
    let digest = Sha256::digest(blob);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    from_random_bits(u64::from_le_bytes(first))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{encode_chunk, fixtures};

    #[test]
    fn empty_is_zero_and_contents_differ() {
        assert_eq!(
            content_revision(&encode_chunk(&fixtures::empty())),
            EMPTY_REVISION
        );
        let a = content_revision(&encode_chunk(&fixtures::terrain()));
        let b = content_revision(&encode_chunk(&fixtures::solid()));
        assert_ne!(a, b);
        assert_ne!(a, EMPTY_REVISION);
        assert_ne!(a, NO_REVISION);
        // Stable across builds and platforms: stores written under it keep answering it.
        assert_eq!(content_revision(&[1, 2, 3]), 0x49cb_c0f2_c658_9003);
    }

    #[test]
    fn random_bits_never_give_a_reserved_value() {
        assert_eq!(from_random_bits(EMPTY_REVISION), 1);
        assert_eq!(from_random_bits(NO_REVISION), 1);
        assert_eq!(from_random_bits(42), 42);
    }
}
