//! `govfs node --config FILE`: the node's TOML configuration.
//!
//! ```toml
//! id = 1
//! listen = "127.0.0.1:7001"
//! data_dir = "/var/lib/govfs"
//! cluster_key_file = "/etc/govfs/cluster.key"   # or cluster_key = "<hex>"
//! metrics_listen = "127.0.0.1:9101"             # optional
//! cores = 2                                     # core threads, one pinned per CPU (default 1)
//! shards_per_core = 1                           # ministry shards each core hosts (default 1)
//! cpu = 0                                       # optional: pin core i to CPU cpu + i
//! voters = [1, 2, 3]                            # initial president voters
//! ministries = 1
//! ministry_size = 3
//! app = "meta"                                  # what ministries run: "meta" (the namespace) or "kv" (test workload)
//!
//! [peers]                                       # every node, this one included
//! 1 = "127.0.0.1:7001"
//! 2 = "127.0.0.1:7002"
//! 3 = "127.0.0.1:7003"
//!
//! [timing]                                      # optional, milliseconds
//! heartbeat_ms = 50
//! election_timeout_ms = 300
//! serve_timeout_ms = 500
//! failure_timeout_ms = 800
//!
//! [leases]                                      # optional, milliseconds (defaults from H)
//! max_read_ms = 500                             # at most serve_timeout_ms
//! max_write_ms = 1000
//! drift_ppm = 10000
//!
//! [storage]                                     # optional: the chunk store (issue 6)
//! dir = "/var/lib/govfs/chunks"                 # default: data_dir/chunks
//! shards = 1                                    # storage threads (default: cores)
//! max_chunk_mb = 64                             # largest chunk a layout may use here
//! max_skew_ms = 2000                            # clock skew a grant's expiry allows
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use govfs_core::data::GrantKey;
use govfs_core::lease::Drift;
use govfs_core::meta::types::Layout;
use govfs_core::node::{LeaseSettings, NodeConfig, NodeTiming};
use govfs_core::president::DriverConfig;
use govfs_core::raft::{InjectedFaults, NodeId};
use govfs_engine::node::NodeSettings;
use govfs_engine::node::StorageSettings;
use govfs_net::ClusterKey;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    pub id: NodeId,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_key_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<usize>,
    #[serde(default = "one_u32")]
    pub cores: u32,
    #[serde(default = "one_u32")]
    pub shards_per_core: u32,
    pub voters: Vec<NodeId>,
    #[serde(default = "one")]
    pub ministries: usize,
    #[serde(default = "three")]
    pub ministry_size: usize,
    pub peers: BTreeMap<String, SocketAddr>,
    #[serde(default)]
    pub app: AppKind,
    #[serde(default)]
    pub timing: TimingFile,
    #[serde(default)]
    pub leases: LeaseFile,
    #[serde(default)]
    pub storage: StorageFile,
    #[serde(default)]
    pub repair: RepairFile,
}

/// `[repair]`: the re-replication agent (see `repair.rs`), all optional.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RepairFile {
    /// Run no agent on this node (its ministries' chunks are then only
    /// moved by `govfs rereplicate`).
    pub disabled: bool,
    /// How long a node must be down before its chunks move elsewhere: a
    /// node restarting within it keeps its replicas. Default 60 s.
    pub delay_ms: u64,
    /// How often the agent looks. Default 2 s.
    pub interval_ms: u64,
}

impl Default for RepairFile {
    fn default() -> Self {
        RepairFile {
            disabled: false,
            delay_ms: 60_000,
            interval_ms: 2_000,
        }
    }
}

/// `[storage]` (issue 6), all optional.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageFile {
    /// Store no chunks on this node.
    pub disabled: bool,
    pub dir: Option<PathBuf>,
    pub shards: Option<u32>,
    pub max_chunk_mb: Option<u32>,
    pub max_skew_ms: Option<u64>,
}

