//! Messages a node exchanges with other nodes and with clients.

use serde::{Deserialize, Serialize};

use crate::codec::{decode_exact, encode_sized, DecodeError};
use crate::data::{ChunkData, ChunkReply, ChunkRequest, SignedGrant, Stamp, WriteId};
use crate::lease::{self, LeaseId, Mode, NotServing, Region, SessionId};
use crate::meta::types::Ino;
use crate::president::{ClusterMap, MemberReport, Step, TransferRequest};
use crate::raft::{GroupId, Index, Message, Micros, NodeId, PollAnswer, Role, Status, Term};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeMsg {
    Raft(Message),
    /// To the president: a shard's answer to a poll.
    Poll(PollAnswer),
    /// To the president: the periodic report of a node.
    Report(MemberReport),
    /// From the president to a ministry's minister: run a transfer step.
    Step {
        transfer: u64,
        step: Step,
        ministry: GroupId,
        command: Vec<u8>,
    },
    /// To the president: a ministry applied a transfer step.
    StepDone {
        transfer: u64,
        step: Step,
        output: Vec<u8>,
    },
}

/// What one node sends another ([`NodeMsg`] in `Raft` frames, [`LeaseMsg`]
/// in `Control` frames): the message with the sender's Lamport time (seed
/// 000), which the receiver's clock moves past before it acts on the
/// message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamped<T> {
    pub lamport: crate::data::Stamp,
    pub msg: T,
}

/// Lease traffic between a ministry's minister and its clerks (issue 5).
/// Its own type, sent between nodes in `Control` frames rather than as more
/// [`NodeMsg`] variants, so that code matching every `NodeMsg` (the
/// simulator's message digests) is not broken by it; the simulator's nodes
/// run no leases.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaseMsg {
    /// From a ministry's minister to one clerk shard `to`: lock operations
    /// and the round-trip echo (`lease::LockBatch`).
    LockBatch {
        ministry: GroupId,
        to: NodeId,
        batch: lease::LockBatch,
    },
    /// From a clerk to its minister shard `to`.
    ClerkReply {
        ministry: GroupId,
        to: NodeId,
        reply: lease::ClerkReply,
    },
}

impl LeaseMsg {
    /// The shard it is for.
    pub fn to(&self) -> NodeId {
        match self {
            LeaseMsg::LockBatch { to, .. } | LeaseMsg::ClerkReply { to, .. } => *to,
        }
    }
}

/// A client's change for a ministry. `seq` is the client's request id: one
/// request outstanding per client, resent with the same id until answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRequest {
    pub ministry: GroupId,
    pub client: u64,
    pub seq: u64,
    pub command: Vec<u8>,
    /// The ministry's term as the client knows it (from the map), if it
    /// does: a request for an older term is refused with `StaleTerm` and
    /// changes nothing, so a client acting on an outdated view (a deposed
    /// minister, a moved ministry) learns it instead of being served.
    pub term: Option<Term>,
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
    /// The request named an older term of the ministry than the minister's:
    /// nothing was applied; `term` is the current one.
    StaleTerm { seq: u64, term: Term },
    /// The ministry does not know this session (evicted, or its first
    /// request did not have id 1): nothing was applied; open a new session.
    UnknownSession { seq: u64 },
    /// Ask someone else: the minister if known, or one of the members.
    NotLeader {
        seq: u64,
        hint: Option<NodeId>,
        members: Vec<NodeId>,
    },
}

/// A read a ministry member answers from its applied state, without the log.
/// Session consistency: the member answers only once it has applied
/// `min_index` (the client's last write or read in this ministry), so a
/// client sees its own writes from any member, and never goes back in time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadRequest {
    pub ministry: GroupId,
    pub min_index: Index,
    pub query: Vec<u8>,
}

/// The answer to a [`ReadRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadReply {
    /// Answered from the state as of applied index `index` (at least `min_index`).
    Done { index: Index, output: Vec<u8> },
    /// This member cannot answer (not a member, not serving, or it did not
    /// reach `min_index` in time): ask the minister, or another member.
    Elsewhere {
        hint: Option<NodeId>,
        members: Vec<NodeId>,
    },
    /// The query is not a read: submit it as a change.
    NotARead,
}

