//! `govfs cluster up|down|start-node|kill-node`: a local cluster of node
//! processes on 127.0.0.1, each with its own ports and data directory.
//!
//! ```text
//! DIR/cluster.key        the cluster key (hex)
//! DIR/cluster.env        GOVFS_CLUSTER=... and GOVFS_KEY_FILE=... for `source`
//! DIR/nK/node.toml       node K's configuration
//! DIR/nK/node.log        its log
//! DIR/nK/pid             its process id while it runs
//! DIR/nK/data/           its logs and snapshots
//! ```

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use govfs_client::{Client, ClientOptions};
use govfs_core::raft::Role;
use govfs_net::ClusterKey;

use crate::config::{AppKind, NodeFile, RepairFile, TimingFile};

#[derive(Subcommand, Debug)]
pub enum ClusterCmd {
    /// Start N node processes and wait until every ministry has a minister.
    Up(UpArgs),
    /// Stop every node of the cluster in DIR (SIGTERM, then SIGKILL).
    Down(DirArgs),
    /// Start (or restart) one node of the cluster in DIR.
    StartNode(NodeRef),
    /// Send a signal (default KILL) to one node of the cluster in DIR.
    KillNode(KillArgs),
}

#[derive(Args, Debug)]
pub struct UpArgs {
    #[arg(long, default_value_t = 3)]
    pub nodes: u64,
    /// Where the cluster lives (default: a new directory under the temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    pub ministries: usize,
    #[arg(long, default_value_t = 3)]
    pub ministry_size: usize,
    /// President voters (nodes 1..=V); default min(nodes, 3).
    #[arg(long)]
    pub voters: Option<u64>,
    /// Seconds to wait for the cluster to serve.
    #[arg(long, default_value_t = 60)]
    pub wait: u64,
    /// Print `export VAR=value` lines, for `eval "$(govfs cluster up --shell)"`.
    #[arg(long)]
    pub shell: bool,
    /// What the ministries run.
    #[arg(long, value_enum, default_value_t = AppKind::Kv)]
    pub app: AppKind,
    /// Core threads per node.
    #[arg(long, default_value_t = 1)]
    pub cores: u32,
    /// Ministry shards per core.
    #[arg(long, default_value_t = 1)]
    pub shards_per_core: u32,
    /// Seconds a node must be down before its chunks are re-replicated.
    #[arg(long, default_value_t = 30)]
    pub repair_delay: u64,
}

#[derive(Args, Debug)]
pub struct DirArgs {
    #[arg(long, env = "GOVFS_DIR")]
    pub dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct NodeRef {
    #[arg(long, env = "GOVFS_DIR")]
    pub dir: PathBuf,
    #[arg(long)]
    pub node: u64,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    #[command(flatten)]
    pub node: NodeRef,
    /// TERM or KILL.
    #[arg(long, default_value = "KILL")]
    pub signal: String,
}

pub async fn run(cmd: ClusterCmd) -> i32 {
    let result = match cmd {
        ClusterCmd::Up(a) => up(&a).await.map(|c| {
            let p = if a.shell { "export " } else { "" };
            println!("{p}GOVFS_CLUSTER={}", c.cluster);
            println!("{p}GOVFS_KEY_FILE={}", c.key_file.display());
            println!("{p}GOVFS_DIR={}", c.dir.display());
        }),
        ClusterCmd::Down(a) => down(&a.dir),
        ClusterCmd::StartNode(n) => start_node(&n.dir, n.node).map(|_| ()),
        ClusterCmd::KillNode(k) => kill_node(&k.node.dir, k.node.node, &k.signal),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("govfs cluster: {e}");
            1
        }
    }
}

impl UpArgs {
    /// One ministry of 3 on `nodes` nodes under a new temporary directory.
    pub fn local(nodes: u64) -> UpArgs {
        UpArgs {
            nodes,
            dir: None,
            ministries: 1,
            ministry_size: 3,
            voters: None,
            wait: 60,
            shell: false,
            app: AppKind::Kv,
            cores: 1,
            shards_per_core: 1,
            repair_delay: 30,
        }
    }
}

pub struct LocalCluster {
    pub dir: PathBuf,
    pub cluster: String,
    pub key_file: PathBuf,
}

impl LocalCluster {
    pub async fn client(&self, timeout: Duration) -> Result<Client, String> {
        self.client_with(ClientOptions::with_timeout(timeout)).await
    }

    pub async fn client_with(&self, options: ClientOptions) -> Result<Client, String> {
        let key = ClusterKey::from_file(&self.key_file).map_err(|e| e.to_string())?;
        let addrs = self
            .cluster
            .split(',')
            .map(|a| a.parse().map_err(|e| format!("{a}: {e}")))
            .collect::<Result<_, String>>()?;
        Client::connect(addrs, key, options)
            .await
            .map_err(|e| e.to_string())
    }
}

