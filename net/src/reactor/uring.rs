//! [`UringBackend`]: the reactor's IO as io_uring submissions.
//!
//! | op | user data | buffer the kernel uses until the completion |
//! |---|---|---|
//! | `Recv` | (Recv, conn id) | the connection's `recv_buf` |
//! | `Send` or `SendZc` | (Send, conn id) | the connection's `send_buf`, its output handed over (not copied) |
//! | `Connect` | (Connect, conn id) | the connection's `addr` |
//! | `Accept` (one-shot, re-armed) | (Accept, listener index) | none |
//! | `Read` of the waker's eventfd | (Wake, 0) | `wake_buf` |
//! | `PollAdd` (one-shot) | (Watch, watch number) | none |
//! | `AsyncCancel` | (Cancel, conn id) | none |
//!
//! Every buffer is a heap allocation owned by the backend whose address
//! does not move while an op is in flight. A closed connection is
//! cancelled (AsyncCancel for each op in flight, plus `shutdown(2)` so a
//! send that is past cancelling ends too) and stays in the table, fd and
//! buffers included, until the last of its completions arrived: the kernel
//! never writes to freed memory, and its fd number cannot be reused under
//! a submission that still names it. Dropping the backend does the same
//! for everything and waits a bounded time; whatever is still in flight
//! after that is leaked rather than freed.
//!
//! A send writes the buffer the reactor handed over in place, resubmitting
//! the rest after a partial write, and reports `Sent` once all of it went.
//! From [`ZeroCopy::min_len`] bytes on it is a zero-copy send (`SendZc`,
//! Linux 6.0): the kernel sends from our pages instead of copying them, and
//! a second completion (`IORING_CQE_F_NOTIF`) says when it no longer uses
//! them; the buffer is kept, and `Sent` waits, until every such
//! notification arrived. Over loopback the kernel copies anyway, so the
//! reactor turns it on only for peers elsewhere unless told otherwise.
//!
//! Sockets are switched to blocking mode once connected: io_uring arms an
//! internal poll for a socket that has no data, whatever its mode, and in
//! blocking mode a completion can never be `EAGAIN`.
//!
//! The wait uses `io_uring_enter` with a timeout argument (`EXT_ARG`, Linux
//! 5.11), so no timeout submission is ever in flight; a kernel without it,
//! or without one of the opcodes above, counts as "cannot set up io_uring".

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring, Probe};
use tracing::{debug, error, warn};

use super::backend::{Completion, NetBackend, Op};
use super::sys::{eventfd, stream_socket, RawSockAddr};
use super::{ConnId, Waker};

/// How long dropping the backend waits for cancelled ops to complete
/// before it leaks their buffers.
const DROP_DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// The io_uring implementation of [`NetBackend`].
pub struct UringBackend {
    ring: IoUring,
    wake_fd: Arc<OwnedFd>,
    /// Where the eventfd read lands; boxed so its address is stable.
    wake_buf: Box<[u8; 8]>,
    wake_armed: bool,
    listeners: Vec<TcpListener>,
    socks: HashMap<u64, Sock>,
    /// Watch number to the caller's token, until the poll fires.
    watches: HashMap<u64, u64>,
    next_watch: u64,
    recv_buf_len: usize,
    /// Zero-copy sends, when asked for and the kernel has them.
    zero_copy: Option<ZeroCopy>,
    zero_copy_sends: u64,
    /// Completions copied out of the ring (user data, result, flags),
    /// reused across waits.
    cqes: Vec<(u64, i32, u32)>,
}

/// Which ops of one socket are in the kernel.
#[derive(Clone, Copy, Debug, Default)]
struct InFlight {
    recv: bool,
    send: bool,
    connect: bool,
    /// Zero-copy notifications still to come: the kernel may still read
    /// `send_buf`.
    notifs: u32,
}

impl InFlight {
    fn any(self) -> bool {
        self.recv || self.send || self.connect || self.notifs > 0
    }
}

/// When sends are zero-copy (`SendZc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZeroCopy {
    /// Sends of at least this many bytes (the pinning and the notification
    /// cost more than copying a small buffer).
    pub min_len: usize,
    /// Also to peers on loopback, where the kernel copies anyway (for
    /// tests of this path).
    pub loopback: bool,
}