impl StorageFile {
    fn settings(
        &self,
        data_dir: &Path,
        cores: u32,
        key: &ClusterKey,
    ) -> Result<Option<StorageSettings>, String> {
        if self.disabled {
            return Ok(None);
        }
        let grant_key = GrantKey::derive(key.secret()).map_err(|e| format!("storage: {e}"))?;
        let dir = self.dir.clone().unwrap_or_else(|| data_dir.join("chunks"));
        let mut s = StorageSettings::new(dir, grant_key);
        s.shards = self.shards.unwrap_or(cores).max(1);
        if let Some(mb) = self.max_chunk_mb {
            let bytes = u64::from(mb) << 20;
            if mb == 0 || !bytes.is_power_of_two() || bytes > u64::from(Layout::MAX_CHUNK) {
                return Err("storage: max_chunk_mb must be a power of two up to 1024".into());
            }
            s.chunk_size = bytes as usize;
        }
        if let Some(ms) = self.max_skew_ms {
            s.max_skew_us = ms.saturating_mul(1000);
        }
        Ok(Some(s))
    }
}

/// `[leases]` (issue 5), all optional; durations in milliseconds, each
/// defaulting to a multiple of H (`serve_timeout_ms`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeaseFile {
    /// Grant no leases (every lease request is refused).
    pub disabled: bool,
    /// Largest clock-rate error of any node, in parts per million (default 10000: 1%).
    pub drift_ppm: Option<u32>,
    /// Longest read lease (default and at most H).
    pub max_read_ms: Option<u64>,
    /// Longest write lease (default 2H).
    pub max_write_ms: Option<u64>,
    /// How long a clerk lock stays after its last write lease (default H).
    pub linger_ms: Option<u64>,
    /// How long a write acquire may wait on the minister (default 3H).
    pub write_wait_ms: Option<u64>,
    /// How long a revocation watch is parked (default H).
    pub watch_wait_ms: Option<u64>,
}

impl LeaseFile {
    /// The node's lease settings for H = `serve_timeout` (µs), or why not.
    pub fn settings(&self, serve_timeout: u64) -> Result<Option<LeaseSettings>, String> {
        if self.disabled {
            return Ok(None);
        }
        let ms = |v: u64| v * 1000;
        let mut s = LeaseSettings::new(serve_timeout);
        if let Some(ppm) = self.drift_ppm {
            if ppm > Drift::MAX_PPM {
                return Err(format!(
                    "leases: drift_ppm {ppm} is beyond {}",
                    Drift::MAX_PPM
                ));
            }
            s.config.drift = Drift::from_ppm(ppm);
        }
        if let Some(v) = self.max_read_ms {
            if v == 0 || ms(v) > serve_timeout {
                return Err("leases: max_read_ms must be in 1..=serve_timeout_ms".into());
            }
            s.config.max_read_duration = ms(v);
        }
        if let Some(v) = self.max_write_ms {
            if v == 0 {
                return Err("leases: max_write_ms must be positive".into());
            }
            s.config.max_write_duration = ms(v);
        }
        if let Some(v) = self.linger_ms {
            s.config.linger = ms(v);
        }
        if let Some(v) = self.write_wait_ms {
            s.write_wait = ms(v);
        }
        if let Some(v) = self.watch_wait_ms {
            s.watch_wait = ms(v);
        }
        if serve_timeout == 0
            || s.config.heartbeat >= s.config.drift.holder_span(s.config.serve_timeout)
        {
            return Err("leases: serve_timeout_ms is too short for lease heartbeats".into());
        }
        Ok(Some(s))
    }
}

/// The application every ministry of the cluster runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AppKind {
    /// Keys holding lists of appended values: the workload the tests and `govfs demo` drive.
    #[default]
    Kv,
    /// The file-system namespace.
    Meta,
}

