//! A connected RC queue pair with its buffers: RDMA write with immediate
//! into the peer's registered receive buffer for data, send and receive of
//! small control messages, and completions as [`Event`]s.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::cq::{CompletionQueue, Opcode};
use super::device::{Context, LINK_LAYER_ETHERNET};
use super::endpoint::{EndpointInfo, ENDPOINT_LEN, MAX_CONTROL_SLOT_LEN};
use super::error::RdmaError;
use super::memory::{Access, MemoryRegion, ProtectionDomain, RegionSlice};
use super::qp::{PathSettings, QpCaps, QueuePair};

/// How to set up a [`Connection`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionConfig {
    /// Device name (`rxe0`, `mlx5_0`); `None` takes the first device.
    pub device: Option<String>,
    /// Port, numbered from 1.
    pub port: u8,
    /// Local GID index for RoCE (ignored on InfiniBand without GRH).
    pub gid_index: u8,
    /// Bytes of the buffer the peer may RDMA-write into.
    pub recv_buffer_len: usize,
    /// Receives kept posted (each takes one control message or one
    /// write-with-immediate notification), and send slots for control.
    pub control_slots: u32,
    /// Largest control message this end accepts.
    pub control_slot_len: u32,
    /// RDMA writes in flight at once, at most.
    pub max_writes_in_flight: u32,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            device: None,
            port: 1,
            gid_index: 0,
            recv_buffer_len: 4 << 20,
            control_slots: 16,
            control_slot_len: 4096,
            max_writes_in_flight: 16,
        }
    }
}

/// A work request this connection posted, as its completion names it.
pub type WrId = u64;

// wr_id layout: kind in the top byte, slot or sequence number below.
const KIND_SHIFT: u32 = 56;
const KIND_RECV: u64 = 1;
const KIND_SEND: u64 = 2;
const KIND_WRITE: u64 = 3;
const INDEX_MASK: u64 = (1 << KIND_SHIFT) - 1;

fn wr_id(kind: u64, index: u64) -> WrId {
    (kind << KIND_SHIFT) | (index & INDEX_MASK)
}

fn split_wr_id(id: WrId) -> (u64, u64) {
    (id >> KIND_SHIFT, id & INDEX_MASK)
}

/// Whether `len` bytes at `offset` fit a peer buffer of `remote_len` bytes.
pub fn check_remote_range(offset: u64, len: u64, remote_len: u64) -> Result<(), RdmaError> {
    match offset.checked_add(len) {
        Some(end) if end <= remote_len => Ok(()),
        _ => Err(RdmaError::RemoteOutOfBounds {
            offset,
            len,
            remote_len,
        }),
    }
}

/// What [`Connection::poll`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Our RDMA write is in the peer's buffer.
    WriteComplete { wr_id: WrId },
    /// Our control message was received by the peer.
    SendComplete { wr_id: WrId },
    /// The peer RDMA-wrote `byte_len` bytes into our receive buffer and
    /// tagged them with `imm` (where they went is for `imm` to say).
    DataWritten { imm: u32, byte_len: u32 },
    /// A control message from the peer.
    Control(Vec<u8>),
}

/// One end of an RDMA connection. Fields drop in order: the queue pair
/// first, then the completion queue, the memory regions, the protection
/// domain and the device context (each object also holds its parents).
pub struct Connection {
    qp: QueuePair,
    cq: CompletionQueue,
    control_send: MemoryRegion,
    control_recv: MemoryRegion,
    recv_buffer: MemoryRegion,
    pd: ProtectionDomain,
    ctx: Context,
    local: EndpointInfo,
    remote: EndpointInfo,
    slot_len: usize,
    free_send_slots: Vec<u32>,
    slots: u32,
    writes_in_flight: u32,
    max_writes_in_flight: u32,
    next_write: u64,
}

