//! The per-core network reactor: one event loop that owns its sockets and
//! drives a [`Connection`](crate::Connection) per socket, for the
//! thread-per-core engine.
//!
//! A core thread owns one [`Reactor`] and calls [`Reactor::poll`] in its
//! loop. Everything else is queued: [`Reactor::send`] encodes a frame into
//! the connection's output buffer and `poll` writes each connection's
//! buffer with one send per turn (the per-turn batching), then waits for
//! completions and turns them into [`NetEvent`]s. Other threads reach the
//! loop only through a [`Waker`]; other rings (the disk's) reach it through
//! [`Reactor::watch_readable`].
//!
//! The IO itself sits behind [`NetBackend`], with two implementations:
//!
//! | file | backend | when |
//! |---|---|---|
//! | `uring.rs` | io_uring: recv, send, accept, connect, eventfd read and poll as submissions | by default |
//! | `epoll.rs` | epoll, level-triggered, non-blocking sockets | when io_uring cannot be set up (old kernel, seccomp sandbox) or when asked |
//!
//! Both speak in completions ([`Completion`]): "this many bytes were sent",
//! "these bytes arrived", so `event_loop.rs` holds the only copy of the
//! connection logic (handshake deadlines, limits, close reasons) and both
//! backends pass the same tests (`net/tests/reactor.rs`).
//!
//! Rules every connection follows:
//! - a [`ConnId`] is never reused, and every one ends with exactly one
//!   [`NetEvent::Closed`];
//! - nothing but the handshake is sent or delivered before the peer proved it
//!   holds the cluster key, and a peer that has not within
//!   [`ReactorConfig::handshake_timeout`] is dropped;
//! - whatever a peer sends (garbage, a wrong key, silence, a reset) closes
//!   only its own connection, with a reason fit for a log line.

mod backend;
mod epoll;
mod event_loop;
mod sys;
mod uring;
mod waker;

use std::fmt;
use std::time::Duration;

use thiserror::Error;

use crate::auth::Identity;
use crate::conn::{ConnLimits, QueueError};
use crate::frame::Frame;

pub use backend::{Completion, NetBackend};
pub use epoll::EpollBackend;
pub use event_loop::Reactor;
pub use uring::{UringBackend, ZeroCopy};
pub use waker::Waker;

/// Names one connection of one reactor. Ids count up from 1 and are never
/// reused, so a stale id can never reach a newer connection.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What [`Reactor::poll`] reports, in the order it happened per connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetEvent {
    /// Handshake done on an accepted or adopted connection: frames may flow.
    Accepted { conn: ConnId, peer: Identity },
    /// Handshake done on a connection we dialed with [`Reactor::connect`].
    Connected { conn: ConnId, peer: Identity },
    /// A frame from an authenticated peer.
    Frame { conn: ConnId, frame: Frame },
    /// The connection is gone (peer closed, IO error, bad frame, failed or
    /// timed-out handshake, connect refused, or [`Reactor::close`]).
    /// `reason` says why in words fit for a log line. Every [`ConnId`] ends
    /// with exactly one `Closed`, after its last `Frame`.
    Closed { conn: ConnId, reason: String },
    /// A [`Waker`] fired, once or several times (wakes coalesce).
    Woken,
    /// A fd given to [`Reactor::watch_readable`] became readable (or broke).
    /// One-shot: watch it again to hear about it again.
    Readable { token: u64 },
}

/// Why [`Reactor::send`] queued nothing. Only `Closed` and `Unknown` mean the
/// connection is (or never was) there; after the others it is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SendError {
    /// This reactor never handed out this id.
    #[error("{0} is not a connection of this reactor")]
    Unknown(ConnId),
    /// The connection is closed or closing; its `Closed` event is out or
    /// comes at the next poll.
    #[error("{0} is closed")]
    Closed(ConnId),
    /// The connection refused the frame: not authenticated yet, output full
    /// (poll, then retry), body too large, or an Auth frame.
    #[error("{conn}: {error}")]
    Refused { conn: ConnId, error: QueueError },
}

impl SendError {
    /// True if the frame fits once the queued output is written: the caller
    /// should poll and retry rather than give up on the connection.
    pub fn is_output_full(&self) -> bool {
        matches!(
            self,
            SendError::Refused {
                error: QueueError::OutputFull { .. },
                ..
            }
        )
    }
}

/// Which IO mechanism a reactor uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// Submissions and completions through an io_uring.
    IoUring,
    /// Readiness through epoll, with non-blocking socket calls.
    Epoll,
}

/// Bounds and timeouts of a [`Reactor`], fixed at creation.
#[derive(Clone, Debug)]
pub struct ReactorConfig {
    /// A connection not authenticated this long after it was dialed,
    /// accepted or adopted is closed, so a silent peer cannot hold a slot.
    pub handshake_timeout: Duration,
    /// Open connections (handshaking included) beyond this many are refused:
    /// accepted ones are dropped, `connect` yields an immediate `Closed`,
    /// `adopt` fails.
    pub max_connections: usize,
    /// Per-connection frame size and output bound.
    pub limits: ConnLimits,
    /// Bytes read from a socket at a time. io_uring keeps one buffer of this
    /// size per connection (the kernel writes into it); epoll shares one.
    pub recv_buf_len: usize,
    /// Submission queue entries of the io_uring (completion queue: four times
    /// as many, and at least four per connection).
    pub ring_entries: u32,
    /// Zero-copy sends of large buffers (io_uring, Linux 6.0; `None`: every
    /// send copies). By default from 64 KiB on, to peers not on loopback.
    pub zero_copy: Option<ZeroCopy>,
}

impl Default for ReactorConfig {
    fn default() -> Self {
        ReactorConfig {
            handshake_timeout: Duration::from_secs(5),
            max_connections: 1024,
            limits: ConnLimits::default(),
            recv_buf_len: 256 * 1024,
            ring_entries: 256,
            zero_copy: Some(ZeroCopy {
                min_len: 64 * 1024,
                loopback: false,
            }),
        }
    }
}
