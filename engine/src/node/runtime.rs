//! The node process: one core thread runs [`NodeCore`] and its storage;
//! network threads move frames in and out over crossbeam queues.
//!
//! A loop turn: take every queued event (blocking until the next tick when
//! there is none), feed them to the core, write every log operation of the
//! turn and sync each touched log once (group commit), tell the core, and
//! hand the messages to the peer writers. Only the core thread touches the
//! core and the logs, so the hot path takes no lock.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use govfs_core::codec::decode_exact;
use govfs_core::node::{
    App, ClientMsg, ClientReply, Disk, LogOp, NodeConfig, NodeCore, NodeMsg, Observation, Output,
    ServerMsg,
};
use govfs_core::raft::{NodeId, PRESIDENT_GROUP};
use govfs_net::{
    Backoff, ClusterKey, Frame, FrameKind, Identity, ListenerConfig, PeerInfo, Role, TcpConn,
    TcpListenerLoop,
};
use tracing::{debug, info, warn};

use super::storage::{NodeStorage, StorageError, SyncStart};
use crate::log_store::LogOptions;

pub struct NodeSettings {
    pub config: NodeConfig,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Every node of the cluster, this one included.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    pub key: ClusterKey,
    /// How often the core ticks.
    pub tick: Duration,
    /// Pin the core thread to this CPU.
    pub pin_cpu: Option<usize>,
    pub metrics_listen: Option<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("recovering the node's state: {0}")]
    Recover(#[from] govfs_core::codec::DecodeError),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("metrics exporter: {0}")]
    Metrics(String),
    #[error("starting a peer thread: {0}")]
    Spawn(std::io::Error),
}

enum Inbound {
    Peer(NodeMsg),
    Client {
        msg: ClientMsg,
        reply: Sender<ServerMsg>,
    },
}

/// Client requests waiting for their answer: (client, seq) -> (reply channel, since).
type Waiting = HashMap<(u64, u64), (Sender<ServerMsg>, Instant)>;

const INBOUND_CAPACITY: usize = 1 << 16;
const PEER_QUEUE_CAPACITY: usize = 1 << 14;
const CLIENT_WAIT: Duration = Duration::from_secs(10);
/// How often the core thread checks for a completed sync while one is in flight.
const SYNC_POLL: Duration = Duration::from_micros(50);