fn one() -> usize {
    1
}
fn three() -> usize {
    3
}
fn one_u32() -> u32 {
    1
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimingFile {
    pub tick_ms: u64,
    pub heartbeat_ms: u64,
    pub election_timeout_ms: u64,
    pub serve_timeout_ms: u64,
    pub report_interval_ms: u64,
    pub failure_timeout_ms: u64,
    pub appointment_timeout_ms: u64,
    pub snapshot_every: u64,
}

impl Default for TimingFile {
    fn default() -> Self {
        TimingFile {
            tick_ms: 5,
            heartbeat_ms: 50,
            election_timeout_ms: 300,
            serve_timeout_ms: 500,
            report_interval_ms: 50,
            failure_timeout_ms: 400,
            appointment_timeout_ms: 300,
            snapshot_every: 10_000,
        }
    }
}

impl NodeFile {
    pub fn load(path: &Path) -> Result<NodeFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source,
        })
    }

    pub fn settings(&self, path: &Path) -> Result<NodeSettings, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.into(),
            message,
        };
        let key = match (&self.cluster_key, &self.cluster_key_file) {
            (Some(hex), None) => {
                ClusterKey::from_hex(hex).map_err(|e| invalid(format!("cluster_key: {e}")))?
            }
            (None, Some(file)) => ClusterKey::from_file(file)
                .map_err(|e| invalid(format!("cluster_key_file {}: {e}", file.display())))?,
            _ => {
                return Err(invalid(
                    "set exactly one of cluster_key and cluster_key_file".into(),
                ))
            }
        };
        let mut peers = BTreeMap::new();
        for (id, addr) in &self.peers {
            let id: NodeId = id
                .parse()
                .map_err(|_| invalid(format!("peer id {id:?} is not a number")))?;
            peers.insert(id, *addr);
        }
        if peers.get(&self.id) != Some(&self.listen) {
            return Err(invalid(format!(
                "[peers] must list this node ({}) at its listen address",
                self.id
            )));
        }
        if self.voters.is_empty() || self.voters.iter().any(|v| !peers.contains_key(v)) {
            return Err(invalid(
                "voters must be non-empty and listed in [peers]".into(),
            ));
        }
        let t = &self.timing;
        if t.tick_ms == 0 || t.heartbeat_ms == 0 || t.election_timeout_ms <= t.heartbeat_ms {
            return Err(invalid(
                "timing: need tick > 0, heartbeat > 0 and election timeout > heartbeat".into(),
            ));
        }
        let ms = |v: u64| v * 1000;
        let learners: Vec<NodeId> = peers
            .keys()
            .copied()
            .filter(|p| !self.voters.contains(p))
            .collect();
        let config = NodeConfig {
            id: self.id,
            voters: self.voters.clone(),
            learners,
            timing: NodeTiming {
                heartbeat: ms(t.heartbeat_ms),
                election_timeout: ms(t.election_timeout_ms),
                serve_timeout: ms(t.serve_timeout_ms),
                report_interval: ms(t.report_interval_ms),
                snapshot_every: t.snapshot_every.max(1),
                max_inflight: 64,
                max_append_bytes: 1 << 20,
            },
            faults: InjectedFaults::default(),
            driver: DriverConfig {
                ministries: self.ministries,
                ministry_size: self.ministry_size.max(1),
                failure_timeout: ms(t.failure_timeout_ms),
                appointment_timeout: ms(t.appointment_timeout_ms),
                appoint_without_majority: false,
            },
            observe_entries: false,
            president: true,
            shards: Vec::new(),
            core: 0,
            share_map: false,
        };
        let storage = self
            .storage
            .settings(&self.data_dir, self.cores, &key)
            .map_err(invalid)?;
        Ok(NodeSettings {
            storage,
            config,
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            peers,
            key,
            tick: Duration::from_millis(t.tick_ms),
            pin_cpu: self.cpu,
            cores: self.cores,
            shards_per_core: self.shards_per_core,
            metrics_listen: self.metrics_listen,
            leases: self
                .leases
                .settings(ms(t.serve_timeout_ms))
                .map_err(invalid)?,
        })
    }
}
