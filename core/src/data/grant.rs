//! Write grants: the ministry's signed permission to write a byte range of
//! one chunk, checked by the storage nodes holding its replicas.
//!
//! A grant is a capability, like an HDFS block token: whoever holds it may
//! write, so storage nodes need no round trip to the ministry. Mutual
//! exclusion between writers still comes from the write lease the grant was
//! issued under ([`crate::lease`]); the grant only keeps nodes from taking
//! writes nobody was allowed to make.
//!
//! # Why an absolute expiry
//!
//! Leases use relative durations so that no clocks need to agree, because
//! lease safety (one writer at a time) rests on them. A grant's expiry does
//! not carry safety: it only bounds how long a leaked or outlived grant stays
//! usable. Storage nodes check it against their own wall clock, with a
//! tolerance `max_skew_us` for clocks that disagree; a skewed clock only
//! makes a grant usable a little longer or shorter. A relative duration would
//! need the node to know when the grant was issued, which it cannot learn
//! without trusting the (unauthenticated) sender.
//!
//! # The tag
//!
//! `tag = HMAC-SHA256(grant_key, postcard(grant))`: the postcard encoding of
//! [`WriteGrant`] with its fields in declaration order (varints for integers,
//! a length before `replicas`). The verifier re-encodes the grant it decoded,
//! so the tag binds the field values, not the bytes they came in. Changing
//! the struct changes the encoding and voids outstanding grants, which live
//! for seconds; the key label carries a version for incompatible changes.
//! The grant key is HMAC-SHA256(cluster secret, [`KEY_LABEL`]), so it differs
//! from every other key derived from the same secret.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::chunk::{ChunkId, ChunkRef};
use crate::lease::{LeaseId, SessionId};
use crate::raft::{GroupId, NodeId, Term};

type HmacSha256 = Hmac<Sha256>;

/// Domain-separation label of the grant key.
pub const KEY_LABEL: &[u8] = b"govfs data plane: write grant key v1";
/// Shortest cluster secret a grant key is derived from.
pub const MIN_SECRET_LEN: usize = 32;

/// The lease id of a delete grant, which only the minister signs, for a
/// chunk of a file that is gone; no lease ever has it. Storage nodes
/// delete only under such a grant and write under any other.
pub const DELETE_LEASE: LeaseId = LeaseId(0);

/// Permission to write `range` of one chunk at `version`, on `replicas`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteGrant {
    /// The ministry that issued it, and its minister's term.
    pub ministry: GroupId,
    pub term: Term,
    /// The write lease it was issued under, and its holder.
    pub lease: LeaseId,
    pub session: SessionId,
    pub chunk: ChunkRef,
    /// `chunk.id()`: the chunk the storage node writes.
    pub chunk_id: ChunkId,
    /// The chunk's version (changes when its replica set changes).
    pub version: u64,
    pub replicas: Vec<NodeId>,
    /// Bytes `[start, end)` within the chunk (non-empty).
    pub range: (u64, u64),
    /// Wall-clock expiry, microseconds since the Unix epoch.
    pub not_after_unix_us: u64,
}

