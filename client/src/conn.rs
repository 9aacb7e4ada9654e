//! One node's connections: dialed lazily, authenticated with the sans-IO
//! [`Connection`] from govfs-net, and driven by one task each that writes
//! queued requests in batches and hands every answer to whoever waits for
//! its request id. Many requests are in flight on one connection; answers
//! may come back in any order.
//!
//! ```text
//! caller ──permit──▶ pending[id] = waiter ──(id, body)──▶ writer ─▶ socket
//! caller ◀──────────── waiter ◀── pending.remove(id) ◀── reader ◀─ socket
//! ```
//!
//! A connection dies on any socket or framing error (or when it delivered
//! nothing at all while a request waited out its timeout: the node is stuck
//! or gone); its waiters get [`NetError::Lost`] and the next request dials
//! anew.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// An encoded request body. Shared, so one request sent to several nodes
/// (a chunk write to its replicas) is encoded and checksummed once; the
/// connection writes it from here, after the frame's header.
pub(crate) type Body = Arc<BodyBytes>;

/// Bodies at least this large are checksummed once for all their sends.
const SHARED_CRC_FROM: usize = 64 << 10;

pub(crate) struct BodyBytes {
    bytes: Vec<u8>,
    crc: OnceLock<u32>,
}

impl BodyBytes {
    pub(crate) fn new(bytes: Vec<u8>) -> Body {
        Arc::new(BodyBytes {
            bytes,
            crc: OnceLock::new(),
        })
    }

    /// The body's checksum, computed by the first connection that frames
    /// it and combined with each header (`govfs_net::crc::combine`, well
    /// under a microsecond); `None` for a small body, checksummed with
    /// each header instead, where sharing saves next to nothing.
    fn crc(&self) -> Option<u32> {
        (self.bytes.len() >= SHARED_CRC_FROM).then(|| {
            *self
                .crc
                .get_or_init(|| govfs_net::frame::body_crc(&self.bytes))
        })
    }
}

impl std::ops::Deref for BodyBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

use govfs_net::{
    random_nonce, ClusterKey, ConnEvent, Connection, Frame, FrameHeader, FrameKind, Identity,
    HEADER_LEN,
};
use std::io::IoSlice;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore};

use crate::error::NetError;

/// Bytes read from a socket at a time.
const READ_BUF_LEN: usize = 256 * 1024;
/// A writer stops gathering queued requests into one write at this size.
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// How a node's connections behave; from [`crate::ClientOptions`].
#[derive(Clone, Debug)]
pub(crate) struct ConnSettings {
    pub key: ClusterKey,
    pub local: Identity,
    pub connect_timeout: Duration,
    pub max_in_flight: usize,
    pub connections: usize,
}

/// Every connection to one address.
pub(crate) struct NodeConns {
    addr: SocketAddr,
    slots: Vec<Slot>,
    next: AtomicUsize,
}

/// One connection, redialed when it dies. The semaphore bounds the requests
/// in flight on it (back-pressure); it outlives the connections it serves.
struct Slot {
    in_flight: Arc<Semaphore>,
    live: tokio::sync::Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    conn: Option<Live>,
    /// When the last dial failed and why: callers that queued up behind a
    /// failing dial get its error at once instead of each dialing again.
    failed: Option<(Instant, String)>,
}

/// The caller's end of an established connection.
#[derive(Clone)]
struct Live {
    tx: mpsc::Sender<(u64, Body)>,
    shared: Arc<Shared>,
}

/// What the connection's task and its callers share.
struct Shared {
    /// Request id -> who waits for its answer; `None` once the connection is
    /// dead (nobody may wait on it any more).
    pending: Mutex<Option<HashMap<u64, oneshot::Sender<Frame>>>>,
    /// Why it died, for the waiters it drops.
    death: Mutex<Option<String>>,
    /// Frames received so far: a request that timed out while this did not
    /// move saw a stuck connection.
    frames_in: AtomicU64,
    kill: Notify,
}

impl Shared {
    fn is_dead(&self) -> bool {
        lock(&self.pending).is_none()
    }

