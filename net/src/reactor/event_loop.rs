//! [`Reactor`]: the connection logic of the event loop, the same over
//! every [`NetBackend`]. It owns a [`Connection`] per socket, feeds it what
//! the backend received, writes what it wants to send, and enforces the
//! handshake deadline and the connection bound.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::backend::{Completion, NetBackend};
use super::epoll::EpollBackend;
use super::uring::UringBackend;
use super::{BackendKind, ConnId, NetEvent, ReactorConfig, SendError, Waker};
use crate::auth::{random_nonce, ClusterKey, Identity, Side};
use crate::conn::{ConnEvent, Connection, QueueError};
use crate::frame::FrameKind;

/// The longest single backend wait; a longer `poll` timeout waits again.
/// Keeps kernel timespecs far from overflow.
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// One event loop: its sockets, their connections and the events they
/// produce. Not `Sync`; one thread owns it (it may be built on another
/// thread and moved). See the [module documentation](super).
pub struct Reactor {
    backend: Box<dyn NetBackend + Send>,
    chosen: String,
    state: State,
}

/// Everything but the backend, so completions can update it while the
/// backend is borrowed by its `wait`.
struct State {
    key: ClusterKey,
    local: Identity,
    cfg: ReactorConfig,
    conns: HashMap<ConnId, Slot>,
    /// The last id handed out; ids at or below it that are not in `conns`
    /// are closed.
    last_id: u64,
    /// Connections with bytes to write (checked again when flushed).
    dirty: Vec<ConnId>,
    /// Connections that died; closed and reported after the current wait.
    dying: Vec<ConnId>,
    /// Handshake deadlines in creation order (the timeout is fixed, so the
    /// deadlines are ordered too).
    deadlines: VecDeque<(Instant, ConnId)>,
    /// Streams accepted during the current wait, registered after it.
    accepted: Vec<TcpStream>,
    /// Events produced between polls (refused dials), delivered first.
    pending: Vec<NetEvent>,
}

struct Slot {
    conn: Connection,
    /// The peer's address, for log lines.
    addr: Option<SocketAddr>,
    /// Dialing: the TCP connect has not finished.
    connecting: bool,
    /// Bytes handed to the backend and not yet reported sent.
    sending: usize,
    dirty: bool,
    /// Why it died; set once, reported as `Closed`.
    dying: Option<String>,
}

impl Reactor {
    /// A reactor on io_uring if it can be set up, else on epoll;
    /// [`chosen`](Self::chosen) says which and why.
    pub fn new(key: ClusterKey, local: Identity, cfg: ReactorConfig) -> io::Result<Reactor> {
        match UringBackend::new(
            cfg.ring_entries,
            cfg.max_connections,
            cfg.recv_buf_len,
            cfg.zero_copy,
        ) {
            Ok(backend) => {
                let chosen = format!("io_uring ({} submission entries)", cfg.ring_entries);
                Ok(Self::from_backend(
                    Box::new(backend),
                    chosen,
                    key,
                    local,
                    cfg,
                ))
            }
            Err(err) => {
                let backend = EpollBackend::new(cfg.recv_buf_len)?;
                let chosen = format!("epoll (io_uring unavailable: {err})");
                Ok(Self::from_backend(
                    Box::new(backend),
                    chosen,
                    key,
                    local,
                    cfg,
                ))
            }
        }
    }

    /// A reactor on exactly the backend asked for; fails if it cannot be set
    /// up. For tests of each backend and for operators who pin one.
    pub fn with_backend(
        kind: BackendKind,
        key: ClusterKey,
        local: Identity,
        cfg: ReactorConfig,
    ) -> io::Result<Reactor> {
        let (backend, chosen): (Box<dyn NetBackend + Send>, String) = match kind {
            BackendKind::IoUring => (
                Box::new(UringBackend::new(
                    cfg.ring_entries,
                    cfg.max_connections,
                    cfg.recv_buf_len,
                    cfg.zero_copy,
                )?),
                format!(
                    "io_uring ({} submission entries, as configured)",
                    cfg.ring_entries
                ),
            ),
            BackendKind::Epoll => (
                Box::new(EpollBackend::new(cfg.recv_buf_len)?),
                "epoll (as configured)".to_string(),
            ),
        };
        Ok(Self::from_backend(backend, chosen, key, local, cfg))
    }