/// What a client asks a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMsg {
    Status,
    /// The node's copy of the cluster map (which ministry, which members, who leads).
    Map,
    Request(ClientRequest),
    Read(ReadRequest),
    /// Ask the president to move part of the namespace between ministries.
    Transfer(TransferRequest),
    /// Leases on byte regions of files (issue 5).
    Lease(LeaseRequest),
    /// Chunk data, for this node's storage service (issue 6).
    Chunk(ChunkRequest),
    /// Where this node takes chunk requests other than on this connection
    /// (its RDMA data path).
    DataPath,
}

/// `ClientMsg::Chunk` and `ChunkRequest::Write` as postcard writes them:
/// a variant is its index, a varint (checked by the tests below).
const CLIENT_CHUNK: u32 = 6;
const CHUNK_WRITE: u32 = 0;

/// `ClientMsg::Chunk(ChunkRequest::Write { .. })` encoded straight from
/// `data`: the bytes [`encode_sized`] gives for that message, without
/// first copying `data` into one.
pub fn encode_chunk_write(
    grant: &SignedGrant,
    offset: u64,
    data: &[u8],
    write: WriteId,
    lamport: Stamp,
) -> Vec<u8> {
    let data = serde_bytes::Bytes::new(data);
    encode_sized(&(
        CLIENT_CHUNK,
        CHUNK_WRITE,
        grant,
        offset,
        data,
        write,
        lamport,
    ))
}

/// Decodes exactly one client message from a frame body it takes over,
/// as [`decode_exact`] would; a chunk write keeps the body and points into
/// it, instead of copying its data out.
pub fn decode_client_msg(body: Vec<u8>) -> Result<ClientMsg, DecodeError> {
    type WriteRef<'a> = (u32, u32, SignedGrant, u64, &'a [u8], WriteId, Stamp);
    // Both tags are below 128, so each is one byte: anything else (every
    // other request) goes straight to the plain decoder.
    const _: () = assert!(CLIENT_CHUNK < 128 && CHUNK_WRITE < 128);
    if !body.starts_with(&[CLIENT_CHUNK as u8, CHUNK_WRITE as u8]) {
        return decode_exact(&body);
    }
    let write = match postcard::take_from_bytes::<WriteRef>(&body) {
        Ok(((CLIENT_CHUNK, CHUNK_WRITE, grant, offset, data, write, lamport), [])) => {
            let start = data.as_ptr() as usize - body.as_ptr() as usize;
            Some((grant, offset, start..start + data.len(), write, lamport))
        }
        _ => None,
    };
    let Some((grant, offset, range, write, lamport)) = write else {
        return decode_exact(&body);
    };
    let data = ChunkData::within(body, range).expect("a slice of the body lies within it");
    Ok(ClientMsg::Chunk(ChunkRequest::Write {
        grant,
        offset,
        data,
        write,
        lamport,
    }))
}