/// A port free now for a node to listen on later. Not one the kernel
/// hands out itself (`bind(:0)` and outgoing connections draw from the
/// ephemeral range): between this check and the node's bind, any client's
/// outgoing connection could take such a port and the node would fail to
/// start. Below the ephemeral range only another explicit bind can, and
/// the port is drawn at random so concurrent clusters rarely try the same.
fn free_port(taken: &mut std::collections::BTreeSet<u16>) -> Result<u16, String> {
    use std::hash::{BuildHasher, Hasher};
    let low = ephemeral_low().unwrap_or(32768);
    if low > PORTS_FROM + 1024 {
        let span = u64::from(low - PORTS_FROM);
        for _ in 0..256 {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(taken.len() as u64);
            let port = PORTS_FROM + (h.finish() % span) as u16;
            if !taken.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
                taken.insert(port);
                return Ok(port);
            }
        }
    }
    // No room below the ephemeral range: let the kernel choose.
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))?;
    let port = l
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())?;
    taken.insert(port);
    Ok(port)
}

/// Node ports are drawn from here up to the ephemeral range.
const PORTS_FROM: u16 = 20000;

/// The first port of the kernel's ephemeral range.
fn ephemeral_low() -> Option<u16> {
    let text = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

pub async fn up(a: &UpArgs) -> Result<LocalCluster, String> {
    if a.nodes == 0 {
        return Err("--nodes must be at least 1".into());
    }
    let dir = match &a.dir {
        Some(d) => {
            fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
            d.clone()
        }
        None => tempfile::Builder::new()
            .prefix("govfs-")
            .tempdir()
            .map_err(|e| e.to_string())?
            .keep(),
    };
    let key = ClusterKey::generate().map_err(|e| e.to_string())?;
    let key_file = dir.join("cluster.key");
    fs::write(&key_file, key.to_hex()).map_err(|e| format!("{}: {e}", key_file.display()))?;
    restrict(&key_file);
    let voters = a.voters.unwrap_or(a.nodes.min(3)).clamp(1, a.nodes);
    let mut peers = std::collections::BTreeMap::new();
    let mut taken = std::collections::BTreeSet::new();
    for id in 1..=a.nodes {
        peers.insert(
            id.to_string(),
            SocketAddr::from(([127, 0, 0, 1], free_port(&mut taken)?)),
        );
    }
    for id in 1..=a.nodes {
        let node_dir = dir.join(format!("n{id}"));
        fs::create_dir_all(&node_dir).map_err(|e| format!("{}: {e}", node_dir.display()))?;
        let file = NodeFile {
            id,
            listen: peers[&id.to_string()],
            data_dir: node_dir.join("data"),
            cluster_key: None,
            cluster_key_file: Some(key_file.clone()),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], free_port(&mut taken)?))),
            cpu: None,
            cores: a.cores.max(1),
            shards_per_core: a.shards_per_core.max(1),
            voters: (1..=voters).collect(),
            ministries: a.ministries,
            ministry_size: a.ministry_size,
            peers: peers.clone(),
            app: a.app,
            timing: TimingFile::default(),
            leases: Default::default(),
            storage: Default::default(),
            repair: RepairFile {
                delay_ms: a.repair_delay.saturating_mul(1000),
                interval_ms: 1_000,
                ..RepairFile::default()
            },
        };
        let text = toml::to_string_pretty(&file).map_err(|e| e.to_string())?;
        fs::write(node_dir.join("node.toml"), text).map_err(|e| e.to_string())?;
    }
    let mut started = Vec::new();
    for id in 1..=a.nodes {
        started.push((id, start_node(&dir, id)?));
    }
    let addrs: Vec<SocketAddr> = peers.values().copied().collect();
    let cluster = addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let env = format!(
        "GOVFS_CLUSTER={cluster}\nGOVFS_KEY_FILE={}\nGOVFS_DIR={}\n",
        key_file.display(),
        dir.display()
    );
    fs::write(dir.join("cluster.env"), env).map_err(|e| e.to_string())?;
    let exited = || exited_node(&dir, &started);
    wait_serving(
        &addrs,
        &key,
        a.ministries,
        Duration::from_secs(a.wait),
        &exited,
    )
    .await?;
    Ok(LocalCluster {
        dir,
        cluster,
        key_file,
    })
}

#[cfg(unix)]
fn restrict(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o600));
}