struct Sock {
    stream: TcpStream,
    recv_buf: Box<[u8]>,
    /// The send in progress (its first `send_off` bytes written), or the
    /// emptied buffer of the last one.
    send_buf: Vec<u8>,
    send_off: usize,
    /// Every byte is written; `Sent` waits for zero-copy notifications.
    send_done: bool,
    /// Whether this socket's sends may be zero-copy.
    zero_copy: bool,
    /// The address a `Connect` in flight reads.
    addr: Option<Box<RawSockAddr>>,
    in_flight: InFlight,
    /// Closed by the reactor: waiting for the last completion, reporting
    /// nothing.
    closing: bool,
}

impl UringBackend {
    /// Sets up a ring with `entries` submission entries and checks that the
    /// kernel has everything this backend uses. An error means: use epoll.
    pub fn new(
        entries: u32,
        max_connections: usize,
        recv_buf_len: usize,
        zero_copy: Option<ZeroCopy>,
    ) -> io::Result<Self> {
        let cq_entries = entries
            .saturating_mul(4)
            .max(u32::try_from(max_connections.saturating_mul(4)).unwrap_or(u32::MAX));
        let ring = IoUring::builder()
            .setup_cqsize(cq_entries)
            .setup_clamp()
            .build(entries)?;
        let params = ring.params();
        if !params.is_feature_ext_arg() {
            return Err(unsupported(
                "waits with a timeout (IORING_FEAT_EXT_ARG, Linux 5.11)",
            ));
        }
        if !params.is_feature_nodrop() {
            return Err(unsupported("no-drop completions (IORING_FEAT_NODROP)"));
        }
        let mut probe = Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        for (code, name) in [
            (opcode::Recv::CODE, "recv"),
            (opcode::Send::CODE, "send"),
            (opcode::Accept::CODE, "accept"),
            (opcode::Connect::CODE, "connect"),
            (opcode::Read::CODE, "read"),
            (opcode::PollAdd::CODE, "poll_add"),
            (opcode::AsyncCancel::CODE, "async_cancel"),
        ] {
            if !probe.is_supported(code) {
                return Err(unsupported(name));
            }
        }
        let zero_copy = zero_copy.filter(|_| {
            let has = probe.is_supported(opcode::SendZc::CODE);
            if !has {
                debug!("io_uring has no zero-copy send (Linux 6.0): sends copy");
            }
            has
        });
        // Blocking: io_uring polls it; a non-blocking eventfd would make the
        // read complete with EAGAIN instead.
        let wake_fd = Arc::new(eventfd(false)?);
        let mut backend = UringBackend {
            ring,
            wake_fd,
            wake_buf: Box::new([0; 8]),
            wake_armed: false,
            listeners: Vec::new(),
            socks: HashMap::new(),
            watches: HashMap::new(),
            next_watch: 0,
            recv_buf_len: recv_buf_len.max(1),
            zero_copy,
            zero_copy_sends: 0,
            cqes: Vec::new(),
        };
        backend.arm_wake()?;
        backend.ring.submit()?;
        Ok(backend)
    }

    fn arm_wake(&mut self) -> io::Result<()> {
        debug_assert!(!self.wake_armed);
        let entry = opcode::Read::new(
            types::Fd(self.wake_fd.as_raw_fd()),
            self.wake_buf.as_mut_ptr(),
            8,
        )
        .build()
        .user_data(Op::Wake.encode(0));
        // SAFETY: `wake_buf` is boxed and lives until this read completes
        // (Drop waits for it or leaks it).
        unsafe { push(&mut self.ring, &entry)? };
        self.wake_armed = true;
        Ok(())
    }

    fn arm_accept(&mut self, index: usize) -> io::Result<()> {
        let fd = self.listeners[index].as_raw_fd();
        let entry = opcode::Accept::new(types::Fd(fd), std::ptr::null_mut(), std::ptr::null_mut())
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(Op::Accept.encode(index as u64));
        // SAFETY: no buffers; the listener lives as long as the backend.
        unsafe { push(&mut self.ring, &entry) }
    }