    /// A reactor over any backend (an in-memory one in a test, say);
    /// `chosen` is what [`chosen`](Self::chosen) reports.
    pub fn from_backend(
        backend: Box<dyn NetBackend + Send>,
        chosen: String,
        key: ClusterKey,
        local: Identity,
        cfg: ReactorConfig,
    ) -> Reactor {
        Reactor {
            backend,
            chosen,
            state: State {
                key,
                local,
                cfg,
                conns: HashMap::new(),
                last_id: 0,
                dirty: Vec::new(),
                dying: Vec::new(),
                deadlines: VecDeque::new(),
                accepted: Vec::new(),
                pending: Vec::new(),
            },
        }
    }

    /// Which backend runs and why, for one log line at start.
    pub fn chosen(&self) -> &str {
        &self.chosen
    }

    /// Sends the backend made zero-copy so far (see [`super::ZeroCopy`]).
    pub fn zero_copy_sends(&self) -> u64 {
        self.backend.zero_copy_sends()
    }

    /// Accepts connections on `listener` in this loop, each as the acceptor
    /// of a handshake, until the reactor is dropped.
    pub fn listen(&mut self, listener: TcpListener) -> io::Result<()> {
        self.backend.listen(listener)
    }

    /// Dials `addr` without blocking and runs the handshake as initiator.
    /// The id ends in `Connected` then, eventually, `Closed`, or in `Closed`
    /// alone (refused, unreachable, wrong key, limit reached).
    pub fn connect(&mut self, addr: SocketAddr) -> ConnId {
        let id = self.state.next_id();
        let refused = |reason: String| NetEvent::Closed { conn: id, reason };
        if self.state.conns.len() >= self.state.cfg.max_connections {
            let limit = self.state.cfg.max_connections;
            self.state.pending.push(refused(format!(
                "dial to {addr} refused: connection limit of {limit} reached"
            )));
            return id;
        }
        let conn = match self.state.new_connection(Side::Initiator) {
            Ok(conn) => conn,
            Err(err) => {
                self.state
                    .pending
                    .push(refused(format!("dial to {addr}: {err}")));
                return id;
            }
        };
        if let Err(err) = self.backend.connect(id, addr) {
            self.state
                .pending
                .push(refused(format!("connect to {addr} failed: {err}")));
            return id;
        }
        self.state.insert(id, conn, Some(addr), true);
        id
    }

    /// Takes over a stream accepted elsewhere (another thread's listener)
    /// and runs the handshake as acceptor. Fails, dropping the stream, at
    /// the connection limit or if the backend cannot take it.
    pub fn adopt(&mut self, stream: TcpStream) -> io::Result<ConnId> {
        self.state.adopt(self.backend.as_mut(), stream)
    }

    /// Queues one frame on an authenticated connection; it leaves at the
    /// next [`poll`](Self::poll), with everything else queued on that
    /// connection in the meantime, in one send.
    pub fn send(
        &mut self,
        conn: ConnId,
        kind: FrameKind,
        request_id: u64,
        body: &[u8],
    ) -> Result<(), SendError> {
        self.send_with(conn, kind, request_id, body.len(), |out| {
            out.extend_from_slice(body)
        })
    }

    /// [`send`](Self::send) for a body that `write` appends to the
    /// connection's output itself, exactly `body_len` bytes (a message
    /// encoded in place rather than into a buffer of its own first).
    pub fn send_with(
        &mut self,
        conn: ConnId,
        kind: FrameKind,
        request_id: u64,
        body_len: usize,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), SendError> {
        let Some(slot) = self.state.conns.get_mut(&conn) else {
            return Err(self.state.missing(conn));
        };
        if slot.dying.is_some() {
            return Err(SendError::Closed(conn));
        }
        match slot
            .conn
            .queue_frame_with(kind, request_id, body_len, write)
        {
            Ok(()) => {
                self.state.mark_dirty(conn);
                Ok(())
            }
            Err(QueueError::Dead(err)) => {
                self.state.die(conn, err.to_string());
                Err(SendError::Closed(conn))
            }
            Err(error) => Err(SendError::Refused { conn, error }),
        }
    }