impl Connection {
    /// Opens the device, registers the buffers, brings a queue pair up to
    /// INIT with every receive posted, exchanges endpoints with the peer over
    /// `stream` (already connected; the peer calls this too), moves to
    /// RTR and RTS, and waits until the peer is there as well. The waits on
    /// the stream are bounded only by its read timeout: set one.
    pub fn establish(
        stream: &mut TcpStream,
        config: &ConnectionConfig,
    ) -> Result<Connection, RdmaError> {
        if config.control_slots == 0 || config.max_writes_in_flight == 0 {
            return Err(RdmaError::Config(
                "control_slots and max_writes_in_flight must be >= 1",
            ));
        }
        if config.control_slot_len == 0 || config.control_slot_len > MAX_CONTROL_SLOT_LEN {
            return Err(RdmaError::Config("control_slot_len must be in 1..=65536"));
        }
        let ctx = Context::open(config.device.as_deref())?;
        let port = ctx.query_port(config.port)?;
        if !port.is_active() {
            return Err(RdmaError::PortNotActive {
                device: ctx.name().to_string(),
                port: config.port,
                state: port.state,
            });
        }
        let gid = ctx.query_gid(config.port, config.gid_index)?;
        if port.link_layer == LINK_LAYER_ETHERNET && gid == [0; 16] {
            return Err(RdmaError::Config("RoCE port has no GID at gid_index"));
        }
        let pd = ProtectionDomain::new(&ctx)?;
        let slots = config.control_slots;
        let slot_len = config.control_slot_len as usize;
        let send_wr = slots
            .checked_add(config.max_writes_in_flight)
            .ok_or(RdmaError::Config("too many work requests"))?;
        let cq_len = send_wr
            .checked_add(slots)
            .ok_or(RdmaError::Config("too many work requests"))?;
        let cq = CompletionQueue::new(&ctx, cq_len)?;
        let control_bytes = slot_len
            .checked_mul(slots as usize)
            .ok_or(RdmaError::Config("control slots too large"))?;
        let control_send = pd.register(control_bytes, Access::Local)?;
        let control_recv = pd.register(control_bytes, Access::Local)?;
        let recv_buffer = pd.register(config.recv_buffer_len, Access::RemoteWrite)?;
        let mut qp = QueuePair::new_rc(
            &pd,
            &cq,
            QpCaps {
                max_send_wr: send_wr,
                max_recv_wr: slots,
            },
        )?;
        qp.to_init(config.port)?;
        for slot in 0..slots {
            let slice = control_recv.slice(slot as usize * slot_len, slot_len)?;
            // SAFETY: the receive slots are never handed out; they are read
            // (copy_out) only after their completion and reposted after that.
            unsafe { qp.post_recv(&slice, wr_id(KIND_RECV, u64::from(slot)))? };
        }
        let local = EndpointInfo {
            qpn: qp.qpn(),
            psn: random_psn()?,
            lid: port.lid,
            mtu: u8::try_from(port.active_mtu).map_err(|_| RdmaError::Config("port MTU"))?,
            gid,
            recv_rkey: recv_buffer.rkey(),
            recv_addr: recv_buffer.addr(),
            recv_len: recv_buffer.len() as u64,
            control_slot_len: config.control_slot_len,
        };
        stream.write_all(&local.encode())?;
        let mut buf = [0u8; ENDPOINT_LEN];
        stream.read_exact(&mut buf)?;
        let remote = EndpointInfo::decode(&buf)?;
        qp.to_rtr(
            &remote,
            PathSettings {
                port: config.port,
                gid_index: config.gid_index,
                mtu: u32::from(local.mtu.min(remote.mtu)),
            },
        )?;
        qp.to_rts(local.psn)?;
        // Both ends ready to receive before either sends.
        stream.write_all(b"R")?;
        let mut ready = [0u8; 1];
        stream.read_exact(&mut ready)?;
        if ready != *b"R" {
            return Err(RdmaError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "peer sent a bad ready byte",
            )));
        }
        tracing::info!(
            device = %ctx.name(),
            local_qpn = local.qpn,
            remote_qpn = remote.qpn,
            remote_buffer = remote.recv_len,
            "RDMA connection established"
        );
        Ok(Connection {
            qp,
            cq,
            control_send,
            control_recv,
            recv_buffer,
            pd,
            ctx,
            local,
            remote,
            slot_len,
            free_send_slots: (0..slots).rev().collect(),
            slots,
            writes_in_flight: 0,
            max_writes_in_flight: config.max_writes_in_flight,
            next_write: 0,
        })
    }

    /// Our endpoint as sent to the peer.
    pub fn local_endpoint(&self) -> &EndpointInfo {
        &self.local
    }

    /// The peer's endpoint as received.
    pub fn remote_endpoint(&self) -> &EndpointInfo {
        &self.remote
    }

    /// The device this connection runs on.
    pub fn device_name(&self) -> &str {
        self.ctx.name()
    }

    /// A new registered region in this connection's protection domain, to
    /// fill and pass to [`Connection::write_with_imm`].
    pub fn register(&self, len: usize) -> Result<MemoryRegion, RdmaError> {
        self.pd.register(len, Access::Local)
    }

    /// Largest control message [`Connection::send`] takes: the smaller of
    /// our slots and the peer's.
    pub fn max_control_len(&self) -> usize {
        self.slot_len.min(self.remote.control_slot_len as usize)
    }

    /// RDMA-writes `local` to `remote_offset` of the peer's receive buffer,
    /// with `imm` delivered to the peer as [`Event::DataWritten`]. Refused
    /// before posting when the range does not fit the peer's buffer, the
    /// region is not from this connection, or too many writes are in flight.
    /// Do not change `local`'s bytes until [`Event::WriteComplete`].
    pub fn write_with_imm(
        &mut self,
        local: RegionSlice<'_>,
        remote_offset: u64,
        imm: u32,
    ) -> Result<WrId, RdmaError> {
        check_remote_range(remote_offset, local.len() as u64, self.remote.recv_len)?;
        if self.writes_in_flight >= self.max_writes_in_flight {
            return Err(RdmaError::SendQueueFull {
                in_flight: self.writes_in_flight as usize,
            });
        }
        let id = wr_id(KIND_WRITE, self.next_write);
        let remote_addr = self.remote.recv_addr + remote_offset;
        // SAFETY: the documented contract of this method asks the caller not
        // to change the bytes before completion; a change would only corrupt
        // the data sent, the device only reads `local`. The region outlives
        // the post (deregistering stops the device from touching it).
        unsafe {
            self.qp
                .post_write_with_imm(&local, remote_addr, self.remote.recv_rkey, imm, id)?
        };
        self.next_write += 1;
        self.writes_in_flight += 1;
        Ok(id)
    }

    /// Sends a control message to the peer's next posted receive.
    pub fn send(&mut self, message: &[u8]) -> Result<WrId, RdmaError> {
        let max = self.max_control_len();
        if message.len() > max {
            return Err(RdmaError::ControlTooLarge {
                len: message.len(),
                max,
            });
        }
        let Some(slot) = self.free_send_slots.pop() else {
            return Err(RdmaError::SendQueueFull {
                in_flight: self.slots as usize,
            });
        };
        let offset = slot as usize * self.slot_len;
        let posted = self
            .control_send
            .copy_in(offset, message)
            .and_then(|()| self.control_send.slice(offset, message.len()))
            .and_then(|slice| {
                let id = wr_id(KIND_SEND, u64::from(slot));
                // SAFETY: the slot was free and stays out of the free list
                // (so is not written) until its send completes.
                unsafe { self.qp.post_send(&slice, id) }.map(|()| id)
            });
        if posted.is_err() {
            self.free_send_slots.push(slot);
        }
        posted
    }

    /// Copies `out.len()` bytes from `offset` of our receive buffer: what
    /// the peer wrote, once [`Event::DataWritten`] said it is there.
    pub fn read_received(&self, offset: usize, out: &mut [u8]) -> Result<(), RdmaError> {
        self.recv_buffer.copy_out(offset, out)
    }

    /// Bytes of our receive buffer (what the peer may write into).
    pub fn recv_buffer_len(&self) -> usize {
        self.recv_buffer.len()
    }

    /// Takes one completion, if any, as an [`Event`]. Receives are reposted
    /// here. A failed work request is [`RdmaError::Completion`]: the queue
    /// pair is then in the error state and the connection must be dropped.
    pub fn poll(&mut self) -> Result<Option<Event>, RdmaError> {
        let completion = match self.cq.poll_one() {
            Ok(Some(completion)) => completion,
            Ok(None) => return Ok(None),
            Err(err) => {
                if let RdmaError::Completion { wr_id, .. } = &err {
                    self.forget(*wr_id);
                }
                return Err(err);
            }
        };
        let unexpected = RdmaError::UnexpectedCompletion {
            wr_id: completion.wr_id,
            opcode: completion.opcode.raw(),
        };
        let (kind, index) = split_wr_id(completion.wr_id);
        match (kind, completion.opcode) {
            (KIND_WRITE, Opcode::RdmaWrite) => {
                self.writes_in_flight = self.writes_in_flight.saturating_sub(1);
                Ok(Some(Event::WriteComplete {
                    wr_id: completion.wr_id,
                }))
            }
            (KIND_SEND, Opcode::Send) if index < u64::from(self.slots) => {
                self.free_send_slots.push(index as u32);
                Ok(Some(Event::SendComplete {
                    wr_id: completion.wr_id,
                }))
            }
            (KIND_RECV, Opcode::RecvRdmaWithImm) if index < u64::from(self.slots) => {
                let imm = completion.imm.ok_or(unexpected)?;
                self.repost(index)?;
                Ok(Some(Event::DataWritten {
                    imm,
                    byte_len: completion.byte_len,
                }))
            }
            (KIND_RECV, Opcode::Recv) if index < u64::from(self.slots) => {
                let len = completion.byte_len as usize;
                if len > self.slot_len {
                    return Err(unexpected);
                }
                let mut message = vec![0u8; len];
                self.control_recv
                    .copy_out(index as usize * self.slot_len, &mut message)?;
                self.repost(index)?;
                Ok(Some(Event::Control(message)))
            }
            _ => Err(unexpected),
        }
    }

    /// Polls until an event arrives or `timeout` passes.
    pub fn wait(&mut self, timeout: Duration) -> Result<Event, RdmaError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(event) = self.poll()? {
                return Ok(event);
            }
            if Instant::now() >= deadline {
                return Err(RdmaError::Timeout(timeout));
            }
            std::thread::yield_now();
        }
    }

    fn repost(&mut self, slot: u64) -> Result<(), RdmaError> {
        let slice = self
            .control_recv
            .slice(slot as usize * self.slot_len, self.slot_len)?;
        // SAFETY: the slot's previous receive has completed and its bytes
        // were copied out; nothing reads it until the next completion.
        unsafe { self.qp.post_recv(&slice, wr_id(KIND_RECV, slot)) }
    }

    /// Bookkeeping for a failed work request.
    fn forget(&mut self, id: WrId) {
        let (kind, index) = split_wr_id(id);
        match kind {
            KIND_WRITE => self.writes_in_flight = self.writes_in_flight.saturating_sub(1),
            KIND_SEND if index < u64::from(self.slots) => self.free_send_slots.push(index as u32),
            _ => {}
        }
    }
}