    fn reason(&self) -> String {
        lock(&self.death)
            .clone()
            .unwrap_or_else(|| "connection closed".into())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl NodeConns {
    pub fn new(addr: SocketAddr, settings: &ConnSettings) -> NodeConns {
        NodeConns {
            addr,
            slots: (0..settings.connections.max(1))
                .map(|_| Slot {
                    in_flight: Arc::new(Semaphore::new(settings.max_in_flight.max(1))),
                    live: tokio::sync::Mutex::new(SlotState::default()),
                })
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// Sends one request and waits up to `timeout` for its answer (the
    /// wait for a free in-flight slot and for the dial count against it).
    pub async fn call(
        &self,
        settings: &ConnSettings,
        request_id: u64,
        body: Body,
        timeout: Duration,
    ) -> Result<Frame, NetError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let slot = &self.slots[i];
        let give_up = Instant::now() + timeout;
        let call = self.call_on(slot, settings, request_id, body, give_up);
        match tokio::time::timeout(timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(NetError::NoAnswer(timeout)),
        }
    }

    async fn call_on(
        &self,
        slot: &Slot,
        settings: &ConnSettings,
        request_id: u64,
        body: Body,
        give_up: Instant,
    ) -> Result<Frame, NetError> {
        let _permit: OwnedSemaphorePermit = Arc::clone(&slot.in_flight)
            .acquire_owned()
            .await
            .map_err(|_| NetError::Closed)?;
        let live = self.live(slot, settings).await?;
        let (waiter, answer) = oneshot::channel();
        {
            let mut pending = lock(&live.shared.pending);
            let Some(map) = pending.as_mut() else {
                return Err(NetError::Lost {
                    reason: live.shared.reason(),
                });
            };
            map.insert(request_id, waiter);
        }
        // Removes the waiter however this call ends (answer, error or the
        // caller's timeout dropping this future), and on a timeout checks
        // whether the connection delivered anything meanwhile.
        let guard = WaitGuard {
            shared: &live.shared,
            request_id,
            frames_at_send: live.shared.frames_in.load(Ordering::Acquire),
            give_up,
            answered: false,
        };
        if live.tx.send((request_id, body)).await.is_err() {
            return Err(NetError::Lost {
                reason: live.shared.reason(),
            });
        }
        let mut guard = guard;
        match answer.await {
            Ok(frame) => {
                guard.answered = true;
                Ok(frame)
            }
            Err(_) => Err(NetError::Lost {
                reason: live.shared.reason(),
            }),
        }
    }

    /// The slot's established connection, dialing one if there is none.
    async fn live(&self, slot: &Slot, settings: &ConnSettings) -> Result<Live, NetError> {
        let asked = Instant::now();
        let mut state = slot.live.lock().await;
        if let Some(live) = &state.conn {
            if !live.shared.is_dead() {
                return Ok(live.clone());
            }
            state.conn = None;
        }
        if let Some((at, reason)) = &state.failed {
            if *at >= asked {
                return Err(NetError::Lost {
                    reason: reason.clone(),
                });
            }
        }
        match dial(self.addr, settings).await {
            Ok(live) => {
                state.failed = None;
                state.conn = Some(live.clone());
                Ok(live)
            }
            Err(e) => {
                state.failed = Some((Instant::now(), e.to_string()));
                Err(e)
            }
        }
    }
}

struct WaitGuard<'a> {
    shared: &'a Shared,
    request_id: u64,
    frames_at_send: u64,
    /// When the call's timeout ends: a caller dropping the call before
    /// (a read ahead no longer wanted, its own shorter deadline) says
    /// nothing about the node.
    give_up: Instant,
    answered: bool,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let was_waiting = lock(&self.shared.pending)
            .as_mut()
            .and_then(|m| m.remove(&self.request_id))
            .is_some();
        // Timed out while still waiting, and not one frame arrived since the
        // request went out: the node is stuck or gone. Kill the connection
        // so every other waiter fails over too (a node that answers one
        // frame at a time would otherwise hold them all behind this one).
        if was_waiting
            && Instant::now() >= self.give_up
            && self.shared.frames_in.load(Ordering::Acquire) == self.frames_at_send
        {
            self.shared.kill.notify_one();
        }
    }
}

/// Dials `addr`, runs the handshake and starts the connection's task.
async fn dial(addr: SocketAddr, settings: &ConnSettings) -> Result<Live, NetError> {
    let handshake = async {
        let mut stream = TcpStream::connect(addr).await?;
        // We batch frames ourselves; Nagle would only add latency.
        stream.set_nodelay(true)?;
        let nonce = random_nonce().map_err(NetError::Random)?;
        let mut conn = Connection::new_initiator(&settings.key, settings.local, nonce);
        let mut buf = vec![0u8; READ_BUF_LEN];
        loop {
            if conn.has_transmit() {
                let bytes = conn.take_transmit();
                stream.write_all(&bytes).await?;
            }
            if conn.peer().is_some() {
                break;
            }
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Err(NetError::ClosedDuringHandshake {
                    awaiting: conn.awaiting(),
                });
            }
            conn.receive(&buf[..n])?;
        }
        Ok::<_, NetError>((stream, conn, buf))
    };
    let (stream, conn, buf) = tokio::time::timeout(settings.connect_timeout, handshake)
        .await
        .map_err(|_| NetError::ConnectTimeout(settings.connect_timeout))??;
    let shared = Arc::new(Shared {
        pending: Mutex::new(Some(HashMap::new())),
        death: Mutex::new(None),
        frames_in: AtomicU64::new(0),
        kill: Notify::new(),
    });
    let (tx, rx) = mpsc::channel(settings.max_in_flight.max(1));
    let (rd, wr) = stream.into_split();
    tokio::spawn(drive(conn, rd, wr, buf, rx, Arc::clone(&shared)));
    Ok(Live { tx, shared })
}