    /// Whether sends to `peer` are zero-copy.
    fn zero_copy_to(&self, peer: Option<SocketAddr>) -> bool {
        self.zero_copy
            .is_some_and(|z| z.loopback || peer.is_some_and(|p| !p.ip().is_loopback()))
    }

    fn on_cqe(&mut self, data: u64, res: i32, flags: u32, sink: &mut dyn FnMut(Completion<'_>)) {
        let Some((op, id)) = Op::decode(data) else {
            warn!(data, res, "io_uring completion with unknown user data");
            return;
        };
        match op {
            Op::Wake => {
                self.wake_armed = false;
                if res >= 0 {
                    sink(Completion::Woken);
                } else if res != -libc::ECANCELED {
                    error!(error = %errno(res), "reading the reactor's eventfd failed");
                }
                if res >= 0 || res == -libc::EINTR {
                    if let Err(err) = self.arm_wake() {
                        error!(error = %err, "cannot re-arm the reactor's waker");
                    }
                }
            }
            Op::Accept => {
                let index = id as usize;
                if res >= 0 {
                    // SAFETY: a successful accept returns a new fd we own.
                    let stream = TcpStream::from(unsafe { OwnedFd::from_raw_fd(res) });
                    sink(Completion::Accepted(stream));
                } else if res == -libc::ECANCELED {
                    return;
                } else {
                    sink(Completion::AcceptFailed(errno(res)));
                }
                if let Err(err) = self.arm_accept(index) {
                    sink(Completion::AcceptFailed(err));
                }
            }
            Op::Watch => {
                if let Some(token) = self.watches.remove(&id) {
                    sink(Completion::Readable(token));
                }
            }
            Op::Cancel => {}
            Op::Recv | Op::Send | Op::Connect => self.on_sock_cqe(op, id, res, flags, sink),
            Op::Sock => {
                debug_assert!(false, "epoll-only op in an io_uring completion");
            }
        }
    }

    fn on_sock_cqe(
        &mut self,
        op: Op,
        id: u64,
        res: i32,
        flags: u32,
        sink: &mut dyn FnMut(Completion<'_>),
    ) {
        let conn = ConnId(id);
        let Some(sock) = self.socks.get_mut(&id) else {
            debug_assert!(false, "{op:?} completion for {conn}, which has no socket");
            return;
        };
        let notif = op == Op::Send && cqueue::notif(flags);
        match op {
            Op::Recv => sock.in_flight.recv = false,
            // The kernel is done with the pages of one zero-copy send.
            Op::Send if notif => {
                assert!(sock.in_flight.notifs > 0, "{conn}: unexpected notification");
                sock.in_flight.notifs -= 1;
            }
            Op::Send => {
                sock.in_flight.send = false;
                // A notification follows this completion.
                if cqueue::more(flags) {
                    sock.in_flight.notifs += 1;
                }
            }
            _ => sock.in_flight.connect = false,
        }
        if sock.closing {
            if !sock.in_flight.any() {
                // The kernel is done with every buffer: now free them and
                // close the fd.
                self.socks.remove(&id);
            }
            return;
        }
        match op {
            Op::Recv if res > 0 => {
                sink(Completion::Received(conn, &sock.recv_buf[..res as usize]));
                // SAFETY: the buffer lives in the table until this recv
                // completes (a close waits for it).
                if let Err(err) = unsafe { arm_recv(&mut self.ring, id, sock) } {
                    sink(Completion::Failed(conn, "recv", err));
                }
            }
            Op::Recv if res == 0 => sink(Completion::Eof(conn)),
            Op::Recv => sink(Completion::Failed(conn, "recv", errno(res))),
            Op::Send if notif => {
                if sock.send_done && sock.in_flight.notifs == 0 {
                    sink(Completion::Sent(conn, finish_send(sock)));
                }
            }
            Op::Send if res > 0 => {
                sock.send_off += res as usize;
                if sock.send_off < sock.send_buf.len() {
                    let min = self.zero_copy.map_or(usize::MAX, |z| z.min_len);
                    // SAFETY: as for the recv above.
                    match unsafe { arm_send(&mut self.ring, id, sock, min) } {
                        Ok(zc) => self.zero_copy_sends += u64::from(zc),
                        Err(err) => sink(Completion::Failed(conn, "send", err)),
                    }
                } else if sock.in_flight.notifs == 0 {
                    sink(Completion::Sent(conn, finish_send(sock)));
                } else {
                    sock.send_done = true;
                }
            }
            Op::Send if res == 0 => sink(Completion::Failed(
                conn,
                "send",
                io::Error::from(io::ErrorKind::WriteZero),
            )),
            Op::Send => sink(Completion::Failed(conn, "send", errno(res))),
            _ if res < 0 => sink(Completion::Failed(conn, "connect", errno(res))),
            _ => {
                sock.addr = None;
                let armed = sock
                    .stream
                    .set_nonblocking(false)
                    .and_then(|()| sock.stream.set_nodelay(true))
                    // SAFETY: as for the recv above.
                    .and_then(|()| unsafe { arm_recv(&mut self.ring, id, sock) });
                match armed {
                    Ok(()) => sink(Completion::Connected(conn)),
                    Err(err) => sink(Completion::Failed(conn, "connect", err)),
                }
            }
        }
    }

    /// Cancels everything in flight and waits (bounded) for the kernel to
    /// give every buffer back.
    fn drain_for_drop(&mut self) {
        let ids: Vec<u64> = self.socks.keys().copied().collect();
        for id in ids {
            self.close(ConnId(id));
        }
        if self.wake_armed {
            let cancel = opcode::AsyncCancel::new(Op::Wake.encode(0))
                .build()
                .user_data(Op::Cancel.encode(0));
            // SAFETY: no buffers.
            let _ = unsafe { push(&mut self.ring, &cancel) };
        }
        let deadline = Instant::now() + DROP_DRAIN_LIMIT;
        while (self.wake_armed || !self.socks.is_empty()) && Instant::now() < deadline {
            let ts = types::Timespec::from(Duration::from_millis(50));
            let args = types::SubmitArgs::new().timespec(&ts);
            match self.ring.submitter().submit_with_args(1, &args) {
                Ok(_) => {}
                Err(err) if is_wait_noise(&err) => {}
                Err(_) => break,
            }
            let cqes: Vec<(u64, i32, u32)> = self
                .ring
                .completion()
                .map(|cqe| (cqe.user_data(), cqe.result(), cqe.flags()))
                .collect();
            for (data, res, flags) in cqes {
                match Op::decode(data) {
                    Some((Op::Wake, _)) => self.wake_armed = false,
                    Some((op @ (Op::Recv | Op::Send | Op::Connect), id)) => {
                        self.on_sock_cqe(op, id, res, flags, &mut |_| {});
                    }
                    _ => {}
                }
            }
        }
        if self.wake_armed || !self.socks.is_empty() {
            warn!(
                sockets = self.socks.len(),
                "io_uring ops still in flight at drop; leaking their buffers"
            );
            std::mem::forget(std::mem::take(&mut self.socks));
            if self.wake_armed {
                std::mem::forget(std::mem::replace(&mut self.wake_buf, Box::new([0; 8])));
            }
        }
    }
}

impl Drop for UringBackend {
    fn drop(&mut self) {
        self.drain_for_drop();
    }
}

fn unsupported(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("the kernel's io_uring lacks {what}"),
    )
}

fn errno(res: i32) -> io::Error {
    io::Error::from_raw_os_error(-res)
}

/// Errors of a timed wait that only mean "nothing (more) to report".
fn is_wait_noise(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)
    )
}