    /// Closes a connection at once: queued output is dropped, and its
    /// `Closed` event comes at the next poll. Unknown or closed ids are
    /// ignored.
    pub fn close(&mut self, conn: ConnId) {
        if self.state.conns.contains_key(&conn) {
            self.state.die(conn, "closed by this node".to_string());
        }
    }

    /// A handle that wakes this loop from any thread.
    pub fn waker(&self) -> Waker {
        self.backend.waker()
    }

    /// Reports [`NetEvent::Readable`] with `token` once `fd` is readable,
    /// for example another ring's eventfd, so disk completions wake this
    /// loop. One-shot; the caller keeps `fd` open until it fires, and does
    /// not watch the same fd twice at once (epoll would keep one watch,
    /// io_uring both).
    pub fn watch_readable(&mut self, fd: RawFd, token: u64) -> io::Result<()> {
        self.backend.watch_readable(fd, token)
    }

    /// One loop turn: writes every connection's queued bytes (one send per
    /// connection), waits up to `timeout` for at least one event, and
    /// appends every ready event to `events`. Returns early once it has
    /// events; an error means the backend itself failed, not a connection.
    pub fn poll(&mut self, timeout: Duration, events: &mut Vec<NetEvent>) -> io::Result<()> {
        let start = Instant::now();
        let deadline = start.checked_add(timeout);
        let first = events.len();
        loop {
            events.append(&mut self.state.pending);
            self.state.expire_handshakes(Instant::now());
            self.close_dying(events);
            self.flush();
            let now = Instant::now();
            let mut wait = match deadline {
                Some(deadline) => deadline.saturating_duration_since(now).min(MAX_WAIT),
                // Past `Instant`'s range: wait in long slices, forever.
                None => MAX_WAIT,
            };
            if events.len() > first {
                wait = Duration::ZERO;
            }
            if let Some(next) = self.state.next_handshake_deadline() {
                wait = wait.min(next.saturating_duration_since(now));
            }
            let state = &mut self.state;
            self.backend
                .wait(wait, &mut |done| state.on_completion(done, events))?;
            self.register_accepted();
            self.state.expire_handshakes(Instant::now());
            self.close_dying(events);
            let timed_out = deadline.is_some_and(|deadline| Instant::now() >= deadline);
            if events.len() > first || timed_out {
                return Ok(());
            }
        }
    }

    /// The authenticated peer of a connection.
    pub fn peer(&self, conn: ConnId) -> Option<Identity> {
        self.state.conns.get(&conn)?.conn.peer()
    }

    /// The remote address of a connection, for log lines.
    pub fn peer_addr(&self, conn: ConnId) -> Option<SocketAddr> {
        self.state.conns.get(&conn)?.addr
    }

    /// Connections counted against the limit: handshaking, established, and
    /// dead ones whose `Closed` is not out yet.
    pub fn open_connections(&self) -> usize {
        self.state.conns.len()
    }

    /// Hands each dirty connection's bytes to the backend, unless a send of
    /// it is still in flight (it is flushed again when that completes).
    fn flush(&mut self) {
        let dirty = std::mem::take(&mut self.state.dirty);
        for id in &dirty {
            let Some(slot) = self.state.conns.get_mut(id) else {
                continue;
            };
            slot.dirty = false;
            if slot.connecting
                || slot.sending > 0
                || slot.dying.is_some()
                || !slot.conn.has_transmit()
            {
                continue;
            }
            // The backend takes the output buffer itself (no copy) and the
            // connection queues into the last send's emptied buffer.
            let spare = self.backend.take_spare(*id);
            let bytes = slot.conn.swap_transmit(spare);
            let len = bytes.len();
            match self.backend.send(*id, bytes) {
                Ok(()) => slot.sending = len,
                Err(err) => self.state.die(*id, format!("send failed: {err}")),
            }
        }
        let mut dirty = dirty;
        dirty.clear();
        if self.state.dirty.is_empty() {
            // Keep the allocation.
            self.state.dirty = dirty;
        }
    }

