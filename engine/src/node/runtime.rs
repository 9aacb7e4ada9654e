//! The node process: one thread per core, each pinned to its CPU with its
//! own [`CoreLoop`] (its shards, its logs and their io_urings, its network
//! reactor and listening socket). Cores share nothing on the hot path: they
//! hand each other messages over bounded crossbeam queues and wake each other
//! through the reactor's waker.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use govfs_core::data::GrantKey;
use govfs_core::node::{App, Disk, LeaseSettings, NodeConfig, NodeCore};
use govfs_core::raft::NodeId;
use govfs_net::{ClusterKey, Identity, Reactor, ReactorConfig, Role};
use tracing::{error, info};

use super::chunks::{self, StorageSettings};
use super::core_loop::{CoreLoop, Shared};
use super::lamport::NodeClock;
use super::listener::bind_shared;
use super::routing::{shards_of_core, SharedPresidentView, PRESIDENT_CORE};
use super::storage::{CoreStorage, StorageError};
use crate::log_store::LogOptions;

pub struct NodeSettings {
    pub config: NodeConfig,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Every node of the cluster, this one included.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    pub key: ClusterKey,
    /// How often each core ticks.
    pub tick: Duration,
    /// Pin core thread i to CPU `pin_cpu + i`.
    pub pin_cpu: Option<usize>,
    /// Core threads, and the shards each hosts.
    pub cores: u32,
    pub shards_per_core: u32,
    pub metrics_listen: Option<SocketAddr>,
    /// Leases (issue 5); `incarnation_base` is set here from the wall clock.
    pub leases: Option<LeaseSettings>,
    /// The storage service (issue 6); `None`: this node stores no chunks.
    pub storage: Option<StorageSettings>,
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
    #[error("setting up the network loop: {0}")]
    Reactor(std::io::Error),
    #[error("metrics exporter: {0}")]
    Metrics(String),
    #[error("starting a core thread: {0}")]
    Spawn(std::io::Error),
    #[error("storage service: {0}")]
    ChunkStore(String),
    #[error("core {core} failed: {message}")]
    Core { core: u32, message: String },
}

/// Each core's inbox holds this many messages from the other cores.
const INBOX_CAPACITY: usize = 1 << 16;

