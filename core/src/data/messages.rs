//! What clients and storage nodes say to each other about chunk data.
//!
//! A write carries its [`SignedGrant`]; the storage node writes to the
//! grant's chunk and version only, so a request cannot name a chunk its
//! grant does not cover. Every message carries the sender's Lamport time
//! (seed 000), which the receiver observes before answering.

use serde::{Deserialize, Serialize};

use super::chunk::ChunkId;
use super::chunk_data::ChunkData;
use super::grant::SignedGrant;
use super::lamport::{Stamp, WriteId};

/// A client's request to one storage node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChunkRequest {
    /// Write `data` at `offset` of the grant's chunk; answered once durable.
    Write {
        grant: SignedGrant,
        offset: u64,
        data: ChunkData,
        /// The client's id for this write (increasing, for its watermark).
        write: WriteId,
        lamport: Stamp,
    },
    /// Read up to `len` bytes at `offset` of `chunk` (at least `version`),
    /// verified against the block checksums.
    Read {
        chunk: ChunkId,
        version: u64,
        offset: u64,
        len: u32,
        lamport: Stamp,
    },
    /// Cut the grant's chunk to its first `keep` bytes: what lay past them
    /// reads as zeros from now on, also after a later write extends the
    /// chunk again (a file truncated, then grown). The grant must cover
    /// `[keep, chunk size)`. Answered like a write, once durable.
    Truncate {
        grant: SignedGrant,
        keep: u64,
        write: WriteId,
        lamport: Stamp,
    },
    /// Delete the grant's chunk, of a file that is gone. The grant must be
    /// a delete grant ([`super::grant::DELETE_LEASE`]) for the whole chunk.
    /// Answered `Deleted` once the removal is durable, also when the chunk
    /// was not here (a resend).
    Delete { grant: SignedGrant, lamport: Stamp },
}

impl ChunkRequest {
    pub fn chunk(&self) -> ChunkId {
        match self {
            ChunkRequest::Write { grant, .. }
            | ChunkRequest::Truncate { grant, .. }
            | ChunkRequest::Delete { grant, .. } => grant.grant.chunk_id,
            ChunkRequest::Read { chunk, .. } => *chunk,
        }
    }
}

/// A storage node's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChunkReply {
    /// The write is durable here. `stamp` is the node's Lamport time of the
    /// write; `earliest_uncommitted` the time of its earliest write still
    /// not durable (or its next time when none is pending).
    Written {
        write: WriteId,
        stamp: Stamp,
        earliest_uncommitted: Stamp,
    },
    /// Verified bytes (fewer than asked past the chunk's end).
    Data {
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        version: u64,
        lamport: Stamp,
    },
    Refused(ChunkRefusal),
    /// The chunk is gone from this node, durably. (After `Refused`: the
    /// older variants keep their wire tags.)
    Deleted {
        lamport: Stamp,
    },
}

/// Why a storage node did not do what was asked. Nothing was written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ChunkRefusal {
    /// The grant did not verify (forged, expired, not for this node or
    /// range, or for an older replica set).
    #[error("write grant refused: {0}")]
    Grant(String),
    #[error("no such chunk {0:?} here")]
    NoSuchChunk(ChunkId),
    /// The chunk here is at an older version than the reader wants (a
    /// stale replica) or newer than the writer's grant.
    #[error("chunk {chunk:?} is at version {have}, the request is for {want}")]
    Version {
        chunk: ChunkId,
        have: u64,
        want: u64,
    },
    /// A block failed its checksum: this replica needs repair.
    #[error("chunk {chunk:?}: block {block} does not match its checksum")]
    Corrupt { chunk: ChunkId, block: u64 },
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The storage service is overloaded or stopping: try again or elsewhere.
    #[error("storage busy: {0}")]
    Busy(String),
    #[error("disk error: {0}")]
    Disk(String),
}
