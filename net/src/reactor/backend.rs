//! [`NetBackend`]: the IO a reactor needs, in the shape of completions, so
//! that io_uring (completions by nature) and epoll (readiness, turned into
//! completions) sit behind one trait and the connection logic exists once.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::RawFd;
use std::time::Duration;

use super::{ConnId, Waker};

/// One finished operation, handed to the sink of [`NetBackend::wait`].
/// Connection completions name the id the reactor gave the socket; after
/// [`NetBackend::close`] of an id, no completion names it again.
#[derive(Debug)]
pub enum Completion<'a> {
    /// A listener accepted a stream; the reactor decides whether to keep it.
    Accepted(TcpStream),
    /// Accepting failed (for example out of file descriptors); the listener
    /// keeps accepting.
    AcceptFailed(io::Error),
    /// A dial started with [`NetBackend::connect`] reached the peer; the
    /// socket now receives.
    Connected(ConnId),
    /// Bytes arrived. The slice is only valid during the call.
    Received(ConnId, &'a [u8]),
    /// The peer closed its side; nothing more will be received.
    Eof(ConnId),
    /// The first `n` bytes of the last [`NetBackend::send`] were written
    /// (`n` may be short; the reactor sends the rest next turn).
    Sent(ConnId, usize),
    /// An operation on the socket failed; the socket is dead.
    Failed(ConnId, &'static str, io::Error),
    /// The waker's eventfd was written.
    Woken,
    /// A watched fd became readable (or reported an error or hangup).
    Readable(u64),
}

/// The IO under a [`Reactor`](super::Reactor). Ids come from the reactor and
/// are never reused. Contract, per connection: at most one `send` in flight
/// (until its `Sent` or `Failed`), and after `close` the backend reports
/// nothing more for the id and keeps every buffer the kernel may still
/// write to alive until the kernel is done with it.
pub trait NetBackend {
    /// Accepts connections on `listener` for as long as the backend lives.
    fn listen(&mut self, listener: TcpListener) -> io::Result<()>;
    /// Takes over a connected stream and starts receiving on it.
    fn add_stream(&mut self, id: ConnId, stream: TcpStream) -> io::Result<()>;
    /// Starts a non-blocking dial; ends in `Connected` or `Failed`.
    fn connect(&mut self, id: ConnId, addr: SocketAddr) -> io::Result<()>;
    /// Starts writing all of `buf`, which the backend owns (and the kernel
    /// reads in place) until the send ends: in `Sent(id, buf.len())` once
    /// every byte is written (the backend continues partial writes itself)
    /// or in `Failed`. At most one send per connection at a time.
    fn send(&mut self, id: ConnId, buf: Vec<u8>) -> io::Result<()>;
    /// The emptied buffer of `id`'s last finished send, to queue the next
    /// output in (its allocation reused), or a new one.
    fn take_spare(&mut self, id: ConnId) -> Vec<u8>;
    /// Sends submitted zero-copy so far.
    fn zero_copy_sends(&self) -> u64 {
        0
    }
    /// Stops all IO on the socket and closes it (at once, or once the kernel
    /// returned every buffer).
    fn close(&mut self, id: ConnId);
    /// Reports `Readable(token)` once when `fd` becomes readable. The caller
    /// keeps `fd` open until then.
    fn watch_readable(&mut self, fd: RawFd, token: u64) -> io::Result<()>;
    /// A handle other threads use to end a `wait` early.
    fn waker(&self) -> Waker;
    /// Submits what is queued, waits up to `timeout` for at least one
    /// completion, and hands every ready completion to `sink`.
    fn wait(&mut self, timeout: Duration, sink: &mut dyn FnMut(Completion<'_>)) -> io::Result<()>;
}

/// What an in-kernel operation or epoll registration is for; the top byte
/// of its 64-bit user data, the low 56 bits carry the id or index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Op {
    Recv = 1,
    Send = 2,
    Connect = 3,
    Accept = 4,
    Wake = 5,
    Watch = 6,
    Cancel = 7,
    /// epoll: a connection socket, whatever it is ready for.
    Sock = 8,
}

const ID_BITS: u32 = 56;
const ID_MASK: u64 = (1 << ID_BITS) - 1;

impl Op {
    /// Packs this op and an id (below 2^56) into user data.
    pub(crate) fn encode(self, id: u64) -> u64 {
        assert!(id <= ID_MASK, "id {id} does not fit in 56 bits");
        ((self as u64) << ID_BITS) | id
    }

    /// The op and id packed by [`Op::encode`]; `None` for data we never made.
    pub(crate) fn decode(data: u64) -> Option<(Op, u64)> {
        let op = match data >> ID_BITS {
            1 => Op::Recv,
            2 => Op::Send,
            3 => Op::Connect,
            4 => Op::Accept,
            5 => Op::Wake,
            6 => Op::Watch,
            7 => Op::Cancel,
            8 => Op::Sock,
            _ => return None,
        };
        Some((op, data & ID_MASK))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips() {
        for op in [
            Op::Recv,
            Op::Send,
            Op::Connect,
            Op::Accept,
            Op::Wake,
            Op::Watch,
            Op::Cancel,
            Op::Sock,
        ] {
            for id in [0, 1, 77, ID_MASK] {
                assert_eq!(Op::decode(op.encode(id)), Some((op, id)));
            }
        }
        assert_eq!(Op::decode(0), None);
    }
}
