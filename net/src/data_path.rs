//! The RDMA data path between clients and storage nodes (issue 6, item 7):
//! its setup and its call protocol, sans-IO but for the blocking setup
//! helpers. Compiled in every build; the verbs themselves are behind the
//! `rdma` feature (`crate::rdma`).
//!
//! Setup, over a TCP connection to the node's data-path listener (whose
//! address the node tells a client that asks, `ClientMsg::DataPath`):
//!
//! 1. the cluster handshake ([`TcpConn::connect`] / [`TcpConn::accept`]),
//!    the same proof of the cluster key as on every connection;
//! 2. the transport choice ([`crate::rdma_choice`]): the node writes its
//!    offer first and the client answers with its own, so no byte of it
//!    can reach the node while it still reads its handshake;
//! 3. when both chose RDMA, the queue-pair endpoint exchange
//!    (`rdma::Connection::establish`), each end offering a receive buffer
//!    of [`SlotLayout::buffer_len`] bytes. Anything else closes the socket
//!    and the client stays on TCP.
//!
//! Calls. Both receive buffers are cut into the same [`SlotLayout`]: `slots`
//! slots of `slot_len` bytes. A call takes a free slot `s`, chosen by the
//! client ([`SlotPool`]), and is one message each way, both for slot `s`:
//! the request's body (exactly the bytes a TCP frame's body would hold: an
//! encoded `ClientMsg::Chunk`), then the node's encoded `ServerMsg`. A
//! message carrying chunk data (a write's request, a read's answer) is one
//! RDMA write with immediate value `s` into slot `s` of the peer's buffer;
//! a small one (up to [`MAX_CONTROL_MESSAGE`] bytes: a read request, an
//! acknowledgement, a refusal) is one send into the peer's posted
//! receives, `s` in its first four bytes. The slot is the call's id and
//! is free again when its answer has arrived. A message that does not fit
//! a slot goes over TCP instead. Every arrival is checked
//! ([`SlotLayout::arrived`], [`parse_control`]): a slot that does not
//! exist, or more bytes than a slot holds, ends the connection.

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use thiserror::Error;

use crate::auth::{ClusterKey, Identity};
use crate::rdma_choice::{negotiate, negotiate_second, Choice, LocalRdma, NegotiateError};
use crate::tcp::{TcpConn, TcpError};

/// The largest slot: a chunk piece of 64 MiB and its request's header.
pub const MAX_SLOT_LEN: u32 = (64 << 20) + (64 << 10);
/// The most slots, so a call id fits any immediate value with room to spare.
pub const MAX_SLOTS: u32 = 1024;

/// How both ends cut their receive buffers into slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotLayout {
    slots: u32,
    slot_len: u32,
}

impl SlotLayout {
    /// What nodes and clients use: 8 calls in flight per connection, each
    /// up to a 4 MiB chunk piece (the default chunk size) and its header.
    /// A larger piece goes over TCP.
    pub const DEFAULT: SlotLayout = SlotLayout {
        slots: 8,
        slot_len: (4 << 20) + (64 << 10),
    };

    pub fn new(slots: u32, slot_len: u32) -> Result<SlotLayout, SlotError> {
        if slots == 0 || slots > MAX_SLOTS {
            return Err(SlotError::Layout("slots must be 1 to 1024"));
        }
        if slot_len == 0 || slot_len > MAX_SLOT_LEN || !slot_len.is_multiple_of(4096) {
            return Err(SlotError::Layout(
                "slot_len must be a multiple of 4096, at most 64 MiB + 64 KiB",
            ));
        }
        Ok(SlotLayout { slots, slot_len })
    }

    pub fn slots(&self) -> u32 {
        self.slots
    }

    pub fn slot_len(&self) -> u32 {
        self.slot_len
    }

    /// Bytes of each end's receive buffer.
    pub fn buffer_len(&self) -> usize {
        self.slots as usize * self.slot_len as usize
    }

    /// Where slot `slot` starts in a receive buffer.
    pub fn offset(&self, slot: u32) -> u64 {
        assert!(slot < self.slots, "slot {slot} of {}", self.slots);
        u64::from(slot) * u64::from(self.slot_len)
    }

    /// Whether a message of `len` bytes fits one slot.
    pub fn fits(&self, len: usize) -> bool {
        len <= self.slot_len as usize
    }

