//! Values every Raft member shares: ids, entries, hard state, snapshots, messages.
//!
//! All of these cross the wire or the disk, so they are plain data with serde
//! derives; decoding lives in [`crate::codec`] and never panics.

use serde::{Deserialize, Serialize};

/// A Raft member: in GovFS a shard (one per core of a node) or a president voter.
pub type NodeId = u64;
/// A Raft term. In appointed groups terms come from the president's single counter,
/// so a term names one appointment cluster-wide.
pub type Term = u64;
/// A position in a group's log; 0 means "before the first entry".
pub type Index = u64;
/// A Raft group: [`PRESIDENT_GROUP`] or a ministry.
pub type GroupId = u64;
/// Time as microseconds on the caller's monotonic clock (virtual in the simulator).
/// The core never reads a clock; every input carries `now`.
pub type Micros = u64;

/// The group of president voters (elected mode); ministries use ids from 1.
pub const PRESIDENT_GROUP: GroupId = 0;

/// What a log entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// Appended by every new leader so that entries of earlier terms can commit.
    Noop,
    /// An opaque state-machine command.
    Command(Vec<u8>),
    /// A new voter/learner set (elected mode only; takes effect when appended).
    Config(Membership),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub term: Term,
    pub index: Index,
    pub payload: Payload,
}

impl Entry {
    /// Approximate wire size, used to bound append messages.
    pub fn size_hint(&self) -> usize {
        24 + match &self.payload {
            Payload::Noop => 0,
            Payload::Command(c) => c.len(),
            Payload::Config(m) => 8 * (m.voters.len() + m.learners.len()),
        }
    }
}

/// Who votes (and counts toward a quorum) and who only follows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// Sorted, no duplicates.
    pub voters: Vec<NodeId>,
    /// Sorted, no duplicates, disjoint from `voters`.
    pub learners: Vec<NodeId>,
}

impl Membership {
    pub fn new(mut voters: Vec<NodeId>, mut learners: Vec<NodeId>) -> Self {
        voters.sort_unstable();
        voters.dedup();
        learners.sort_unstable();
        learners.dedup();
        learners.retain(|l| voters.binary_search(l).is_err());
        Membership { voters, learners }
    }
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.binary_search(&id).is_ok()
    }
    pub fn contains(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.learners.binary_search(&id).is_ok()
    }
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }
    pub fn all(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().chain(self.learners.iter()).copied()
    }
    /// True when `other` differs by at most one voter added or removed: the
    /// only change that keeps every old majority overlapping every new one.
    pub fn is_single_change(&self, other: &Membership) -> bool {
        let added = other.voters.iter().filter(|v| !self.is_voter(**v)).count();
        let removed = self.voters.iter().filter(|v| !other.is_voter(**v)).count();
        added + removed <= 1
    }
}

/// What must be durable before a member answers anyone: its term and whom it
/// backed in that term (the candidate it voted for, or in appointed mode the
/// minister it accepted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    pub term: Term,
    pub vote: Option<NodeId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Last log index the snapshot covers.
    pub index: Index,
    /// Term of the entry at `index`.
    pub term: Term,
    /// The membership in force at `index`.
    pub membership: Membership,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    /// The state machine's own encoding; opaque to Raft.
    pub data: Vec<u8>,
}

/// Returned for every proposal before it commits; ask [`crate::raft::Raft::ticket_status`] later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Ticket {
    pub term: Term,
    pub index: Index,
}

/// What became of a ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TicketStatus {
    /// The entry is committed at that index with that term.
    Committed,
    /// Still in this member's log but not known to be committed.
    Pending,
    /// Another entry committed at that index: the proposal was lost and may be resent.
    Superseded,
    /// Compacted into a snapshot or beyond what this member knows; ask the
    /// state machine by client request id instead.
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub group: GroupId,
    pub from: NodeId,
    pub to: NodeId,
    /// The sender's term (for a pre-vote: the term it would stand in).
    pub term: Term,
    pub body: MessageBody,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageBody {
    PreVote {
        last_term: Term,
        last_index: Index,
    },
    PreVoteResponse {
        granted: bool,
    },
    Vote {
        last_term: Term,
        last_index: Index,
    },
    VoteResponse {
        granted: bool,
    },
    /// Entries (possibly none: a heartbeat) following `(prev_index, prev_term)`.
    Append {
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry>,
        commit: Index,
    },
    /// `success`: the follower holds the leader's log durably up to `index`.
    /// Otherwise `index` is the rejected `prev_index` and `hint` the follower's last index.
    AppendResponse {
        success: bool,
        index: Index,
        hint: Index,
    },
    InstallSnapshot {
        snapshot: Snapshot,
    },
    /// The follower has durably installed a snapshot up to `index` (or already had it).
    SnapshotResponse {
        index: Index,
    },
}
