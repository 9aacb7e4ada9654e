//! Why a lease or lock request was refused.

use super::region::{Mode, Region};
use super::{LeaseId, SessionId};
use crate::meta::types::Ino;
use crate::raft::Term;

/// Why a node does not grant or refresh leases right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NotServing {
    /// The engine says it has not heard its minister and the president within H.
    Fenced,
    /// A clerk has no round trip with its current minister within H.
    NoMinisterContact,
    /// A clerk has not loaded its minister's lock table for its current term.
    NoLockTable,
    /// A clerk restarted and waits out the read leases it may have granted before.
    RestartWait,
    /// A minister without a round trip with a majority of its ministry within H.
    NoMajority,
    /// A new minister waits out the write leases of earlier ministers.
    NewTermWait,
    /// A minister saw a newer term: it has been replaced.
    Deposed,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    #[error("empty or malformed region")]
    BadRegion,
    #[error("lease duration must be positive")]
    ZeroDuration,
    #[error("lease {0:?} is unknown here")]
    UnknownLease(LeaseId),
    #[error("lease {0:?} has expired")]
    Expired(LeaseId),
    #[error("lease {0:?} belongs to another session")]
    NotHolder(LeaseId),
    #[error("lease {0:?} was revoked")]
    Revoked(LeaseId),
    #[error("term {got} is older than term {newest}")]
    StaleTerm { got: Term, newest: Term },
    #[error("conflicts with a {mode:?} claim on {file:?} {region}")]
    Conflict {
        file: Ino,
        region: Region,
        mode: Mode,
    },
    #[error("not serving: {0:?}")]
    NotServing(NotServing),
    #[error("session {session} already holds or waits for {limit} leases")]
    SessionFull { session: SessionId, limit: usize },
    #[error("lease table is full ({limit} leases)")]
    TableFull { limit: usize },
    #[error("write-lease queue is full ({limit} requests)")]
    QueueFull { limit: usize },
    #[error("request {0} is already queued")]
    DuplicateRequest(u64),
}