/// Sends the rest of `sock.send_buf` (from `send_off`), zero-copy when it
/// is at least `zero_copy_min` bytes and the socket allows it (returns
/// whether it is).
///
/// # Safety
/// `sock.send_buf` must not change or move until the completion and every
/// notification arrived.
unsafe fn arm_send(
    ring: &mut IoUring,
    id: u64,
    sock: &mut Sock,
    zero_copy_min: usize,
) -> io::Result<bool> {
    let rest = &sock.send_buf[sock.send_off..];
    let len = u32::try_from(rest.len()).unwrap_or(u32::MAX);
    let fd = types::Fd(sock.stream.as_raw_fd());
    let zero_copy = sock.zero_copy && rest.len() >= zero_copy_min;
    let entry = if zero_copy {
        opcode::SendZc::new(fd, rest.as_ptr(), len)
            .flags(libc::MSG_NOSIGNAL)
            .build()
    } else {
        opcode::Send::new(fd, rest.as_ptr(), len)
            .flags(libc::MSG_NOSIGNAL)
            .build()
    };
    // SAFETY: the caller keeps the buffer in place.
    unsafe { push(ring, &entry.user_data(Op::Send.encode(id)))? };
    sock.in_flight.send = true;
    Ok(zero_copy)
}

/// A send is over: its byte count, and the buffer emptied for reuse.
fn finish_send(sock: &mut Sock) -> usize {
    let len = sock.send_buf.len();
    sock.send_buf.clear();
    sock.send_off = 0;
    sock.send_done = false;
    len
}

