//! GovFS networking: how bytes on a connection become authenticated frames
//! and back. Everything but [`tcp`] is sans-IO: the engine (or the
//! simulator) reads bytes into a [`Connection`] and writes the bytes it
//! hands back; [`tcp`] is a small blocking driver for tools and tests.
//!
//! Wire frame (all integers little-endian, 24-byte header then the body):
//!
//! ```text
//! offset  size  field
//!      0     4  magic       b"GOVF"
//!      4     2  version     1
//!      6     2  kind        FrameKind (1 Raft, 2 Control, 3 Client, 4 Data, 5 Auth)
//!      8     4  body_len    bytes of body that follow the header
//!     12     8  request_id  chosen by the sender, echoed in the reply
//!     20     4  crc         crc32c of header bytes 0..20, then of the body
//!     24     -  body
//! ```
//!
//! # Handshake
//!
//! Every connection starts with a mutual challenge-response over Auth frames
//! (kind 5, request id 0); until it completes, any other frame kind, or an
//! Auth body longer than 44 bytes, closes the connection. I is the side that
//! dialed, A the side that accepted:
//!
//! ```text
//! I -> A  Hello_I
//! A -> I  Hello_A, Proof_A        A proves first, in the same write
//! I -> A  Proof_I                 only after Proof_A verified
//! ```
//!
//! Hello body (44 bytes):
//!
//! ```text
//! offset  size  field
//!      0     1  message     1 = hello
//!      1     2  version     1 (handshake version)
//!      3     1  role        1 Node, 2 Client
//!      4     8  node_id     the sender's id
//!     12    32  nonce       fresh random bytes, never reused
//! ```
//!
//! Proof body (33 bytes): `[message = 2][32-byte MAC]`, where
//!
//! ```text
//! MAC = HMAC-SHA256(cluster key,
//!         "govfs-auth-v1" || Hello_I (44 bytes) || Hello_A (44 bytes) || tag)
//! tag = "initiator" in Proof_I, "acceptor" in Proof_A (ASCII, no terminator)
//! ```
//!
//! The hellos enter the MAC exactly as sent, initiator's first, whichever
//! side computes it. Proofs are checked in constant time. A wrong proof,
//! unknown version, role or message type, a message of the wrong length or
//! in the wrong order, or a hello echoing our own nonce fails the handshake
//! and closes the connection; timing out is the driver's job
//! ([`Connection::handshake_timed_out`]). The cluster key is at least 32
//! bytes, stored as hex ([`ClusterKey`]).

pub mod auth;
pub mod backoff;
pub mod batch;
pub mod conn;
pub mod crc;
pub mod data_path;
pub mod frame;
#[cfg(feature = "rdma")]
pub mod rdma;
pub mod rdma_choice;
pub mod reactor;
pub mod tcp;

pub use auth::{
    random_nonce, AuthError, Awaiting, ClusterKey, Identity, KeyError, Nonce, Role, Side,
};
pub use backoff::Backoff;
pub use batch::{BatchError, OutBatch};
pub use conn::{ConnError, ConnEvent, ConnLimits, ConnState, Connection, QueueError};
pub use frame::{
    encode_frame, encoded_len, Frame, FrameDecoder, FrameError, FrameHeader, FrameKind,
    DEFAULT_MAX_BODY_LEN, DIRECT_BODY_LEN, HEADER_LEN, MAGIC, VERSION,
};
pub use reactor::{
    BackendKind, Completion, ConnId, NetBackend, NetEvent, Reactor, ReactorConfig, SendError,
    Waker, ZeroCopy,
};
pub use tcp::{ListenerConfig, ListenerCounts, PeerInfo, TcpConn, TcpError, TcpListenerLoop};
