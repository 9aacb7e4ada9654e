//! The data plane's sans-IO core (DESIGN.md §5): the arithmetic and checks
//! that the storage service and the client share. Nothing here does IO or
//! reads a clock; wall-clock and Lamport times come in as arguments.
//!
//! How the pieces fit, following one write:
//!
//! 1. The client holds a write lease on a file region. [`chunk::pieces`]
//!    splits its byte range into per-chunk [`Piece`]s under the file's
//!    [`Layout`](crate::meta::types::Layout); each chunk is named on disk by
//!    its [`ChunkId`].
//! 2. The ministry, when a chunk is first written (or repaired), chooses its
//!    replicas with [`placement::place`]: up nodes with free space, spread
//!    over failure domains, weighted by free space, the same answer for the
//!    same input.
//! 3. With the lease the ministry hands out [`WriteGrant`]s, signed with the
//!    cluster's [`GrantKey`]: chunk, version, replicas, byte range, expiry.
//!    The client sends data and grant to every replica at once; each storage
//!    node checks it with [`grant::verify`] before writing.
//! 4. For async writes ([`lamport`]) the storage node stamps each accepted
//!    write with its Lamport time ([`Pending`]) and acknowledges it once
//!    durable, with its earliest still-uncommitted time; the client's
//!    [`Watermark`] turns the acknowledgements into "every write up to id W
//!    is durable on all replicas".

pub mod chunk;
pub mod chunk_data;
pub mod grant;
pub mod lamport;
pub mod messages;
pub mod placement;

pub use chunk::{pieces, ChunkError, ChunkId, ChunkRef, Piece, Pieces};
pub use chunk_data::ChunkData;
pub use grant::{verify, GrantError, GrantKey, ShortSecret, SignedGrant, WriteGrant, DELETE_LEASE};
pub use lamport::{
    Ack, LamportClock, LamportError, NodeTimes, Pending, Stamp, Watermark, WatermarkError, WriteId,
    MAX_OBSERVED,
};
pub use messages::{ChunkRefusal, ChunkReply, ChunkRequest};
pub use placement::{place, PlacementError, StorageNode, Want};