/// Queues one submission, submitting what is queued first if the
/// submission queue is full.
///
/// # Safety
/// Every buffer `entry` points to must stay valid until its completion.
unsafe fn push(ring: &mut IoUring, entry: &squeue::Entry) -> io::Result<()> {
    loop {
        // SAFETY: forwarded to the caller.
        if unsafe { ring.submission().push(entry) }.is_ok() {
            return Ok(());
        }
        ring.submit()?;
    }
}

/// Queues a recv into the socket's buffer.
///
/// # Safety
/// `sock` must stay in the table (its buffer alive) until the completion.
unsafe fn arm_recv(ring: &mut IoUring, id: u64, sock: &mut Sock) -> io::Result<()> {
    debug_assert!(!sock.in_flight.recv, "conn#{id}: two recvs in flight");
    let len = u32::try_from(sock.recv_buf.len()).unwrap_or(u32::MAX);
    let entry = opcode::Recv::new(
        types::Fd(sock.stream.as_raw_fd()),
        sock.recv_buf.as_mut_ptr(),
        len,
    )
    .build()
    .user_data(Op::Recv.encode(id));
    // SAFETY: forwarded to the caller.
    unsafe { push(ring, &entry)? };
    sock.in_flight.recv = true;
    Ok(())
}

impl NetBackend for UringBackend {
    fn listen(&mut self, listener: TcpListener) -> io::Result<()> {
        // io_uring polls a blocking listener itself.
        listener.set_nonblocking(false)?;
        self.listeners.push(listener);
        self.arm_accept(self.listeners.len() - 1)
    }

    fn add_stream(&mut self, id: ConnId, stream: TcpStream) -> io::Result<()> {
        debug_assert!(!self.socks.contains_key(&id.0), "{id} added twice");
        stream.set_nonblocking(false)?;
        stream.set_nodelay(true)?;
        let zero_copy = self.zero_copy_to(stream.peer_addr().ok());
        let mut sock = Sock {
            stream,
            recv_buf: vec![0; self.recv_buf_len].into_boxed_slice(),
            send_buf: Vec::new(),
            send_off: 0,
            send_done: false,
            zero_copy,
            addr: None,
            in_flight: InFlight::default(),
            closing: false,
        };
        // SAFETY: the sock goes into the table right after; the boxed
        // buffer does not move with it.
        unsafe { arm_recv(&mut self.ring, id.0, &mut sock)? };
        self.socks.insert(id.0, sock);
        Ok(())
    }

    fn connect(&mut self, id: ConnId, addr: SocketAddr) -> io::Result<()> {
        debug_assert!(!self.socks.contains_key(&id.0), "{id} added twice");
        let stream = stream_socket(&addr)?;
        let raw = Box::new(RawSockAddr::new(&addr));
        let entry = opcode::Connect::new(types::Fd(stream.as_raw_fd()), raw.as_ptr(), raw.len())
            .build()
            .user_data(Op::Connect.encode(id.0));
        // SAFETY: `raw` is boxed into the sock, which stays in the table
        // until the connect completes.
        unsafe { push(&mut self.ring, &entry)? };
        let sock = Sock {
            stream,
            recv_buf: vec![0; self.recv_buf_len].into_boxed_slice(),
            send_buf: Vec::new(),
            send_off: 0,
            send_done: false,
            zero_copy: self.zero_copy_to(Some(addr)),
            addr: Some(raw),
            in_flight: InFlight {
                connect: true,
                ..InFlight::default()
            },
            closing: false,
        };
        self.socks.insert(id.0, sock);
        Ok(())
    }