fn random_psn() -> Result<u32, RdmaError> {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).map_err(RdmaError::Random)?;
    Ok(u32::from_le_bytes(bytes) & 0x00ff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_range_check_refuses_anything_past_the_end() {
        assert!(check_remote_range(0, 1 << 20, 1 << 20).is_ok());
        assert!(check_remote_range((1 << 20) - 1, 1, 1 << 20).is_ok());
        assert!(check_remote_range(1 << 20, 0, 1 << 20).is_ok());
        assert!(matches!(
            check_remote_range(1, 1 << 20, 1 << 20),
            Err(RdmaError::RemoteOutOfBounds {
                offset: 1,
                len: 1048576,
                remote_len: 1048576
            })
        ));
        assert!(check_remote_range(1 << 20, 1, 1 << 20).is_err());
        assert!(check_remote_range(u64::MAX, 2, u64::MAX).is_err());
    }

    #[test]
    fn wr_ids_keep_kind_and_index_apart() {
        for kind in [KIND_RECV, KIND_SEND, KIND_WRITE] {
            for index in [0, 1, 15, INDEX_MASK] {
                assert_eq!(split_wr_id(wr_id(kind, index)), (kind, index));
            }
        }
        assert_ne!(wr_id(KIND_RECV, 3), wr_id(KIND_SEND, 3));
    }

    #[test]
    fn psn_fits_24_bits() {
        for _ in 0..100 {
            assert!(random_psn().unwrap() < (1 << 24));
        }
    }
}
