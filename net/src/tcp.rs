//! A blocking `std::net` driver around [`Connection`], for command-line
//! tools, tests and simple servers. The node daemon drives the same
//! [`Connection`] from its own event loop instead.
//!
//! [`TcpConn`] dials and authenticates one connection. [`TcpListenerLoop`]
//! accepts connections on a thread each, authenticates them and hands their
//! frames to a callback. Whatever one peer does (wrong key, garbage, a
//! truncated frame, silence) closes only that peer's connection.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use thiserror::Error;
use tracing::{debug, warn};

use crate::auth::{random_nonce, Awaiting, ClusterKey, Identity, Side};
use crate::conn::{ConnError, ConnEvent, ConnLimits, Connection, QueueError};
use crate::frame::{Frame, FrameKind};

/// Bytes read from a socket at a time.
const READ_BUF_LEN: usize = 64 * 1024;

/// Why a [`TcpConn`] call failed. After anything but `Timeout` and
/// `Queue` (other than `QueueError::Dead`) the connection is unusable.
#[derive(Debug, Error)]
pub enum TcpError {
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Conn(#[from] ConnError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The read timeout passed without a complete frame; the connection is
    /// still good and a partial frame is kept.
    #[error("timed out waiting for data from the peer")]
    Timeout,
    #[error("peer closed the connection")]
    Closed,
    /// The peer hung up before proving itself: typically it refused us.
    #[error("peer closed the connection during the handshake, while we waited for {awaiting}")]
    ClosedDuringHandshake { awaiting: Awaiting },
    #[error("cannot get a random nonce: {0}")]
    Random(getrandom::Error),
}

impl TcpError {
    /// True if the failure says the peer does not hold our cluster key.
    pub fn is_bad_key(&self) -> bool {
        matches!(
            self,
            TcpError::Conn(ConnError::Auth(crate::auth::AuthError::BadProof))
        )
    }
}

/// One authenticated, blocking TCP connection.
#[derive(Debug)]
pub struct TcpConn {
    stream: TcpStream,
    conn: Connection,
    peer: Identity,
    peer_addr: SocketAddr,
    read_buf: Box<[u8]>,
}

impl TcpConn {
    /// Dials `addr` and runs the handshake; `timeout` bounds the TCP connect
    /// and the whole handshake, and becomes the read and write timeout of
    /// the connection (change it with [`set_read_timeout`](Self::set_read_timeout)).
    pub fn connect(
        addr: SocketAddr,
        key: &ClusterKey,
        local: Identity,
        timeout: Duration,
    ) -> Result<TcpConn, TcpError> {
        let deadline = Instant::now() + timeout;
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        let nonce = random_nonce().map_err(TcpError::Random)?;
        let conn = Connection::new_initiator(key, local, nonce);
        Self::handshake(stream, conn, addr, deadline, timeout)
    }

    /// Runs the acceptor's side of the handshake on an accepted `stream`;
    /// `timeout` bounds it and becomes the read and write timeout, as in
    /// [`connect`](Self::connect).
    pub fn accept(
        stream: TcpStream,
        key: &ClusterKey,
        local: Identity,
        timeout: Duration,
    ) -> Result<TcpConn, TcpError> {
        let deadline = Instant::now() + timeout;
        let addr = stream.peer_addr()?;
        let nonce = random_nonce().map_err(TcpError::Random)?;
        let conn = Connection::new(Side::Acceptor, key, local, nonce, ConnLimits::default());
        Self::handshake(stream, conn, addr, deadline, timeout)
    }