    fn close_dying(&mut self, events: &mut Vec<NetEvent>) {
        for id in std::mem::take(&mut self.state.dying) {
            let Some(slot) = self.state.conns.remove(&id) else {
                continue;
            };
            self.backend.close(id);
            let reason = slot.dying.unwrap_or_else(|| "closed".to_string());
            debug!(conn = %id, addr = ?slot.addr, %reason, "connection closed");
            events.push(NetEvent::Closed { conn: id, reason });
        }
    }

    fn register_accepted(&mut self) {
        for stream in std::mem::take(&mut self.state.accepted) {
            let addr = stream.peer_addr().ok();
            if let Err(err) = self.state.adopt(self.backend.as_mut(), stream) {
                debug!(?addr, error = %err, "accepted connection dropped");
            }
        }
    }
}

impl State {
    fn next_id(&mut self) -> ConnId {
        self.last_id += 1;
        ConnId(self.last_id)
    }

    /// The error for an id that is not in the table.
    fn missing(&self, conn: ConnId) -> SendError {
        if conn.0 >= 1 && conn.0 <= self.last_id {
            SendError::Closed(conn)
        } else {
            SendError::Unknown(conn)
        }
    }

    fn new_connection(&self, side: Side) -> Result<Connection, String> {
        let nonce = random_nonce().map_err(|err| format!("cannot get a random nonce: {err}"))?;
        Ok(Connection::new(
            side,
            &self.key,
            self.local,
            nonce,
            self.cfg.limits,
        ))
    }

    fn insert(&mut self, id: ConnId, conn: Connection, addr: Option<SocketAddr>, connecting: bool) {
        let deadline = Instant::now() + self.cfg.handshake_timeout;
        debug_assert!(
            self.deadlines
                .back()
                .is_none_or(|(last, _)| *last <= deadline),
            "handshake deadlines must come in order"
        );
        self.deadlines.push_back((deadline, id));
        let slot = Slot {
            conn,
            addr,
            connecting,
            sending: 0,
            dirty: false,
            dying: None,
        };
        let previous = self.conns.insert(id, slot);
        assert!(previous.is_none(), "{id} reused");
        // An initiator's hello is already queued; it leaves once connected.
        self.mark_dirty(id);
    }

    fn adopt(&mut self, backend: &mut dyn NetBackend, stream: TcpStream) -> io::Result<ConnId> {
        if self.conns.len() >= self.cfg.max_connections {
            return Err(io::Error::other(format!(
                "connection limit of {} reached",
                self.cfg.max_connections
            )));
        }
        let conn = self
            .new_connection(Side::Acceptor)
            .map_err(io::Error::other)?;
        let addr = stream.peer_addr().ok();
        let id = self.next_id();
        backend.add_stream(id, stream)?;
        self.insert(id, conn, addr, false);
        Ok(id)
    }

    fn mark_dirty(&mut self, id: ConnId) {
        if let Some(slot) = self.conns.get_mut(&id) {
            if !slot.dirty {
                slot.dirty = true;
                self.dirty.push(id);
            }
        }
    }

    /// Marks a connection dead; it is closed and reported after the current
    /// wait. The first reason wins.
    fn die(&mut self, id: ConnId, reason: String) {
        let Some(slot) = self.conns.get_mut(&id) else {
            return;
        };
        if slot.dying.is_none() {
            slot.dying = Some(reason);
            self.dying.push(id);
        }
    }

    /// Kills connections whose handshake deadline passed.
    fn expire_handshakes(&mut self, now: Instant) {
        while let Some(&(deadline, id)) = self.deadlines.front() {
            if deadline > now {
                return;
            }
            self.deadlines.pop_front();
            let Some(slot) = self.conns.get_mut(&id) else {
                continue;
            };
            if slot.conn.is_authenticated() || slot.dying.is_some() {
                continue;
            }
            let reason = if slot.connecting {
                format!("connect timed out after {:?}", self.cfg.handshake_timeout)
            } else {
                match slot.conn.handshake_timed_out() {
                    Some(err) => err.to_string(),
                    None => "handshake timed out".to_string(),
                }
            };
            self.die(id, reason);
        }
    }

