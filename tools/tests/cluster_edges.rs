//! Real processes: a node without the cluster key is refused, a malformed or
//! truncated frame closes only its own connection, metrics are served, and
//! `cluster up` says at once which node could not start.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::TestCluster;
use govfs_client::{Client, ClientOptions};
use govfs_net::ClusterKey;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_without_the_key_is_refused() {
    let cluster = TestCluster::up(4, 1);
    // A client holding another key is refused with a clear error.
    let wrong = ClusterKey::generate().unwrap();
    let options = ClientOptions::with_timeout(Duration::from_secs(2));
    match Client::connect(cluster.addrs.clone(), wrong, options).await {
        Err(e) if e.is_bad_key() => {}
        other => panic!(
            "a client with the wrong key must be refused, got {:?}",
            other.map(|_| ())
        ),
    }
    // Node 4 restarted with the wrong key never rejoins.
    cluster.kill(4);
    let bad_key = cluster.path().join("wrong.key");
    std::fs::write(&bad_key, ClusterKey::generate().unwrap().to_hex()).unwrap();
    let cfg = cluster.path().join("n4/node.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let key_line = text
        .lines()
        .find(|l| l.starts_with("cluster_key_file"))
        .unwrap()
        .to_string();
    std::fs::write(
        &cfg,
        text.replace(
            &key_line,
            &format!("cluster_key_file = {:?}", bad_key.display().to_string()),
        ),
    )
    .unwrap();
    cluster.start(4);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let statuses = cluster.statuses().await;
    assert!(
        statuses.iter().all(|s| s.id != 4),
        "node 4 must not answer clients holding the real key"
    );
    let log = cluster.log(4);
    assert!(
        log.contains("the cluster keys differ"),
        "node 4's log says why it is refused:\n{log}"
    );
    let refused = (1..=3).any(|n| cluster.log(n).contains("closed before authenticating"));
    assert!(refused, "the others saw node 4 fail the handshake");
    cluster.wait_serving(1, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_frame_closes_only_its_connection() {
    let cluster = TestCluster::up(3, 1);
    let client = cluster.client().await;
    let addr = cluster.addrs[0];
    // Garbage instead of a handshake.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nthis is not a frame at all")
        .unwrap();
    let mut buf = [0u8; 1024];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) => break e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    };
    assert!(closed, "the node closes a connection that sends garbage");
    // A truncated frame: a valid-looking header promising more than is sent.
    let mut t = TcpStream::connect(addr).unwrap();
    let mut header = Vec::new();
    header.extend_from_slice(b"GOVF");
    header.extend_from_slice(&1u16.to_le_bytes());
    header.extend_from_slice(&5u16.to_le_bytes());
    header.extend_from_slice(&40u32.to_le_bytes());
    t.write_all(&header).unwrap();
    drop(t);
    // The node still serves everyone else.
    let st = client.status(addr).await.expect("node still answers");
    assert_eq!(st.id, 1);
    cluster.wait_serving(1, Duration::from_secs(10)).await;
}

#[test]
fn nodes_serve_prometheus_metrics() {
    let cluster = TestCluster::up(3, 1);
    let text = std::fs::read_to_string(cluster.path().join("n1/node.toml")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("metrics_listen"))
        .expect("metrics_listen in config");
    let addr = line.split('"').nth(1).unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        if body.contains("govfs_fsync_seconds") || Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for name in [
        "govfs_fsync_seconds",
        "govfs_batch_entries",
        "govfs_leader_changes_total",
        "govfs_inbox_depth",
    ] {
        assert!(body.contains(name), "metric {name} missing from:\n{body}");
    }
}

/// A node that cannot start makes `cluster up` fail at once, saying which
/// node and why, instead of waiting out `--wait` for a ministry that can
/// never form.
#[test]
fn cluster_up_says_at_once_which_node_could_not_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Node 2's data directory cannot be made: a file has its name.
    std::fs::create_dir_all(dir.path().join("n2")).expect("mkdir");
    std::fs::write(dir.path().join("n2/data"), b"not a directory").expect("write");
    let started = Instant::now();
    let out = std::process::Command::new(common::GOVFS)
        .args(["cluster", "up", "--nodes", "3", "--wait", "60", "--dir"])
        .arg(dir.path())
        .output()
        .expect("run govfs cluster up");
    let _ = std::process::Command::new(common::GOVFS)
        .args(["cluster", "down", "--dir"])
        .arg(dir.path())
        .output();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "cluster up succeeded: {stderr}");
    assert!(
        stderr.contains("node 2 exited") && stderr.contains("data"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "it failed only after {:?}",
        started.elapsed()
    );
}
