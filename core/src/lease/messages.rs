//! What the minister and its clerks say to each other about locks, and what
//! granters say to holders. Plain data: the engine encodes and routes it.

use serde::{Deserialize, Serialize};

use super::region::Region;
use super::{LeaseId, LockId, SessionId};
use crate::meta::types::Ino;
use crate::raft::{Index, Micros, NodeId, Term};

/// A clerk lock: while a clerk holds it, it grants no read lease overlapping
/// `region` of `file`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub id: LockId,
    pub file: Ino,
    pub region: Region,
    /// The ministry log index at which the file exists; a clerk reports the
    /// lock clear only once it has applied this far (thesis problem 4).
    pub index: Index,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockOp {
    Lock(Lock),
    Unlock(LockId),
}

/// The whole lock table of a minister's term, as of `next_seq`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockTableSnapshot {
    /// The sequence number of the first operation after this table.
    pub next_seq: u64,
    pub locks: Vec<Lock>,
}

/// Proof of a round trip: the clerk's own send time (and incarnation) of a
/// reply the minister received, sent back to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Echo {
    pub incarnation: u64,
    pub sent_at: Micros,
}

/// Minister to one clerk, at most one per clerk per turn.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockBatch {
    pub term: Term,
    pub minister: NodeId,
    /// The minister's clock when it sent this; echoed in the reply.
    pub sent_at: Micros,
    /// Replace the clerk's table first (the first batch of a term, a clerk
    /// that restarted, or one too far behind).
    pub table: Option<LockTableSnapshot>,
    /// Sequence number of `ops[0]`. Operations of a term form one stream;
    /// within a turn unlocks come before locks.
    pub first_seq: u64,
    pub ops: Vec<LockOp>,
    /// Locks the minister still waits for this clerk to report clear.
    pub awaiting: Vec<LockId>,
    /// Present only when the minister vouches for the clerk (see the module doc).
    pub echo: Option<Echo>,
}

/// Clerk to minister: the answer to every batch, and unasked when a lock the
/// minister awaits becomes clear.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClerkReply {
    /// The clerk's newest term (newer than the minister's tells it it is deposed).
    pub term: Term,
    pub clerk: NodeId,
    pub incarnation: u64,
    /// The clerk's clock when it sent this.
    pub sent_at: Micros,
    /// `sent_at` of the latest batch of this term the clerk received.
    pub minister_sent_at: Option<Micros>,
    /// The next operation the clerk expects; `None` until it has loaded the
    /// term's table.
    pub next_seq: Option<u64>,
    /// Locks installed here with no conflicting read lease still valid.
    pub clear: Vec<LockId>,
}

/// A lease as its granter hands it to the holder. The holder believes it
/// until its own clock reads `send time + drift.holder_span(duration)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Granted {
    pub lease: LeaseId,
    pub session: SessionId,
    pub file: Ino,
    pub region: Region,
    pub duration: Micros,
}
