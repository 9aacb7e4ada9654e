//! [`EpollBackend`]: the fallback when io_uring cannot be set up. Sockets are
//! non-blocking and registered level-triggered; readiness is turned into the
//! same [`Completion`]s io_uring produces, so the reactor above cannot tell
//! the difference.
//!
//! - Receive: readable sockets are read into one shared buffer (the sink
//!   copies what it keeps before the next read).
//! - Send: the buffer handed over is written at once as far as the socket
//!   takes it, the rest when it reports writable (never copied); `Sent` is
//!   reported at the next wait once all of it went.
//! - Connect: non-blocking `connect`, then writable means done and
//!   `SO_ERROR` says how.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use tracing::warn;

use super::backend::{Completion, NetBackend, Op};
use super::sys::{cvt, eventfd, stream_socket, RawSockAddr};
use super::{ConnId, Waker};

/// Reads of a full buffer done for one readable socket in one wait before
/// moving on to the others (level-triggered: the rest is reported again).
const MAX_READS_PER_WAKE: usize = 4;
/// Accepts done for one readable listener in one wait.
const MAX_ACCEPTS_PER_WAKE: usize = 64;
/// Readiness events taken from the kernel per `epoll_wait`.
const EVENTS_PER_WAIT: usize = 256;

/// The epoll implementation of [`NetBackend`].
pub struct EpollBackend {
    epfd: OwnedFd,
    wake_fd: Arc<OwnedFd>,
    listeners: Vec<TcpListener>,
    socks: HashMap<u64, Sock>,
    /// Watched fds and their tokens, until they fire.
    watches: HashMap<RawFd, u64>,
    /// Sends written at once, reported at the next wait.
    sent: VecDeque<(u64, usize)>,
    /// Connects that failed at once, reported at the next wait.
    failed: VecDeque<(u64, io::Error)>,
    read_buf: Box<[u8]>,
    events: Vec<libc::epoll_event>,
}

struct Sock {
    stream: TcpStream,
    connecting: bool,
    /// A send the socket did not take at once, and how much of it went;
    /// the rest is written when it reports writable.
    blocked: Vec<u8>,
    blocked_off: usize,
    /// The last finished send's buffer, for `take_spare`.
    spare: Vec<u8>,
}