/// A grant and its tag, as clients send it with each write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedGrant {
    pub grant: WriteGrant,
    pub tag: [u8; 32],
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("grant tag does not match: forged, altered or signed with another key")]
    BadTag,
    #[error("grant expired at {not_after_unix_us} us (now {now_unix_us} us, skew allowed {max_skew_us} us)")]
    Expired {
        not_after_unix_us: u64,
        now_unix_us: u64,
        max_skew_us: u64,
    },
    #[error("node {node} is not a replica of chunk {chunk:?}")]
    NotAReplica { node: NodeId, chunk: ChunkId },
    #[error("write {write:?} is outside the granted range {granted:?}")]
    OutsideRange {
        write: (u64, u64),
        granted: (u64, u64),
    },
    #[error("grant for version {granted} but this node has version {known}")]
    StaleVersion { granted: u64, known: u64 },
    #[error("grant is malformed: {0}")]
    Malformed(&'static str),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cluster secret has {0} bytes; at least {MIN_SECRET_LEN} are needed")]
pub struct ShortSecret(pub usize);

/// The key grants are signed and verified with. Not printable; wiped on drop (best effort).
pub struct GrantKey([u8; 32]);

impl GrantKey {
    /// The grant key of a cluster: HMAC-SHA256(secret, [`KEY_LABEL`]).
    pub fn derive(cluster_secret: &[u8]) -> Result<GrantKey, ShortSecret> {
        if cluster_secret.len() < MIN_SECRET_LEN {
            return Err(ShortSecret(cluster_secret.len()));
        }
        let mut mac = keyed(cluster_secret);
        mac.update(KEY_LABEL);
        Ok(GrantKey(mac.finalize().into_bytes().into()))
    }

    /// Signs a grant (on the minister, from its own state: an inconsistent
    /// grant is a bug there, so it panics).
    pub fn sign(&self, grant: WriteGrant) -> SignedGrant {
        assert!(grant.range.0 < grant.range.1, "empty grant range");
        assert_eq!(grant.chunk.id(), Ok(grant.chunk_id), "chunk id mismatch");
        assert!(!grant.replicas.is_empty(), "grant without replicas");
        let tag = self.mac(&grant).finalize().into_bytes().into();
        SignedGrant { grant, tag }
    }

    fn mac(&self, grant: &WriteGrant) -> HmacSha256 {
        let mut mac = keyed(&self.0);
        let bytes = postcard::to_allocvec(grant)
            .unwrap_or_else(|_| unreachable!("postcard encodes plain structs into a Vec"));
        mac.update(&bytes);
        mac
    }
}

impl std::fmt::Debug for GrantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GrantKey(..)")
    }
}

impl Drop for GrantKey {
    fn drop(&mut self) {
        // Best effort without unsafe: black_box keeps the wipe from being
        // dropped as a dead store.
        self.0.fill(0);
        std::hint::black_box(&self.0);
    }
}