    /// Checks an RDMA write the peer announced with immediate `imm` and
    /// `byte_len` bytes: the slot it names, if it is one.
    pub fn arrived(&self, imm: u32, byte_len: u32) -> Result<u32, SlotError> {
        if imm >= self.slots {
            return Err(SlotError::NoSuchSlot {
                imm,
                slots: self.slots,
            });
        }
        if byte_len > self.slot_len {
            return Err(SlotError::TooLong {
                len: byte_len,
                slot_len: self.slot_len,
            });
        }
        Ok(imm)
    }
}

/// A client's slots: which are free for a new call.
#[derive(Debug)]
pub struct SlotPool {
    free: Vec<u32>,
    busy: Vec<bool>,
}

impl SlotPool {
    pub fn new(layout: SlotLayout) -> SlotPool {
        SlotPool {
            // Reversed, so slot 0 goes first.
            free: (0..layout.slots).rev().collect(),
            busy: vec![false; layout.slots as usize],
        }
    }

    /// A free slot for a new call, if any.
    pub fn take(&mut self) -> Option<u32> {
        let slot = self.free.pop()?;
        debug_assert!(!self.busy[slot as usize], "a free slot is not busy");
        self.busy[slot as usize] = true;
        Some(slot)
    }

    /// Whether `slot` holds a call waiting for its answer.
    pub fn is_busy(&self, slot: u32) -> bool {
        self.busy.get(slot as usize).copied().unwrap_or(false)
    }

    /// Frees `slot` once its answer has arrived; an answer for a slot with
    /// no call in it is the peer's error.
    pub fn give_back(&mut self, slot: u32) -> Result<(), SlotError> {
        match self.busy.get_mut(slot as usize) {
            Some(busy) if *busy => {
                *busy = false;
                self.free.push(slot);
                Ok(())
            }
            _ => Err(SlotError::NotBusy { slot }),
        }
    }

