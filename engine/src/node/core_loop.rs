//! One core thread: a [`NodeCore`] for its shards (and, on core 0, the
//! president member), its logs, and its network [`Reactor`], all driven by
//! one loop. Nothing here is shared with another thread except the inboxes
//! (crossbeam queues, each with the owner's waker) and a few atomics.
//!
//! A loop turn: wait in the reactor until a frame, a waker, a finished disk
//! sync or the next tick; take every frame and inbox message that is ready
//! and feed them all to the core; write every log operation of the turn and
//! start one sync per touched log (group commit); send the turn's messages
//! (the reactor writes each connection's frames in one send). Messages that
//! need a sync wait in the core until it is durable, so the minister's
//! appends travel while its own fdatasync runs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use govfs_core::codec::decode_exact;
use govfs_core::data::{ChunkRefusal, ChunkReply, Stamp};
use govfs_core::ids::{index_of, node_of};
use govfs_core::node::wire::decode_client_msg;
use govfs_core::node::{
    App, ClientMsg, ClientReply, ClientRequest, DataPathInfo, Disk, LeaseMsg, LeaseRequest, LogOp,
    NodeCore, NodeMsg, NodeStatus, Observation, Output, ReadRequest, ServerMsg, ShardStatus,
    Stamped,
};
use govfs_core::raft::{NodeId, Status, PRESIDENT_GROUP};
use govfs_net::{Backoff, ConnId, FrameKind, NetEvent, Reactor, Role, Waker};
use tracing::{debug, info, warn};

use super::chunks::ChunkInbox;
use super::lamport::NodeClock;
use super::routing::{
    core_of_message, core_of_ministry, core_of_shard, CoreMsg, ReplyTo, SharedPresidentView,
    PRESIDENT_CORE,
};
use super::runtime::NodeError;
use super::storage::{CoreStorage, SyncStart};

/// A client request is answered within this, or told to retry.
const CLIENT_WAIT: Duration = Duration::from_secs(10);
/// How often to look at a sync in flight whose log has no completion fd.
const SYNC_POLL: Duration = Duration::from_micros(50);
/// Most events fed to the core before a turn ends (bounds a turn's latency).
const MAX_EVENTS_PER_TURN: usize = 4096;
/// How often the storage's free space is measured for the president.
const SPACE_EVERY: Duration = Duration::from_secs(1);

/// What every core of the node shares: the others' inboxes and wakers, the
/// president view, and the status board.
pub struct Shared {
    pub id: NodeId,
    pub cores: u32,
    pub inboxes: Vec<(Sender<CoreMsg>, Waker)>,
    pub president: Arc<SharedPresidentView>,
    /// Each core's latest status, published on its ticks (read by `status`).
    pub board: Mutex<BTreeMap<u32, CoreStatus>>,
    pub started: Instant,
    pub stop: Arc<AtomicBool>,
    /// The storage service's shards, when this node stores chunks.
    pub chunks: Option<ChunkInbox>,
    /// The node's Lamport clock, on every message to another node.
    pub clock: NodeClock,
    /// Where the node's data path listens, when it runs one.
    pub rdma_data: Option<std::net::SocketAddr>,
}