    /// The earliest deadline of a connection still handshaking.
    fn next_handshake_deadline(&mut self) -> Option<Instant> {
        while let Some(&(deadline, id)) = self.deadlines.front() {
            match self.conns.get(&id) {
                Some(slot) if !slot.conn.is_authenticated() && slot.dying.is_none() => {
                    return Some(deadline)
                }
                _ => {
                    self.deadlines.pop_front();
                }
            }
        }
        None
    }

    fn on_completion(&mut self, done: Completion<'_>, events: &mut Vec<NetEvent>) {
        let id = match done {
            Completion::Accepted(stream) => {
                self.accepted.push(stream);
                return;
            }
            Completion::AcceptFailed(err) => {
                warn!(error = %err, "accept failed");
                return;
            }
            Completion::Woken => {
                if events.last() != Some(&NetEvent::Woken) {
                    events.push(NetEvent::Woken);
                }
                return;
            }
            Completion::Readable(token) => {
                events.push(NetEvent::Readable { token });
                return;
            }
            Completion::Connected(id)
            | Completion::Received(id, _)
            | Completion::Eof(id)
            | Completion::Sent(id, _)
            | Completion::Failed(id, _, _) => id,
        };
        let Some(slot) = self.conns.get_mut(&id) else {
            debug_assert!(false, "completion for {id}, which is not open");
            return;
        };
        if slot.dying.is_some() {
            // Dead already; nothing it does matters any more.
            return;
        }
        match done {
            Completion::Connected(_) => {
                debug_assert!(slot.connecting, "{id} connected twice");
                slot.connecting = false;
                self.mark_dirty(id);
            }
            Completion::Received(_, bytes) => {
                let result = slot.conn.receive(bytes);
                let side = slot.conn.side();
                let has_transmit = slot.conn.has_transmit();
                // Frames that arrived whole before an error still count.
                while let Some(event) = slot.conn.poll_event() {
                    events.push(match event {
                        ConnEvent::Authenticated { peer_id, peer_role } => {
                            let peer = Identity {
                                node_id: peer_id,
                                role: peer_role,
                            };
                            match side {
                                Side::Initiator => NetEvent::Connected { conn: id, peer },
                                Side::Acceptor => NetEvent::Accepted { conn: id, peer },
                            }
                        }
                        ConnEvent::Frame(frame) => NetEvent::Frame { conn: id, frame },
                    });
                }
                match result {
                    Ok(()) if has_transmit => self.mark_dirty(id),
                    Ok(()) => {}
                    Err(err) => self.die(id, err.to_string()),
                }
            }
            Completion::Eof(_) => {
                let reason = if !slot.conn.is_authenticated() {
                    format!(
                        "peer closed the connection during the handshake, while we waited for {}",
                        slot.conn.awaiting()
                    )
                } else if slot.conn.buffered_len() > 0 {
                    format!(
                        "peer closed the connection in the middle of a frame ({} bytes buffered)",
                        slot.conn.buffered_len()
                    )
                } else {
                    "peer closed the connection".to_string()
                };
                self.die(id, reason);
            }
            Completion::Sent(_, n) => {
                if n != slot.sending {
                    let asked = slot.sending;
                    debug_assert_eq!(n, asked, "{id}: sent {n} of {asked}");
                    self.die(id, format!("send wrote {n} of {asked} bytes"));
                    return;
                }
                slot.sending = 0;
                if slot.conn.has_transmit() {
                    self.mark_dirty(id);
                }
            }
            Completion::Failed(_, op, err) => {
                let reason = match slot.addr {
                    Some(addr) if op == "connect" => format!("connect to {addr} failed: {err}"),
                    _ => format!("{op} failed: {err}"),
                };
                self.die(id, reason);
            }
            Completion::Accepted(_)
            | Completion::AcceptFailed(_)
            | Completion::Woken
            | Completion::Readable(_) => {
                unreachable!("handled above")
            }
        }
    }
}