/// Runs the node until `stop` is set. Recovers from `data_dir` first.
pub fn run<A: App>(settings: NodeSettings, stop: Arc<AtomicBool>) -> Result<(), NodeError> {
    let id = settings.config.id;
    if let Some(cpu) = settings.pin_cpu {
        let pinned = core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
        info!(cpu, pinned, "core thread pinned");
    }
    if let Some(addr) = settings.metrics_listen {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()
            .map_err(|e| NodeError::Metrics(e.to_string()))?;
        info!(%addr, "serving Prometheus metrics");
    }
    let (mut storage, rec) = NodeStorage::open(&settings.data_dir, LogOptions::default())?;
    let started = Instant::now();
    let now = || started.elapsed().as_micros() as u64;
    info!(
        id,
        president_entries = rec.president.entries.len(),
        shard_group = ?rec.shard_group,
        "recovered from {}",
        settings.data_dir.display()
    );
    let mut core: NodeCore<A> = NodeCore::recover(
        settings.config.clone(),
        rec.president,
        rec.shard_group,
        rec.shard,
        now(),
    )?;

    let (tx, rx) = bounded::<Inbound>(INBOUND_CAPACITY);
    let local = Identity {
        node_id: id,
        role: Role::Node,
    };
    let listener = TcpListenerLoop::bind(
        settings.listen,
        settings.key.clone(),
        local,
        ListenerConfig::default(),
        {
            let tx = tx.clone();
            move |peer: &PeerInfo, frame: Frame| handle_frame(&tx, peer, frame)
        },
    )
    .map_err(|source| NodeError::Listen {
        addr: settings.listen,
        source,
    })?;
    info!(id, addr = %listener.local_addr(), "listening");

    let mut writers: HashMap<NodeId, Sender<Vec<u8>>> = HashMap::new();
    let mut writer_threads = Vec::new();
    for (&peer, &addr) in settings.peers.iter().filter(|(p, _)| **p != id) {
        let (ptx, prx) = bounded::<Vec<u8>>(PEER_QUEUE_CAPACITY);
        writers.insert(peer, ptx);
        let (key, stop) = (settings.key.clone(), Arc::clone(&stop));
        let t = thread::Builder::new()
            .name(format!("govfs-peer-{peer}"))
            .spawn(move || peer_writer(id, peer, addr, key, prx, stop))
            .map_err(NodeError::Spawn)?;
        writer_threads.push(t);
    }

    let mut waiting: Waiting = HashMap::new();
    let mut syncs: BTreeMap<Disk, DiskSyncs> = BTreeMap::new();
    let mut next_tick = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let mut out = Output::default();
        let mut timeout = next_tick.saturating_duration_since(Instant::now());
        if syncs.values().any(|s| s.flying.is_some()) {
            // A completion has no wake-up of its own: look again soon.
            timeout = timeout.min(SYNC_POLL);
        }
        let mut events = 0usize;
        match rx.recv_timeout(timeout) {
            Ok(ev) => {
                handle_inbound(&mut core, ev, now(), &mut waiting, &mut out);
                events += 1;
                // Everything already queued joins this turn: one batch, one sync.
                while let Ok(ev) = rx.try_recv() {
                    handle_inbound(&mut core, ev, now(), &mut waiting, &mut out);
                    events += 1;
                    if events >= 4096 {
                        break;
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if Instant::now() >= next_tick {
            core.tick(now(), &mut out);
            next_tick = Instant::now() + settings.tick;
        }
        metrics::gauge!("govfs_inbound_queue_depth").set(rx.len() as f64);
        metrics::histogram!("govfs_events_per_turn").record(events as f64);
        finish_turn(&mut core, &mut storage, &mut syncs, &mut out, &writers, now)?;
        for (to, msg) in out.send.drain(..) {
            send_to_peer(&writers, to, &msg);
        }
        for (client, reply) in out.replies {
            let (seq, done) = match &reply {
                ClientReply::Done { seq, .. } => (*seq, true),
                ClientReply::NotLeader { seq, .. } => (*seq, false),
            };
            if let Some((w, since)) = waiting.remove(&(client, seq)) {
                if done {
                    metrics::histogram!("govfs_commit_latency_seconds")
                        .record(since.elapsed().as_secs_f64());
                }
                let _ = w.send(ServerMsg::Reply(reply));
            }
        }
        for obs in &out.observed {
            if let Observation::BecameLeader { group, term, .. } = obs {
                let kind = if *group == PRESIDENT_GROUP {
                    "president"
                } else {
                    "minister"
                };
                metrics::counter!("govfs_leader_changes_total", "role" => kind).increment(1);
                info!(group, term, "became {kind}");
            }
        }
        // A proposal lost in a failover is never answered: its handler gave up.
        waiting.retain(|_, (_, since)| since.elapsed() < CLIENT_WAIT);
    }
    info!(id, "stopping");
    listener.shutdown();
    drop(writers);
    for t in writer_threads {
        let _ = t.join();
    }
    Ok(())
}

fn handle_inbound<A: App>(
    core: &mut NodeCore<A>,
    ev: Inbound,
    now: u64,
    waiting: &mut Waiting,
    out: &mut Output,
) {
    match ev {
        Inbound::Peer(msg) => core.receive(now, msg, out),
        Inbound::Client { msg, reply } => match msg {
            ClientMsg::Status => {
                let _ = reply.send(ServerMsg::Status(core.status(now)));
            }
            ClientMsg::Map => {
                let _ = reply.send(ServerMsg::Map(core.map().clone()));
            }
            ClientMsg::Request(req) => {
                metrics::counter!("govfs_client_requests_total").increment(1);
                waiting.insert((req.client, req.seq), (reply, Instant::now()));
                core.client_request(now, req, out);
            }
        },
    }
}

/// The syncs of one log: what was written but not yet in a sync, and what
/// the sync in flight covers.
#[derive(Default)]
struct DiskSyncs {
    /// Highest sequence number written and not yet covered by a started sync.
    written: Option<u64>,
    /// The sequence number the sync in flight covers, and when it started.
    flying: Option<(u64, Instant)>,
}

/// Write what the turn produced, start each log's sync without waiting, and
/// report the syncs that completed. The core holds back every message that
/// needs a sync, so the rest goes out first: a minister's appends travel
/// while its own fdatasync runs, and the core thread keeps serving meanwhile.
fn finish_turn<A: App>(
    core: &mut NodeCore<A>,
    storage: &mut NodeStorage,
    syncs: &mut BTreeMap<Disk, DiskSyncs>,
    out: &mut Output,
    writers: &HashMap<NodeId, Sender<Vec<u8>>>,
    now: impl Fn() -> u64,
) -> Result<(), NodeError> {
    for _ in 0..16 {
        let mut entries = 0usize;
        for (disk, seq, ops) in std::mem::take(&mut out.persist) {
            for op in &ops {
                if let LogOp::Entries(es) = op {
                    entries += es.len();
                }
            }
            storage.write(disk, &ops)?;
            syncs.entry(disk).or_default().written = Some(seq);
        }
        if entries > 0 {
            // Entries written per group commit: the batch size of this turn.
            metrics::histogram!("govfs_batch_entries").record(entries as f64);
            metrics::counter!("govfs_log_entries_written_total").increment(entries as u64);
        }
        for (to, msg) in out.send.drain(..) {
            send_to_peer(writers, to, &msg);
        }
        let mut progressed = false;
        for (&disk, s) in syncs.iter_mut() {
            if let Some((seq, started)) = s.flying {
                if storage.poll_sync(disk)? {
                    s.flying = None;
                    metrics::histogram!("govfs_fsync_seconds")
                        .record(started.elapsed().as_secs_f64());
                    core.synced(now(), disk, seq, out);
                    progressed = true;
                }
            }
            if s.flying.is_none() {
                if let Some(seq) = s.written {
                    match storage.start_sync(disk)? {
                        SyncStart::Started => {
                            s.written = None;
                            s.flying = Some((seq, Instant::now()));
                        }
                        SyncStart::Nothing => {
                            s.written = None;
                            core.synced(now(), disk, seq, out);
                            progressed = true;
                        }
                        SyncStart::Busy => {}
                    }
                }
            }
        }
        if out.persist.is_empty() && !progressed {
            break;
        }
    }
    Ok(())
}

fn send_to_peer(writers: &HashMap<NodeId, Sender<Vec<u8>>>, to: NodeId, msg: &NodeMsg) {
    let Some(w) = writers.get(&to) else { return };
    let body = postcard::to_stdvec(msg).expect("node messages encode");
    match w.try_send(body) {
        Ok(()) => {}
        // Raft recovers from loss; a full queue means the peer is slow or gone.
        Err(TrySendError::Full(_)) => {
            metrics::counter!("govfs_peer_queue_drops_total").increment(1)
        }
        Err(TrySendError::Disconnected(_)) => {}
    }
}

/// Runs on the listener's connection threads.
fn handle_frame(tx: &Sender<Inbound>, peer: &PeerInfo, frame: Frame) -> Option<Frame> {
    match (peer.identity.role, frame.kind) {
        (Role::Node, FrameKind::Raft) => {
            match decode_exact::<NodeMsg>(&frame.body) {
                Ok(msg) => {
                    if tx.try_send(Inbound::Peer(msg)).is_err() {
                        metrics::counter!("govfs_inbound_drops_total").increment(1);
                    }
                }
                Err(e) => warn!(
                    peer = peer.identity.node_id,
                    "undecodable node message: {e}"
                ),
            }
            None
        }
        (_, FrameKind::Client) => {
            let answer = match decode_exact::<ClientMsg>(&frame.body) {
                Ok(msg) => {
                    let (rtx, rrx) = bounded(1);
                    if tx.send(Inbound::Client { msg, reply: rtx }).is_err() {
                        ServerMsg::Error("node is stopping".into())
                    } else {
                        rrx.recv_timeout(CLIENT_WAIT).unwrap_or_else(|_| {
                            ServerMsg::Error(
                                "no answer in time; retry with the same request id".into(),
                            )
                        })
                    }
                }
                Err(e) => ServerMsg::Error(format!("undecodable request: {e}")),
            };
            let body = postcard::to_stdvec(&answer).expect("answers encode");
            Some(Frame {
                kind: FrameKind::Client,
                request_id: frame.request_id,
                body,
            })
        }
        (role, kind) => {
            warn!(?role, ?kind, "unexpected frame kind; ignored");
            None
        }
    }
}

/// One thread per peer: dial (with backoff), then write every queued message,
/// all of a turn in one write.
fn peer_writer(
    id: NodeId,
    peer: NodeId,
    addr: SocketAddr,
    key: ClusterKey,
    rx: Receiver<Vec<u8>>,
    stop: Arc<AtomicBool>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(500));
    let local = Identity {
        node_id: id,
        role: Role::Node,
    };
    let mut entropy = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ peer;
    'connect: while !stop.load(Ordering::Relaxed) {
        let mut conn = match TcpConn::connect(addr, &key, local, Duration::from_secs(2)) {
            Ok(c) => {
                info!(peer, %addr, "connected to peer");
                backoff.reset();
                c
            }
            Err(e) => {
                entropy = entropy.rotate_left(7) ^ 0xA5A5;
                let delay = backoff.next_delay(entropy);
                if e.is_bad_key() {
                    warn!(peer, %addr, "peer refused us: authentication failed, the cluster keys differ ({e})");
                } else {
                    debug!(peer, %addr, "connect failed ({e}); retry in {delay:?}");
                }
                // Messages queued meanwhile are stale by the time we connect.
                while rx.try_recv().is_ok() {}
                thread::sleep(delay);
                continue;
            }
        };
        loop {
            let first = match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(b) => b,
                Err(RecvTimeoutError::Timeout) => {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut batch = vec![first];
            while let Ok(b) = rx.try_recv() {
                batch.push(b);
                if batch.len() >= 1024 {
                    break;
                }
            }
            for body in &batch {
                if let Err(e) = conn.queue(FrameKind::Raft, 0, body) {
                    warn!(peer, "queue to peer failed: {e}");
                    continue 'connect;
                }
            }
            if let Err(e) = conn.flush() {
                warn!(peer, "write to peer failed ({e}); reconnecting");
                continue 'connect;
            }
        }
    }
}