impl Shared {
    fn now(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    pub(super) fn hand_over(&self, core: u32, msg: CoreMsg) {
        let (tx, waker) = &self.inboxes[core as usize];
        // Inboxes are bounded: a full one means that core is far behind, and
        // Raft and clients (who resend) recover from a drop.
        if tx.try_send(msg).is_err() {
            metrics::counter!("govfs_core_inbox_drops_total").increment(1);
            return;
        }
        waker.wake();
    }
}

/// One core's entry on the status board: the president member (core 0) and its shards.
pub type CoreStatus = (Option<Status>, Vec<ShardStatus>);

/// A peer node as this core sees it: the address, and the connection when up.
struct PeerLink {
    addr: SocketAddr,
    conn: Option<ConnId>,
    up: bool,
    retry_at: Instant,
    backoff: Backoff,
}

/// Who waits for a client request's answer, and since when.
type Waiting = HashMap<(u64, u64), Vec<(ReplyTo, Instant)>>;

/// The syncs of one log: what was written but not yet in a sync, and what
/// the sync in flight covers.
#[derive(Default)]
struct DiskSyncs {
    written: Option<u64>,
    flying: Option<(u64, Instant)>,
}

pub struct CoreLoop<A: App> {
    index: u32,
    shared: Arc<Shared>,
    core: NodeCore<A>,
    storage: CoreStorage,
    reactor: Reactor,
    inbox: Receiver<CoreMsg>,
    peers: BTreeMap<NodeId, PeerLink>,
    conn_peer: HashMap<ConnId, NodeId>,
    waiting: Waiting,
    /// Reads and lease requests the core has not answered yet, by token.
    reads: HashMap<u64, ReplyTo>,
    next_read: u64,
    syncs: BTreeMap<Disk, DiskSyncs>,
    /// Logs whose completion fd the reactor watches (one-shot).
    watching: BTreeSet<Disk>,
    tick: Duration,
    next_tick: Instant,
    /// When to measure the storage's free space again.
    next_space: Instant,
    /// Metric handles, registered once (not on every turn or reply).
    metric_events: metrics::Histogram,
    metric_inbox: metrics::Gauge,
    metric_batch: metrics::Histogram,
    metric_written: metrics::Counter,
    metric_fsync: metrics::Histogram,
    metric_latency: metrics::Histogram,
}

fn disk_token(disk: Disk) -> u64 {
    match disk {
        Disk::President => u64::MAX,
        Disk::Shard(i) => u64::from(i),
    }
}

fn token_disk(token: u64) -> Disk {
    if token == u64::MAX {
        Disk::President
    } else {
        Disk::Shard(token as u32)
    }
}

impl<A: App> CoreLoop<A> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        index: u32,
        shared: Arc<Shared>,
        core: NodeCore<A>,
        storage: CoreStorage,
        reactor: Reactor,
        inbox: Receiver<CoreMsg>,
        peers: &BTreeMap<NodeId, SocketAddr>,
        tick: Duration,
    ) -> Self {
        let now = Instant::now();
        let mut core = core;
        // One Raft turn per loop turn (see `after_turn`), not one per message.
        core.defer_turns(true);
        let peers = peers
            .iter()
            .filter(|(id, _)| **id != shared.id)
            .map(|(id, addr)| {
                let link = PeerLink {
                    addr: *addr,
                    conn: None,
                    up: false,
                    retry_at: now,
                    backoff: Backoff::new(Duration::from_millis(20), Duration::from_millis(500)),
                };
                (*id, link)
            })
            .collect();
        CoreLoop {
            index,
            shared,
            core,
            storage,
            reactor,
            inbox,
            peers,
            conn_peer: HashMap::new(),
            waiting: HashMap::new(),
            reads: HashMap::new(),
            next_read: 0,
            syncs: BTreeMap::new(),
            watching: BTreeSet::new(),
            tick,
            next_tick: now,
            next_space: now,
            metric_events: metrics::histogram!("govfs_events_per_turn"),
            metric_inbox: metrics::gauge!("govfs_inbox_depth", "core" => index.to_string()),
            metric_batch: metrics::histogram!("govfs_batch_entries"),
            metric_written: metrics::counter!("govfs_log_entries_written_total"),
            metric_fsync: metrics::histogram!("govfs_fsync_seconds"),
            metric_latency: metrics::histogram!("govfs_commit_latency_seconds"),
        }
    }

    pub fn run(mut self) -> Result<(), NodeError> {
        let mut events = Vec::new();
        if self.index == PRESIDENT_CORE {
            // The other cores start with an empty map: give them ours.
            let mut out = Output::default();
            out.map_updates.push(govfs_core::node::MapUpdate {
                applied: govfs_core::president::Applied::Nothing,
                map: self.core.map().clone(),
            });
            self.after_turn(out)?;
        }
        while !self.shared.stop.load(Ordering::Relaxed) {
            self.dial_peers();
            let mut timeout = self.next_tick.saturating_duration_since(Instant::now());
            let unwatched = self
                .syncs
                .iter()
                .any(|(d, s)| s.flying.is_some() && !self.watching.contains(d));
            if unwatched {
                timeout = timeout.min(SYNC_POLL);
            }
            if self.core.turn_pending() {
                // Work left by a message routed to this core after the last round.
                timeout = Duration::ZERO;
            }
            events.clear();
            self.reactor
                .poll(timeout, &mut events)
                .map_err(NodeError::Reactor)?;
            let mut out = Output::default();
            if self.index != PRESIDENT_CORE {
                self.core.set_president_view(self.shared.president.read());
            }
            let now = self.shared.now();
            let mut handled = 0usize;
            for ev in events.drain(..) {
                self.net_event(now, ev, &mut out);
                handled += 1;
            }
            while handled < MAX_EVENTS_PER_TURN {
                let Ok(msg) = self.inbox.try_recv() else {
                    break;
                };
                self.core_msg(now, msg, &mut out);
                handled += 1;
            }
            if Instant::now() >= self.next_tick {
                let now = self.shared.now();
                let unix_us = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros() as u64);
                self.core.set_unix_time(now, unix_us);
                if Instant::now() >= self.next_space {
                    // A statvfs a second: the president only writes large moves.
                    if let Some(space) = self.shared.chunks.as_ref().and_then(|c| c.space()) {
                        self.core.set_storage_space(space);
                    }
                    self.next_space = Instant::now() + SPACE_EVERY;
                }
                self.core.tick(now, &mut out);
                self.next_tick = Instant::now() + self.tick;
                self.on_tick();
            }
            self.metric_events.record(handled as f64);
            self.metric_inbox.set(self.inbox.len() as f64);
            self.after_turn(out)?;
        }
        info!(core = self.index, "core stopping");
        Ok(())
    }

    /// Keep one connection to every peer, redialing with backoff.
    fn dial_peers(&mut self) {
        let now = Instant::now();
        for (&id, link) in self.peers.iter_mut() {
            if link.conn.is_none() && now >= link.retry_at {
                let conn = self.reactor.connect(link.addr);
                link.conn = Some(conn);
                link.up = false;
                self.conn_peer.insert(conn, id);
            }
        }
    }

    fn net_event(&mut self, now: u64, ev: NetEvent, out: &mut Output) {
        match ev {
            NetEvent::Connected { conn, peer } => {
                if let Some(id) = self.conn_peer.get(&conn).copied() {
                    let link = self.peers.get_mut(&id).expect("dialed peers are known");
                    if peer.node_id != id {
                        warn!(expected = id, got = peer.node_id, addr = %link.addr, "peer answered with another node id; dropping");
                        self.reactor.close(conn);
                        return;
                    }
                    info!(core = self.index, peer = id, addr = %link.addr, "connected to peer");
                    link.up = true;
                    link.backoff.reset();
                }
            }
            NetEvent::Accepted { .. } => {}
            NetEvent::Frame { conn, frame } => {
                let role = self.reactor.peer(conn).map(|p| p.role);
                match (role, frame.kind) {
                    (Some(Role::Node), FrameKind::Raft) => {
                        match decode_exact::<Stamped<NodeMsg>>(&frame.body) {
                            Ok(s) if self.observe(conn, s.lamport) => {
                                self.node_msg(now, s.msg, out)
                            }
                            Ok(_) => {}
                            Err(e) => warn!(%conn, "undecodable node message: {e}"),
                        }
                    }
                    (Some(Role::Node), FrameKind::Control) => {
                        match decode_exact::<Stamped<LeaseMsg>>(&frame.body) {
                            Ok(s) if self.observe(conn, s.lamport) => {
                                self.lease_msg(now, s.msg, out)
                            }
                            Ok(_) => {}
                            Err(e) => warn!(%conn, "undecodable lease message: {e}"),
                        }
                    }
                    (Some(_), FrameKind::Client) => {
                        let reply = ReplyTo {
                            core: self.index,
                            conn,
                            request_id: frame.request_id,
                        };
                        match decode_client_msg(frame.body) {
                            Ok(msg) => self.client_msg(now, msg, reply, out),
                            Err(e) => self.answer(
                                reply,
                                ServerMsg::Error(format!("undecodable request: {e}")),
                            ),
                        }
                    }
                    (role, kind) => warn!(?role, ?kind, "unexpected frame kind; ignored"),
                }
            }
            NetEvent::Closed { conn, reason } => {
                if let Some(id) = self.conn_peer.remove(&conn) {
                    if let Some(link) = self.peers.get_mut(&id) {
                        if link.conn == Some(conn) {
                            let entropy = (id << 8) ^ u64::from(self.index) ^ now;
                            let delay = link.backoff.next_delay(entropy);
                            if reason.contains("cluster key") {
                                warn!(peer = id, addr = %link.addr, "the cluster keys differ: {reason}");
                            } else if reason.contains("authentic") {
                                warn!(peer = id, addr = %link.addr, "peer refused us: {reason}");
                            } else if link.up {
                                info!(peer = id, "lost peer ({reason}); redial in {delay:?}");
                            } else {
                                debug!(peer = id, "dial failed ({reason}); retry in {delay:?}");
                            }
                            link.conn = None;
                            link.up = false;
                            link.retry_at = Instant::now() + delay;
                        }
                    }
                } else if reason.contains("handshake") || reason.contains("authentic") {
                    // An incoming connection that never proved it holds the
                    // key: a misconfigured node or client, or a stranger.
                    warn!(
                        core = self.index,
                        "incoming connection closed before authenticating: {reason}"
                    );
                }
            }
            NetEvent::Woken => {}
            NetEvent::Readable { token } => {
                self.watching.remove(&token_disk(token));
            }
        }
    }

    /// Moves the node's clock past a peer's time; false (the message is
    /// dropped: Raft and lock batches are resent) when the time is absurd.
    fn observe(&self, conn: ConnId, lamport: Stamp) -> bool {
        match self.shared.clock.observe(lamport) {
            Ok(()) => true,
            Err(e) => {
                warn!(%conn, "peer message dropped: {e}");
                false
            }
        }
    }

    fn node_msg(&mut self, now: u64, msg: NodeMsg, out: &mut Output) {
        let core = core_of_message(&msg, self.core.map(), self.shared.id, self.shared.cores);
        if core == self.index {
            self.core.receive(now, msg, out);
        } else {
            self.shared.hand_over(core, CoreMsg::Node(msg));
        }
    }

    fn lease_msg(&mut self, now: u64, msg: LeaseMsg, out: &mut Output) {
        let core = core_of_shard(index_of(msg.to()), self.shared.cores);
        if core == self.index {
            self.core.receive_lease(now, msg, out);
        } else {
            self.shared.hand_over(core, CoreMsg::Lease(msg));
        }
    }

    fn client_msg(&mut self, now: u64, msg: ClientMsg, reply: ReplyTo, out: &mut Output) {
        match msg {
            ClientMsg::Status => {
                let status = self.node_status();
                self.answer(reply, ServerMsg::Status(status));
            }
            ClientMsg::Map => {
                let map = self.core.map().clone();
                self.answer(reply, ServerMsg::Map(map));
            }
            ClientMsg::Transfer(req) => {
                if self.index == PRESIDENT_CORE {
                    self.client_transfer(now, req, reply, out);
                } else {
                    self.shared
                        .hand_over(PRESIDENT_CORE, CoreMsg::Transfer { req, reply });
                }
            }
            ClientMsg::Read(req) => {
                metrics::counter!("govfs_client_reads_total").increment(1);
                let core = self.core_serving(req.ministry);
                if core == self.index {
                    self.client_read(now, req, reply, out);
                } else {
                    self.shared.hand_over(core, CoreMsg::Read { req, reply });
                }
            }
            ClientMsg::Lease(req) => {
                metrics::counter!("govfs_lease_requests_total").increment(1);
                let core = self.core_serving(req.ministry());
                if core == self.index {
                    self.client_lease(now, req, reply, out);
                } else {
                    self.shared
                        .hand_over(core, CoreMsg::LeaseRequest { req, reply });
                }
            }
            ClientMsg::Chunk(req) => {
                let refused = match &self.shared.chunks {
                    Some(inbox) => inbox.submit(req, reply).err(),
                    None => Some(ChunkRefusal::Busy(
                        "this node runs no storage service".into(),
                    )),
                };
                if let Some(r) = refused {
                    self.answer(reply, ServerMsg::Chunk(ChunkReply::Refused(r)));
                }
            }
            ClientMsg::DataPath => {
                let info = DataPathInfo {
                    rdma_port: self.shared.rdma_data.map(|a| a.port()),
                };
                self.answer(reply, ServerMsg::DataPath(info));
            }
            ClientMsg::Request(req) => {
                metrics::counter!("govfs_client_requests_total").increment(1);
                let core = self.core_serving(req.ministry);
                if core == self.index {
                    self.client_request(now, req, reply, out);
                } else {
                    self.shared.hand_over(core, CoreMsg::Client { req, reply });
                }
            }
        }
    }

    fn client_request(&mut self, now: u64, req: ClientRequest, reply: ReplyTo, out: &mut Output) {
        self.waiting
            .entry((req.client, req.seq))
            .or_default()
            .push((reply, Instant::now()));
        self.core.client_request(now, req, out);
    }

    /// The core whose shard serves `ministry` on this node (this core when
    /// none does: it answers with a redirect).
    fn core_serving(&self, ministry: u64) -> u32 {
        core_of_ministry(self.core.map(), self.shared.id, ministry, self.shared.cores)
            .unwrap_or(self.index)
    }

    fn client_transfer(
        &mut self,
        now: u64,
        req: govfs_core::president::TransferRequest,
        reply: ReplyTo,
        out: &mut Output,
    ) {
        let answer = self.core.transfer_request(now, req, out);
        self.answer(reply, ServerMsg::Transfer(answer));
    }

    fn client_read(&mut self, now: u64, req: ReadRequest, reply: ReplyTo, out: &mut Output) {
        self.next_read += 1;
        self.reads.insert(self.next_read, reply);
        self.core.read(now, req, self.next_read, out);
    }

    fn client_lease(&mut self, now: u64, req: LeaseRequest, reply: ReplyTo, out: &mut Output) {
        self.next_read += 1;
        self.reads.insert(self.next_read, reply);
        self.core.lease(now, req, self.next_read, out);
    }

    fn core_msg(&mut self, now: u64, msg: CoreMsg, out: &mut Output) {
        match msg {
            CoreMsg::Node(m) => self.core.receive(now, m, out),
            CoreMsg::Map(update) => self.core.map_update(now, update, out),
            CoreMsg::Client { req, reply } => self.client_request(now, req, reply, out),
            CoreMsg::Read { req, reply } => self.client_read(now, req, reply, out),
            CoreMsg::LeaseRequest { req, reply } => self.client_lease(now, req, reply, out),
            CoreMsg::Lease(m) => self.core.receive_lease(now, m, out),
            CoreMsg::Transfer { req, reply } => self.client_transfer(now, req, reply, out),
            CoreMsg::Reply { reply, msg } => self.answer(reply, msg),
        }
    }

    /// Answer on the connection the request came in on (here or on its core).
    fn answer(&mut self, reply: ReplyTo, msg: ServerMsg) {
        if reply.core != self.index {
            self.shared
                .hand_over(reply.core, CoreMsg::Reply { reply, msg });
            return;
        }
        // Encoded straight into the connection's output: a reply carrying
        // chunk data is not copied through a buffer of its own first.
        let len = govfs_core::codec::encoded_len(&msg);
        if let Err(e) = self.reactor.send_with(
            reply.conn,
            FrameKind::Client,
            reply.request_id,
            len,
            |out| govfs_core::codec::encode_into(&msg, out),
        ) {
            debug!("answer to {} lost: {e}", reply.conn);
        }
    }

    fn node_status(&self) -> NodeStatus {
        let board = self.shared.board.lock().unwrap_or_else(|p| p.into_inner());
        let mut president = None;
        let mut shards = Vec::new();
        for (core, (p, s)) in board.iter() {
            if *core == PRESIDENT_CORE {
                president = *p;
            }
            shards.extend(s.iter().cloned());
        }
        NodeStatus {
            id: self.shared.id,
            president: president.unwrap_or_else(|| Status {
                id: self.shared.id,
                group: PRESIDENT_GROUP,
                role: govfs_core::raft::Role::Follower,
                term: 0,
                leader: None,
                last_index: 0,
                last_term: 0,
                commit: 0,
                applied: 0,
                durable: 0,
            }),
            shards,
        }
    }

    fn on_tick(&mut self) {
        let now = self.shared.now();
        {
            let mut board = self.shared.board.lock().unwrap_or_else(|p| p.into_inner());
            board.insert(
                self.index,
                (self.core.president_status(), self.core.shard_statuses(now)),
            );
        }
        // A proposal lost in a failover is never answered: tell the client to retry.
        let expired: Vec<(u64, u64)> = self
            .waiting
            .iter()
            .filter(|(_, ws)| ws.iter().all(|(_, since)| since.elapsed() >= CLIENT_WAIT))
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            for (reply, _) in self.waiting.remove(&key).unwrap_or_default() {
                self.answer(
                    reply,
                    ServerMsg::Error("no answer in time; retry with the same request id".into()),
                );
            }
        }
    }

    /// Write, sync, send and answer what the turn produced.
    fn after_turn(&mut self, mut out: Output) -> Result<(), NodeError> {
        for _ in 0..16 {
            // Raft's work for everything fed to the core since the last round.
            self.core.finish_turn(self.shared.now(), &mut out);
            let mut entries = 0usize;
            for (disk, seq, ops) in std::mem::take(&mut out.persist) {
                for op in &ops {
                    match op {
                        LogOp::Entries(es) => entries += es.len(),
                        // The log is replaced: its old completion fd is gone.
                        LogOp::Join { .. } | LogOp::Leave { .. } => {
                            self.watching.remove(&disk);
                        }
                        _ => {}
                    }
                }
                self.storage.write(disk, &ops)?;
                self.syncs.entry(disk).or_default().written = Some(seq);
            }
            if entries > 0 {
                self.metric_batch.record(entries as f64);
                self.metric_written.increment(entries as u64);
            }
            self.route_sends(&mut out);
            let mut progressed = false;
            let disks: Vec<Disk> = self.syncs.keys().copied().collect();
            for disk in disks {
                let s = self.syncs.get_mut(&disk).expect("listed");
                if let Some((seq, started)) = s.flying {
                    if self.storage.poll_sync(disk)? {
                        s.flying = None;
                        self.metric_fsync.record(started.elapsed().as_secs_f64());
                        self.core.synced(self.shared.now(), disk, seq, &mut out);
                        progressed = true;
                    }
                }
                let s = self.syncs.get_mut(&disk).expect("listed");
                if s.flying.is_none() {
                    if let Some(seq) = s.written {
                        match self.storage.start_sync(disk)? {
                            SyncStart::Started => {
                                s.written = None;
                                s.flying = Some((seq, Instant::now()));
                            }
                            SyncStart::Nothing => {
                                s.written = None;
                                self.core.synced(self.shared.now(), disk, seq, &mut out);
                                progressed = true;
                            }
                            SyncStart::Busy => {}
                        }
                    }
                }
            }
            // Messages a finished sync released (one for this node's own
            // core makes more Raft work: another round).
            self.route_sends(&mut out);
            if out.persist.is_empty() && !progressed && !self.core.turn_pending() {
                break;
            }
        }
        self.route_sends(&mut out);
        self.route_lease_sends(&mut out);
        self.watch_syncs();
        for (client, reply) in std::mem::take(&mut out.replies) {
            self.client_reply(client, reply);
        }
        for (token, answer) in std::mem::take(&mut out.reads) {
            if let Some(to) = self.reads.remove(&token) {
                self.answer(to, ServerMsg::Read(answer));
            }
        }
        for (token, answer) in std::mem::take(&mut out.leases) {
            if let Some(to) = self.reads.remove(&token) {
                self.answer(to, ServerMsg::Lease(answer));
            }
        }
        for update in std::mem::take(&mut out.map_updates) {
            for core in 0..self.shared.cores {
                if core != self.index {
                    self.shared.hand_over(core, CoreMsg::Map(update.clone()));
                }
            }
        }
        if self.index == PRESIDENT_CORE {
            self.shared
                .president
                .publish(self.core.president_view(self.shared.now()));
        }
        for obs in &out.observed {
            if let Observation::BecameLeader { group, term, .. } = obs {
                let kind = if *group == PRESIDENT_GROUP {
                    "president"
                } else {
                    "minister"
                };
                metrics::counter!("govfs_leader_changes_total", "role" => kind).increment(1);
                info!(core = self.index, group, term, "became {kind}");
            }
        }
        Ok(())
    }

    /// Sleep on the completion fd of every log with a sync in flight.
    fn watch_syncs(&mut self) {
        let fds = self.storage.completion_fds();
        for (disk, fd) in fds {
            let flying = self.syncs.get(&disk).is_some_and(|s| s.flying.is_some());
            if flying && self.watching.insert(disk) {
                if let Err(e) = self.reactor.watch_readable(fd, disk_token(disk)) {
                    // Fall back to polling this log every SYNC_POLL.
                    self.watching.remove(&disk);
                    debug!(?disk, "cannot watch the log's completions: {e}");
                }
            }
        }
    }

    fn client_reply(&mut self, client: u64, reply: ClientReply) {
        let (seq, done) = match &reply {
            ClientReply::Done { seq, .. } => (*seq, true),
            ClientReply::NotLeader { seq, .. }
            | ClientReply::UnknownSession { seq }
            | ClientReply::StaleTerm { seq, .. } => (*seq, false),
        };
        let Some(waiters) = self.waiting.remove(&(client, seq)) else {
            return;
        };
        for (to, since) in waiters {
            if done {
                self.metric_latency.record(since.elapsed().as_secs_f64());
            }
            self.answer(to, ServerMsg::Reply(reply.clone()));
        }
    }

    /// Messages for other nodes go out on this core's link to them; those
    /// for this node (a shard's report to the president member here) go to
    /// the core that handles them.
    fn route_sends(&mut self, out: &mut Output) {
        // Handing a message to our own core may make more (bounded: a few rounds).
        for _ in 0..4 {
            if out.send.is_empty() {
                break;
            }
            self.route_sends_once(out);
        }
    }

    /// Lease messages go to another node's shard, in `Control` frames.
    fn route_lease_sends(&mut self, out: &mut Output) {
        for (to, msg) in std::mem::take(&mut out.lease_send) {
            let node = node_of(to);
            if node == self.shared.id {
                // A ministry's members are on distinct nodes; never expected.
                continue;
            }
            let Some(conn) = self.peers.get(&node).and_then(|l| l.conn.filter(|_| l.up)) else {
                // Lock batches are resent every heartbeat; replies follow them.
                metrics::counter!("govfs_peer_drops_total").increment(1);
                continue;
            };
            let stamped = Stamped {
                lamport: self.shared.clock.send(),
                msg: &msg,
            };
            let body = postcard::to_stdvec(&stamped).expect("lease messages encode");
            if let Err(e) = self.reactor.send(conn, FrameKind::Control, 0, &body) {
                metrics::counter!("govfs_peer_drops_total").increment(1);
                debug!(peer = node, "send failed: {e}");
            }
        }
    }

    fn route_sends_once(&mut self, out: &mut Output) {
        for (to, msg) in std::mem::take(&mut out.send) {
            let node = node_of(to);
            if node == self.shared.id {
                let core =
                    core_of_message(&msg, self.core.map(), self.shared.id, self.shared.cores);
                if core == self.index {
                    self.core.receive(self.shared.now(), msg, out);
                } else {
                    self.shared.hand_over(core, CoreMsg::Node(msg));
                }
                continue;
            }
            let Some(link) = self.peers.get(&node) else {
                continue;
            };
            let Some(conn) = link.conn.filter(|_| link.up) else {
                // Raft resends; a peer that is down gets the news when it is back.
                metrics::counter!("govfs_peer_drops_total").increment(1);
                continue;
            };
            let stamped = Stamped {
                lamport: self.shared.clock.send(),
                msg: &msg,
            };
            let body = postcard::to_stdvec(&stamped).expect("node messages encode");
            if let Err(e) = self.reactor.send(conn, FrameKind::Raft, 0, &body) {
                metrics::counter!("govfs_peer_drops_total").increment(1);
                debug!(peer = node, "send failed: {e}");
            }
        }
    }
}
