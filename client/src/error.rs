//! What can go wrong: [`NetError`] for one connection, [`ClientError`] for a
//! call or a submission.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use govfs_core::node::LeaseRefusal;
use govfs_core::raft::GroupId;
use govfs_net::{AuthError, Awaiting, ConnError, QueueError};

/// Why a connection to one node failed or a request on it got no answer.
/// The connection is closed after every variant but `NoAnswer` (and even
/// then if nothing at all arrived on it while the request waited).
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Conn(#[from] ConnError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("no connection and handshake within {0:?}")]
    ConnectTimeout(Duration),
    #[error("peer closed the connection")]
    Closed,
    /// The peer hung up before proving itself: typically it refused us.
    #[error("peer closed the connection during the handshake, while we waited for {awaiting}")]
    ClosedDuringHandshake { awaiting: Awaiting },
    /// The connection died while the request waited; `reason` is why.
    #[error("connection lost before the answer arrived: {reason}")]
    Lost { reason: String },
    /// The node did not answer within the request timeout.
    #[error("no answer within {0:?}")]
    NoAnswer(Duration),
    #[error("cannot get a random nonce: {0}")]
    Random(getrandom::Error),
}

impl NetError {
    /// True if the node does not hold our cluster key (or we not its).
    pub fn is_bad_key(&self) -> bool {
        matches!(self, NetError::Conn(ConnError::Auth(AuthError::BadProof)))
    }
}

/// Why a [`Client`](crate::Client) or [`Session`](crate::Session) call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection to `addr` failed, or the node did not answer in time.
    #[error("{addr}: {source}")]
    Net { addr: SocketAddr, source: NetError },
    /// The node sent bytes that are not an answer we understand.
    #[error("{addr}: undecodable answer: {reason}")]
    BadAnswer { addr: SocketAddr, reason: String },
    /// The node answered with an error message.
    #[error("{addr}: {message}")]
    Refused { addr: SocketAddr, message: String },
    /// A storage node refused a chunk request; nothing was written.
    #[error("storage node {node}: {refusal}")]
    Chunk {
        node: govfs_core::raft::NodeId,
        refusal: govfs_core::data::ChunkRefusal,
    },
    /// The storage node is not known to this client (not in any status it saw).
    #[error("storage node {0} is unknown to this client")]
    UnknownNode(govfs_core::raft::NodeId),
    /// No node answered at all; `last` is the last failure seen.
    #[error("no node of the cluster answered{}", last_suffix(.last))]
    NoNode { last: Option<Box<ClientError>> },
    /// The deadline of [`Session::submit`](crate::Session::submit) passed
    /// without an answer. The request may still apply, at most once: a
    /// resend with the same `(client, seq)` would find its answer.
    #[error("ministry {ministry}: no answer within {waited:?} (request {client}/{seq} may still apply once)")]
    Timeout {
        ministry: GroupId,
        waited: Duration,
        client: u64,
        seq: u64,
    },
    /// The ministry does not know the session (evicted after
    /// `MAX_SESSIONS` others, or it never saw request 1): nothing was
    /// applied. Use a new session.
    #[error("ministry {ministry}: session {client} is unknown there (request {seq} not applied); open a new session")]
    UnknownSession {
        ministry: GroupId,
        client: u64,
        seq: u64,
    },
    /// The request named an older term of the ministry than its current
    /// one: nothing was applied.
    #[error("ministry {ministry} is at term {term} now: the request named an older one and was not applied")]
    StaleTerm { ministry: GroupId, term: u64 },
    /// A transfer did not finish (or was not seen to) within the deadline;
    /// it may still finish.
    #[error("the transfer did not finish within {waited:?}; it may still finish")]
    TransferTimeout { waited: Duration },
    /// A session read's deadline passed before a member could answer.
    #[error("ministry {ministry}: no member answered the read within {waited:?}")]
    ReadTimeout { ministry: GroupId, waited: Duration },
    /// The ministry's application does not answer this command without the
    /// log: submit it as a change (which also makes it linearizable).
    #[error("ministry {ministry}: not a read; submit it instead")]
    NotARead { ministry: GroupId },
    #[error("cannot draw a client id: {0}")]
    Random(String),
    /// The request does not fit in one frame.
    #[error("request of {len} bytes exceeds the frame limit of {max} bytes")]
    TooLarge { len: usize, max: u32 },
    #[error("cannot encode the request: {0}")]
    Encode(String),
    /// A lease request was refused for good (a bad request, or a read lease
    /// from a ministry without clerks), or a refresh or release was refused.
    #[error("ministry {ministry}: lease refused: {refusal}")]
    Lease {
        ministry: GroupId,
        refusal: LeaseRefusal,
    },
    /// No lease was granted before the deadline; `last` is the last refusal
    /// seen (a conflict, a granter not serving yet, ...).
    #[error("ministry {ministry}: no lease granted within {waited:?}{}", last.as_ref().map(|r| format!(" (last: {r})")).unwrap_or_default())]
    LeaseTimeout {
        ministry: GroupId,
        waited: Duration,
        last: Option<LeaseRefusal>,
    },
}

impl ClientError {
    /// True if the failure says a node does not hold our cluster key.
    pub fn is_bad_key(&self) -> bool {
        match self {
            ClientError::Net { source, .. } => source.is_bad_key(),
            ClientError::NoNode { last: Some(e) } => e.is_bad_key(),
            _ => false,
        }
    }
}

fn last_suffix(last: &Option<Box<ClientError>>) -> String {
    last.as_ref()
        .map(|e| format!(" (last error: {e})"))
        .unwrap_or_default()
}