impl EpollBackend {
    /// An epoll instance with its waker's eventfd registered. `recv_buf_len`
    /// is the size of the one read buffer shared by all sockets.
    pub fn new(recv_buf_len: usize) -> io::Result<EpollBackend> {
        // SAFETY: epoll_create1 takes no pointers.
        let epfd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: the fd was just created and nothing else owns it.
        let epfd = unsafe { OwnedFd::from_raw_fd(epfd) };
        let wake_fd = Arc::new(eventfd(true)?);
        let backend = EpollBackend {
            epfd,
            wake_fd,
            listeners: Vec::new(),
            socks: HashMap::new(),
            watches: HashMap::new(),
            sent: VecDeque::new(),
            failed: VecDeque::new(),
            read_buf: vec![0; recv_buf_len.max(1)].into_boxed_slice(),
            events: Vec::with_capacity(EVENTS_PER_WAIT),
        };
        backend.ctl(
            libc::EPOLL_CTL_ADD,
            backend.wake_fd.as_raw_fd(),
            libc::EPOLLIN as u32,
            Op::Wake.encode(0),
        )?;
        Ok(backend)
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: data };
        // SAFETY: `event` lives across the call; the kernel copies it.
        cvt(unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut event) })?;
        Ok(())
    }

    fn set_interest(&self, id: u64, sock: &Sock) -> io::Result<()> {
        let mut events = 0;
        if !sock.connecting {
            events |= libc::EPOLLIN as u32;
        }
        if sock.connecting || !sock.blocked.is_empty() {
            events |= libc::EPOLLOUT as u32;
        }
        self.ctl(
            libc::EPOLL_CTL_MOD,
            sock.stream.as_raw_fd(),
            events,
            Op::Sock.encode(id),
        )
    }

    fn drain_waker(&self) {
        let mut buf = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a live 8-byte buffer. The
        // eventfd is non-blocking; an error (EAGAIN) means already drained.
        let _ = unsafe { libc::read(self.wake_fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    }

    fn on_listener(&mut self, index: usize, sink: &mut dyn FnMut(Completion<'_>)) {
        let Some(listener) = self.listeners.get(index) else {
            debug_assert!(false, "event for unknown listener {index}");
            return;
        };
        for _ in 0..MAX_ACCEPTS_PER_WAKE {
            match listener.accept() {
                Ok((stream, _)) => sink(Completion::Accepted(stream)),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    sink(Completion::AcceptFailed(err));
                    return;
                }
            }
        }
    }

    fn on_sock(&mut self, id: u64, ready: u32, sink: &mut dyn FnMut(Completion<'_>)) {
        let conn = ConnId(id);
        let Some(sock) = self.socks.get_mut(&id) else {
            // Closed earlier in this same wait.
            return;
        };
        let broken = ready & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0;
        if sock.connecting {
            if ready & libc::EPOLLOUT as u32 == 0 && !broken {
                return;
            }
            match sock.stream.take_error() {
                Ok(None) if !broken || ready & libc::EPOLLOUT as u32 != 0 => {
                    sock.connecting = false;
                    let sock = &self.socks[&id];
                    match self.set_interest(id, sock) {
                        Ok(()) => sink(Completion::Connected(conn)),
                        Err(err) => sink(Completion::Failed(conn, "epoll_ctl", err)),
                    }
                }
                Ok(None) => sink(Completion::Failed(
                    conn,
                    "connect",
                    io::Error::new(io::ErrorKind::ConnectionAborted, "socket hung up"),
                )),
                Ok(Some(err)) | Err(err) => sink(Completion::Failed(conn, "connect", err)),
            }
            return;
        }
        if ready & libc::EPOLLIN as u32 != 0 || broken {
            for _ in 0..MAX_READS_PER_WAKE {
                match sock.stream.read(&mut self.read_buf) {
                    Ok(0) => {
                        sink(Completion::Eof(conn));
                        return;
                    }
                    Ok(n) => {
                        sink(Completion::Received(conn, &self.read_buf[..n]));
                        if n < self.read_buf.len() {
                            break;
                        }
                    }
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => {
                        sink(Completion::Failed(conn, "recv", err));
                        return;
                    }
                }
            }
        }
        if ready & libc::EPOLLOUT as u32 != 0 && !sock.blocked.is_empty() {
            match write_some(sock) {
                Ok(true) => {
                    let len = sock.spare.len();
                    sock.spare.clear();
                    let sock = &self.socks[&id];
                    match self.set_interest(id, sock) {
                        Ok(()) => sink(Completion::Sent(conn, len)),
                        Err(err) => sink(Completion::Failed(conn, "epoll_ctl", err)),
                    }
                }
                Ok(false) => {}
                Err(err) => sink(Completion::Failed(conn, "send", err)),
            }
        }
    }
}

/// One non-blocking `send`: `Some(n)` written, `None` if the socket is full.
/// Writes what the socket takes of `sock.blocked`; true once all of it
/// went (the buffer then moves to `sock.spare`, still holding its bytes so
/// the caller can report their count).
fn write_some(sock: &mut Sock) -> io::Result<bool> {
    while sock.blocked_off < sock.blocked.len() {
        match send_now(&sock.stream, &sock.blocked[sock.blocked_off..])? {
            Some(0) => return Err(io::ErrorKind::WriteZero.into()),
            Some(n) => sock.blocked_off += n,
            None => return Ok(false),
        }
    }
    sock.blocked_off = 0;
    sock.spare = std::mem::take(&mut sock.blocked);
    Ok(true)
}

fn send_now(stream: &TcpStream, bytes: &[u8]) -> io::Result<Option<usize>> {
    loop {
        // SAFETY: reads `bytes.len()` bytes from a live slice. MSG_NOSIGNAL:
        // a closed peer is an EPIPE error, not a process-killing SIGPIPE.
        let n = unsafe {
            libc::send(
                stream.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(None),
            _ => return Err(err),
        }
    }
}

impl NetBackend for EpollBackend {
    fn listen(&mut self, listener: TcpListener) -> io::Result<()> {
        listener.set_nonblocking(true)?;
        let index = self.listeners.len() as u64;
        self.ctl(
            libc::EPOLL_CTL_ADD,
            listener.as_raw_fd(),
            libc::EPOLLIN as u32,
            Op::Accept.encode(index),
        )?;
        self.listeners.push(listener);
        Ok(())
    }

    fn add_stream(&mut self, id: ConnId, stream: TcpStream) -> io::Result<()> {
        debug_assert!(!self.socks.contains_key(&id.0), "{id} added twice");
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)?;
        self.ctl(
            libc::EPOLL_CTL_ADD,
            stream.as_raw_fd(),
            libc::EPOLLIN as u32,
            Op::Sock.encode(id.0),
        )?;
        let sock = Sock {
            stream,
            connecting: false,
            blocked: Vec::new(),
            blocked_off: 0,
            spare: Vec::new(),
        };
        self.socks.insert(id.0, sock);
        Ok(())
    }

    fn connect(&mut self, id: ConnId, addr: SocketAddr) -> io::Result<()> {
        debug_assert!(!self.socks.contains_key(&id.0), "{id} added twice");
        let stream = stream_socket(&addr)?;
        stream.set_nodelay(true)?;
        let raw = RawSockAddr::new(&addr);
        // SAFETY: `raw` is a valid sockaddr of `raw.len()` bytes.
        let ret = unsafe { libc::connect(stream.as_raw_fd(), raw.as_ptr(), raw.len()) };
        if ret < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINPROGRESS) {
                self.failed.push_back((id.0, err));
                self.socks.insert(
                    id.0,
                    Sock {
                        stream,
                        connecting: true,
                        blocked: Vec::new(),
                        blocked_off: 0,
                        spare: Vec::new(),
                    },
                );
                return Ok(());
            }
        }
        // Connected at once or in progress: either way writable says done.
        self.ctl(
            libc::EPOLL_CTL_ADD,
            stream.as_raw_fd(),
            libc::EPOLLOUT as u32,
            Op::Sock.encode(id.0),
        )?;
        let sock = Sock {
            stream,
            connecting: true,
            blocked: Vec::new(),
            blocked_off: 0,
            spare: Vec::new(),
        };
        self.socks.insert(id.0, sock);
        Ok(())
    }

    fn send(&mut self, id: ConnId, buf: Vec<u8>) -> io::Result<()> {
        let Some(sock) = self.socks.get_mut(&id.0) else {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such socket"));
        };
        debug_assert!(!sock.connecting, "{id}: send before connected");
        assert!(sock.blocked.is_empty(), "{id}: two sends in flight");
        debug_assert!(!buf.is_empty(), "{id}: empty send");
        sock.blocked = buf;
        sock.blocked_off = 0;
        if write_some(sock)? {
            let len = sock.spare.len();
            sock.spare.clear();
            self.sent.push_back((id.0, len));
        } else {
            let sock = &self.socks[&id.0];
            self.set_interest(id.0, sock)?;
        }
        Ok(())
    }

    fn take_spare(&mut self, id: ConnId) -> Vec<u8> {
        self.socks
            .get_mut(&id.0)
            .map(|s| std::mem::take(&mut s.spare))
            .unwrap_or_default()
    }

    fn close(&mut self, id: ConnId) {
        if let Some(sock) = self.socks.remove(&id.0) {
            // Closing the fd would deregister it too, unless another
            // process shares it; errors change nothing here.
            let fd = sock.stream.as_raw_fd();
            // SAFETY: EPOLL_CTL_DEL ignores the event pointer.
            let _ = unsafe {
                libc::epoll_ctl(
                    self.epfd.as_raw_fd(),
                    libc::EPOLL_CTL_DEL,
                    fd,
                    std::ptr::null_mut(),
                )
            };
        }
    }

    fn watch_readable(&mut self, fd: RawFd, token: u64) -> io::Result<()> {
        let events = (libc::EPOLLIN | libc::EPOLLONESHOT) as u32;
        let data = Op::Watch.encode(u64::from(fd as u32));
        match self.ctl(libc::EPOLL_CTL_ADD, fd, events, data) {
            Err(err) if err.raw_os_error() == Some(libc::EEXIST) => {
                // Watched before: re-arm the one-shot registration.
                self.ctl(libc::EPOLL_CTL_MOD, fd, events, data)?;
            }
            other => other?,
        }
        self.watches.insert(fd, token);
        Ok(())
    }

    fn waker(&self) -> Waker {
        Waker::new(Arc::clone(&self.wake_fd))
    }

    fn wait(&mut self, timeout: Duration, sink: &mut dyn FnMut(Completion<'_>)) -> io::Result<()> {
        let ready_now = !self.sent.is_empty() || !self.failed.is_empty();
        let timeout_ms = if ready_now {
            0
        } else {
            // Round up, so a wait of 0.3 ms does not spin.
            let ms = timeout.as_nanos().div_ceil(1_000_000);
            i32::try_from(ms).unwrap_or(i32::MAX)
        };
        self.events.clear();
        // SAFETY: the kernel writes at most `capacity` events into the
        // vector's spare capacity; we then set the length it reported.
        let n = unsafe {
            libc::epoll_wait(
                self.epfd.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.capacity() as libc::c_int,
                timeout_ms,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        } else {
            // SAFETY: the kernel initialised the first `n` entries.
            unsafe { self.events.set_len(n as usize) };
        }
        while let Some((id, n)) = self.sent.pop_front() {
            if self.socks.contains_key(&id) {
                sink(Completion::Sent(ConnId(id), n));
            }
        }
        while let Some((id, err)) = self.failed.pop_front() {
            if self.socks.contains_key(&id) {
                sink(Completion::Failed(ConnId(id), "connect", err));
            }
        }
        let events = std::mem::take(&mut self.events);
        for event in &events {
            let ready = event.events;
            let data = event.u64;
            match Op::decode(data) {
                Some((Op::Wake, _)) => {
                    self.drain_waker();
                    sink(Completion::Woken);
                }
                Some((Op::Accept, index)) => self.on_listener(index as usize, sink),
                Some((Op::Sock, id)) => self.on_sock(id, ready, sink),
                Some((Op::Watch, fd)) => {
                    if let Some(token) = self.watches.remove(&(fd as u32 as RawFd)) {
                        sink(Completion::Readable(token));
                    }
                }
                other => {
                    warn!(data, ?other, "epoll event with unknown data");
                }
            }
        }
        self.events = events;
        Ok(())
    }
}