fn keyed(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

/// Checks, on storage node `this_node`, that `signed` allows writing bytes
/// `write_range` (`[start, end)` within the chunk) of the chunk
/// `signed.grant.chunk_id`: the tag (constant-time), the expiry
/// (`now > not_after + max_skew` refuses), that this node is a replica,
/// that the write lies within the granted range, and that the grant is not
/// for an older version than `known_version`, the chunk's version here.
///
/// The write must go to `signed.grant.chunk_id`; a request naming its chunk
/// separately must be checked against it by the caller.
pub fn verify(
    key: &GrantKey,
    signed: &SignedGrant,
    now_unix_us: u64,
    max_skew_us: u64,
    this_node: NodeId,
    write_range: (u64, u64),
    known_version: Option<u64>,
) -> Result<(), GrantError> {
    // The tag first: nothing else in an unauthenticated grant means anything.
    key.mac(&signed.grant)
        .verify_slice(&signed.tag)
        .map_err(|_| GrantError::BadTag)?;
    let g = &signed.grant;
    // A right key with a wrong grant is a bug on the signer; refuse, never trust.
    if g.chunk.id() != Ok(g.chunk_id) {
        return Err(GrantError::Malformed("chunk id does not match the chunk"));
    }
    if g.range.0 >= g.range.1 {
        return Err(GrantError::Malformed("empty granted range"));
    }
    if now_unix_us > g.not_after_unix_us.saturating_add(max_skew_us) {
        return Err(GrantError::Expired {
            not_after_unix_us: g.not_after_unix_us,
            now_unix_us,
            max_skew_us,
        });
    }
    if !g.replicas.contains(&this_node) {
        return Err(GrantError::NotAReplica {
            node: this_node,
            chunk: g.chunk_id,
        });
    }
    let (start, end) = write_range;
    if start > end || start < g.range.0 || end > g.range.1 {
        return Err(GrantError::OutsideRange {
            write: write_range,
            granted: g.range,
        });
    }
    if let Some(known) = known_version {
        if known > g.version {
            return Err(GrantError::StaleVersion {
                granted: g.version,
                known,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::types::Ino;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_700_000_000_000_000;

    fn key() -> GrantKey {
        GrantKey::derive(SECRET).expect("long enough")
    }

    fn grant() -> WriteGrant {
        let chunk = ChunkRef {
            file: Ino(42),
            index: 3,
        };
        WriteGrant {
            ministry: 2,
            term: 7,
            lease: LeaseId(11),
            session: 99,
            chunk,
            chunk_id: chunk.id().expect("fits"),
            version: 5,
            replicas: vec![1, 2, 3],
            range: (4096, 8192),
            not_after_unix_us: NOW + 1_000_000,
        }
    }

    fn check(
        signed: &SignedGrant,
        now: u64,
        node: NodeId,
        w: (u64, u64),
        v: Option<u64>,
    ) -> Result<(), GrantError> {
        verify(&key(), signed, now, 500_000, node, w, v)
    }

    #[test]
    fn a_good_grant_passes() {
        let s = key().sign(grant());
        assert_eq!(check(&s, NOW, 2, (4096, 8192), Some(5)), Ok(()));
        assert_eq!(check(&s, NOW, 1, (5000, 5001), None), Ok(()));
        assert_eq!(check(&s, NOW, 3, (4096, 4096), Some(4)), Ok(()));
        // Within the skew past expiry.
        assert_eq!(check(&s, NOW + 1_500_000, 1, (4096, 8192), None), Ok(()));
    }

    #[test]
    fn forged_or_altered_grants_fail() {
        let mut s = key().sign(grant());
        s.grant.range = (0, 1 << 20);
        assert_eq!(check(&s, NOW, 1, (0, 10), None), Err(GrantError::BadTag));
        let other = GrantKey::derive(b"another secret of at least 32 bytes!").expect("long");
        let forged = other.sign(grant());
        assert_eq!(
            check(&forged, NOW, 1, (4096, 4097), None),
            Err(GrantError::BadTag)
        );
    }

    #[test]
    fn each_refusal() {
        let s = key().sign(grant());
        assert!(matches!(
            check(&s, NOW + 1_500_001, 1, (4096, 8192), None),
            Err(GrantError::Expired { .. })
        ));
        assert_eq!(
            check(&s, NOW, 4, (4096, 8192), None),
            Err(GrantError::NotAReplica {
                node: 4,
                chunk: s.grant.chunk_id
            })
        );
        for w in [(4095, 5000), (8000, 8193), (6000, 5000), (0, 1)] {
            assert_eq!(
                check(&s, NOW, 1, w, None),
                Err(GrantError::OutsideRange {
                    write: w,
                    granted: (4096, 8192)
                })
            );
        }
        assert_eq!(
            check(&s, NOW, 1, (4096, 8192), Some(6)),
            Err(GrantError::StaleVersion {
                granted: 5,
                known: 6
            })
        );
    }

    #[test]
    fn keys_need_a_long_secret_and_depend_on_it() {
        assert_eq!(GrantKey::derive(&SECRET[..31]).err(), Some(ShortSecret(31)));
        let a = key().sign(grant());
        let mut other_secret = SECRET.to_vec();
        other_secret[0] ^= 1;
        let b = GrantKey::derive(&other_secret).expect("long").sign(grant());
        assert_ne!(a.tag, b.tag);
        // The derived key is HMAC(secret, label), not the secret itself.
        let raw = GrantKey(SECRET.try_into().expect("32 bytes")).sign(grant());
        assert_ne!(a.tag, raw.tag);
        assert_eq!(format!("{:?}", key()), "GrantKey(..)");
    }

    proptest! {
        #[test]
        fn flipping_any_byte_fails(pos in any::<prop::sample::Index>(), flip in 1u8..=255) {
            let signed = key().sign(grant());
            let mut bytes = postcard::to_allocvec(&signed).expect("encodes");
            let i = pos.index(bytes.len());
            bytes[i] ^= flip;
            // A flip either breaks the encoding or changes a value the tag covers.
            if let Ok(altered) = postcard::from_bytes::<SignedGrant>(&bytes) {
                prop_assert_ne!(&altered, &signed);
                prop_assert_eq!(check(&altered, NOW, 1, (4096, 4097), None), Err(GrantError::BadTag));
            }
        }
    }
}