    /// Calls waiting for their answers.
    pub fn in_flight(&self) -> usize {
        self.busy.len() - self.free.len()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SlotError {
    #[error("bad slot layout: {0}")]
    Layout(&'static str),
    #[error("immediate value {imm} names no slot (there are {slots})")]
    NoSuchSlot { imm: u32, slots: u32 },
    #[error("{len} bytes written into a slot of {slot_len}")]
    TooLong { len: u32, slot_len: u32 },
    #[error("an answer in slot {slot}, which holds no call")]
    NotBusy { slot: u32 },
}

/// How a thread that polls links waits when a turn found nothing: it
/// spins for `spin_turns` turns (an answer is often microseconds away),
/// then rests between turns (its caller says how).
#[derive(Debug)]
pub struct IdleSpin {
    idle: u32,
    spin_turns: u32,
}

impl IdleSpin {
    pub fn new(spin_turns: u32) -> IdleSpin {
        IdleSpin {
            idle: 0,
            spin_turns,
        }
    }

    /// After a turn: nothing if it `worked`, a spin, or `rest()`.
    pub fn after(&mut self, worked: bool, rest: impl FnOnce()) {
        if worked {
            self.idle = 0;
        } else if self.idle < self.spin_turns {
            self.idle += 1;
            std::hint::spin_loop();
        } else {
            rest();
        }
    }
}

/// Why a data-path connection broke.
#[derive(Debug, Error)]
pub enum LinkError {
    #[error(transparent)]
    Slot(#[from] SlotError),
    #[error("a control message of {len} bytes, too short to name a slot")]
    ShortControl { len: usize },
    #[error("{0}")]
    Transport(String),
}

/// Messages up to this size travel as control messages (RDMA send and
/// receive), with the slot in a 4-byte prefix; larger ones, which carry
/// chunk data, by RDMA write with immediate into the slot.
pub const MAX_CONTROL_MESSAGE: usize = 4096 - CONTROL_PREFIX;
/// The slot, little-endian, before a control message's body.
pub const CONTROL_PREFIX: usize = 4;

/// `[slot][message]`: a message as it travels by send and receive.
pub fn control_message(slot: u32, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(CONTROL_PREFIX + message.len());
    out.extend_from_slice(&slot.to_le_bytes());
    out.extend_from_slice(message);
    out
}

/// The slot and message of a control message, the slot checked.
pub fn parse_control(layout: SlotLayout, mut raw: Vec<u8>) -> Result<(u32, Vec<u8>), LinkError> {
    let Some(prefix) = raw.first_chunk::<CONTROL_PREFIX>() else {
        return Err(LinkError::ShortControl { len: raw.len() });
    };
    let slot = layout.arrived(u32::from_le_bytes(*prefix), 0)?;
    raw.drain(..CONTROL_PREFIX);
    Ok((slot, raw))
}

/// One end of an established data-path connection, whatever carries it:
/// RDMA verbs ([`RdmaSlots`], feature `rdma`) or memory ([`mem_pair`], for
/// tests of the layers above, which cannot otherwise run where there is
/// no RDMA device).
pub trait SlotLink: Send {
    fn layout(&self) -> SlotLayout;
    /// What carries it, for logs (`mlx5_0`, `rxe0`, `memory`).
    fn name(&self) -> String;
    /// The next message from the peer, and the slot it is for (checked
    /// against the layout). An error breaks the link.
    fn poll(&mut self) -> Result<Option<(u32, Vec<u8>)>, LinkError>;
    /// Lets `fill` write a message into a slot-sized buffer (it returns
    /// how many bytes it wrote) and sends it to the peer for slot `slot`:
    /// as a control message if it is at most [`MAX_CONTROL_MESSAGE`]
    /// bytes, into the peer's slot otherwise.
    fn write(
        &mut self,
        slot: u32,
        fill: &mut dyn FnMut(&mut [u8]) -> Result<usize, LinkError>,
    ) -> Result<(), LinkError>;
}

/// An in-memory pair of linked ends: what one writes, the other polls.
/// [`MemSlots::break_link`] fails both, as a broken queue pair would.
pub fn mem_pair(layout: SlotLayout) -> (MemSlots, MemSlots) {
    let side = || {
        Arc::new(MemSide {
            buffer: Mutex::new(vec![0; layout.buffer_len()]),
            arrived: Mutex::new(VecDeque::new()),
        })
    };
    let (a, b) = (side(), side());
    let broken = Arc::new(AtomicBool::new(false));
    (
        MemSlots {
            layout,
            ours: Arc::clone(&a),
            theirs: Arc::clone(&b),
            broken: Arc::clone(&broken),
        },
        MemSlots {
            layout,
            ours: b,
            theirs: a,
            broken,
        },
    )
}

/// What arrived at one end of a [`mem_pair`], as the verbs would say it.
enum MemArrival {
    /// Written into the buffer: (immediate, length).
    Written(u32, u32),
    /// A control message.
    Control(Vec<u8>),
}

struct MemSide {
    /// This end's receive buffer.
    buffer: Mutex<Vec<u8>>,
    arrived: Mutex<VecDeque<MemArrival>>,
}

/// One end of a [`mem_pair`].
pub struct MemSlots {
    layout: SlotLayout,
    ours: Arc<MemSide>,
    theirs: Arc<MemSide>,
    broken: Arc<AtomicBool>,
}

impl MemSlots {
    /// Breaks the link for both ends.
    pub fn break_link(&self) {
        self.broken.store(true, Ordering::Relaxed);
    }

    /// Writes raw bytes with any immediate into the peer's buffer at
    /// `offset`, unchecked: a misbehaving peer, for tests.
    pub fn write_raw(&self, imm: u32, offset: usize, bytes: &[u8]) {
        lock(&self.theirs.buffer)[offset..offset + bytes.len()].copy_from_slice(bytes);
        lock(&self.theirs.arrived).push_back(MemArrival::Written(imm, bytes.len() as u32));
    }

    /// Sends a raw control message, unchecked.
    pub fn send_raw(&self, raw: Vec<u8>) {
        lock(&self.theirs.arrived).push_back(MemArrival::Control(raw));
    }

    fn check(&self) -> Result<(), LinkError> {
        if self.broken.load(Ordering::Relaxed) {
            return Err(LinkError::Transport("link broken".into()));
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SlotLink for MemSlots {
    fn layout(&self) -> SlotLayout {
        self.layout
    }

    fn name(&self) -> String {
        "memory".into()
    }

    fn poll(&mut self) -> Result<Option<(u32, Vec<u8>)>, LinkError> {
        self.check()?;
        let arrival = lock(&self.ours.arrived).pop_front();
        match arrival {
            None => Ok(None),
            Some(MemArrival::Control(raw)) => parse_control(self.layout, raw).map(Some),
            Some(MemArrival::Written(imm, len)) => {
                let slot = self.layout.arrived(imm, len)?;
                let start = self.layout.offset(slot) as usize;
                let bytes = lock(&self.ours.buffer)[start..start + len as usize].to_vec();
                Ok(Some((slot, bytes)))
            }
        }
    }

    fn write(
        &mut self,
        slot: u32,
        fill: &mut dyn FnMut(&mut [u8]) -> Result<usize, LinkError>,
    ) -> Result<(), LinkError> {
        self.check()?;
        let mut staging = vec![0u8; self.layout.slot_len() as usize];
        let len = fill(&mut staging)?;
        assert!(len <= staging.len(), "a message fits its slot");
        if len <= MAX_CONTROL_MESSAGE {
            self.send_raw(control_message(slot, &staging[..len]));
        } else {
            self.write_raw(slot, self.layout.offset(slot) as usize, &staging[..len]);
        }
        Ok(())
    }
}

/// Set to `1` on both ends (the node daemons and the client process), the
/// data path runs without RDMA: its slots travel over the setup's TCP
/// socket ([`TcpSlots`]). For tests on machines without an RDMA device:
/// everything above the link (the node's listener and service, the
/// client's routes and links) then runs across real processes. Nothing
/// is faster for it; production leaves it unset.
pub const OVER_TCP_ENV: &str = "GOVFS_DATA_PATH_OVER_TCP";

/// Whether [`OVER_TCP_ENV`] asks for the data path over TCP.
pub fn over_tcp() -> bool {
    std::env::var_os(OVER_TCP_ENV).is_some_and(|v| v == "1")
}

/// Slots carried over a TCP stream (see [`OVER_TCP_ENV`]): each message is
/// `[slot u32][length u32][bytes]`, checked on arrival like an RDMA one.
pub struct TcpSlots {
    stream: TcpStream,
    layout: SlotLayout,
    /// Bytes received and not yet a whole message.
    input: Vec<u8>,
    /// Where a message is put together before it is sent.
    output: Vec<u8>,
}

/// Header of a message on a [`TcpSlots`] stream.
const TCP_SLOT_HEADER: usize = 8;

impl TcpSlots {
    pub fn new(stream: TcpStream, layout: SlotLayout) -> std::io::Result<TcpSlots> {
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)?;
        Ok(TcpSlots {
            stream,
            layout,
            input: Vec::new(),
            output: vec![0; TCP_SLOT_HEADER + layout.slot_len() as usize],
        })
    }

    /// A whole message at the front of the input, if there is one.
    fn take(&mut self) -> Result<Option<(u32, Vec<u8>)>, LinkError> {
        let Some(header) = self.input.first_chunk::<TCP_SLOT_HEADER>() else {
            return Ok(None);
        };
        let (slot, len) = header.split_at(4);
        let slot = u32::from_le_bytes(slot.try_into().expect("4 bytes"));
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes"));
        let slot = self.layout.arrived(slot, len)?;
        let end = TCP_SLOT_HEADER + len as usize;
        if self.input.len() < end {
            return Ok(None);
        }
        let message = self.input[TCP_SLOT_HEADER..end].to_vec();
        self.input.drain(..end);
        Ok(Some((slot, message)))
    }
}

impl SlotLink for TcpSlots {
    fn layout(&self) -> SlotLayout {
        self.layout
    }

    fn name(&self) -> String {
        "TCP (emulated)".into()
    }

    fn poll(&mut self) -> Result<Option<(u32, Vec<u8>)>, LinkError> {
        use std::io::Read;
        if let Some(message) = self.take()? {
            return Ok(Some(message));
        }
        let mut buf = [0u8; 64 << 10];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(LinkError::Transport("peer closed".into())),
                Ok(n) => self.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(LinkError::Transport(e.to_string())),
            }
        }
        self.take()
    }

    fn write(
        &mut self,
        slot: u32,
        fill: &mut dyn FnMut(&mut [u8]) -> Result<usize, LinkError>,
    ) -> Result<(), LinkError> {
        use std::io::Write;
        let slot_len = self.layout.slot_len() as usize;
        let out = &mut self.output;
        let len = fill(&mut out[TCP_SLOT_HEADER..])?;
        assert!(len <= slot_len, "a message fits its slot");
        out[..4].copy_from_slice(&slot.to_le_bytes());
        out[4..8].copy_from_slice(&(len as u32).to_le_bytes());
        let mut rest = &out[..TCP_SLOT_HEADER + len];
        while !rest.is_empty() {
            match self.stream.write(rest) {
                Ok(0) => return Err(LinkError::Transport("peer closed".into())),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(LinkError::Transport(e.to_string())),
            }
        }
        Ok(())
    }
}

impl<T: SlotLink + ?Sized> SlotLink for Box<T> {
    fn layout(&self) -> SlotLayout {
        (**self).layout()
    }

    fn name(&self) -> String {
        (**self).name()
    }

    fn poll(&mut self) -> Result<Option<(u32, Vec<u8>)>, LinkError> {
        (**self).poll()
    }

    fn write(
        &mut self,
        slot: u32,
        fill: &mut dyn FnMut(&mut [u8]) -> Result<usize, LinkError>,
    ) -> Result<(), LinkError> {
        (**self).write(slot, fill)
    }
}

/// A data-path connection over RDMA verbs: a queue pair with the
/// layout's receive buffer and a staging region as large. A message with
/// chunk data is one RDMA write with immediate into its slot; a smaller
/// one (a read request, an acknowledgement) is one send.
#[cfg(feature = "rdma")]
pub struct RdmaSlots {
    conn: crate::rdma::Connection,
    staging: crate::rdma::MemoryRegion,
    layout: SlotLayout,
    /// Arrivals polled while waiting for room in the send queue.
    early: VecDeque<(u32, Vec<u8>)>,
    /// Where a control message is put together (reused).
    control: Vec<u8>,
}

#[cfg(feature = "rdma")]
impl RdmaSlots {
    /// Step 3 of the setup, on the stream steps 1 and 2 left (both ends
    /// call this).
    pub fn establish(stream: &mut TcpStream, layout: SlotLayout) -> Result<RdmaSlots, LinkError> {
        let transport = |e: crate::rdma::RdmaError| LinkError::Transport(e.to_string());
        let config = crate::rdma::ConnectionConfig {
            recv_buffer_len: layout.buffer_len(),
            // Every message (a send, or a write with immediate) takes one
            // posted receive, and each slot has one on its way at most.
            control_slots: layout.slots(),
            control_slot_len: (CONTROL_PREFIX + MAX_CONTROL_MESSAGE) as u32,
            max_writes_in_flight: layout.slots(),
            ..crate::rdma::ConnectionConfig::default()
        };
        let conn = crate::rdma::Connection::establish(stream, &config).map_err(transport)?;
        let remote = conn.remote_endpoint().recv_len;
        if remote != layout.buffer_len() as u64 {
            return Err(LinkError::Transport(format!(
                "the peer offers a {remote}-byte buffer, the layout needs {}",
                layout.buffer_len()
            )));
        }
        if conn.max_control_len() < CONTROL_PREFIX + MAX_CONTROL_MESSAGE {
            return Err(LinkError::Transport(format!(
                "the peer takes control messages of {} bytes at most",
                conn.max_control_len()
            )));
        }
        let staging = conn.register(layout.buffer_len()).map_err(transport)?;
        Ok(RdmaSlots {
            conn,
            staging,
            layout,
            early: VecDeque::new(),
            control: Vec::with_capacity(CONTROL_PREFIX + MAX_CONTROL_MESSAGE),
        })
    }

    /// The next message from the peer. Completions of our own writes and
    /// sends only free their places in the send queue.
    fn next(&mut self) -> Result<Option<(u32, Vec<u8>)>, LinkError> {
        use crate::rdma::Event;
        let transport = |e: crate::rdma::RdmaError| LinkError::Transport(e.to_string());
        loop {
            match self.conn.poll().map_err(transport)? {
                None => return Ok(None),
                Some(Event::WriteComplete { .. } | Event::SendComplete { .. }) => continue,
                Some(Event::Control(raw)) => return parse_control(self.layout, raw).map(Some),
                Some(Event::DataWritten { imm, byte_len }) => {
                    let slot = self.layout.arrived(imm, byte_len)?;
                    let mut bytes = vec![0u8; byte_len as usize];
                    self.conn
                        .read_received(self.layout.offset(slot) as usize, &mut bytes)
                        .map_err(transport)?;
                    return Ok(Some((slot, bytes)));
                }
            }
        }
    }
}

#[cfg(feature = "rdma")]
impl SlotLink for RdmaSlots {
    fn layout(&self) -> SlotLayout {
        self.layout
    }

    fn name(&self) -> String {
        format!("RDMA on {}", self.conn.device_name())
    }

    fn poll(&mut self) -> Result<Option<(u32, Vec<u8>)>, LinkError> {
        match self.early.pop_front() {
            Some(arrival) => Ok(Some(arrival)),
            None => self.next(),
        }
    }

    fn write(
        &mut self,
        slot: u32,
        fill: &mut dyn FnMut(&mut [u8]) -> Result<usize, LinkError>,
    ) -> Result<(), LinkError> {
        use crate::rdma::RdmaError;
        let offset = self.layout.offset(slot) as usize;
        let slot_len = self.layout.slot_len() as usize;
        // The peer answers (or asks) in a slot only after it took what we
        // last sent for it, so its staging bytes are free again.
        let len = fill(&mut self.staging.as_mut_slice()[offset..offset + slot_len])?;
        assert!(len <= slot_len, "a message fits its slot");
        let control = len <= MAX_CONTROL_MESSAGE;
        if control {
            self.control.clear();
            self.control.extend_from_slice(&slot.to_le_bytes());
            self.control
                .extend_from_slice(&self.staging.as_slice()[offset..offset + len]);
        }
        // One message per slot is out at a time, but the completion of the
        // last one for a slot may not have been polled when the next one
        // goes: then wait for completions (keeping arrivals for `poll`).
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        loop {
            let posted = if control {
                self.conn.send(&self.control).map(drop)
            } else {
                self.staging
                    .slice(offset, len)
                    .and_then(|local| self.conn.write_with_imm(local, offset as u64, slot))
                    .map(drop)
            };
            match posted {
                Ok(()) => return Ok(()),
                Err(RdmaError::SendQueueFull { .. }) if std::time::Instant::now() < deadline => {
                    if let Some(arrival) = self.next()? {
                        self.early.push_back(arrival);
                    }
                }
                Err(e) => return Err(LinkError::Transport(e.to_string())),
            }
        }
    }
}
/// Why setting up a data-path connection failed.
#[derive(Debug, Error)]
pub enum DataPathError {
    #[error("data path handshake: {0}")]
    Handshake(#[from] TcpError),
    #[error(transparent)]
    Negotiate(#[from] NegotiateError),
    #[error("data path i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// The client's side of steps 1 and 2: dials the node's data-path
/// listener at `addr`, proves the cluster key, and learns the transport.
/// The stream is left for the queue-pair exchange when the choice is RDMA.
pub fn dial(
    addr: SocketAddr,
    key: &ClusterKey,
    local: Identity,
    rdma: LocalRdma,
    timeout: Duration,
) -> Result<(TcpStream, Choice), DataPathError> {
    let mut stream = TcpConn::connect(addr, key, local, timeout)?.into_stream()?;
    let choice = negotiate_second(&mut stream, rdma)?;
    Ok((stream, choice))
}

/// The node's side of steps 1 and 2 on an accepted `stream`: who dialed
/// (proven), the stream, and the transport.
pub fn answer(
    stream: TcpStream,
    key: &ClusterKey,
    local: Identity,
    rdma: LocalRdma,
    timeout: Duration,
) -> Result<(TcpStream, Choice, Identity), DataPathError> {
    let conn = TcpConn::accept(stream, key, local, timeout)?;
    let peer = conn.peer();
    let mut stream = conn.into_stream()?;
    let choice = negotiate(&mut stream, rdma)?;
    Ok((stream, choice, peer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use crate::rdma_choice::TcpReason;
    use proptest::prelude::*;

    #[test]
    fn layouts_out_of_bounds_are_refused() {
        assert!(SlotLayout::new(0, 4096).is_err());
        assert!(SlotLayout::new(MAX_SLOTS + 1, 4096).is_err());
        assert!(SlotLayout::new(1, 0).is_err());
        assert!(SlotLayout::new(1, 4097).is_err());
        assert!(SlotLayout::new(1, MAX_SLOT_LEN + 4096).is_err());
        let d = SlotLayout::DEFAULT;
        assert_eq!(SlotLayout::new(d.slots(), d.slot_len()), Ok(d));
        assert_eq!(d.buffer_len(), 8 * ((4 << 20) + (64 << 10)));
        assert_eq!(d.offset(7), 7 * u64::from(d.slot_len()));
    }

    proptest! {
        /// An arrival is accepted exactly when it names a slot and fits it,
        /// and then it lies inside the receive buffer.
        #[test]
        fn arrivals_name_a_slot_and_fit_it(
            slots in 1u32..64, pages in 1u32..32, imm in any::<u32>(), len in any::<u32>()
        ) {
            let layout = SlotLayout::new(slots, pages * 4096).unwrap();
            let imm = imm % (slots * 2);
            let len = len % (pages * 4096 * 2);
            match layout.arrived(imm, len) {
                Ok(slot) => {
                    prop_assert!(slot < slots && len <= layout.slot_len());
                    prop_assert!(layout.offset(slot) + u64::from(len) <= layout.buffer_len() as u64);
                }
                Err(_) => prop_assert!(imm >= slots || len > layout.slot_len()),
            }
        }

        /// Slots are never handed out twice, and an answer for a free
        /// slot is refused, under any interleaving of calls and answers.
        #[test]
        fn the_pool_hands_each_slot_to_one_call(ops in proptest::collection::vec(any::<(bool, u8)>(), 0..200)) {
            let layout = SlotLayout::new(5, 4096).unwrap();
            let mut pool = SlotPool::new(layout);
            let mut held = std::collections::BTreeSet::new();
            for (take, which) in ops {
                if take {
                    match pool.take() {
                        Some(s) => prop_assert!(held.insert(s), "slot {} handed out twice", s),
                        None => prop_assert_eq!(held.len(), 5),
                    }
                } else {
                    let s = u32::from(which % 7);
                    let was_held = held.remove(&s);
                    prop_assert_eq!(pool.give_back(s).is_ok(), was_held);
                }
                prop_assert_eq!(pool.in_flight(), held.len());
                for s in 0..7 {
                    prop_assert_eq!(pool.is_busy(s), held.contains(&s));
                }
            }
        }
    }

    /// Small messages travel as control messages and large ones into the
    /// slot, and both reach the peer for their slot, byte for byte.
    #[test]
    fn memory_links_carry_small_and_large_messages_for_their_slots() {
        let layout = SlotLayout::new(3, 64 << 10).unwrap();
        let (mut a, mut b) = mem_pair(layout);
        let sizes = [
            0usize,
            1,
            MAX_CONTROL_MESSAGE,
            MAX_CONTROL_MESSAGE + 1,
            64 << 10,
        ];
        for (k, &len) in sizes.iter().enumerate() {
            let slot = k as u32 % 3;
            let msg: Vec<u8> = (0..len).map(|i| (i * 31 + k) as u8).collect();
            a.write(slot, &mut |room| {
                room[..len].copy_from_slice(&msg);
                Ok(len)
            })
            .unwrap();
            assert_eq!(b.poll().unwrap(), Some((slot, msg)), "{len} bytes");
        }
        assert_eq!(b.poll().unwrap(), None);
        b.send_raw(vec![1, 0]);
        assert!(matches!(a.poll(), Err(LinkError::ShortControl { len: 2 })));
        b.send_raw(control_message(3, b"x"));
        assert!(matches!(
            a.poll(),
            Err(LinkError::Slot(SlotError::NoSuchSlot { imm: 3, .. }))
        ));
        a.break_link();
        assert!(b.poll().is_err() && a.poll().is_err());
    }

    proptest! {
        /// A control message names its slot and keeps its bytes; anything
        /// shorter than the prefix, or naming no slot, is refused.
        #[test]
        fn control_messages_round_trip(slot in any::<u32>(), msg in proptest::collection::vec(any::<u8>(), 0..64)) {
            let layout = SlotLayout::new(8, 4096).unwrap();
            let parsed = parse_control(layout, control_message(slot, &msg));
            if slot < 8 {
                prop_assert_eq!(parsed.unwrap(), (slot, msg));
            } else {
                prop_assert!(parsed.is_err());
            }
        }

        #[test]
        fn arbitrary_control_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..16)) {
            let layout = SlotLayout::new(8, 4096).unwrap();
            if let Ok((slot, rest)) = parse_control(layout, raw.clone()) {
                prop_assert!(slot < 8);
                prop_assert_eq!(&rest[..], &raw[CONTROL_PREFIX..]);
            }
        }
    }

    /// Over a real TCP socket: messages of every size, in order, each for
    /// its slot; a slot that does not exist breaks the link.
    #[test]
    fn tcp_slots_carry_messages_for_their_slots() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let layout = SlotLayout::new(4, 1 << 20).unwrap();
        let dialed = TcpStream::connect(addr).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let mut a = TcpSlots::new(dialed, layout).unwrap();
        let mut b = TcpSlots::new(accepted, layout).unwrap();
        let sizes = [0usize, 7, 4096, 300_000, 1 << 20];
        let sender = std::thread::spawn(move || {
            for (k, &len) in sizes.iter().enumerate() {
                let msg: Vec<u8> = (0..len).map(|i| (i * 13 + k) as u8).collect();
                a.write(k as u32 % 4, &mut |room| {
                    room[..len].copy_from_slice(&msg);
                    Ok(len)
                })
                .unwrap();
            }
            a
        });
        for (k, &len) in sizes.iter().enumerate() {
            let got = loop {
                if let Some(m) = b.poll().unwrap() {
                    break m;
                }
                std::thread::yield_now();
            };
            let msg: Vec<u8> = (0..len).map(|i| (i * 13 + k) as u8).collect();
            assert_eq!(got, (k as u32 % 4, msg));
        }
        let a = sender.join().unwrap();
        use std::io::Write;
        (&a.stream).write_all(&[9, 0, 0, 0, 1, 0, 0, 0, 0]).unwrap();
        let err = loop {
            match b.poll() {
                Ok(None) => std::thread::yield_now(),
                Ok(Some(m)) => panic!("no message: {m:?}"),
                Err(e) => break e,
            }
        };
        assert!(
            matches!(err, LinkError::Slot(SlotError::NoSuchSlot { imm: 9, .. })),
            "{err}"
        );
        drop(a);
    }

    fn identity(node_id: u64, role: Role) -> Identity {
        Identity { node_id, role }
    }

    /// Steps 1 and 2 over real TCP: both ends agree on the transport (TCP
    /// here, as this end offers no device), the node learns who dialed,
    /// and the stream carries bytes on afterwards with nothing lost.
    #[test]
    fn dial_and_answer_agree_and_leave_the_stream_clean() {
        use std::io::{Read, Write};
        let key = ClusterKey::from_bytes(&[7; 32]).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let node_key = key.clone();
        let node = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let (mut stream, choice, peer) = answer(
                stream,
                &node_key,
                identity(1, Role::Node),
                LocalRdma::Available,
                Duration::from_secs(5),
            )
            .unwrap();
            let mut buf = [0u8; 5];
            stream.read_exact(&mut buf).unwrap();
            stream.write_all(b"world").unwrap();
            (choice, peer, buf)
        });
        let (mut stream, choice) = dial(
            addr,
            &key,
            identity(9, Role::Client),
            LocalRdma::NoDevice,
            Duration::from_secs(5),
        )
        .unwrap();
        stream.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf).unwrap();
        let (node_choice, peer, got) = node.join().unwrap();
        assert_eq!(choice, Choice::Tcp(TcpReason::NoLocalDevice));
        assert_eq!(node_choice, Choice::Tcp(TcpReason::PeerNoDevice));
        assert_eq!(peer, identity(9, Role::Client));
        assert_eq!(&got, b"hello");
        assert_eq!(&buf, b"world");
    }

    /// A dialer without the cluster key never reaches the choice.
    #[test]
    fn a_wrong_key_is_refused_before_the_choice() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let node = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            answer(
                stream,
                &ClusterKey::from_bytes(&[1; 32]).unwrap(),
                identity(1, Role::Node),
                LocalRdma::Available,
                Duration::from_secs(5),
            )
            .map(|_| ())
        });
        let dialed = dial(
            addr,
            &ClusterKey::from_bytes(&[2; 32]).unwrap(),
            identity(9, Role::Client),
            LocalRdma::Available,
            Duration::from_secs(5),
        );
        assert!(
            matches!(dialed, Err(DataPathError::Handshake(_))),
            "{dialed:?}"
        );
        assert!(matches!(
            node.join().unwrap(),
            Err(DataPathError::Handshake(_))
        ));
    }
}
