//! The data path's machinery across real `govfs node` processes, with its
//! slots carried over TCP (`GOVFS_DATA_PATH_OVER_TCP=1` on the nodes and
//! the client) because these machines have no RDMA device: the nodes'
//! listeners and services, the client's routes and links, a link found
//! closed and set up again, with TCP meanwhile. Only the verbs are not exercised here; they are
//! in `hw-tests/` and in `cluster_data_path.rs` built with `rdma` where a
//! device exists. Its own test binary: the variable is process-wide.

mod common;

use std::time::{Duration, Instant};

use common::{pattern, round_trip, TestCluster};
use govfs_client::{Client, FileSystem, FsOptions};
use govfs_core::data::ChunkRef;
use govfs_core::meta::{MetaOp, MetaReply};
use govfs_core::node::{ClientMsg, ServerMsg};
use govfs_net::data_path::OVER_TCP_ENV;

const MIB: usize = 1 << 20;
const EMULATED: &str = "data path: TCP (emulated)";

async fn wait_for_data_paths(client: &Client, cluster: &TestCluster) {
    let deadline = Instant::now() + Duration::from_secs(20);
    for &addr in &cluster.addrs {
        loop {
            let how = client.data_path(addr);
            if how == EMULATED {
                break;
            }
            assert!(Instant::now() < deadline, "{addr}: still {how}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_requests_take_the_data_path_and_tcp_while_it_is_set_up_again() {
    // Before anything starts: the nodes inherit it from `govfs cluster up`.
    std::env::set_var(OVER_TCP_ENV, "1");
    let cluster = TestCluster::up_with(3, 1, "meta");
    cluster.wait_serving(1, Duration::from_secs(30)).await;
    let mut fs = FileSystem::new(cluster.client().await, FsOptions::default());
    let client = fs.client().clone();
    for &addr in &cluster.addrs {
        match client.call(addr, &ClientMsg::DataPath).await.expect("ask") {
            ServerMsg::DataPath(info) => assert!(info.rdma_port.is_some(), "{addr}"),
            other => panic!("{addr}: a data path answer, not {other:?}"),
        }
    }

    // The first chunk requests go over TCP and start the setups.
    fs.create("/first", 0o644, true).await.expect("create");
    round_trip(&mut fs, "/first", &pattern(2 * MIB, 1)).await;
    wait_for_data_paths(&client, &cluster).await;

    // Now the data travels the data path: 10 writes to 3 replicas and at
    // least 10 + 3 reads, every byte checked.
    let before = client.data_path_calls();
    fs.create("/second", 0o644, true).await.expect("create");
    round_trip(&mut fs, "/second", &pattern(9 * MIB + 4321, 2)).await;
    let calls = client.data_path_calls() - before;
    assert!(
        calls >= 43,
        "only {calls} chunk requests took the data path"
    );

    // A node restarted under the client: its link is found closed and
    // dropped, the next call goes over TCP and sets a new one up; nothing
    // is lost.
    let (ministry, attr) = fs.locate("/second", true).await.expect("locate");
    let op = MetaOp::Chunks {
        ino: attr.ino,
        first: 0,
        count: 1,
    };
    let place = match fs.call(ministry, op, "/second").await.expect("chunks") {
        MetaReply::Chunks(list) => list.into_iter().next().expect("chunk 0"),
        other => panic!("a chunk list, not {other:?}"),
    };
    assert!(
        place.replicas.contains(&3),
        "node 3 holds chunk 0: {place:?}"
    );
    let chunk = ChunkRef {
        file: attr.ino,
        index: 0,
    }
    .id()
    .expect("id");
    let third = cluster.addrs[2];
    cluster.kill(3);
    // The client's data path thread polls every link, so it notices the
    // closed one without a call.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let how = client.data_path(third);
        if how == "TCP: data path lost" {
            break;
        }
        assert!(Instant::now() < deadline, "{third}: still {how}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.start(3);
    cluster.wait_serving(1, Duration::from_secs(30)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.call(third, &ClientMsg::Status).await.is_err() {
        assert!(Instant::now() < deadline, "node 3 did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The next call goes over TCP and sets a new data path up; the one
    // after takes it.
    let expected = &pattern(9 * MIB + 4321, 2)[..4096];
    let read = || client.read_chunk(3, chunk, place.version, 0, 4096);
    assert_eq!(read().await.expect("read over TCP"), expected);
    wait_for_data_paths(&client, &cluster).await;
    let before = client.data_path_calls();
    assert_eq!(read().await.expect("read over the new data path"), expected);
    assert_eq!(client.data_path_calls(), before + 1);
    fs.create("/third", 0o644, true).await.expect("create");
    round_trip(&mut fs, "/third", &pattern(5 * MIB + 7, 3)).await;
    for &addr in &cluster.addrs {
        assert_eq!(client.data_path(addr), EMULATED, "{addr}");
    }
    // Another client finds everything written, over its own data paths.
    let mut other = FileSystem::new(cluster.client().await, FsOptions::default());
    for (path, data) in [
        ("/first", pattern(2 * MIB, 1)),
        ("/second", pattern(9 * MIB + 4321, 2)),
        ("/third", pattern(5 * MIB + 7, 3)),
    ] {
        let mut f = other
            .open_file(path, govfs_client::OpenMode::Read)
            .await
            .expect("open");
        let got = f.read_at(0, data.len() as u64).await.expect("read");
        assert!(got == data, "{path} reads back as written");
    }
}