    fn send(&mut self, id: ConnId, buf: Vec<u8>) -> io::Result<()> {
        let min = self.zero_copy.map_or(usize::MAX, |z| z.min_len);
        let Some(sock) = self.socks.get_mut(&id.0) else {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such socket"));
        };
        assert!(
            !sock.in_flight.send && sock.in_flight.notifs == 0 && !sock.send_done,
            "{id}: two sends in flight"
        );
        debug_assert!(!sock.closing && !buf.is_empty());
        sock.send_buf = buf;
        sock.send_off = 0;
        // SAFETY: `send_buf` is not touched until the send and its
        // notifications completed (the assert above), and the sock stays in
        // the table until then.
        let zc = unsafe { arm_send(&mut self.ring, id.0, sock, min)? };
        self.zero_copy_sends += u64::from(zc);
        Ok(())
    }

    fn zero_copy_sends(&self) -> u64 {
        self.zero_copy_sends
    }

    fn take_spare(&mut self, id: ConnId) -> Vec<u8> {
        match self.socks.get_mut(&id.0) {
            Some(s) if !s.in_flight.send && s.in_flight.notifs == 0 && !s.send_done => {
                let mut spare = std::mem::take(&mut s.send_buf);
                spare.clear();
                spare
            }
            _ => Vec::new(),
        }
    }

    fn close(&mut self, id: ConnId) {
        let Some(sock) = self.socks.get_mut(&id.0) else {
            return;
        };
        if sock.closing {
            return;
        }
        if !sock.in_flight.any() {
            self.socks.remove(&id.0);
            return;
        }
        sock.closing = true;
        let in_flight = sock.in_flight;
        // SAFETY: shutdown takes no pointers. It ends a recv or send the
        // cancel cannot reach (already running); ENOTCONN for a socket still
        // connecting is fine, the cancel covers that.
        unsafe { libc::shutdown(sock.stream.as_raw_fd(), libc::SHUT_RDWR) };
        for (on, op) in [
            (in_flight.recv, Op::Recv),
            (in_flight.send, Op::Send),
            (in_flight.connect, Op::Connect),
        ] {
            if on {
                let cancel = opcode::AsyncCancel::new(op.encode(id.0))
                    .build()
                    .user_data(Op::Cancel.encode(id.0));
                // SAFETY: no buffers.
                if let Err(err) = unsafe { push(&mut self.ring, &cancel) } {
                    debug!(error = %err, "{id}: cannot queue a cancel; shutdown ends it");
                }
            }
        }
    }

    fn watch_readable(&mut self, fd: RawFd, token: u64) -> io::Result<()> {
        let number = self.next_watch;
        self.next_watch += 1;
        let entry = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
            .build()
            .user_data(Op::Watch.encode(number));
        // SAFETY: no buffers; the caller keeps `fd` open.
        unsafe { push(&mut self.ring, &entry)? };
        self.watches.insert(number, token);
        Ok(())
    }

    fn waker(&self) -> Waker {
        Waker::new(Arc::clone(&self.wake_fd))
    }

    fn wait(&mut self, timeout: Duration, sink: &mut dyn FnMut(Completion<'_>)) -> io::Result<()> {
        let waited = if timeout.is_zero() {
            self.ring.submit().map(drop)
        } else {
            let ts = types::Timespec::from(timeout);
            let args = types::SubmitArgs::new().timespec(&ts);
            self.ring.submitter().submit_with_args(1, &args).map(drop)
        };
        match waited {
            Ok(()) => {}
            Err(err) if is_wait_noise(&err) => {}
            Err(err) => return Err(err),
        }
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.clear();
        cqes.extend(
            self.ring
                .completion()
                .map(|cqe| (cqe.user_data(), cqe.result(), cqe.flags())),
        );
        for &(data, res, flags) in &cqes {
            self.on_cqe(data, res, flags, sink);
        }
        self.cqes = cqes;
        Ok(())
    }
}
