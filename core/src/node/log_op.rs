//! What a node asks its engine to write to one of its logs.

use serde::{Deserialize, Serialize};

use crate::ids::ShardIndex;
use crate::raft::{Entry, GroupId, HardState, Snapshot};

/// A node keeps one log for its president-group member and one per shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Disk {
    President,
    Shard(ShardIndex),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogOp {
    HardState(HardState),
    /// A snapshot received from a leader: voids the whole log.
    Install(Snapshot),
    /// Our own snapshot: entries it covers may be dropped.
    Compact(Snapshot),
    /// Overwrite from the first entry's index on.
    Entries(Vec<Entry>),
    /// The shard joins a ministry: its log starts afresh, keeping the term.
    Join {
        group: GroupId,
        hs: HardState,
    },
    /// The shard leaves its ministry: the log is dropped, the term kept.
    Leave {
        hs: HardState,
    },
}