    /// Hands back the socket once authenticated, for a protocol of its
    /// own (the RDMA data path's transport choice and queue-pair setup).
    /// Refused if the peer already sent bytes past the handshake: they
    /// would be lost with the framing state.
    pub fn into_stream(mut self) -> Result<TcpStream, TcpError> {
        write_pending(&mut self.stream, &mut self.conn)?;
        let buffered = self.conn.buffered_len();
        if buffered > 0 || self.conn.poll_event().is_some() {
            return Err(TcpError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("peer sent {buffered} bytes past the handshake before its turn"),
            )));
        }
        Ok(self.stream)
    }

    fn handshake(
        mut stream: TcpStream,
        mut conn: Connection,
        addr: SocketAddr,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<TcpConn, TcpError> {
        // We batch frames ourselves; Nagle would only add latency.
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(timeout))?;
        let mut read_buf = vec![0; READ_BUF_LEN].into_boxed_slice();
        write_pending(&mut stream, &mut conn)?;
        let peer = loop {
            if let Some(peer) = conn.peer() {
                break peer;
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                let awaiting = conn.awaiting();
                let err = conn
                    .handshake_timed_out()
                    .unwrap_or(ConnError::HandshakeTimeout { awaiting });
                return Err(err.into());
            }
            stream.set_read_timeout(Some(remaining))?;
            match read_into(&mut stream, &mut conn, &mut read_buf) {
                Ok(()) | Err(TcpError::Timeout) => {}
                Err(err) => return Err(err),
            }
            write_pending(&mut stream, &mut conn)?;
        };
        // The handshake's event; frames that came with it stay queued.
        let first = conn.poll_event();
        debug_assert!(
            matches!(first, Some(ConnEvent::Authenticated { .. })),
            "first event must be Authenticated, got {first:?}"
        );
        stream.set_read_timeout(Some(timeout))?;
        Ok(TcpConn {
            stream,
            conn,
            peer,
            peer_addr: addr,
            read_buf,
        })
    }

    /// Who answered, as proven by the handshake.
    pub fn peer(&self) -> Identity {
        self.peer
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// How long [`recv`](Self::recv) waits; `None` waits forever.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(timeout)
    }

    /// Queues a frame without writing it: several `queue` calls then one
    /// [`flush`](Self::flush) send one batch.
    pub fn queue(&mut self, kind: FrameKind, request_id: u64, body: &[u8]) -> Result<(), TcpError> {
        match self.conn.queue_frame(kind, request_id, body) {
            Err(QueueError::OutputFull { .. }) => {
                self.flush()?;
                self.conn.queue_frame(kind, request_id, body)?;
            }
            other => other?,
        }
        Ok(())
    }

    /// Writes everything queued.
    pub fn flush(&mut self) -> Result<(), TcpError> {
        write_pending(&mut self.stream, &mut self.conn)
    }

    /// Queues one frame and writes it at once.
    pub fn send(&mut self, kind: FrameKind, request_id: u64, body: &[u8]) -> Result<(), TcpError> {
        self.queue(kind, request_id, body)?;
        self.flush()
    }

    /// The next frame from the peer, waiting up to the read timeout.
    pub fn recv(&mut self) -> Result<Frame, TcpError> {
        loop {
            match self.conn.poll_event() {
                Some(ConnEvent::Frame(frame)) => return Ok(frame),
                Some(ConnEvent::Authenticated { .. }) => continue,
                None => {}
            }
            if let Some(err) = self.conn.error() {
                return Err(err.clone().into());
            }
            if let Err(err) = read_into(&mut self.stream, &mut self.conn, &mut self.read_buf) {
                if !matches!(err, TcpError::Timeout) {
                    // Best effort: the peer should see the close at once.
                    let _ = self.stream.shutdown(Shutdown::Both);
                }
                return Err(err);
            }
        }
    }
}

/// Reads once and feeds the connection.
fn read_into(
    stream: &mut TcpStream,
    conn: &mut Connection,
    buf: &mut [u8],
) -> Result<(), TcpError> {
    loop {
        return match stream.read(buf) {
            Ok(0) if conn.is_authenticated() => Err(TcpError::Closed),
            Ok(0) => Err(TcpError::ClosedDuringHandshake {
                awaiting: conn.awaiting(),
            }),
            Ok(n) => Ok(conn.receive(&buf[..n])?),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) if is_timeout(&err) => Err(TcpError::Timeout),
            Err(err) => Err(err.into()),
        };
    }
}