/// Start node `id` from its configuration; returns its pid.
pub fn start_node(dir: &Path, id: u64) -> Result<u32, String> {
    let node_dir = dir.join(format!("n{id}"));
    let config = node_dir.join("node.toml");
    if !config.exists() {
        return Err(format!("{} does not exist", config.display()));
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(node_dir.join("node.log"))
        .map_err(|e| e.to_string())?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let child = Command::new(exe)
        .arg("node")
        .arg("--config")
        .arg(&config)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("starting node {id}: {e}"))?;
    let pid = child.id();
    fs::write(node_dir.join("pid"), pid.to_string()).map_err(|e| e.to_string())?;
    // The node outlives this command; nobody waits for it here.
    std::mem::forget(child);
    Ok(pid)
}

fn read_pid(dir: &Path, id: u64) -> Option<i32> {
    fs::read_to_string(dir.join(format!("n{id}/pid")))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

pub fn kill_node(dir: &Path, id: u64, signal: &str) -> Result<(), String> {
    let sig = match signal.trim_start_matches("SIG") {
        "KILL" => libc::SIGKILL,
        "TERM" => libc::SIGTERM,
        other => return Err(format!("unknown signal {other:?}: use KILL or TERM")),
    };
    let pid = read_pid(dir, id)
        .ok_or_else(|| format!("node {id} has no pid file in {}", dir.display()))?;
    // SAFETY: sending a signal to a pid we started; no memory is involved.
    if unsafe { libc::kill(pid, sig) } != 0 {
        return Err(format!("node {id} (pid {pid}) is not running"));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) && Instant::now() < deadline {
        reap(pid);
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = fs::remove_file(dir.join(format!("n{id}/pid")));
    Ok(())
}

/// Collect our own child if it was one (tests start nodes directly).
fn reap(pid: i32) {
    let mut status = 0;
    // SAFETY: WNOHANG never blocks; a pid that is not our child just fails.
    unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
}

pub fn down(dir: &Path) -> Result<(), String> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let name = entry.map_err(|e| e.to_string())?.file_name();
        if let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_prefix('n'))
            .and_then(|n| n.parse::<u64>().ok())
        {
            ids.push(id);
        }
    }
    for &id in &ids {
        if let Some(pid) = read_pid(dir, id) {
            // SAFETY: as in kill_node.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for &id in &ids {
        let Some(pid) = read_pid(dir, id) else {
            continue;
        };
        while alive(pid) && Instant::now() < deadline {
            reap(pid);
            std::thread::sleep(Duration::from_millis(10));
        }
        if alive(pid) {
            // SAFETY: as in kill_node.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            reap(pid);
        }
        let _ = fs::remove_file(dir.join(format!("n{id}/pid")));
    }
    Ok(())
}

/// A node this process started (`(id, pid)`) that has exited already, said
/// with the end of its log: a cluster missing a node may never form its
/// ministries, and waiting for it would only hide why.
fn exited_node(dir: &Path, started: &[(u64, u32)]) -> Option<String> {
    for &(id, pid) in started {
        let Ok(pid) = i32::try_from(pid) else {
            continue;
        };
        let mut status = 0;
        // SAFETY: WNOHANG never blocks; the pid is a child this process
        // started, so this reaps it if it ended and touches nothing else.
        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } != pid {
            continue;
        }
        let log = dir.join(format!("n{id}/node.log"));
        let text = fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(5)..].join("\n");
        return Some(format!(
            "node {id} exited ({}); the end of {}:\n{tail}",
            if libc::WIFEXITED(status) {
                format!("status {}", libc::WEXITSTATUS(status))
            } else {
                format!("signal {}", libc::WTERMSIG(status))
            },
            log.display()
        ));
    }
    None
}

/// Wait until a president leads and every ministry has a serving minister;
/// `exited` says why waiting is pointless (a node died), if it is.
pub async fn wait_serving(
    addrs: &[SocketAddr],
    key: &ClusterKey,
    ministries: usize,
    wait: Duration,
    exited: &dyn Fn() -> Option<String>,
) -> Result<(), String> {
    let deadline = Instant::now() + wait;
    let mut last = String::from("no node answered");
    let options = ClientOptions::with_timeout(Duration::from_millis(500));
    let mut client = None;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(why) = exited() {
            return Err(format!("the cluster cannot come up: {why}"));
        }
        if client.is_none() {
            client = Client::connect(addrs.to_vec(), key.clone(), options.clone())
                .await
                .ok();
        }
        let Some(client) = &client else {
            continue;
        };
        let statuses: Vec<_> = client
            .status_all()
            .await
            .into_iter()
            .filter_map(|(_, r)| r.ok())
            .collect();
        let president = statuses.iter().any(|s| s.president.role == Role::Leader);
        let leading: std::collections::BTreeSet<u64> = statuses
            .iter()
            .flat_map(|s| s.serving_ministers())
            .collect();
        if president && leading.len() >= ministries {
            return Ok(());
        }
        last = format!(
            "president elected: {president}; ministries with a serving minister: {}/{ministries}",
            leading.len()
        );
    }
    Err(format!("the cluster did not come up in {wait:?}: {last}"))
}