/// A lease request to a member of `ministry`. Write leases come from the
/// minister, read leases from a clerk; refresh and release go to the node
/// that granted the lease; a watch goes to every node the session holds
/// leases from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaseRequest {
    Acquire {
        ministry: GroupId,
        file: Ino,
        region: Region,
        mode: Mode,
        session: SessionId,
        /// Asked for; the granter may shorten it (read leases to at most H).
        duration: Micros,
        /// A ministry log index at which the file exists (the index the
        /// client saw it at): clerks report a lock clear only past it.
        min_index: Index,
    },
    Refresh {
        ministry: GroupId,
        session: SessionId,
        lease: LeaseId,
        mode: Mode,
        duration: Micros,
    },
    Release {
        ministry: GroupId,
        session: SessionId,
        lease: LeaseId,
        mode: Mode,
    },
    /// Long poll: answered with the session's revoked leases on this node
    /// as soon as there are any, or with `Done` after a bounded wait.
    Watch {
        ministry: GroupId,
        session: SessionId,
    },
    /// Write grants (issue 6) for chunks `indexes` of the file of write
    /// lease `lease`, from the minister that granted it: one signed grant
    /// per chunk, for the part of the chunk the lease's region covers,
    /// valid while the lease is. The chunks must be placed
    /// (`MetaOp::PlaceChunks`) first.
    Grants {
        ministry: GroupId,
        session: SessionId,
        lease: LeaseId,
        indexes: Vec<u64>,
    },
    /// Delete grants for chunks `indexes` of `file`, a file that is gone
    /// (`meta::garbage`), or with `on` for the copies of them left on that
    /// node, from the ministry's serving minister: each covers the whole
    /// chunk, valid for [`DELETE_GRANT_US`]. For the minister's agent,
    /// which deletes the chunks on their replicas.
    DeleteGrants {
        ministry: GroupId,
        file: Ino,
        indexes: Vec<u64>,
        on: Option<NodeId>,
    },
}

/// How long a delete grant is valid: the agent uses it at once.
pub const DELETE_GRANT_US: u64 = 30_000_000;

/// Chunks one grants request may name.
pub const MAX_GRANTS: usize = 256;

impl LeaseRequest {
    pub fn ministry(&self) -> GroupId {
        match self {
            LeaseRequest::Acquire { ministry, .. }
            | LeaseRequest::Refresh { ministry, .. }
            | LeaseRequest::Release { ministry, .. }
            | LeaseRequest::Watch { ministry, .. }
            | LeaseRequest::Grants { ministry, .. }
            | LeaseRequest::DeleteGrants { ministry, .. } => *ministry,
        }
    }
}

/// Why a lease request was refused (the wire form of `lease::LeaseError`,
/// plus what only the node can say).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum LeaseRefusal {
    #[error("conflicts with a {mode:?} claim on {file:?} {region}")]
    Conflict {
        file: Ino,
        region: Region,
        mode: Mode,
    },
    #[error("not serving leases: {0:?}")]
    NotServing(NotServing),
    #[error("term {got} is older than term {newest}")]
    StaleTerm { got: Term, newest: Term },
    #[error("lease {0:?} has expired")]
    Expired(LeaseId),
    #[error("lease {0:?} is unknown here")]
    Unknown(LeaseId),
    #[error("lease {0:?} was revoked")]
    Revoked(LeaseId),
    #[error("lease {0:?} belongs to another session")]
    NotHolder(LeaseId),
    /// An empty region or a zero duration.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A table, queue or per-session bound is full.
    #[error("too many leases: {0}")]
    Full(String),
    /// A read lease from a ministry without clerks (a minister grants none).
    #[error("the ministry has no clerk to grant read leases")]
    NoClerks,
    /// A write lease was not granted within the node's bounded wait; the
    /// request is dropped (a grant that comes later is released at once).
    #[error("not granted in time")]
    Timeout,
}

impl From<lease::LeaseError> for LeaseRefusal {
    fn from(e: lease::LeaseError) -> Self {
        use lease::LeaseError as E;
        match e {
            E::BadRegion | E::ZeroDuration => LeaseRefusal::BadRequest(e.to_string()),
            E::UnknownLease(l) => LeaseRefusal::Unknown(l),
            E::Expired(l) => LeaseRefusal::Expired(l),
            E::NotHolder(l) => LeaseRefusal::NotHolder(l),
            E::Revoked(l) => LeaseRefusal::Revoked(l),
            E::StaleTerm { got, newest } => LeaseRefusal::StaleTerm { got, newest },
            E::Conflict { file, region, mode } => LeaseRefusal::Conflict { file, region, mode },
            E::NotServing(n) => LeaseRefusal::NotServing(n),
            E::SessionFull { .. }
            | E::TableFull { .. }
            | E::QueueFull { .. }
            | E::DuplicateRequest(_) => LeaseRefusal::Full(e.to_string()),
        }
    }
}