/// Writes the connection's pending bytes, in as few writes as the socket
/// allows.
fn write_pending(stream: &mut TcpStream, conn: &mut Connection) -> Result<(), TcpError> {
    while conn.has_transmit() {
        match stream.write(conn.transmit()) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
            Ok(n) => conn.consumed(n),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Settings of a [`TcpListenerLoop`].
#[derive(Clone, Debug)]
pub struct ListenerConfig {
    /// A peer that has not authenticated within this time is dropped.
    pub handshake_timeout: Duration,
    /// How often an idle connection thread wakes to check for shutdown.
    pub poll_interval: Duration,
    /// A peer that does not take our bytes within this time is dropped.
    pub write_timeout: Duration,
    /// Connections beyond this many are closed at once.
    pub max_connections: usize,
    pub limits: ConnLimits,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            handshake_timeout: Duration::from_secs(5),
            poll_interval: Duration::from_millis(100),
            write_timeout: Duration::from_secs(10),
            max_connections: 1024,
            limits: ConnLimits::default(),
        }
    }
}

/// The authenticated peer of a frame handed to the callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    pub addr: SocketAddr,
    pub identity: Identity,
}

/// What a [`TcpListenerLoop`] has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenerCounts {
    pub accepted: u64,
    pub authenticated: u64,
    /// Closed before authenticating: wrong key, bad or unexpected frame,
    /// handshake timeout, hang-up, or over the connection limit.
    pub refused: u64,
    /// Closed after authenticating because of a bad or truncated frame.
    pub failed: u64,
    /// Ended for any reason, `refused` and `failed` included.
    pub closed: u64,
}

impl ListenerCounts {
    /// Connections being served now.
    pub fn open(&self) -> u64 {
        self.accepted - self.closed
    }
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    authenticated: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    closed: AtomicU64,
}

type Handler = dyn Fn(&PeerInfo, Frame) -> Option<Frame> + Send + Sync;

struct Shared {
    key: ClusterKey,
    local: Identity,
    config: ListenerConfig,
    handler: Box<Handler>,
    shutdown: AtomicBool,
    counters: Counters,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A thread-per-connection server: accepts, authenticates, and for each
/// frame calls the handler, sending back the frame it returns (same turn's
/// replies go out in one write). Stops on [`shutdown`](Self::shutdown) or
/// drop.
pub struct TcpListenerLoop {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TcpListenerLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListenerLoop")
            .field("local_addr", &self.local_addr)
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

impl TcpListenerLoop {
    /// Binds `addr` (port 0 picks a free port) and starts serving.
    pub fn bind<H>(
        addr: SocketAddr,
        key: ClusterKey,
        local: Identity,
        config: ListenerConfig,
        handler: H,
    ) -> io::Result<Self>
    where
        H: Fn(&PeerInfo, Frame) -> Option<Frame> + Send + Sync + 'static,
    {
        Self::spawn(TcpListener::bind(addr)?, key, local, config, handler)
    }

