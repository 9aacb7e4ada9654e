//! A GovFS node as a sans-IO state machine: its member of the president group
//! (voter or learner) with the cluster map it applies, and its shards, each of
//! which serves a ministry when the map says so. One [`NodeCore`] runs per
//! core thread (see `core.rs` for how the cores share the president's word).
//!
//! The engine (or the simulator) feeds ticks, messages, client requests and
//! completed syncs in, and carries out the [`Output`]: write and sync log
//! operations, send messages, answer clients. Messages that promise
//! durability are held here until the sync they depend on completes, so no
//! engine can get that ordering wrong.

pub mod app;
mod core;
pub mod kv;
mod leases;
pub mod log_op;
pub mod session;
mod shard;
pub mod wire;

pub use self::core::{
    MapUpdate, NodeConfig, NodeCore, NodeTiming, PresidentView, Recovered, RecoveredShard,
};
pub use app::App;
pub use leases::LeaseSettings;
pub use log_op::{Disk, LogOp};
pub use session::{Dedup, Sessions};
pub use wire::{
    ClientMsg, ClientReply, ClientRequest, DataPathInfo, LeaseMsg, LeaseRefusal, LeaseReply,
    LeaseRequest, NodeMsg, NodeStatus, Proposal, ReadReply, ReadRequest, ServerMsg, ShardStatus,
    Stamped, TransferReply, MAX_GRANTS,
};

use crate::raft::{Entry, GroupId, Index, NodeId, Term};

/// What the node saw happen, for the simulator's checkers, logs and metrics.
/// `node` is the member: the node for the president group, the shard for a
/// ministry.
#[derive(Clone, Debug)]
pub enum Observation {
    BecameLeader {
        node: NodeId,
        group: GroupId,
        term: Term,
    },
    /// Entries written to a member's log (the first one overwrites from its index).
    Persisted {
        node: NodeId,
        group: GroupId,
        entries: Vec<Entry>,
    },
    /// A member's log now starts after a snapshot at (index, term), with nothing after it.
    LogReset {
        node: NodeId,
        group: GroupId,
        index: Index,
        term: Term,
    },
    /// A committed entry was applied; `result` is the session result of a client command.
    Applied {
        node: NodeId,
        group: GroupId,
        entry: Entry,
        result: Option<(Index, Vec<u8>)>,
    },
}

/// Work for the engine from one call into the node.
#[derive(Debug, Default)]
pub struct Output {
    /// Write these operations to the disk's log, then sync once and call
    /// [`NodeCore::synced`] with the sequence number.
    pub persist: Vec<(Disk, u64, Vec<LogOp>)>,
    pub send: Vec<(NodeId, NodeMsg)>,
    pub replies: Vec<(u64, ClientReply)>,
    /// Answers to reads, by the token the engine gave [`NodeCore::read`].
    pub reads: Vec<(u64, ReadReply)>,
    pub observed: Vec<Observation>,
    /// For the node's other cores (only with `NodeConfig::share_map`).
    pub map_updates: Vec<MapUpdate>,
    /// Answers to lease requests, by the token the engine gave [`NodeCore::lease`].
    pub leases: Vec<(u64, LeaseReply)>,
    /// Lease messages to other nodes' shards (by shard id).
    pub lease_send: Vec<(NodeId, LeaseMsg)>,
}