/// The answer to a [`LeaseRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaseReply {
    /// Granted by shard `node` (a minister at `term` for a write lease, a
    /// clerk at `term` for a read lease). The holder believes it until its
    /// clock reads `send time + Drift::holder_span(granted.duration)`,
    /// counting from when it sent the request. `drift_ppm` is the
    /// granter's clock-rate bound (`[leases] drift_ppm`): a holder uses the
    /// larger of it and its own, so a client never trusts a lease longer
    /// than the cluster allows, whatever it was configured with.
    Granted {
        granted: lease::Granted,
        term: Term,
        node: NodeId,
        drift_ppm: u32,
    },
    /// A refresh: the lease runs `duration` more from the refresh's send time.
    Refreshed {
        lease: LeaseId,
        duration: Micros,
    },
    Refused(LeaseRefusal),
    /// Ask another member: the minister (`hint`) for a write lease, a clerk
    /// (one of `members`) for a read lease.
    Elsewhere {
        hint: Option<NodeId>,
        members: Vec<NodeId>,
    },
    /// A watch: these leases of the session were revoked; release them.
    Revoked(Vec<LeaseId>),
    /// A release, or a watch that saw no revocation in its wait.
    Done,
    /// Write grants, in the order the chunks were asked for.
    Grants(Vec<SignedGrant>),
}

/// The president's answer to [`ClientMsg::Transfer`]. The transfer's
/// progress shows in the cluster map (`transfers`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferReply {
    /// Proposed to the president's log.
    Proposed,
    /// Not the president: ask `hint` (if known).
    NotPresident { hint: Option<NodeId> },
}

/// A node's answer to a [`ClientMsg`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerMsg {
    Status(NodeStatus),
    Map(ClusterMap),
    Reply(ClientReply),
    Read(ReadReply),
    Transfer(TransferReply),
    Error(String),
    Lease(LeaseReply),
    Chunk(ChunkReply),
    DataPath(DataPathInfo),
}

/// A node's other ways in for chunk requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPathInfo {
    /// The port of its RDMA data-path listener (`govfs_net::data_path`), on
    /// the address the client reached it at, when it has an RDMA device
    /// and a build with the `rdma` feature (or runs the data path over TCP
    /// for tests, `GOVFS_DATA_PATH_OVER_TCP=1`).
    pub rdma_port: Option<u16>,
}

/// Where a node stands: its president-group member and its shards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub id: NodeId,
    pub president: Status,
    pub shards: Vec<ShardStatus>,
}

/// One shard of a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardStatus {
    /// The shard's id (see [`crate::ids`]).
    pub id: NodeId,
    /// The core thread that runs it.
    pub core: u32,
    /// Its member of a ministry, when it serves one.
    pub member: Option<Status>,
    /// It may serve reads (heard from its minister and the president within H).
    pub serving: bool,
}

impl NodeStatus {
    /// The ministries whose minister is one of this node's shards.
    pub fn led_ministries(&self) -> impl Iterator<Item = GroupId> + '_ {
        self.shards
            .iter()
            .filter_map(|s| s.member.as_ref())
            .filter(|m| m.role == Role::Leader)
            .map(|m| m.group)
    }

    /// Like [`NodeStatus::led_ministries`], counting only ministers that serve.
    pub fn serving_ministers(&self) -> impl Iterator<Item = GroupId> + '_ {
        self.shards
            .iter()
            .filter(|s| s.serving)
            .filter_map(|s| s.member.as_ref())
            .filter(|m| m.role == Role::Leader)
            .map(|m| m.group)
    }

    /// Whether one of this node's shards is a member of `ministry`.
    pub fn member_of(&self, ministry: GroupId) -> bool {
        self.shards
            .iter()
            .filter_map(|s| s.member.as_ref())
            .any(|m| m.group == ministry)
    }

    /// Whether one of this node's shards is the minister of `ministry`.
    pub fn leads(&self, ministry: GroupId) -> bool {
        self.led_ministries().any(|g| g == ministry)
    }
}