/// Runs the node until `stop` is set. Recovers from `data_dir` first.
pub fn run<A: App + Send + 'static>(
    settings: NodeSettings,
    stop: Arc<AtomicBool>,
) -> Result<(), NodeError> {
    let id = settings.config.id;
    let cores = settings.cores.max(1);
    let per_core = settings.shards_per_core.max(1);
    if let Some(addr) = settings.metrics_listen {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()
            .map_err(|e| NodeError::Metrics(e.to_string()))?;
        info!(%addr, "serving Prometheus metrics");
    }
    let started = Instant::now();
    // Clerk incarnations start at the wall clock in milliseconds, so a
    // restarted node never reuses one (unless the clock went back).
    let wall_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    // Ministers sign write grants with it (issue 6).
    let grant_key = Arc::new(
        GrantKey::derive(settings.key.secret())
            .map_err(|e| NodeError::ChunkStore(format!("grant key: {e}")))?,
    );
    let local = Identity {
        node_id: id,
        role: Role::Node,
    };
    // Every core listens on the same address (SO_REUSEPORT): the kernel
    // spreads incoming connections over them.
    let mut listen = settings.listen;
    let mut parts = Vec::new();
    for core in 0..cores {
        let mut config = settings.config.clone();
        config.president = core == PRESIDENT_CORE;
        config.shards = shards_of_core(core, cores, per_core);
        config.core = core;
        config.share_map = cores > 1;
        let mut disks: Vec<Disk> = config.shards.iter().map(|i| Disk::Shard(*i)).collect();
        if config.president {
            disks.insert(0, Disk::President);
        }
        let (storage, rec) = CoreStorage::open(&settings.data_dir, &disks, LogOptions::default())?;
        info!(
            id,
            core,
            president_entries = rec.president.entries.len(),
            shards = ?rec.shards.iter().map(|(i, s)| (*i, s.group)).collect::<Vec<_>>(),
            "recovered from {}",
            settings.data_dir.display()
        );
        let now = started.elapsed().as_micros() as u64;
        let mut node: NodeCore<A> = NodeCore::recover(config, rec.president, rec.shards, now)?;
        node.enable_grants(Arc::clone(&grant_key));
        if let Some(leases) = &settings.leases {
            let mut leases = leases.clone();
            leases.incarnation_base = wall_ms;
            node.enable_leases(leases);
        }
        let listener: TcpListener = bind_shared(listen).map_err(|source| NodeError::Listen {
            addr: listen,
            source,
        })?;
        listen = listener.local_addr().map_err(|source| NodeError::Listen {
            addr: listen,
            source,
        })?;
        let mut reactor = Reactor::new(settings.key.clone(), local, ReactorConfig::default())
            .map_err(NodeError::Reactor)?;
        reactor.listen(listener).map_err(NodeError::Reactor)?;
        if core == 0 {
            info!(id, addr = %listen, cores, shards_per_core = per_core, network = reactor.chosen(), "listening");
        }
        let (tx, rx) = bounded(INBOX_CAPACITY);
        parts.push((core, node, storage, reactor, tx, rx));
    }
    let clock = NodeClock::open(&settings.data_dir)
        .map_err(|e| NodeError::ChunkStore(format!("lamport clock: {e}")))?;
    let (chunks, storage_shards) = match &settings.storage {
        Some(s) => {
            let (inbox, shards) = chunks::open(s).map_err(NodeError::ChunkStore)?;
            (Some(inbox), shards)
        }
        None => (None, Vec::new()),
    };
    let data_path = match &chunks {
        Some(inbox) => super::data_path::start(
            listen.ip(),
            settings.key.clone(),
            id,
            inbox.clone(),
            Arc::clone(&stop),
        )
        .map_err(NodeError::Spawn)?,
        None => None,
    };
    let data_path_addr = data_path.as_ref().map(|r| r.addr);
    let shared = Arc::new(Shared {
        id,
        cores,
        inboxes: parts
            .iter()
            .map(|(_, _, _, r, tx, _)| (tx.clone(), r.waker()))
            .collect(),
        president: SharedPresidentView::new(),
        board: Mutex::new(BTreeMap::new()),
        started,
        stop: Arc::clone(&stop),
        chunks,
        clock,
        rdma_data: data_path_addr,
    });
    let storage_threads =
        chunks::spawn(storage_shards, Arc::clone(&shared)).map_err(NodeError::Spawn)?;
    let mut threads = Vec::new();
    for (core, node, storage, reactor, _tx, rx) in parts {
        let lp = CoreLoop::new(
            core,
            Arc::clone(&shared),
            node,
            storage,
            reactor,
            rx,
            &settings.peers,
            settings.tick,
        );
        let pin = settings.pin_cpu.map(|c| c + core as usize);
        let stop = Arc::clone(&stop);
        let t = thread::Builder::new()
            .name(format!("govfs-core-{core}"))
            .spawn(move || {
                if let Some(cpu) = pin {
                    let pinned = core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
                    info!(core, cpu, pinned, "core thread pinned");
                }
                let result = lp.run();
                if let Err(e) = &result {
                    error!(core, "core failed: {e}");
                    // One core down takes the node down: its shards would go silent otherwise.
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                result
            })
            .map_err(NodeError::Spawn)?;
        threads.push((core, t));
    }
    let mut first_error = None;
    for (core, t) in threads {
        let result = t.join().unwrap_or_else(|_| {
            Err(NodeError::Core {
                core,
                message: "panicked".into(),
            })
        });
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    // The storage threads see the stop flag within their poll interval.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in storage_threads {
        if t.join().is_err() {
            first_error.get_or_insert(NodeError::ChunkStore("a storage thread panicked".into()));
        }
    }
    if let Some(r) = data_path {
        r.join();
    }
    info!(id, "stopped");
    first_error.map_or(Ok(()), Err)
}
