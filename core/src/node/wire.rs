//! Messages a node exchanges with other nodes and with clients.

use serde::{Deserialize, Serialize};

use crate::president::{ClusterMap, MemberReport};
use crate::raft::{GroupId, Index, Message, NodeId, PollAnswer, Status};

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
    Done {
        seq: u64,
        index: Index,
        output: Vec<u8>,
    },
    /// Ask someone else: the minister if known, or one of the members.
    NotLeader {
        seq: u64,
        hint: Option<NodeId>,
        members: Vec<NodeId>,
    },
}

/// What a client asks a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMsg {
    Status,
    /// The node's copy of the cluster map (which ministry, which members, who leads).
    Map,
    Request(ClientRequest),
}

/// A node's answer to a [`ClientMsg`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerMsg {
    Status(NodeStatus),
    Map(ClusterMap),
    Reply(ClientReply),
    Error(String),
}

/// Where a node stands: its president-group member and its shard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub id: NodeId,
    pub president: Status,
    pub shard: Option<Status>,
    /// The shard may serve reads (heard from its minister within H).
    pub serving: bool,
}
