//! Messages a node exchanges with other nodes and with clients.

use serde::{Deserialize, Serialize};

use crate::president::MemberReport;
use crate::raft::{GroupId, Index, Message, NodeId, PollAnswer};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeMsg {
    Raft(Message),
    /// To the president: a shard's answer to a poll.
    Poll(PollAnswer),
    /// To the president: the periodic report of a node.
    Report(MemberReport),
}

/// A client's change for a ministry. `seq` is the client's request id: one
/// request outstanding per client, resent with the same id until answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRequest {
    pub ministry: GroupId,
    pub client: u64,
    pub seq: u64,
    pub command: Vec<u8>,
}

/// What goes into a ministry's log for a client request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub client: u64,
    pub seq: u64,
    pub command: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientReply {
    /// Applied at `index` (its first application, for a resent request).
    Done { seq: u64, index: Index, output: Vec<u8> },
    /// Ask someone else: the minister if known, or one of the members.
    NotLeader { seq: u64, hint: Option<NodeId>, members: Vec<NodeId> },
}
