//! A local cluster of real `govfs node` processes for tests, driven through
//! the `govfs` binary itself. The tests run on a multi-threaded tokio
//! runtime; the helpers that start and kill processes block the test's own
//! thread only (the client's connection tasks run on the workers).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use govfs_client::{Client, ClientOptions};
use govfs_core::node::NodeStatus;
use govfs_core::raft::{NodeId, Role};
use govfs_net::ClusterKey;

pub const GOVFS: &str = env!("CARGO_BIN_EXE_govfs");

pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub addrs: Vec<SocketAddr>,
    pub key: ClusterKey,
    pub nodes: u64,
}

impl TestCluster {
    pub fn up(nodes: u64, ministries: usize) -> TestCluster {
        Self::up_with(nodes, ministries, "kv")
    }

    /// `app`: what the ministries run, "kv" or "meta".
    pub fn up_with(nodes: u64, ministries: usize, app: &str) -> TestCluster {
        Self::up_args(nodes, ministries, app, &[])
    }

    /// Like [`TestCluster::up_with`], with more `govfs cluster up` arguments.
    pub fn up_args(nodes: u64, ministries: usize, app: &str, extra: &[&str]) -> TestCluster {
        let dir = tempfile::Builder::new()
            .prefix("govfs-test-")
            .tempdir()
            .expect("tempdir");
        let out = Command::new(GOVFS)
            .args([
                "cluster",
                "up",
                "--nodes",
                &nodes.to_string(),
                "--ministries",
                &ministries.to_string(),
                "--app",
                app,
            ])
            .args(extra)
            .arg("--dir")
            .arg(dir.path())
            .args(["--wait", "60"])
            .output()
            .expect("run govfs cluster up");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "cluster up failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("GOVFS_CLUSTER="))
            .expect("GOVFS_CLUSTER line");
        let addrs = line
            .split(',')
            .map(|a| a.parse().expect("address"))
            .collect();
        let key = ClusterKey::from_file(dir.path().join("cluster.key")).expect("key");
        TestCluster {
            dir,
            addrs,
            key,
            nodes,
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub async fn client(&self) -> Client {
        let deadline = Instant::now() + Duration::from_secs(20);
        let options = ClientOptions::with_timeout(Duration::from_secs(2));
        loop {
            match Client::connect(self.addrs.clone(), self.key.clone(), options.clone()).await {
                Ok(c) => return c,
                Err(e) if Instant::now() > deadline => panic!("no client: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    pub fn govfs(&self, args: &[&str]) {
        let mut cmd = Command::new(GOVFS);
        cmd.args(args).arg("--dir").arg(self.dir.path());
        run_ok(cmd, args);
    }

    /// Runs a client command (`govfs put`, `ls`, ...) against the cluster;
    /// it must succeed. Returns its standard output.
    pub fn cli(&self, args: &[&str]) -> Vec<u8> {
        let addrs: Vec<String> = self.addrs.iter().map(|a| a.to_string()).collect();
        let mut cmd = Command::new(GOVFS);
        cmd.args(args)
            .env("GOVFS_CLUSTER", addrs.join(","))
            .env("GOVFS_KEY_FILE", self.path().join("cluster.key"));
        run_ok(cmd, args)
    }

    pub fn kill(&self, node: NodeId) {
        self.govfs(&[
            "cluster",
            "kill-node",
            "--node",
            &node.to_string(),
            "--signal",
            "KILL",
        ]);
    }

    pub fn start(&self, node: NodeId) {
        self.govfs(&["cluster", "start-node", "--node", &node.to_string()]);
    }

    pub async fn statuses(&self) -> Vec<NodeStatus> {
        let c = self.client().await;
        c.status_all()
            .await
            .into_iter()
            .filter_map(|(_, r)| r.ok())
            .collect()
    }

    pub async fn president(&self) -> Option<NodeId> {
        self.statuses()
            .await
            .into_iter()
            .find(|s| s.president.role == Role::Leader)
            .map(|s| s.id)
    }

    /// The serving minister of `ministry` and its clerks.
    pub async fn ministry(&self, ministry: u64) -> Option<(NodeId, Vec<NodeId>)> {
        let sts = self.statuses().await;
        let minister = sts
            .iter()
            .find(|s| s.serving_ministers().any(|g| g == ministry))?
            .id;
        let clerks = sts
            .iter()
            .filter(|s| s.id != minister && s.member_of(ministry))
            .map(|s| s.id)
            .collect();
        Some((minister, clerks))
    }

    /// Wait until a president leads and `ministries` ministries have a serving minister.
    pub async fn wait_serving(&self, ministries: usize, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let sts = self.statuses().await;
            let president = sts.iter().any(|s| s.president.role == Role::Leader);
            let leading: std::collections::BTreeSet<u64> =
                sts.iter().flat_map(|s| s.serving_ministers()).collect();
            if president && leading.len() >= ministries {
                return;
            }
            assert!(Instant::now() < deadline, "cluster did not recover within {within:?}: president {president}, leading {leading:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The process id of a running node.
    pub fn pid(&self, node: NodeId) -> u32 {
        let path = self.dir.path().join(format!("n{node}/pid"));
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .trim()
            .parse()
            .expect("a pid")
    }

    fn signal(&self, node: NodeId, signal: &str) {
        let pid = self.pid(node).to_string();
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid} (node {node})");
    }

    /// SIGSTOP a node: it stays alive, holds its sockets open and answers
    /// nothing (a stuck process, not a dead one) until [`Self::cont`].
    pub fn stop(&self, node: NodeId) {
        self.signal(node, "-STOP");
    }

    /// SIGCONT a node stopped by [`Self::stop`].
    pub fn cont(&self, node: NodeId) {
        self.signal(node, "-CONT");
    }

    /// SIGCONT every node that has a pid file (harmless on running ones).
    pub fn cont_all(&self) {
        for node in 1..=self.nodes {
            if self.dir.path().join(format!("n{node}/pid")).exists() {
                self.cont(node);
            }
        }
    }

    pub fn log(&self, node: NodeId) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("n{node}/node.log")))
            .unwrap_or_default()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let _ = Command::new(GOVFS)
            .args(["cluster", "down", "--dir"])
            .arg(self.dir.path())
            .output();
    }
}

/// Runs `cmd` (govfs with `args`), which must succeed; its standard output.
fn run_ok(mut cmd: Command, args: &[&str]) -> Vec<u8> {
    let out = cmd.output().expect("run govfs");
    assert!(
        out.status.success(),
        "govfs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Bytes from a xorshift generator: a test's data, different per seed.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Established TCP connections this test process holds to `addr` (read
/// from /proc: our socket fds matched against the kernel's TCP table).
pub fn tcp_connections_to(addr: SocketAddr) -> usize {
    let SocketAddr::V4(v4) = addr else {
        panic!("IPv4 only: {addr}")
    };
    // /proc/net/tcp writes an address as the in-memory u32 in hex, then the port.
    let remote = format!(
        "{:08X}:{:04X}",
        u32::from_ne_bytes(v4.ip().octets()),
        v4.port()
    );
    let ours: std::collections::HashSet<String> = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let table = std::fs::read_to_string("/proc/self/net/tcp").expect("/proc/self/net/tcp");
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        // Columns: sl local rem st ... inode (the 10th).
        .filter(|c| c.len() > 9 && c[2] == remote && c[3] == "01" && ours.contains(c[9]))
        .count()
}

/// Writes `data` in 1 MiB pieces (each fits a data-path slot) and reads
/// it back the same way and whole; every byte must match.
pub async fn round_trip(fs: &mut govfs_client::FileSystem, path: &str, data: &[u8]) {
    use govfs_client::OpenMode;
    const MIB: usize = 1 << 20;
    let mut f = fs.open_file(path, OpenMode::Write).await.expect("open");
    for (k, piece) in data.chunks(MIB).enumerate() {
        f.write_at((k * MIB) as u64, piece)
            .await
            .unwrap_or_else(|e| panic!("write {k}: {e}"));
    }
    f.close().await.expect("close");
    let mut r = fs.open_file(path, OpenMode::Read).await.expect("open");
    for (k, piece) in data.chunks(MIB).enumerate() {
        let got = r
            .read_at((k * MIB) as u64, piece.len() as u64)
            .await
            .unwrap_or_else(|e| panic!("read {k}: {e}"));
        assert!(got == piece, "piece {k} reads back as written");
    }
    let all = r.read_at(0, data.len() as u64 + 1).await.expect("read");
    assert!(all == data, "the whole file reads back as written");
}