/// The connection's task: reads and writes until either side fails, the
/// connection is killed, or every caller's sender is gone (client dropped).
async fn drive(
    conn: Connection,
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    buf: Vec<u8>,
    rx: mpsc::Receiver<(u64, Body)>,
    shared: Arc<Shared>,
) {
    let conn = Mutex::new(conn);
    let reason = tokio::select! {
        r = read_loop(&conn, rd, buf, &shared) => r,
        r = write_loop(&conn, wr, rx) => r,
        () = shared.kill.notified() => "no answer and nothing else received within the request timeout".to_string(),
    };
    tracing::debug!(%reason, "client connection closed");
    *lock(&shared.death) = Some(reason);
    // Dropping the waiters wakes every caller with `Lost`.
    lock(&shared.pending).take();
}

async fn read_loop(
    conn: &Mutex<Connection>,
    mut rd: OwnedReadHalf,
    mut buf: Vec<u8>,
    shared: &Shared,
) -> String {
    let mut frames = Vec::new();
    loop {
        // Frames that arrived with the handshake's last bytes come first.
        let result = {
            let mut c = lock(conn);
            while let Some(ev) = c.poll_event() {
                if let ConnEvent::Frame(f) = ev {
                    frames.push(f);
                }
            }
            c.error().cloned()
        };
        for frame in frames.drain(..) {
            shared.frames_in.fetch_add(1, Ordering::AcqRel);
            if frame.kind != FrameKind::Client {
                continue;
            }
            let waiter = lock(&shared.pending)
                .as_mut()
                .and_then(|m| m.remove(&frame.request_id));
            // No waiter: an answer to a request its caller gave up on.
            if let Some(w) = waiter {
                let _ = w.send(frame);
            }
        }
        if let Some(err) = result {
            return err.to_string();
        }
        let n = match rd.read(&mut buf).await {
            Ok(0) => return NetError::Closed.to_string(),
            Ok(n) => n,
            Err(e) => return NetError::Io(e).to_string(),
        };
        // An error is kept by the connection and reported above, after the
        // frames decoded before it.
        let _ = lock(conn).receive(&buf[..n]);
    }
}

/// Everything queued goes out in one vectored write (up to a bound): each
/// frame's header, then its body from the caller's own buffer, so a chunk
/// write's data is never copied on its way to the socket.
async fn write_loop(
    conn: &Mutex<Connection>,
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<(u64, Body)>,
) -> String {
    while let Some(first) = rx.recv().await {
        let mut frames: Vec<(FrameHeader, Body)> = Vec::new();
        let mut bytes = 0;
        let mut next = Some(first);
        while let Some((id, body)) = next.take() {
            let header = match body.crc() {
                Some(crc) => lock(conn).frame_header_crc(FrameKind::Client, id, body.len(), crc),
                None => lock(conn).frame_header(FrameKind::Client, id, &body),
            };
            let header = match header {
                Ok(h) => h,
                Err(e) => return NetError::Queue(e).to_string(),
            };
            bytes += HEADER_LEN + body.len();
            frames.push((header, body));
            if bytes < MAX_BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        // Whatever the connection itself queued goes first (nothing, once
        // the handshake is over).
        let before = lock(conn).take_transmit();
        let mut slices = Vec::with_capacity(1 + 2 * frames.len());
        slices.push(IoSlice::new(&before));
        for (header, body) in &frames {
            slices.push(IoSlice::new(header.wire_bytes()));
            slices.push(IoSlice::new(body));
        }
        if let Err(e) = write_all_vectored(&mut wr, &mut slices).await {
            return NetError::Io(e).to_string();
        }
    }
    "client closed".into()
}

async fn write_all_vectored(
    wr: &mut OwnedWriteHalf,
    mut slices: &mut [IoSlice<'_>],
) -> std::io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        let n = wr.write_vectored(slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}