    /// Starts serving on an already bound listener.
    pub fn spawn<H>(
        listener: TcpListener,
        key: ClusterKey,
        local: Identity,
        config: ListenerConfig,
        handler: H,
    ) -> io::Result<Self>
    where
        H: Fn(&PeerInfo, Frame) -> Option<Frame> + Send + Sync + 'static,
    {
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            key,
            local,
            config,
            handler: Box::new(handler),
            shutdown: AtomicBool::new(false),
            counters: Counters::default(),
            threads: Mutex::new(Vec::new()),
        });
        let accept_shared = Arc::clone(&shared);
        let accept_thread = thread::Builder::new()
            .name("govfs-net-accept".into())
            .spawn(move || accept_loop(&listener, &accept_shared))?;
        Ok(TcpListenerLoop {
            local_addr,
            shared,
            accept_thread: Some(accept_thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn counts(&self) -> ListenerCounts {
        let c = &self.shared.counters;
        // `closed` first: then `accepted - closed` is never negative.
        let closed = c.closed.load(Ordering::Acquire);
        ListenerCounts {
            accepted: c.accepted.load(Ordering::Acquire),
            authenticated: c.authenticated.load(Ordering::Acquire),
            refused: c.refused.load(Ordering::Acquire),
            failed: c.failed.load(Ordering::Acquire),
            closed,
        }
    }

    /// Stops accepting, closes every connection (within the poll interval)
    /// and waits for all threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(accept_thread) = self.accept_thread.take() else {
            return;
        };
        self.shared.shutdown.store(true, Ordering::Release);
        // Wake the accept call with a connection of our own.
        let mut wake = self.local_addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        if let Err(err) = TcpStream::connect_timeout(&wake, Duration::from_secs(1)) {
            warn!(%wake, error = %err, "cannot wake the accept thread; it stops at its next connection");
        }
        if accept_thread.join().is_err() {
            warn!("accept thread panicked");
        }
        let threads = std::mem::take(
            &mut *self
                .shared
                .threads
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for thread in threads {
            if thread.join().is_err() {
                warn!("connection thread panicked");
            }
        }
    }
}

impl Drop for TcpListenerLoop {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for incoming in listener.incoming() {
        if shared.shutdown.load(Ordering::Acquire) {
            break;
        }
        match incoming {
            Ok(stream) => start_connection(stream, shared),
            Err(err) => {
                // E.g. out of file descriptors: pause instead of spinning.
                warn!(error = %err, "accept failed");
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn start_connection(stream: TcpStream, shared: &Arc<Shared>) {
    let counters = &shared.counters;
    counters.accepted.fetch_add(1, Ordering::AcqRel);
    let refuse = || {
        counters.refused.fetch_add(1, Ordering::AcqRel);
        counters.closed.fetch_add(1, Ordering::AcqRel);
    };
    let addr = match stream.peer_addr() {
        Ok(addr) => addr,
        Err(err) => {
            debug!(error = %err, "accepted connection already gone");
            return refuse();
        }
    };
    let mut threads = shared
        .threads
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let (finished, running): (Vec<_>, Vec<_>) = std::mem::take(&mut *threads)
        .into_iter()
        .partition(|t| t.is_finished());
    *threads = running;
    for thread in finished {
        if thread.join().is_err() {
            warn!("connection thread panicked");
        }
    }
    if threads.len() >= shared.config.max_connections {
        warn!(peer = %addr, limit = shared.config.max_connections, "too many connections; closing");
        return refuse();
    }
    let thread_shared = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name("govfs-net-conn".into())
        .spawn(move || {
            let end = serve_connection(stream, addr, &thread_shared);
            let counters = &thread_shared.counters;
            match end {
                End::Refused => counters.refused.fetch_add(1, Ordering::AcqRel),
                End::Failed => counters.failed.fetch_add(1, Ordering::AcqRel),
                End::Done => 0,
            };
            counters.closed.fetch_add(1, Ordering::AcqRel);
        });
    match spawned {
        Ok(thread) => threads.push(thread),
        Err(err) => {
            warn!(peer = %addr, error = %err, "cannot start a connection thread; closing");
            refuse();
        }
    }
}

/// How a served connection ended, for the counters.
enum End {
    /// Closed before authenticating.
    Refused,
    /// Closed after authenticating, because of the peer's bytes.
    Failed,
    /// Peer hung up cleanly, a socket error, or shutdown.
    Done,
}

/// Serves one accepted connection until it ends; logs why.
fn serve_connection(mut stream: TcpStream, addr: SocketAddr, shared: &Shared) -> End {
    let config = &shared.config;
    let nonce = match random_nonce() {
        Ok(nonce) => nonce,
        Err(err) => {
            warn!(peer = %addr, error = %err, "no random nonce; closing connection");
            return End::Refused;
        }
    };
    let mut conn = Connection::new(
        Side::Acceptor,
        &shared.key,
        shared.local,
        nonce,
        config.limits,
    );
    let setup = stream
        .set_nodelay(true)
        .and_then(|()| stream.set_read_timeout(Some(config.poll_interval)))
        .and_then(|()| stream.set_write_timeout(Some(config.write_timeout)));
    if let Err(err) = setup {
        warn!(peer = %addr, error = %err, "cannot configure socket; closing connection");
        return End::Refused;
    }
    let deadline = Instant::now() + config.handshake_timeout;
    let mut peer: Option<PeerInfo> = None;
    let mut buf = vec![0; READ_BUF_LEN];
    let before_auth = |peer: &Option<PeerInfo>, failed: End| match peer {
        Some(_) => failed,
        None => End::Refused,
    };
    loop {
        if shared.shutdown.load(Ordering::Acquire) {
            debug!(peer = %addr, "listener shutting down; closing connection");
            return End::Done;
        }
        // Checked on every turn, so a peer trickling bytes cannot outlast
        // the deadline.
        if peer.is_none() && Instant::now() >= deadline {
            let awaiting = conn.awaiting();
            conn.handshake_timed_out();
            warn!(peer = %addr, %awaiting, "handshake timed out; closing connection");
            return End::Refused;
        }
        let n = match stream.read(&mut buf) {
            Ok(0) if conn.buffered_len() > 0 => {
                warn!(
                    peer = %addr,
                    buffered = conn.buffered_len(),
                    "peer closed in the middle of a frame (truncated); closing connection"
                );
                return before_auth(&peer, End::Failed);
            }
            Ok(0) if peer.is_none() => {
                warn!(peer = %addr, awaiting = %conn.awaiting(), "peer closed during the handshake");
                return End::Refused;
            }
            Ok(0) => {
                debug!(peer = %addr, "peer closed the connection");
                return End::Done;
            }
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted || is_timeout(&err) => continue,
            Err(err) => {
                warn!(peer = %addr, error = %err, "read failed; closing connection");
                return before_auth(&peer, End::Done);
            }
        };
        let received = conn.receive(&buf[..n]);
        // Frames that arrived whole before an error are handled either way,
        // so what the handler sees does not depend on how TCP cut the stream.
        if let Err(err) = handle_events(&mut stream, &mut conn, addr, &mut peer, shared) {
            warn!(peer = %addr, error = %err, "cannot send reply; closing connection");
            return End::Done;
        }
        if let Err(err) = received {
            warn!(
                peer = %addr,
                error = %err,
                authenticated = peer.is_some(),
                "closing connection"
            );
            return before_auth(&peer, End::Failed);
        }
        if let Err(err) = write_pending(&mut stream, &mut conn) {
            warn!(peer = %addr, error = %err, "write failed; closing connection");
            return before_auth(&peer, End::Done);
        }
    }
}

/// Passes the connection's events to the handler and queues its replies.
fn handle_events(
    stream: &mut TcpStream,
    conn: &mut Connection,
    addr: SocketAddr,
    peer: &mut Option<PeerInfo>,
    shared: &Shared,
) -> Result<(), TcpError> {
    while let Some(event) = conn.poll_event() {
        match event {
            ConnEvent::Authenticated { peer_id, peer_role } => {
                let identity = Identity {
                    node_id: peer_id,
                    role: peer_role,
                };
                *peer = Some(PeerInfo { addr, identity });
                shared.counters.authenticated.fetch_add(1, Ordering::AcqRel);
                debug!(peer = %addr, peer_id, ?peer_role, "peer authenticated");
            }
            ConnEvent::Frame(frame) => {
                // The connection yields frames only after Authenticated.
                let Some(info) = *peer else {
                    unreachable!("frame event before Authenticated");
                };
                if let Some(reply) = (shared.handler)(&info, frame) {
                    queue_reply(stream, conn, &reply)?;
                }
            }
        }
    }
    Ok(())
}

/// Queues a handler's reply, writing out the batch first if it is full. A
/// reply the connection refuses (a handler bug) is logged and dropped.
fn queue_reply(
    stream: &mut TcpStream,
    conn: &mut Connection,
    reply: &Frame,
) -> Result<(), TcpError> {
    let mut result = conn.queue_frame(reply.kind, reply.request_id, &reply.body);
    if let Err(QueueError::OutputFull { .. }) = result {
        write_pending(stream, conn)?;
        result = conn.queue_frame(reply.kind, reply.request_id, &reply.body);
    }
    match result {
        Ok(()) => Ok(()),
        // The peer broke the stream after this request: no reply possible,
        // and the caller is closing the connection already.
        Err(QueueError::Dead(_)) => Ok(()),
        Err(err) => {
            warn!(error = %err, kind = ?reply.kind, request_id = reply.request_id, "handler reply dropped");
            Ok(())
        }
    }
}
